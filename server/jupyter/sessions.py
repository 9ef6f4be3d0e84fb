"""Jupyter Server sessions: a notebook (or console) path bound to one of its user's kernels.

As in Jupyter Server, a new session for a path that already has one gets that one; ending a
session shuts its kernel down; moving a session to another kernel (an existing one by id, or a new
one by name) shuts the old one down. A session whose kernel is gone (shut down, culled) is
dropped when next listed. Each user holds at most ``sessions_per_kernel`` sessions per kernel they
may hold; their sessions are kept by path, so nothing scans anyone else's.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from traitlets import Integer
from traitlets.config import LoggingConfigurable

from .. import limits
from ..errors import ConflictError, InvalidRequestError, NotFoundError, RateLimitedError
from ..models import User
from . import specs
from .kernel import JupyterKernel
from .manager import JupyterKernels


@dataclasses.dataclass
class JupyterSession:
    id: str
    user_id: str
    path: str
    name: str
    type: str
    kernel: JupyterKernel

    def model(self) -> dict[str, Any]:
        model = {"id": self.id, "path": self.path, "name": self.name, "type": self.type,
                 "kernel": self.kernel.model()}
        if self.type == "notebook":
            model["notebook"] = {"path": self.path, "name": self.name}
        return model


class JupyterSessions(LoggingConfigurable):
    sessions_per_kernel = Integer(limits.JUPYTER_SESSIONS_PER_KERNEL, help=(
        "Sessions one user may hold per kernel they may hold (KernelPool.sessions_per_user).")).tag(config=True)

    def __init__(self, kernels: JupyterKernels, **kwargs: Any):
        super().__init__(**kwargs)
        self.kernels = kernels
        self._sessions: dict[str, JupyterSession] = {}
        self._by_user: dict[str, dict[str, JupyterSession]] = {}  # user id -> path -> session

    @property
    def per_user(self) -> int:
        return self.sessions_per_kernel * self.kernels.pool.sessions_per_user

    def _paths(self, user: User) -> dict[str, JupyterSession]:
        """``user``'s sessions by path, those whose kernel is gone dropped."""
        paths = self._by_user.setdefault(user.id, {})
        for session in [s for s in paths.values() if s.kernel.session.closed]:
            self._forget(session)
        return paths

    def _forget(self, session: JupyterSession) -> None:
        self._sessions.pop(session.id, None)
        paths = self._by_user.get(session.user_id, {})
        if paths.get(session.path) is session:
            del paths[session.path]

    def of_user(self, user: User) -> list[JupyterSession]:
        return list(self._paths(user).values())

    def get(self, user: User, session_id: str) -> JupyterSession:
        session = self._sessions.get(session_id)
        if session is None or session.user_id != user.id or session.kernel.session.closed:
            raise NotFoundError("No such session; its kernel may have been shut down or culled.")
        return session

    async def create(self, user: User, body: dict[str, Any]) -> JupyterSession:
        """The session for ``body``'s path: the existing one, or a new one on the kernel it names or a new kernel."""
        path = body.get("path") or body.get("notebook", {}).get("path")
        if not path:
            raise InvalidRequestError("A session needs a path.")
        existing = self._paths(user).get(path)
        if existing is not None:
            return existing
        self._check_room(user)
        wanted = body.get("kernel") or {}
        kernel = await self._kernel(user, wanted)
        existing = self._paths(user).get(path)  # another request may have won while the kernel started
        full = len(self._paths(user)) >= self.per_user
        if (existing is not None or full) and not wanted.get("id"):
            await self.kernels.shutdown(kernel)  # started for nothing
        if existing is not None:
            return existing
        self._check_room(user)
        session = JupyterSession(str(uuid.uuid4()), user.id, path, body.get("name") or "",
                                 body.get("type") or "notebook", kernel)
        self._sessions[session.id] = session
        self._paths(user)[path] = session
        return session

    def _check_room(self, user: User) -> None:
        if len(self._paths(user)) >= self.per_user:
            raise RateLimitedError(
                f"You already have {self.per_user} Jupyter sessions; end one (DELETE /api/sessions/{{id}}) "
                "before starting another.", retry_after=60)

    async def update(self, user: User, session_id: str, body: dict[str, Any]) -> JupyterSession:
        """Rename or move the session, or move it to another kernel (the old one is shut down)."""
        session = self.get(user, session_id)
        path = body.get("path") or body.get("notebook", {}).get("path") or session.path
        paths = self._paths(user)
        if paths.get(path, session) is not session:
            raise ConflictError("Another of your sessions has that path; end it (DELETE /api/sessions/{id}) "
                                "or pick another path.")
        paths.pop(session.path, None)
        session.path, paths[path] = path, session
        session.name = body.get("name", session.name) or ""
        session.type = body.get("type") or session.type
        if body.get("kernel"):
            old, session.kernel = session.kernel, await self._kernel(user, body["kernel"])
            if old is not session.kernel:
                await self.kernels.shutdown(old)
        return session

    async def delete(self, user: User, session_id: str) -> None:
        session = self.get(user, session_id)
        self._forget(session)
        await self.kernels.shutdown(session.kernel)

    async def _kernel(self, user: User, wanted: dict[str, Any]) -> JupyterKernel:
        if wanted.get("id"):
            return self.kernels.get(user, wanted["id"])
        specs.check(wanted.get("name"))
        return await self.kernels.start(user)
