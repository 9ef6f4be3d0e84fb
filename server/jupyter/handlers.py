"""The Jupyter Server REST API for kernels, kernel specs and sessions, as Jupyter clients call it.

Authenticate with a personal access token (``POST /api/me/tokens``) or a sign-in access token, as
``Authorization: token <token>`` (what Jupyter clients send), ``Authorization: Bearer <token>``, or
``?token=<token>``. Each user sees only their own kernels and sessions; anyone else's are 404. Errors
keep the API's one JSON shape, with the ``message`` and ``reason`` of Jupyter Server's errors at the
top level too (``jupyter_error``): jupyter_server in gateway mode shows those two, so a JupyterLab
user reads our text (the per-user limit, a culled kernel) instead of a generic "Ensure gateway url is valid".
"""

from __future__ import annotations

from typing import Any

from tornado.httputil import HTTPServerRequest, responses

from .. import limits
from ..errors import AuthenticationError
from ..execution.pool import KernelPool
from ..handlers.base import APIHandler
from ..services.auth import Scope
from . import specs
from .kernel import JupyterKernel
from .manager import KIND, JupyterKernels
from .sessions import JupyterSessions

NULLABLE_STRING = {"type": ["string", "null"], "maxLength": limits.JUPYTER_SESSION_FIELD_CHARS}
KERNEL_SCHEMA = {"type": ["object", "null"], "properties": {"id": NULLABLE_STRING, "name": NULLABLE_STRING}}
START_SCHEMA = {"type": ["object", "null"], "properties": {"name": NULLABLE_STRING}}
SESSION_SCHEMA = {
    "type": "object",
    "properties": {"path": NULLABLE_STRING, "name": NULLABLE_STRING, "type": NULLABLE_STRING,
                   "kernel": KERNEL_SCHEMA,
                   "notebook": {"type": "object", "properties": {"path": NULLABLE_STRING}}},
}


# Sign-in access tokens, and the personal access tokens that work here and nowhere else.
JUPYTER_SCOPES: frozenset[Scope] = frozenset({"session", "personal"})


def request_token(request: HTTPServerRequest) -> str:
    """The JWT of a request to the Jupyter API, from its Authorization header or ``?token=``."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "token") and token.strip():
        return token.strip()
    for value in request.query_arguments.get("token", []):
        return value.decode()
    raise AuthenticationError("Sign in first: send 'Authorization: token <jwt>' or '?token=<jwt>'.")


def jupyter_error(error: dict[str, Any], status: int) -> dict[str, Any]:
    """An error body for Jupyter clients: ours, plus Jupyter Server's top-level ``message`` and ``reason``."""
    return {"error": error, "message": error["message"], "reason": responses.get(status, "Error")}


class JupyterHandler(APIHandler):
    token_scopes = JUPYTER_SCOPES

    def _bearer_token(self) -> str:
        return request_token(self.request)

    def error_document(self, error: dict[str, Any], status: int) -> dict[str, Any]:
        return jupyter_error(error, status)

    @property
    def pool(self) -> KernelPool:
        return self.settings["kernel_pool"]

    @property
    def kernels(self) -> JupyterKernels:
        return self.settings["jupyter_kernels"]

    @property
    def sessions(self) -> JupyterSessions:
        return self.settings["jupyter_sessions"]

    async def kernel(self, kernel_id: str) -> JupyterKernel:
        """The caller's kernel, reattached if a server that is gone held it."""
        assert self.user is not None
        return await self.kernels.find(self.user, kernel_id, None)


class KernelSpecsHandler(JupyterHandler):
    def get(self) -> None:
        spec = specs.model(self.pool.limits_for(KIND))
        self.write_json({"default": spec["name"], "kernelspecs": {spec["name"]: spec}})


class KernelSpecHandler(JupyterHandler):
    def get(self, name: str) -> None:
        specs.check(name)
        self.write_json(specs.model(self.pool.limits_for(KIND)))


class KernelSpecResourceHandler(JupyterHandler):
    auth_required = False

    def get(self, name: str, filename: str) -> None:
        body, content_type = specs.resource(name, filename)
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "public, max-age=86400")
        self.finish(body)


class KernelsHandler(JupyterHandler):
    async def get(self) -> None:
        assert self.user is not None
        self.write_json(await self.kernels.models(self.user))

    async def post(self) -> None:
        assert self.user is not None
        specs.check((self.json_body(START_SCHEMA) or {}).get("name"))
        kernel = await self.kernels.start(self.user)
        self.set_header("Location", f"/api/kernels/{kernel.id}")
        self.write_json(kernel.model(), 201)


class KernelHandler(JupyterHandler):
    async def get(self, kernel_id: str) -> None:
        self.write_json((await self.kernel(kernel_id)).model())

    async def delete(self, kernel_id: str) -> None:
        await self.kernels.shutdown(await self.kernel(kernel_id))
        self.set_status(204)
        self.finish()


class KernelInterruptHandler(JupyterHandler):
    async def post(self, kernel_id: str) -> None:
        await (await self.kernel(kernel_id)).interrupt()
        self.set_status(204)
        self.finish()


class KernelRestartHandler(JupyterHandler):
    async def post(self, kernel_id: str) -> None:
        kernel = await self.kernel(kernel_id)
        await kernel.restart()
        self.write_json(kernel.model())


class SessionsHandler(JupyterHandler):
    async def get(self) -> None:
        assert self.user is not None
        self.write_json(await self.sessions.of_user(self.user))

    async def post(self) -> None:
        assert self.user is not None
        session = await self.sessions.create(self.user, self.json_body(SESSION_SCHEMA))
        self.set_header("Location", f"/api/sessions/{session['id']}")
        self.write_json(session, 201)


class SessionHandler(JupyterHandler):
    async def get(self, session_id: str) -> None:
        assert self.user is not None
        self.write_json(await self.sessions.get(self.user, session_id))

    async def patch(self, session_id: str) -> None:
        assert self.user is not None
        self.write_json(await self.sessions.update(self.user, session_id, self.json_body(SESSION_SCHEMA)))

    async def delete(self, session_id: str) -> None:
        assert self.user is not None
        await self.sessions.delete(self.user, session_id)
        self.set_status(204)
        self.finish()
