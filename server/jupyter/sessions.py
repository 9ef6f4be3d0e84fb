"""Jupyter Server sessions: a notebook (or console) path bound to one of its user's kernels.

As in Jupyter Server, a new session for a path that already has one gets that one; ending a
session shuts its kernel down; moving a session to another kernel (an existing one by id, or a new
one by name) shuts the old one down. Each user holds at most ``sessions_per_kernel`` sessions per
kernel they may hold.

A session is kept with its kernel: in the kernel's record in the store (``KernelRecord.notebooks``), so
that every API task lists it, the one that holds the kernel or not, and it ends with its kernel (a
kernel shut down or culled takes its sessions along). Listing reads the records and never reattaches
to a kernel; a change reattaches to the kernel it binds (``JupyterKernels.find``), as a client's next
connection would. Without records (no kernel keys: no failover) the sessions are this task's alone,
kept here while their kernel is.
"""

from __future__ import annotations

import asyncio
import json
import uuid
import weakref
from typing import Any

from traitlets import Integer
from traitlets.config import LoggingConfigurable

from .. import limits
from ..errors import ConflictError, InvalidRequestError, NotFoundError, RateLimitedError
from ..models import User
from . import specs
from .kernel import JupyterKernel
from .manager import JupyterKernels

Notebook = dict[str, str]  # a session's own fields: id, path, name, type
GONE = "No such session; its kernel may have been shut down or culled."


def session_model(notebook: Notebook, kernel: dict[str, Any]) -> dict[str, Any]:
    """The session as Jupyter Server describes one, with its kernel's model."""
    model: dict[str, Any] = {**notebook, "kernel": kernel}
    if notebook["type"] == "notebook":
        model["notebook"] = {"path": notebook["path"], "name": notebook["name"]}
    return model


