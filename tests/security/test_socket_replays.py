"""Resuming a card session costs the server one replay at a time: a socket replaced by a resume is
aborted at once, what was queued for it freed, not kept until Tornado's close timeout. Attack: a
session whose replay buffer is full, resumed from ``after=0`` by many sockets that never read.

A Jupyter kernel replays its kept messages once, to the first socket of the client session that
comes back, and forgets them (``JupyterKernel.attach``): the same attack costs one replay there too.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from server import limits
from tests.server.test_card_socket import connect as card_socket
from tests.server.test_jupyter_api import connect as kernel_socket
from tests.server.test_jupyter_api import start_kernel

from .raw_sockets import MB, peak_since, reset_peak, stalled_socket
from .test_client_buffers import send_runs

RESUMES = limits.SOCKETS_PER_USER - 2  # every socket a user may hold, the first one aside
PRINTED = 4_500_000


@pytest.fixture
def measurable():
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs /proc/self/clear_refs to measure peak memory")


async def stalled_resumes(api, token: str, path: str) -> int:
    """The server's growth while ``RESUMES`` sockets that never read resume on ``path``."""
    baseline = reset_peak()
    sockets = [await stalled_socket(api, token, path) for _ in range(RESUMES)]
    await asyncio.sleep(1)
    grown = peak_since(baseline)
    for sock in sockets:
        sock.close()
    return grown


async def test_resuming_a_session_from_many_stalled_sockets_costs_one_replay(start_cards, measurable):
    api = await start_cards()
    token = await api.login()
    first = await card_socket(api, token)
    session_id = (await first.receive())["session_id"]
    for run in range(2):
        first.send(type="execute", run_id=f"r{run}", code=f"print('x' * {PRINTED})")
        await first.until("done")
    live = api.app.live_sessions._live[session_id]
    assert live.sent.bytes > limits.REPLAY_BYTES // 2

    grown = await stalled_resumes(api, token, f"/api/cards/scratch/ws?session={session_id}&after=0")
    assert grown < 100 * MB, f"{RESUMES} stalled resumes grew the server by {grown // MB} MB"


async def test_reconnecting_to_a_jupyter_kernel_from_many_stalled_sockets_costs_one_replay(start_cards, measurable):
    api = await start_cards()
    token = await api.login()
    kernel = await start_kernel(api, token)
    session_id = uuid.uuid4().hex
    socket = await kernel_socket(api, token, kernel["id"], session_id=session_id)
    await socket.execute("1")
    relay = api.app.jupyter_kernels._kernels[kernel["id"]]
    await send_runs(socket, relay, f"print('x' * {PRINTED})", 2)
    socket.close()
    for _ in range(1200):
        if relay._kept.bytes > limits.REPLAY_BYTES // 2:
            break
        await asyncio.sleep(0.05)
    assert relay._kept.bytes > limits.REPLAY_BYTES // 2, "the kernel's messages were kept for the client"

    grown = await stalled_resumes(api, token, f"/api/kernels/{kernel['id']}/channels?session_id={session_id}")
    assert grown < 100 * MB, f"{RESUMES} stalled reconnects grew the server by {grown // MB} MB"
