"""Jupyter Server sessions: a notebook (or console) path bound to one of its user's kernels.

As in Jupyter Server, a new session for a path that already has one gets that one; ending a
session shuts its kernel down; moving a session to another kernel (an existing one by id, or a new
one by name) shuts the old one down. A session whose kernel is gone (shut down, culled) is
dropped when next listed.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from ..errors import InvalidRequestError, NotFoundError
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


class JupyterSessions:
    def __init__(self, kernels: JupyterKernels):
        self.kernels = kernels
        self._sessions: dict[str, JupyterSession] = {}

    def of_user(self, user: User) -> list[JupyterSession]:
        for session in [s for s in self._sessions.values() if s.kernel.session.closed]:
            del self._sessions[session.id]
        return [s for s in self._sessions.values() if s.user_id == user.id]

    def get(self, user: User, session_id: str) -> JupyterSession:
        session = next((s for s in self.of_user(user) if s.id == session_id), None)
        if session is None:
            raise NotFoundError("No such session; its kernel may have been shut down or culled.")
        return session

    async def create(self, user: User, body: dict[str, Any]) -> JupyterSession:
        """The session for ``body``'s path: the existing one, or a new one on the kernel it names or a new kernel."""
        path = body.get("path") or body.get("notebook", {}).get("path")
        if not path:
            raise InvalidRequestError("A session needs a path.")
        existing = next((s for s in self.of_user(user) if s.path == path), None)
        if existing is not None:
            return existing
        session = JupyterSession(str(uuid.uuid4()), user.id, path, body.get("name") or "",
                                 body.get("type") or "notebook", await self._kernel(user, body.get("kernel") or {}))
        self._sessions[session.id] = session
        return session

    async def update(self, user: User, session_id: str, body: dict[str, Any]) -> JupyterSession:
        """Rename or move the session, or move it to another kernel (the old one is shut down)."""
        session = self.get(user, session_id)
        session.path = body.get("path") or body.get("notebook", {}).get("path") or session.path
        session.name = body.get("name", session.name) or ""
        session.type = body.get("type") or session.type
        if body.get("kernel"):
            old, session.kernel = session.kernel, await self._kernel(user, body["kernel"])
            if old is not session.kernel:
                await self.kernels.shutdown(old)
        return session

    async def delete(self, user: User, session_id: str) -> None:
        session = self._sessions.pop(self.get(user, session_id).id)
        await self.kernels.shutdown(session.kernel)

    async def _kernel(self, user: User, wanted: dict[str, Any]) -> JupyterKernel:
        if wanted.get("id"):
            return self.kernels.get(user, wanted["id"])
        specs.check(wanted.get("name"))
        return await self.kernels.start(user)
