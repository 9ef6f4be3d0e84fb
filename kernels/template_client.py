"""The executor agent's side of the template process: start it, ask it to fork kernels, hear of exits."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .template import SINGLE_THREAD_ENV

ExitListener = Callable[[str, int], None]
# Where ``kernels`` is imported from (the executor image's /opt/bi): the template needs it on its path.
PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)


class TemplateError(RuntimeError):
    """The template could not fork a kernel, or is gone."""


class TemplateClient:
    """Owns one template process; ``spawn`` returns the forked kernel's pid."""

    def __init__(self, on_exit: ExitListener, python: str = sys.executable, start_timeout: float = 60):
        self.on_exit = on_exit
        self.python = python
        self.start_timeout = start_timeout
        self.process: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._socket: socket.socket | None = None
        self._sending = asyncio.Lock()
        self._pending: dict[str, asyncio.Future[int]] = {}
        self._reader_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the template and wait until it has imported the data stack."""
        ours, theirs = socket.socketpair()
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": PACKAGE_PARENT, **SINGLE_THREAD_ENV}
        self.process = await asyncio.create_subprocess_exec(
            self.python, "-P", "-m", "kernels.template", str(theirs.fileno()), env=env,
            pass_fds=(theirs.fileno(),), start_new_session=True)
        theirs.close()
        self._socket = ours
        reader, self._writer = await asyncio.open_connection(sock=ours)
        ready = await asyncio.wait_for(reader.readline(), self.start_timeout)
        if json.loads(ready or b"{}").get("event") != "ready":
            raise TemplateError(f"the template did not start: {ready!r}")
        self._reader_task = asyncio.create_task(self._read_events(reader))

    async def spawn(self, request: dict[str, Any], output: int) -> int:
        """Fork a kernel whose fds 1 and 2 are the pipe end ``output`` (the caller still closes its copy);
        the request is the template's spawn message without ``op``."""
        if self._writer is None or self._socket is None:
            raise TemplateError("the template is not running")
        future = asyncio.get_running_loop().create_future()
        self._pending[request["kernel_id"]] = future
        message = json.dumps({"op": "spawn", **request}).encode() + b"\n"
        # The stream transport only reads this socket; requests are written here, one at a time,
        # the pipe attached to the first byte (a full buffer at once means the template is stuck).
        async with self._sending:
            try:
                sent = socket.send_fds(self._socket, [message], [output])
            except BlockingIOError as exc:
                self._pending.pop(request["kernel_id"], None)
                raise TemplateError("the template is not reading its requests") from exc
            await asyncio.get_running_loop().sock_sendall(self._socket, message[sent:])
        return await future

    async def _read_events(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            event = json.loads(line)
            kernel_id = event.get("kernel_id")
            if event["event"] == "spawned":
                self._resolve(kernel_id, event["pid"])
            elif event["event"] == "error":
                self._resolve(kernel_id, TemplateError(event["message"]))
            elif event["event"] == "exited":
                self.on_exit(kernel_id, event["status"])
        for future in self._pending.values():
            future.set_exception(TemplateError("the template process exited"))
        self._pending.clear()

    def _resolve(self, kernel_id: str, outcome: int | Exception) -> None:
        """Settle the spawn of ``kernel_id`` with its pid or its error."""
        future = self._pending.pop(kernel_id, None)
        if future is None or future.done():
            return
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self._reader_task is not None:
            await asyncio.gather(self._reader_task, return_exceptions=True)
