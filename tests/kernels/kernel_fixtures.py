"""Real locked-down kernels for the kernel tests, and a way to run cells in them."""

from __future__ import annotations

import json
import sys
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import pandas as pd
from jupyter_client import BlockingKernelClient, KernelManager
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpecManager

from kernels.helpers import dataset_filename
from kernels.launcher import KernelLauncher, LaunchedKernel

START_TIMEOUT = 30
CELL_TIMEOUT = 20
OUTPUT_TYPES = ("stream", "display_data", "execute_result", "error", "comm_msg")


@dataclass
class Result:
    """What one executed cell published on iopub, and its reply status."""

    status: str
    outputs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def error(self) -> tuple[str, str] | None:
        """(ename, evalue) of the cell's error, if it failed."""
        errors = [(c["ename"], c["evalue"]) for kind, c in self.outputs if kind == "error"]
        return errors[0] if errors else None

    def bundles(self, kind: str) -> list[dict[str, Any]]:
        """The MIME bundles of the ``display_data`` or ``execute_result`` messages."""
        return [content["data"] for msg_type, content in self.outputs if msg_type == kind]

    @property
    def comm_data(self) -> list[dict[str, Any]]:
        """The data of the cell's comm messages."""
        return [content["data"] for kind, content in self.outputs if kind == "comm_msg"]

    @property
    def stdout(self) -> str:
        return "".join(c["text"] for kind, c in self.outputs if kind == "stream" and c["name"] == "stdout")


def execute(client: BlockingKernelClient, code: str) -> Result:
    """Run ``code`` in the kernel and collect its outputs until the kernel is idle again."""
    outputs: list[tuple[str, dict[str, Any]]] = []

    def collect(msg: dict[str, Any]) -> None:
        if msg["msg_type"] in OUTPUT_TYPES:
            outputs.append((msg["msg_type"], msg["content"]))

    reply = client.execute_interactive(code, output_hook=collect, timeout=CELL_TIMEOUT)
    return Result(reply["content"]["status"], outputs)


@contextmanager
def started_kernel(workdir: Path, transport: str, dataset_dir: Path,
                   options: tuple[str, ...] = ()) -> Iterator[BlockingKernelClient]:
    """``python -m kernels.kernel`` started by jupyter_client from a kernelspec in ``workdir``, writing the
    tables of shown DataFrames to ``workdir/tables``."""
    spec_dir = workdir / "kernelspecs" / "bi-cards"
    spec_dir.mkdir(parents=True)
    (workdir / "tables").mkdir()
    argv = [sys.executable, "-P", "-m", "kernels.kernel", "-f", "{connection_file}",
            f"--dataset-dir={dataset_dir}", f"--tables-dir={workdir / 'tables'}", *options]
    spec = {"argv": argv, "display_name": "bi", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    manager = KernelManager(kernel_name="bi-cards", transport=transport,
                            connection_file=str(workdir / "kernel.json"),
                            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_dir.parent)]))
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=START_TIMEOUT)
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def write_dataset(dataset_dir: Path, name: str, frame: pd.DataFrame) -> None:
    """Place a dataset as the executor agent does."""
    dataset_dir.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(dataset_dir / dataset_filename(name))


@asynccontextmanager
async def connected(launcher: KernelLauncher, kernel: LaunchedKernel) -> AsyncIterator[AsyncKernelClient]:
    """A client of a kernel forked by ``launcher``, its channels started and the kernel answering."""
    client = launcher.client(kernel)
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        yield client
    finally:
        client.stop_channels()


async def run(launcher: KernelLauncher, kernel: LaunchedKernel, code: str,
              timeout: float = 60) -> tuple[str, list[dict[str, Any]]]:
    """Run ``code`` in a launched kernel: the reply's status and the iopub messages of the cell."""
    async with connected(launcher, kernel) as client:
        outputs: list[dict[str, Any]] = []
        reply = await client.execute_interactive(code, timeout=timeout, output_hook=outputs.append)
        return reply["content"]["status"], outputs


def texts(outputs: list[dict[str, Any]]) -> str:
    """The text of the stream messages and error values among iopub ``outputs``."""
    return "".join(m["content"].get("text", "") + m["content"].get("evalue", "") for m in outputs)
