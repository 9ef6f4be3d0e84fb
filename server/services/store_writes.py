"""Store writes whose outcome may be unknown, resolved before anything is undone.

A write that fails with ``StorageUnavailableError`` (the store did not answer after its retries)
may have been done: its answer can be lost after it committed. So the write is read back
(``landed``) before the caller undoes what only it would point to (a blob, the cards an inline
dashboard saved): done, it counts as done; known not done, it is undone and the error raised;
unknown still (the read back fails too), nothing is undone and the parts stay as garbage that
``bi fsck`` finds. A write the store refused (a domain error) is undone at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..errors import BIError, StorageUnavailableError
from ..logs import get_logger

log = get_logger("bi.store_writes")


async def settle(write: Awaitable[None], landed: Callable[[], Awaitable[bool]],
                 undo: Callable[[], Awaitable[None]] | None = None, **ids: str) -> None:
    """Await ``write``; on a failure, ``undo`` only once it is known not to have landed (``ids``: for the log)."""
    try:
        await write
    except StorageUnavailableError:
        if await landed():
            log.info("store_write_landed", **ids)
            return
        if undo is not None:
            await undo()
        raise
    except BIError:
        if undo is not None:
            await undo()
        raise
