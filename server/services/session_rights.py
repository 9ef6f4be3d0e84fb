"""Whether a kernel session may still run: the one check of a session's ``Grant`` against the rights of now.

A session is opened on a grant: its user's right to read the datasets it loaded (checked when it
opened) and, for a card's editing socket, the right to edit the card (a dashboard shared for edit).
Rights change while a session lives (a share revoked, the card taken off the dashboard or deleted, a
dataset deleted, a role changed), so the pool asks ``check`` before every run and every resume, by
whichever route (card socket, scratch socket, ``/api/card-sessions``); a session that fails it is ended
with the reason ``access_revoked`` (the audit event ``session_access_revoked``) and the caller gets 403
``access_revoked``. ``sweep`` ends a user's
sessions that no longer hold at once: it runs on every revoked share, so that the revoked user's
sockets close (4403) without waiting for their next run.
"""

from __future__ import annotations

import asyncio

from ..errors import AccessRevokedError, BIError
from ..execution.pool import KernelPool
from ..execution.session import ACCESS_REVOKED, KernelSession
from ..logs import get_logger
from ..storage.base import Store
from .audit import record
from .cards import CardService
from .datasets import may_read

log = get_logger("bi.sessions")


class SessionRights:
    def __init__(self, store: Store, cards: CardService, pool: KernelPool):
        self.store = store
        self.cards = cards
        self.pool = pool
        self._sweeps: set[asyncio.Task[None]] = set()
        pool.gate = self.check

    async def check(self, session: KernelSession) -> None:
        """End ``session`` and raise 403 ``access_revoked`` if its grant no longer holds."""
        lost = await self.lost(session)
        if lost is not None:
            await self.end(session, lost)
            raise AccessRevokedError(f"{lost} This session has ended; open a new one.", {"session_id": session.id})

    async def lost(self, session: KernelSession) -> str | None:
        """What ``session``'s user lost of its grant (a sentence), or None while it holds."""
        grant = session.grant
        if grant is None:
            return None
        user = await self.store.get_user(session.user_id)
        if user is None:
            return "Your account was removed."
        if not user.active:
            return "Your account was deactivated."
        for dataset_id in grant.dataset_ids:
            dataset = await self.store.get_dataset(dataset_id)
            if dataset is None or not may_read(user, dataset):
                return "A dataset this session loaded was deleted or may no longer be read by you."
        if grant.card_id is not None:
            try:
                await self.cards.get_visible(user, grant.card_id, needed="edit")
            except BIError:
                return "You may no longer edit the card this session edits (its share was revoked or changed)."
        return None

    async def end(self, session: KernelSession, lost: str) -> None:
        await self.pool.close_session(session, ACCESS_REVOKED)
        await record(self.store, "session_access_revoked", session_id=session.id, user_id=session.user_id,
                     reason=lost)

    async def sweep(self, user_id: str) -> None:
        """End each session of ``user_id`` whose grant no longer holds."""
        for session in [s for s in self.pool.sessions.values() if s.user_id == user_id and s.grant is not None]:
            lost = await self.lost(session)
            if lost is not None:
                await self.end(session, lost)

    def revoked(self, dashboard_id: str, user_id: str) -> None:
        """A share of ``dashboard_id`` with ``user_id`` was revoked (``DashboardService.revoked``): sweep."""
        task = asyncio.ensure_future(self.sweep(user_id))
        self._sweeps.add(task)
        task.add_done_callback(self._swept)

    def _swept(self, task: asyncio.Task[None]) -> None:
        self._sweeps.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("session_sweep_failed", error=str(task.exception()))
