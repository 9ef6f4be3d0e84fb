"""The Jupyter Server routes, for ``server/urls.py``."""

from __future__ import annotations

from tornado.web import RequestHandler

from .channels import KernelChannelsHandler
from .handlers import (KernelHandler, KernelInterruptHandler, KernelRestartHandler, KernelSpecHandler,
                       KernelSpecResourceHandler, KernelSpecsHandler, KernelsHandler, SessionHandler,
                       SessionsHandler)

ROUTES: list[tuple[str, type[RequestHandler]]] = [
    ("/api/kernelspecs", KernelSpecsHandler),
    ("/api/kernelspecs/{name}", KernelSpecHandler),
    ("/kernelspecs/{name}/{filename}", KernelSpecResourceHandler),
    ("/api/kernels", KernelsHandler),
    ("/api/kernels/{kernel_id}", KernelHandler),
    ("/api/kernels/{kernel_id}/interrupt", KernelInterruptHandler),
    ("/api/kernels/{kernel_id}/restart", KernelRestartHandler),
    ("/api/kernels/{kernel_id}/channels", KernelChannelsHandler),
    ("/api/sessions", SessionsHandler),
    ("/api/sessions/{session_id}", SessionHandler),
]
