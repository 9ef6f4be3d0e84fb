"""The byte-bounded replay buffer that card and Jupyter sockets share."""

from __future__ import annotations

from server.execution.replay import ReplayBuffer


def test_the_newest_messages_within_the_bound_are_kept_and_numbered():
    buffer: ReplayBuffer[str] = ReplayBuffer(max_bytes=10)
    assert [buffer.append(text, len(text)) for text in ("aaaa", "bbbb", "cccc")] == [1, 2, 3]
    assert buffer.bytes == 8 and len(buffer) == 2
    assert buffer.since(0) == (1, ["bbbb", "cccc"])
    assert buffer.since(1) == (0, ["bbbb", "cccc"])
    assert buffer.since(2) == (0, ["cccc"])
    assert buffer.since(3) == (0, [])


def test_a_message_larger_than_the_bound_is_counted_as_lost():
    buffer: ReplayBuffer[str] = ReplayBuffer(max_bytes=10)
    buffer.append("a", 1)
    buffer.append("x" * 11, 11)
    assert buffer.bytes == 0 and buffer.since(0) == (2, [])


def test_skipped_messages_are_lost_and_clear_starts_again():
    buffer: ReplayBuffer[str] = ReplayBuffer(max_bytes=10)
    buffer.skip(3)
    buffer.append("a", 1)
    assert buffer.since(0) == (3, ["a"]) and buffer.last == 4
    buffer.clear()
    assert (buffer.last, buffer.bytes, buffer.since(0)) == (0, 0, (0, []))


def test_pinned_messages_outlast_newer_unpinned_ones_within_the_bound():
    buffer: ReplayBuffer[str] = ReplayBuffer(max_bytes=10)
    buffer.append("aaa", 3)
    buffer.append("reply", 2, pinned=True)
    for text in ("bbb", "ccc", "ddd"):
        buffer.append(text, 3)
    assert buffer.since(0) == (2, ["reply", "ccc", "ddd"]) and buffer.bytes == 8
    assert buffer.since(2) == (1, ["ccc", "ddd"])
    buffer.append("x" * 9, 9)  # every unpinned one goes first, the newest too
    assert buffer.since(0) == (5, ["reply"]) and buffer.bytes == 2
    buffer.append("y" * 9, 9, pinned=True)  # with none unpinned left, the oldest pinned one goes
    assert buffer.since(0) == (6, ["y" * 9]) and buffer.bytes == 9
