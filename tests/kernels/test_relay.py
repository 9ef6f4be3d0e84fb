"""The TCP relay to a kernel's ipc sockets: real sandboxed kernels, real jupyter_client and ZeroMQ clients.

The agent's unix relays, for a server on its host, are tested with the agent (``test_agent``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
from collections.abc import AsyncIterator

import pytest
import zmq
import zmq.asyncio
from jupyter_client.asynchronous import AsyncKernelClient
from structlog.testing import capture_logs
from tornado import httpserver
from tornado.netutil import bind_sockets

from kernels import relay as relay_module
from kernels.agent import make_app
from kernels.launcher import CHANNELS, KernelLauncher
from kernels.pool import WarmPool
from kernels.relay import KernelRelay, Relays, TcpListeners, parse_port_range
from tests.kernels.test_agent import SERVER_KEY, Agent

TIMEOUT = 30


@pytest.fixture
def pool_size() -> int:
    return 1


@pytest.fixture
async def relayed(launcher: KernelLauncher) -> AsyncIterator[KernelRelay]:
    """A fresh kernel relayed on 127.0.0.1 (``relayed.connection`` is its TCP connection info)."""
    kernel = await launcher.launch()
    instance = KernelRelay(kernel.connection, TcpListeners("127.0.0.1", "127.0.0.1"))
    await instance.start()
    yield instance
    await instance.close()


def ports(connection: dict) -> list[int]:
    return [connection[f"{name}_port"] for name in CHANNELS]


def relay_tasks() -> list[asyncio.Task]:
    """Live tasks running code of kernels/relay.py (links and pumps)."""
    return [task for task in asyncio.all_tasks()
            if task.get_coro().cr_code.co_filename == relay_module.__file__]


def open_sockets() -> dict[int, str]:
    """This process's open sockets: descriptor to ``socket:[inode]``."""
    found = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:"):
            found[int(fd)] = target
    return found


def socket_fds() -> set[str]:
    return set(open_sockets().values())


def relay_side_sockets(relay_ports: list[int]) -> list[socket.socket]:
    """Duplicates of the connections the relay accepted (local port one of ``relay_ports``)."""
    found = []
    for fd in open_sockets():
        try:
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:
            if sock.family == socket.AF_INET and sock.getsockname()[1] in relay_ports and sock.getpeername():
                found.append(sock)
                continue
        except OSError:  # a listening socket has no peer
            pass
        sock.close()
    return found


async def until(condition, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def run(client: AsyncKernelClient, code: str) -> tuple[str, list[dict]]:
    """Execute ``code``; its reply status and the iopub messages it produced."""
    outputs: list[dict] = []
    reply = await client.execute_interactive(code, timeout=TIMEOUT, output_hook=outputs.append)
    return reply["content"]["status"], outputs


def texts(outputs: list[dict]) -> tuple[str, list[str]]:
    """(stdout, execute_result text/plain values) of iopub messages."""
    stdout = "".join(m["content"]["text"] for m in outputs if m["msg_type"] == "stream")
    results = [m["content"]["data"]["text/plain"] for m in outputs if m["msg_type"] == "execute_result"]
    return stdout, results


async def test_client_runs_code_through_the_relay(relayed):
    """A jupyter_client given only the TCP info runs cells and gets their outputs on iopub."""
    info = relayed.connection
    assert info["transport"] == "tcp" and info["ip"] == "127.0.0.1"
    assert len(set(ports(info))) == 5 and info["key"] == relayed.kernel_connection["key"]
    client = AsyncKernelClient()
    client.load_connection_info(info)
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=TIMEOUT)
        status, outputs = await run(client, "print('through the relay')\n1+1")
        assert status == "ok"
        assert texts(outputs) == ("through the relay\n", ["2"])
        status, outputs = await run(client, "2*21")
        assert status == "ok" and texts(outputs) == ("", ["42"])
        assert relayed.live_connections >= 4  # shell, iopub, stdin, control (hb: below)
        accepted = relay_side_sockets(ports(info))
        try:  # no 40 ms stalls from Nagle and delayed ACKs
            assert len(accepted) >= 4
            assert all(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for sock in accepted)
        finally:
            for sock in accepted:
                sock.close()
    finally:
        client.stop_channels()


