"""RunQueue: a run's unhandled messages are bounded in bytes, and the reader waits instead of reading on."""

from __future__ import annotations

import asyncio

from server.execution.run_queue import RunQueue


async def test_the_reader_waits_past_the_bound_until_the_run_takes_a_message():
    queue = RunQueue(limit=10)
    await queue.put({"n": 1}, 6)
    blocked = asyncio.ensure_future(queue.put({"n": 2}, 6))
    await asyncio.sleep(0.01)
    assert not blocked.done() and queue.size == 6
    assert await queue.get() == {"n": 1}
    await asyncio.wait_for(blocked, 1)
    assert queue.size == 6 and await queue.get() == {"n": 2}


async def test_one_message_larger_than_the_bound_still_passes_alone():
    queue = RunQueue(limit=10)
    await asyncio.wait_for(queue.put({"big": True}, 50), 1)
    assert await queue.get() == {"big": True} and queue.size == 0


async def test_closing_releases_a_waiting_reader_and_drops_what_was_queued():
    queue = RunQueue(limit=10)
    await queue.put({"n": 1}, 10)
    blocked = asyncio.ensure_future(queue.put({"n": 2}, 10))
    await asyncio.sleep(0.01)
    await queue.close()
    await asyncio.wait_for(blocked, 1)
    assert queue.size == 0 and queue.closed
    await queue.put({"n": 3}, 1)  # a late message of the ended run is dropped
    assert queue.size == 0