class JupyterSessions(LoggingConfigurable):
    sessions_per_kernel = Integer(limits.JUPYTER_SESSIONS_PER_KERNEL, help=(
        "Sessions one user may hold per kernel they may hold (KernelPool.sessions_per_user).")).tag(config=True)

    def __init__(self, kernels: JupyterKernels, **kwargs: Any):
        super().__init__(**kwargs)
        self.kernels = kernels
        self._held: dict[str, dict[str, list[Notebook]]] = {}  # without records: user id -> kernel id -> sessions
        self._turns: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @property
    def per_user(self) -> int:
        return self.sessions_per_kernel * self.kernels.pool.sessions_per_user

    async def of_user(self, user: User) -> list[dict[str, Any]]:
        return [session_model(notebook, kernel)
                for kernel, notebooks in (await self._bound(user)).values() for notebook in notebooks]

    async def get(self, user: User, session_id: str) -> dict[str, Any]:
        kernel, notebook = self._find(await self._bound(user), session_id)[1:]
        return session_model(notebook, kernel)

    async def create(self, user: User, body: dict[str, Any]) -> dict[str, Any]:
        """The session for ``body``'s path: the existing one, or a new one on the kernel it names or a new kernel."""
        path = body.get("path") or body.get("notebook", {}).get("path")
        if not path:
            raise InvalidRequestError("A session needs a path.")
        async with self._turn(user.id):
            bound = await self._bound(user)
            existing = self._at(bound, path)
            if existing is not None:
                return session_model(existing[1], existing[0])
            if sum(len(notebooks) for _, notebooks in bound.values()) >= self.per_user:
                raise RateLimitedError(
                    f"You already have {self.per_user} Jupyter sessions; end one (DELETE /api/sessions/{{id}}) "
                    "before starting another.", retry_after=60)
            wanted = body.get("kernel") or {}
            kernel = await self._kernel(user, wanted)
            notebook = {"id": str(uuid.uuid4()), "path": path, "name": body.get("name") or "",
                        "type": body.get("type") or "notebook"}
            try:
                await self._bind(user, kernel.id, [*(await self._bound(user)).get(kernel.id, ({}, []))[1], notebook])
            except BaseException:
                if not wanted.get("id"):
                    await self.kernels.shutdown(kernel)  # started for nothing
                raise
            return session_model(notebook, kernel.model())

    async def update(self, user: User, session_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Rename or move the session, or move it to another kernel (the old one is shut down)."""
        async with self._turn(user.id):
            bound = await self._bound(user)
            kernel_id, kernel_model, notebook = self._find(bound, session_id)
            path = body.get("path") or body.get("notebook", {}).get("path") or notebook["path"]
            other = self._at(bound, path)
            if other is not None and other[1]["id"] != session_id:
                raise ConflictError("Another of your sessions has that path; end it (DELETE /api/sessions/{id}) "
                                    "or pick another path.")
            changed = {**notebook, "path": path, "name": body.get("name", notebook["name"]) or "",
                       "type": body.get("type") or notebook["type"]}
            replaced = [changed if n["id"] == session_id else n for n in bound[kernel_id][1]]
            if not body.get("kernel"):
                await self._bind(user, kernel_id, replaced)
                return session_model(changed, kernel_model)
            kernel = await self._kernel(user, body["kernel"])
            if kernel.id == kernel_id:
                await self._bind(user, kernel_id, replaced)
                return session_model(changed, kernel.model())
            await self._bind(user, kernel.id, [*bound.get(kernel.id, ({}, []))[1], changed])
            await self._bind(user, kernel_id, [n for n in bound[kernel_id][1] if n["id"] != session_id])
            await self._shutdown(user, kernel_id)
            return session_model(changed, kernel.model())

    async def delete(self, user: User, session_id: str) -> None:
        async with self._turn(user.id):
            bound = await self._bound(user)
            kernel_id = self._find(bound, session_id)[0]
            await self._bind(user, kernel_id, [n for n in bound[kernel_id][1] if n["id"] != session_id])
            await self._shutdown(user, kernel_id)

    # where sessions are kept -------------------------------------------------
    async def _bound(self, user: User) -> dict[str, tuple[dict[str, Any], list[Notebook]]]:
        """The user's kernels that have sessions: kernel id -> (its model, its sessions). A kernel another task
        holds is described from its record (``JupyterKernels.recorded_model``)."""
        records = self.kernels.pool.records
        if records is None:
            live = {kernel.id: kernel for kernel in self.kernels.of_user(user)}
            held = self._held.setdefault(user.id, {})
            for gone in [kernel_id for kernel_id in held if kernel_id not in live]:
                del held[gone]
            return {kernel_id: (live[kernel_id].model(), notebooks) for kernel_id, notebooks in held.items()}
        return {record.id: (self.kernels.recorded_model(record), json.loads(record.notebooks))
                for record in await self.kernels.recorded(user) if record.notebooks != "[]"}

    async def _bind(self, user: User, kernel_id: str, notebooks: list[Notebook]) -> None:
        """Keep ``notebooks`` as the sessions of the kernel ``kernel_id``."""
        records = self.kernels.pool.records
        if records is None:
            self._held.setdefault(user.id, {})[kernel_id] = notebooks
        elif not await records.bind(kernel_id, json.dumps(notebooks)):
            raise NotFoundError(GONE)

    def _turn(self, user_id: str) -> asyncio.Lock:
        """The user's changes to their sessions take turns (on this task)."""
        turn = self._turns.get(user_id)
        if turn is None:
            turn = self._turns[user_id] = asyncio.Lock()
        return turn

    @staticmethod
    def _find(bound: dict[str, tuple[dict[str, Any], list[Notebook]]],
              session_id: str) -> tuple[str, dict[str, Any], Notebook]:
        for kernel_id, (kernel, notebooks) in bound.items():
            for notebook in notebooks:
                if notebook["id"] == session_id:
                    return kernel_id, kernel, notebook
        raise NotFoundError(GONE)

    @staticmethod
    def _at(bound: dict[str, tuple[dict[str, Any], list[Notebook]]],
            path: str) -> tuple[dict[str, Any], Notebook] | None:
        for kernel, notebooks in bound.values():
            for notebook in notebooks:
                if notebook["path"] == path:
                    return kernel, notebook
        return None

    # kernels -----------------------------------------------------------------
    async def _kernel(self, user: User, wanted: dict[str, Any]) -> JupyterKernel:
        if wanted.get("id"):
            return await self.kernels.find(user, wanted["id"], None)
        specs.check(wanted.get("name"))
        return await self.kernels.start(user)

    async def _shutdown(self, user: User, kernel_id: str) -> None:
        """Shut the kernel down, wherever it is held (it may be gone already)."""
        try:
            kernel = await self.kernels.find(user, kernel_id, None)
        except NotFoundError:
            return
        await self.kernels.shutdown(kernel)
