"""The Jupyter kernels of one server: pool sessions of kind "jupyter", each its user's only."""

from __future__ import annotations

import collections
from typing import Any

from traitlets import Float, Integer
from traitlets.config import LoggingConfigurable

from .. import limits
from ..errors import BIError, NotFoundError
from ..execution.pool import KernelPool
from ..execution.session import Grant
from ..logs import get_logger
from ..models import KernelRecord, User
from ..services.datasets import DatasetService
from .kernel import KERNEL_NAME, USER_SHUTDOWN, JupyterKernel

KIND = "jupyter"

log = get_logger("bi.jupyter.manager")


class JupyterKernels(LoggingConfigurable):
    replay_buffer_bytes = Integer(
        limits.REPLAY_BYTES, help="Kernel messages kept per kernel while no client is connected, replayed to "
                                  "the client session when it reconnects (oldest dropped first).").tag(config=True)
    answer_seconds = Float(
        limits.JUPYTER_ANSWER_SECONDS, help="Seconds a kernel has to start a shell request while it runs nothing "
                                            "else; past them the request gets an error reply and the next one "
                                            "goes.").tag(config=True)

    def __init__(self, pool: KernelPool, datasets: DatasetService, **kwargs):
        super().__init__(**kwargs)
        self.pool = pool
        self.datasets = datasets
        self._kernels: dict[str, JupyterKernel] = {}
        self._ended: collections.OrderedDict[str, tuple[str, str]] = collections.OrderedDict()  # id -> owner, reason

    async def start(self, user: User) -> JupyterKernel:
        """A new kernel of ``user`` in which ``load_dataset`` reads every dataset they can see now.

        It counts against the pool's ``sessions_per_user``, starts in flight included. It is held on the
        grant of those datasets: once its user may no longer read one of them (or is deactivated), a sweep
        (``services/session_rights.py``) shuts it down.
        """
        files, dataset_ids = await self.datasets.parquet_files(user)
        session = await self.pool.open(user, files, KIND, grant=Grant(dataset_ids))
        kernel = JupyterKernel(session, self.replay_buffer_bytes, self.answer_seconds, self._closed)
        self._kernels[kernel.id] = kernel
        return kernel

    def get(self, user: User, kernel_id: str) -> JupyterKernel:
        """The kernel if it is ``user``'s; anyone else's does not exist for them. A kernel of theirs that
        ended lately is not found either, and they are told why it ended."""
        try:
            return self._kernels[self.pool.get(user, kernel_id, KIND).id]
        except NotFoundError:
            owner, reason = self._ended.get(kernel_id, (None, None))
            if owner == user.id:
                raise NotFoundError(f"This kernel was shut down: {reason}. Start a new kernel.") from None
            raise NotFoundError("No such kernel; it may have been shut down or culled for idleness.") from None

    async def find(self, user: User, kernel_id: str, client_session: str | None) -> JupyterKernel:
        """The kernel as ``get`` finds it, or, held by a task that is gone, reattached from its record (what it
        published meanwhile kept for the client session ``client_session``)."""
        try:
            return self.get(user, kernel_id)
        except NotFoundError:
            if kernel_id in self._ended:
                raise
        try:
            session, gap, lost = await self.pool.reattach(user, kernel_id, KIND)
        except NotFoundError:
            raise NotFoundError("No such kernel; it may have been shut down or culled for idleness.") from None
        if session.id not in self._kernels:
            kernel = JupyterKernel(session, self.replay_buffer_bytes, self.answer_seconds, self._closed)
            self._kernels[kernel.id] = kernel
            kernel.replay_gap(gap, lost, client_session)
        return self._kernels[session.id]

    def of_user(self, user: User) -> list[JupyterKernel]:
        return [self._kernels[session.id] for session in self.pool.of_user(user, KIND)]

    async def models(self, user: User) -> list[dict[str, Any]]:
        """The models of the user's kernels: those held here, and those of their records that another task holds
        (or held: one that died), never reattached to from here. With the store failing, those held here."""
        models = {kernel.id: kernel.model() for kernel in self.of_user(user)}
        if self.pool.records is not None:
            try:
                records = await self.recorded(user)
            except BIError as exc:
                log.warning("kernel_records_unlisted", user_id=user.id, error=exc.message)
                records = []
            for record in records:
                models.setdefault(record.id, self.recorded_model(record))
        return list(models.values())

    async def recorded(self, user: User) -> list[KernelRecord]:
        """The user's kernel records that this task could reattach to: those on an agent it knows (not those
        whose agent ended, as an embedded server's own agent ends with it)."""
        assert self.pool.records is not None
        return [record for record in await self.pool.records.of_user(user.id, KIND) if record.agent_url in self.pool.agents]

    def recorded_model(self, record: KernelRecord) -> dict[str, Any]:
        """The model of the kernel of ``record``: as held here, or as recorded (its state unknown here, its
        last activity the record's last write)."""
        kernel = self._kernels.get(record.id)
        if kernel is not None and not kernel.session.closed:
            return kernel.model()
        return {"id": record.id, "name": KERNEL_NAME, "last_activity": record.created_at,
                "execution_state": "unknown", "connections": 0}

    async def shutdown(self, kernel: JupyterKernel) -> None:
        await self.pool.close_session(kernel.session, USER_SHUTDOWN)

    def _closed(self, kernel: JupyterKernel) -> None:
        """Forget ``kernel``; remember why it ended, unless it did not (another task holds it now)."""
        self._kernels.pop(kernel.id, None)
        if kernel.end_reason is None:
            return
        self._ended[kernel.id] = (kernel.session.user_id, kernel.end_reason)
        while len(self._ended) > limits.JUPYTER_ENDED_KERNELS:
            self._ended.popitem(last=False)