async def test_heartbeat_through_the_relay(relayed):
    """The hb port echoes through the relay, and a client sees the kernel alive."""
    context = zmq.asyncio.Context()
    heart = context.socket(zmq.REQ)
    heart.linger = 0
    heart.connect(f"tcp://127.0.0.1:{relayed.connection['hb_port']}")
    try:
        await heart.send(b"ping")
        assert await asyncio.wait_for(heart.recv(), TIMEOUT) == b"ping"
    finally:
        heart.close()
        context.term()
    client = AsyncKernelClient()
    client.load_connection_info(relayed.connection)
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=TIMEOUT)
        await asyncio.sleep(2 * client.hb_channel.time_to_dead)
        assert await client.is_alive()
    finally:
        client.stop_channels()


async def test_close_refuses_and_leaves_nothing(launcher, caplog):
    """close() stops listening, ends live connections on both sides and leaves no task nor socket."""
    kernel = await launcher.launch()
    before = socket_fds()
    relay = KernelRelay(kernel.connection, TcpListeners("127.0.0.1", "127.0.0.1"))
    info = await relay.start()
    streams = [await asyncio.open_connection("127.0.0.1", port) for port in ports(info)]
    for reader, _ in streams:  # the kernel's ZMTP greeting comes through: signature 0xff ... 0x7f
        greeting = await asyncio.wait_for(reader.readexactly(10), TIMEOUT)
        assert greeting[0] == 0xFF and greeting[9] == 0x7F
    assert relay.live_connections == 5 and relay_tasks()
    # the relay ends our connections itself (the kernel would drop them, greeting-less, only
    # after ZeroMQ's 30 s handshake timeout)
    await asyncio.wait_for(relay.close(), 5)
    for reader, _ in streams:
        await asyncio.wait_for(reader.read(), 5)
        assert reader.at_eof()
    for _, writer in streams:
        writer.close()
    for port in ports(info):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert relay_tasks() == [] and relay.live_connections == 0
    await until(lambda: socket_fds() == before)
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_either_side_closing_ends_the_link(relayed, launcher):
    """A client leaving closes the kernel side; the kernel going away closes the client side."""
    before = socket_fds()
    _, writer = await asyncio.open_connection("127.0.0.1", relayed.connection["shell_port"])
    await until(lambda: relayed.live_connections == 1)
    writer.close()
    await until(lambda: relayed.live_connections == 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", relayed.connection["iopub_port"])
    await until(lambda: relayed.live_connections == 1)
    kernel_id = next(iter(launcher.kernels))
    await launcher.stop(kernel_id)
    await asyncio.wait_for(reader.read(), TIMEOUT)
    assert reader.at_eof()
    writer.close()
    await until(lambda: relayed.live_connections == 0)
    # the kernel's socket is gone: a new connection is accepted, then dropped
    reader, writer = await asyncio.open_connection("127.0.0.1", relayed.connection["shell_port"])
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    writer.close()
    await until(lambda: socket_fds() == before and relayed.live_connections == 0)


@pytest.fixture
async def relaying_agent(pool: WarmPool) -> AsyncIterator[tuple[Agent, Relays]]:
    """The agent as ``bi executor --ip 127.0.0.1 --advertise-host 127.0.0.1`` serves it."""
    relays = Relays(TcpListeners("127.0.0.1", "127.0.0.1"))
    sockets = bind_sockets(0, "127.0.0.1")
    server = httpserver.HTTPServer(make_app(pool, SERVER_KEY.public_key(), {"status": "ok"}, relays))
    server.add_sockets(sockets)
    client = Agent(f"http://127.0.0.1:{sockets[0].getsockname()[1]}", pool.launcher)
    yield client, relays
    client.http.close()
    server.stop()
    await relays.close_all()


async def test_agent_hands_out_relayed_kernels(relaying_agent):
    """POST /kernels returns TCP info that runs code; DELETE closes the relay; close_all the rest."""
    agent, relays = relaying_agent
    created = await agent.call("POST", "/kernels")
    assert created.code == 201
    body = json.loads(created.body)
    kernel_id, info = body["kernel_id"], body["connection"]
    assert info["transport"] == "tcp" and info["ip"] == "127.0.0.1"
    assert agent.launcher.kernels[kernel_id].connection["transport"] == "ipc"  # the kernel's own
    client = AsyncKernelClient()
    client.load_connection_info(info)
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=TIMEOUT)
        status, outputs = await run(client, "print(sum(range(10)))")
    finally:
        client.stop_channels()
    assert status == "ok" and texts(outputs) == ("45\n", [])
    assert (await agent.call("DELETE", f"/kernels/{kernel_id}")).code == 204
    assert kernel_id not in relays.relays and kernel_id not in agent.launcher.kernels
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", info["shell_port"]), timeout=5).close()

    second = json.loads((await agent.call("POST", "/kernels")).body)
    await relays.close_all()  # as the agent does when it stops
    assert relays.relays == {} and relay_tasks() == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", second["connection"]["hb_port"]), timeout=5).close()


