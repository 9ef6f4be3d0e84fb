"""The ``bi-jupyter`` bridge (``clients/jupyter``) against other local users of the machine.

The attacks (red team 4): F3, any local user stopped a bridge's shell channel for good with one unsigned
ZeroMQ frame without ``<IDS|MSG>`` (or with nothing after it): the relay task died unobserved, the bridge
stayed up and every later execute hung. F4, any local user could read a bridged kernel's outputs by
subscribing to its iopub port on 127.0.0.1; over ``transport: ipc`` the sockets are files in the
client's private runtime folder (jupyter_client puts them next to the connection file), which the bridge
did not serve (it bound ``ipc://ip:port``).
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import zmq
from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file

from ..server.test_bi_jupyter import start_bridge
from ..server.test_jupyter_api import personal_token
from ..server.test_sessions import root, start_cards  # noqa: F401 - fixtures

MALFORMED = [[b"no delimiter here"], [b"id", b"<IDS|MSG>"], [b"<IDS|MSG>", b"sig", b"not json", b"{}", b"{}", b"{}"],
             [b"<IDS|MSG>"], [b""]]


def bridged_execute(url: str, pat: str, connection_file: str, attack) -> tuple[str, str]:
    """Starts a bridge on ``connection_file``, runs ``attack(connection)``, then a cell; the cell's status and
    the bridge's stderr."""
    bridge = start_bridge(url, pat, connection_file)
    client = BlockingKernelClient(connection_file=connection_file)
    client.load_connection_file()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        attack(json.load(open(connection_file)))
        try:
            status = client.execute_interactive("print(6 * 7)", timeout=30)["content"]["status"]
        except TimeoutError:
            status = f"no reply (bridge alive: {bridge.poll() is None})"
    finally:
        client.stop_channels()
        bridge.terminate()
        _, stderr = bridge.communicate(timeout=30)
    return status, stderr


def send_malformed(connection: dict) -> None:
    context = zmq.Context.instance()
    for channel in ("shell", "control", "stdin"):
        for frames in MALFORMED:
            socket = context.socket(zmq.DEALER)
            socket.connect(f"tcp://127.0.0.1:{connection[f'{channel}_port']}")
            socket.send_multipart(frames)
            socket.close(linger=1000)
    time.sleep(1)  # the bridge reads them before the cell that follows


async def test_malformed_frames_from_anyone_are_dropped(start_cards, tmp_path):
    api = await start_cards()
    pat = await personal_token(api, await api.login())
    connection_file, _ = write_connection_file(str(tmp_path / "kernel.json"), ip="127.0.0.1")
    status, stderr = await asyncio.to_thread(bridged_execute, api.base_url, pat, connection_file, send_malformed)
    assert status == "ok", (status, stderr[-2000:])


@pytest.mark.skipif(not zmq.has("ipc"), reason="no ipc in this libzmq")
async def test_the_bridge_serves_ipc_in_the_clients_private_folder(start_cards, tmp_path):
    api = await start_cards()
    pat = await personal_token(api, await api.login())
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    connection_file, _ = write_connection_file(str(runtime / "kernel.json"), transport="ipc",
                                               ip=str(runtime / "kernel-ipc"))

    def no_tcp(connection: dict) -> None:
        assert connection["transport"] == "ipc"
        listening = {entry.name for entry in runtime.iterdir()}
        assert {f"kernel-ipc-{connection[f'{channel}_port']}" for channel in ("shell", "iopub", "hb")} <= listening

    status, stderr = await asyncio.to_thread(bridged_execute, api.base_url, pat, connection_file, no_tcp)
    assert status == "ok", (status, stderr[-2000:])
