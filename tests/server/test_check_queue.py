"""``CheckQueue`` alone: who gets the next password-check turn, and what it refuses."""

from __future__ import annotations

import asyncio

import pytest

from server.errors import RateLimitedError
from server.services.check_queue import CheckQueue


async def test_known_pairs_first_then_accounts_in_turn():
    queue = CheckQueue(workers=1, per_account=10, other_lane=100)
    order: list[str] = []
    release = asyncio.Event()

    async def check(account: str, known: bool, name: str) -> None:
        async with queue.turn(account, known):
            order.append(name)
            await release.wait()

    first = asyncio.create_task(check("mallory", False, "m0"))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(check(account, known, name)) for account, known, name in (
        ("mallory", False, "m1"), ("mallory", False, "m2"), ("mallory", True, "mk1"), ("mallory", True, "mk2"),
        ("bo", False, "b1"), ("victim", True, "v1"))]
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(first, *waiting)
    assert order == ["m0", "mk1", "v1", "mk2", "m1", "b1", "m2"]
    assert queue.running == 0 and queue.waiting == 0


async def test_other_lane_bounds_and_cancelled_waiters():
    queue = CheckQueue(workers=1, per_account=2, other_lane=3)
    hold = asyncio.Event()

    async def check(account: str, known: bool = False) -> None:
        async with queue.turn(account, known):
            await hold.wait()

    tasks = [asyncio.create_task(check("a")), asyncio.create_task(check("a"))]
    await asyncio.sleep(0)
    with pytest.raises(RateLimitedError):
        async with queue.turn("a", False):
            pass
    with queue.imitation("b"):  # an unknown email counts alike
        with pytest.raises(RateLimitedError):
            async with queue.turn("c", False):
                pass  # the other lane holds 3 in all
    known = asyncio.create_task(check("a", known=True))  # never refused
    await asyncio.sleep(0)
    tasks[1].cancel()  # waiting: it leaves the line
    await asyncio.sleep(0)
    hold.set()
    await asyncio.gather(tasks[0], known)
    assert tasks[1].cancelled() and queue.running == 0 and queue.waiting == 0
