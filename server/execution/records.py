"""The store's record of each interactive session's kernel, so that any API task can reattach to it.

A task writes the record when it opens a session (and again when the session gets a fresh kernel) and
deletes it when the session closes. When the task dies, its kernels live on in their executors: the next
task a client reaches loads the record (``load``), opens the sealed HMAC key (``kernel_keys``) and connects
to the kernel through its agent (``KernelPool.reattach``).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from ..kernel_keys import KernelKeyError, KernelKeys
from ..limits import KERNEL_RECORD_SECONDS
from ..logs import get_logger
from ..models import KernelRecord, iso_time, utcnow
from ..storage.base import Store
from .session import Grant, KernelSession

log = get_logger("bi.execution.records")


class KernelRecords:
    """``holder``: this task, as the records of the sessions it holds name it."""

    def __init__(self, store: Store, keys: KernelKeys):
        self.store = store
        self.keys = keys
        self.holder = uuid.uuid4().hex

    async def save(self, session: KernelSession) -> None:
        """Record ``session``'s kernel as it is now."""
        kernel = session.kernel
        connection = dict(kernel.connection)
        key_id, sealed = self.keys.seal(str(connection.pop("key")).encode(), session.id)
        grant = session.grant or Grant()
        await self.store.put_kernel_record(KernelRecord(
            session.id, session.kind, session.user_id, kernel.agent.base_url, kernel.agent_id or "",
            kernel.kernel_id, kernel.memory_mb, json.dumps(connection), key_id, sealed,
            json.dumps([[name, str(path)] for name, path in session.datasets]),
            json.dumps({"dataset_ids": list(grant.dataset_ids), "card_id": grant.card_id}),
            utcnow(), iso_time(time.time() + KERNEL_RECORD_SECONDS), self.holder))

    async def load(self, session_id: str) -> tuple[KernelRecord, dict[str, Any]] | None:
        """The record of ``session_id`` and its kernel's connection info, key included; None if there is
        none, or its key does not open (a key rotated out: the kernel cannot be reached any more)."""
        record = await self.store.get_kernel_record(session_id)
        if record is None:
            return None
        try:
            key = self.keys.open(record.key_id, record.sealed_key, record.id)
        except KernelKeyError as exc:
            log.warning("kernel_record_unreadable", session_id=session_id, key_id=record.key_id, error=str(exc))
            return None
        return record, {**json.loads(record.connection), "key": key.decode()}

    async def of_user(self, user_id: str, kind: str) -> list[KernelRecord]:
        """The user's records of ``kind``, whichever task holds them (keys left sealed)."""
        return await self.store.list_kernel_records(user_id, kind)

    async def bind(self, session_id: str, notebooks: str) -> bool:
        """Keep ``notebooks`` (the Jupyter sessions bound to the kernel) on the record; False if it is gone."""
        return await self.store.set_kernel_notebooks(session_id, notebooks)

    async def forget(self, session_id: str) -> bool:
        """Delete the record if this task holds it (True); False if another task has reattached to the session
        since: then it is that task's to end, with its kernel."""
        return await self.store.delete_kernel_record(session_id, self.holder)


def datasets_of(record: KernelRecord) -> list[tuple[str, Path]]:
    return [(name, Path(path)) for name, path in json.loads(record.datasets)]


def grant_of(record: KernelRecord) -> Grant:
    grant = json.loads(record.grant)
    return Grant(tuple(grant["dataset_ids"]), grant["card_id"])
