"""Store writes whose outcome may be unknown: nothing a write could point to is undone while it may land.

A write that fails with ``StorageUnavailableError`` (the store did not answer after its retries) may have
been done: its answer can be lost after it committed, and an attempt delayed on the network past every
timeout can still commit later, after any read back. A read back can prove that a write landed, never that
it will not. So:

- the write is read back (``landed``): done, it counts as done;
- not found, and some attempt may have reached the store (``maybe_done``: a timeout, a lost connection, a
  5xx), nothing is undone and the error is raised: what the write would point to (a blob, the cards an
  inline dashboard saved) stays, as garbage that ``bi fsck --repair`` removes past its grace if the write
  never lands, and complete if it lands (fsck lists a record that landed without its catalogue entry);
- the store refused every attempt (throttled, no connection), or refused the write (a domain error): it is
  known not done, and undone at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..errors import BIError, StorageUnavailableError
from ..logs import get_logger

log = get_logger("bi.store_writes")


async def settle(write: Awaitable[None], landed: Callable[[], Awaitable[bool]],
                 undo: Callable[[], Awaitable[None]] | None = None, **ids: str) -> None:
    """Await ``write``; on a failure, ``undo`` only once it is known not done (``ids``: for the log)."""
    try:
        await write
    except StorageUnavailableError as exc:
        if not exc.maybe_done:
            await _undo(undo)
            raise
        if await landed():
            log.info("store_write_landed", **ids)
            return
        log.info("store_write_unsettled", **ids)  # its parts stay for fsck
        raise
    except BIError:
        await _undo(undo)
        raise


def known_not_done(exc: BIError) -> bool:
    """Whether the write that failed with ``exc`` is known not to have been done (nor to be done later)."""
    return not isinstance(exc, StorageUnavailableError) or not exc.maybe_done


async def _undo(undo: Callable[[], Awaitable[None]] | None) -> None:
    if undo is not None:
        await undo()
