"""DecodeBudget: kernel messages parsed at once are bounded in bytes across sessions, first come first served."""

from __future__ import annotations

import asyncio

from server.execution.decode_budget import DecodeBudget
from server.execution.run_queue import RunQueue


async def test_a_message_past_what_is_left_waits_until_one_is_given_back():
    budget = DecodeBudget(10)
    await budget.take(6)
    waiting = asyncio.ensure_future(budget.take(6))
    await asyncio.sleep(0.01)
    assert not waiting.done() and budget.held == 6
    budget.give(6)
    await asyncio.wait_for(waiting, 1)
    assert budget.held == 6


async def test_one_message_larger_than_the_budget_goes_alone():
    budget = DecodeBudget(10)
    await asyncio.wait_for(budget.take(50), 1)
    small = asyncio.ensure_future(budget.take(1))
    await asyncio.sleep(0.01)
    assert not small.done()
    budget.give(50)
    await asyncio.wait_for(small, 1)


async def test_turns_are_first_come_first_served():
    """A small message does not overtake a large one that waits (it would starve)."""
    budget = DecodeBudget(10)
    await budget.take(5)
    large = asyncio.ensure_future(budget.take(8))
    await asyncio.sleep(0.01)
    small = asyncio.ensure_future(budget.take(1))
    await asyncio.sleep(0.01)
    assert not large.done() and not small.done()
    budget.give(5)
    await asyncio.wait_for(asyncio.gather(large, small), 1)
    assert budget.held == 9


async def test_a_cancelled_wait_takes_nothing_and_lets_the_next_go():
    budget = DecodeBudget(10)
    await budget.take(10)
    cancelled = asyncio.ensure_future(budget.take(5))
    after = asyncio.ensure_future(budget.take(5))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    budget.give(10)
    await asyncio.wait_for(after, 1)
    assert budget.held == 5


async def test_the_run_queue_gives_a_message_back_once_the_next_is_taken_or_the_run_ends():
    """The message taken last is being handled: its cost is held until the run takes another."""
    budget = DecodeBudget(100)
    queue = RunQueue(limit=100, budget=budget)
    for cost in (10, 20, 30):
        await budget.take(cost)
        await queue.put({"cost": cost}, cost)
    assert await queue.get() == {"cost": 10} and budget.held == 60
    assert await queue.get() == {"cost": 20} and budget.held == 50
    await queue.close()
    assert budget.held == 0
    await budget.take(7)
    await queue.put({"late": True}, 7)  # a late message of the ended run is dropped and given back
    assert budget.held == 0
