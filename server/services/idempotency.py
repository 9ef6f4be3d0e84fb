"""``Idempotency-Key``: a create or save sent again with the same key gets the first answer.

The web UI sends one key per user action, so a retry after a lost answer (or after a 503 that
may have saved) makes no duplicate and no 409 from the first attempt. A key is the caller's own and
names one method and path; the same key with another body is 422 ``idempotency_key_reused``.
Successful answers are kept ``answer_seconds`` in the store (both stores keep them as records).

An answer can be lost after its create was stored and before it was kept (the store stopped answering,
so the create's read back failed too: 503). So that its retry never creates a duplicate, a request with
a key names what it creates after the key (``new_id``: the same ids on every attempt of one key and
body), and the services look for those records before creating them again (``replayed``): the key is
recorded in the very write that creates the record, its id. A new version of a record carries the request's
``mark`` in the same way: the retry of a save whose first attempt was stored (so that the retry's If-Match is
stale now) finds its own version by it and answers that, instead of a 409 from itself.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol, TypeVar

from traitlets import Integer
from traitlets.config import LoggingConfigurable

from ..errors import InvalidRequestError, StorageUnavailableError, UnprocessableError
from ..logs import get_logger
from ..models import IdempotentAnswer, User, utcnow
from ..storage.base import Store
from ..storage.catalog import CatalogueGap

KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")
MAX_KEY_CHARS = 128

log = get_logger("bi.idempotency")

# The ids of the records a request with an Idempotency-Key creates derive from this (its key, caller, route and
# body), numbered per noun in the order the request creates them.
_seed: contextvars.ContextVar[tuple[str, collections.Counter[str]] | None] = contextvars.ContextVar(
    "idempotency_seed", default=None)


@contextlib.contextmanager
def keyed(user: User, method: str, path: str, key: str, body: bytes) -> Iterator[None]:
    """Within: ``new_id`` gives the ids of this keyed request's records (the same on every attempt)."""
    token = _seed.set((_digest(f"{_scope(user, method, path, key)}\n{_digest(body)}".encode()), collections.Counter()))
    try:
        yield
    finally:
        _seed.reset(token)


def new_id(noun: str) -> str:
    """The id of a new ``noun`` (card, dashboard, user): random, or derived from the request's key (``keyed``)."""
    seed = _seed.get()
    if seed is None:
        return uuid.uuid4().hex
    number = seed[1][noun]
    seed[1][noun] += 1
    return _digest(f"{seed[0]}\n{noun}\n{number}".encode())[:32]


def mark() -> str:
    """The mark of this keyed request that the versions it saves carry ("" without a key): the same on every
    attempt of one key and body."""
    seed = _seed.get()
    return "" if seed is None else _digest(f"{seed[0]}\nmark".encode())[:32]


def ours(request_mark: str) -> bool:
    """Whether a version carrying ``request_mark`` was saved by an earlier attempt of this keyed request."""
    return bool(request_mark) and request_mark == mark()


def replayed() -> bool:
    """Whether the records created now may exist already (a keyed request, its earlier attempt's answer lost)."""
    return _seed.get() is not None


class Marked(Protocol):
    @property
    def request_mark(self) -> str: ...


V = TypeVar("V", bound=Marked)


async def own_edit(store: Store, kind: str, record_id: str, current: int, expected: int,
                   read: Callable[[str, int], Awaitable[V | None]]) -> V | None:
    """The version after ``expected`` of a card or dashboard at ``current`` if an earlier attempt of this keyed
    request saved it (its answer lost), listed again as that attempt may not have listed it; None: a stale edit."""
    if not replayed() or current <= expected:
        return None
    version = await read(record_id, expected + 1)
    if version is None or not ours(version.request_mark):
        return None
    await store.relist(CatalogueGap("unlisted", kind, record_id))
    return version


class IdempotencyService(LoggingConfigurable):
    answer_seconds = Integer(24 * 3600, min=60, help="Seconds the answer to a request with an Idempotency-Key "
                                                     "is kept for its retries.").tag(config=True)

    def __init__(self, store: Store, **kwargs: Any):
        super().__init__(**kwargs)
        self.store = store

    def read_answer(self, user: User, method: str, path: str, key: str) -> asyncio.Future[IdempotentAnswer | None]:
        """Start reading the answer kept for this key (400 at once for a malformed key): a handler starts it
        before the body arrives, beside its other reads, and hands it to ``first_answer`` once the body is in."""
        check_key(key)
        reading = asyncio.ensure_future(self.store.get_idempotent_answer(_scope(user, method, path, key), utcnow()))
        reading.add_done_callback(lambda done: done.cancelled() or done.exception())  # a request refused first
        return reading

    @staticmethod
    async def first_answer(reading: Awaitable[IdempotentAnswer | None], body: bytes) -> IdempotentAnswer | None:
        """The answer kept for the key being read, or None; 422 if the key was used with another body."""
        answer = await reading
        if answer is not None and answer.fingerprint != _digest(body):
            raise UnprocessableError("This Idempotency-Key was used for another request; send a new key with each "
                                     "new change.", {"header": "Idempotency-Key"}, code="idempotency_key_reused")
        return answer

    async def keep(self, user: User, method: str, path: str, key: str, body: bytes, status: int,
                   headers: dict[str, str], answer: bytes) -> None:
        """Keep a successful answer for the key's retries; a store that fails then only costs the replay."""
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.answer_seconds)
        try:
            await self.store.put_idempotent_answer(IdempotentAnswer(
                _scope(user, method, path, key), _digest(body), status, json.dumps(headers), answer.decode(),
                expires.isoformat(timespec="milliseconds").replace("+00:00", "Z")))
        except StorageUnavailableError:
            log.warning("idempotent_answer_not_kept", user_id=user.id, path=path)


def check_key(key: str) -> None:
    """400 for a malformed Idempotency-Key."""
    if not (0 < len(key) <= MAX_KEY_CHARS and set(key) <= KEY_CHARS):
        raise InvalidRequestError(f"An Idempotency-Key has 1 to {MAX_KEY_CHARS} letters, digits or ._:- "
                                  "characters.", {"header": "Idempotency-Key"})


def _scope(user: User, method: str, path: str, key: str) -> str:
    return _digest("\n".join((user.id, method, path, key)).encode())


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
