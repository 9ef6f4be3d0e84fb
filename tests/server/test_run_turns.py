"""Card runs take turns per user and tell their place in line; identical runs under way are one."""

from __future__ import annotations

import asyncio

import pytest

from server.services.run_turns import RunTurns, SharedRuns


async def test_runs_past_the_bound_wait_in_order_and_hear_their_place():
    turns = RunTurns(per_user=1)
    places: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    order: list[str] = []
    release = asyncio.Event()

    async def run(name: str) -> None:
        async with turns.turn("u1", places[name].append):
            order.append(name)
            await release.wait()

    tasks = [asyncio.create_task(run(name)) for name in "abc"]
    await asyncio.sleep(0.01)
    assert order == ["a"] and places == {"a": [0], "b": [1], "c": [2]}
    async with turns.turn("u2"):  # another user's runs do not wait for these
        pass
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["a", "b", "c"]
    assert places == {"a": [0], "b": [1, 0], "c": [2, 1, 0]}
    assert not turns._running and not turns._waiting, "nothing is kept once the line is empty"


async def test_a_waiting_run_that_gives_up_leaves_the_line():
    turns = RunTurns(per_user=1)
    release = asyncio.Event()
    third: list[int] = []

    async def hold() -> None:
        async with turns.turn("u1"):
            await release.wait()

    async def wait(told) -> None:
        async with turns.turn("u1", told):
            pass

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    quitter = asyncio.create_task(wait(None))
    stayer = asyncio.create_task(wait(third.append))
    await asyncio.sleep(0.01)
    assert third == [2]
    quitter.cancel()
    await asyncio.sleep(0.01)
    assert third == [2, 1], "the place moves up when one before leaves"
    release.set()
    await asyncio.gather(holder, stayer)
    assert third[-1] == 0


async def test_identical_runs_under_way_are_one():
    shared = SharedRuns()
    started = 0
    gate = asyncio.Event()

    async def start(told) -> str:
        nonlocal started
        started += 1
        told(3)
        await gate.wait()
        return "result"

    heard: list[int] = []
    first = asyncio.create_task(shared.run("k", start))
    await asyncio.sleep(0)
    second = asyncio.create_task(shared.run("k", start, heard.append))
    other = asyncio.create_task(shared.run("other", start))
    await asyncio.sleep(0.01)
    assert heard == [3], "a caller that joins hears the place of the run under way"
    gate.set()
    assert await asyncio.gather(first, second, other) == ["result"] * 3
    assert started == 2 and not shared.running("k")


async def test_a_shared_runs_error_reaches_every_caller():
    shared = SharedRuns()

    async def fail(told) -> None:
        await asyncio.sleep(0.01)
        raise ValueError("boom")

    answers = await asyncio.gather(shared.run("k", fail), shared.run("k", fail), return_exceptions=True)
    assert [type(answer) for answer in answers] == [ValueError, ValueError]
    with pytest.raises(ValueError):
        await shared.run("k", fail)  # a new run: the failed one is not kept