def free_port_range(size: int) -> int:
    """The first of ``size`` consecutive loopback ports free right now."""
    for base in range(random.randrange(40000, 50000), 60000, size):
        try:
            with contextlib.ExitStack() as stack:
                for port in range(base, base + size):
                    stack.enter_context(socket.create_server(("127.0.0.1", port)))
        except OSError:
            continue
        return base
    raise AssertionError("no free port range")


async def test_relay_ports_come_from_the_range():
    """With a port range (--relay-ports) each channel listens on a free port of it, skipping taken
    ones, and the connection info names the advertised host; a range with too few free ports fails
    and leaves nothing listening."""
    base = free_port_range(7)
    kernel_connection = {"ip": "/nonexistent/kernel", **{f"{name}_port": n for n, name in enumerate(CHANNELS, 1)}}
    with socket.create_server(("127.0.0.1", base)):
        relays = Relays(TcpListeners("127.0.0.1", "10.0.0.5", range(base, base + 7)))
        info = await relays.open("a" * 32, kernel_connection)
        try:
            assert sorted(ports(info)) == list(range(base + 1, base + 6)) and info["ip"] == "10.0.0.5"
            with pytest.raises(OSError, match=f"no free port left in {base}-{base + 6}"):
                await relays.open("b" * 32, kernel_connection)
            assert list(relays.relays) == ["a" * 32]
            with socket.create_server(("127.0.0.1", base + 6)):
                pass  # the failed relay released the one port it had
        finally:
            await relays.close_all()


@pytest.mark.parametrize("text", ["20000", "20999-20000", "0-10", "a-b", "20000-70000"])
def test_bad_port_ranges_refused(text):
    """A relay port range is LOW-HIGH within 1..65535."""
    assert parse_port_range("20000-20999") == range(20000, 21000)
    with pytest.raises(ValueError, match="LOW-HIGH"):
        parse_port_range(text)


async def test_a_message_over_the_bound_ends_the_link(launcher):
    """A kernel message larger than the relay's bound (in all its parts) cuts the link, not the relay:
    the client reconnects and goes on; smaller messages pass whole."""
    kernel = await launcher.launch()
    bounded = KernelRelay(kernel.connection, TcpListeners("127.0.0.1", "127.0.0.1"), message_bytes=200_000)
    client = AsyncKernelClient()
    client.load_connection_info(await bounded.start())
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=TIMEOUT)
        status, outputs = await run(client, "print('x' * 150_000)")
        assert status == "ok" and len(texts(outputs)[0]) == 150_001
        with capture_logs() as logs:
            msg_id = client.execute("print('x' * 250_000)")
            reply = await client.get_shell_msg(timeout=TIMEOUT)  # the shell link is not the one cut
            assert reply["parent_header"]["msg_id"] == msg_id
            await until(lambda: any(e["event"] == "relay_message_too_large" for e in logs))
        await asyncio.sleep(0.5)  # the client's iopub reconnects
        status, outputs = await run(client, "6 * 7")
        assert status == "ok" and texts(outputs) == ("", ["42"])
    finally:
        client.stop_channels()
        await bounded.close()
