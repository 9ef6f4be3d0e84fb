"""Whether the sign-in an access token belongs to is still live, read from the store at most every few
seconds per sign-in.

An access token names its sign-in (``sid``); signing out this browser, or a reused refresh token, deletes
the sign-in from the store, and from then on its access tokens are refused (401 ``session_ended``), not
only at their expiry. A sign-in found live is remembered for ``SIGN_IN_CHECK_SECONDS`` (at most
``LIVE_SIGN_INS`` of them, least recently used forgotten first), so a busy page costs one store read per
sign-in every few seconds. ``forget`` drops one at once: a sign-in ended on this server is refused by it
on the next request; another server of the same store sees it within ``SIGN_IN_CHECK_SECONDS``. What needs
certainty (creating a personal access token) asks with ``fresh=True`` and always reads the store.
"""

from __future__ import annotations

import collections
import time

from ..errors import AuthenticationError
from ..limits import LIVE_SIGN_INS, SIGN_IN_CHECK_SECONDS
from ..models import utcnow
from ..storage.base import Store


class LiveSignIns:
    """The sign-ins this server recently found live in the store."""

    def __init__(self, store: Store, seconds: float = SIGN_IN_CHECK_SECONDS, size: int = LIVE_SIGN_INS):
        self.store = store
        self.seconds = seconds
        self.size = size
        self._checked: collections.OrderedDict[str, float] = collections.OrderedDict()  # id -> monotonic time
        self._endings = 0  # sign-ins forgotten so far: a read that overlapped one is not remembered

    async def check(self, session_id: str, *, fresh: bool = False) -> None:
        """Return if the sign-in ``session_id`` is live; ``AuthenticationError`` (``session_ended``) if not."""
        checked = self._checked.get(session_id)
        if not fresh and checked is not None and time.monotonic() - checked < self.seconds:
            self._checked.move_to_end(session_id)
            return
        endings = self._endings
        session = await self.store.get_sign_in_session(session_id)
        if session is None or session.expires_at <= utcnow():
            self.forget(session_id)
            raise AuthenticationError("This sign-in has ended (signed out, or ended to be safe); sign in again.",
                                      code="session_ended")
        if endings != self._endings:  # it may have ended while we read it: ask again next time
            return
        self._checked[session_id] = time.monotonic()
        self._checked.move_to_end(session_id)
        while len(self._checked) > self.size:
            self._checked.popitem(last=False)

    def forget(self, session_id: str) -> None:
        """The sign-in ended: refuse its access tokens from the next request on."""
        self._checked.pop(session_id, None)
        self._endings += 1
