"""Message sizes in a ZMTP 3 stream, fed in every possible split."""

from __future__ import annotations

import pytest

from kernels.zmtp import GREETING_BYTES, MessageBound, MessageTooLarge


def frame(body: bytes, more: bool = False, command: bool = False, long: bool = False) -> bytes:
    flags = more | (command << 2) | ((long or len(body) > 255) << 1)
    size = len(body).to_bytes(8 if flags & 2 else 1, "big")
    return bytes([flags]) + size + body


GREETING = b"\xff" + bytes(8) + b"\x7f" + b"\x03\x01" + b"NULL".ljust(20, b"\0") + bytes(32)
READY = frame(b"\x05READY" + b"\x0bSocket-Type\x00\x00\x00\x03SUB", command=True)


def stream(*messages: list[bytes]) -> bytes:
    return GREETING + READY + b"".join(frame(part, more=i < len(parts) - 1, long=i == 0)
                                       for parts in messages for i, part in enumerate(parts))


def feed_split(bound: MessageBound, data: bytes, at: int) -> None:
    bound.feed(data[:at])
    bound.feed(data[at:])


def test_messages_within_the_bound_pass_in_any_split():
    assert len(GREETING) == GREETING_BYTES
    data = stream([b"a" * 300, b"b" * 100], [b"c" * 400], [b""])
    for at in range(len(data) + 1):
        feed_split(MessageBound(400), data, at)


@pytest.mark.parametrize("parts", [[b"a" * 401], [b"a" * 200, b"b" * 201], [b"x"] * 401])
def test_a_message_over_the_bound_is_caught_in_any_split(parts):
    """One part over the bound, or many parts each under it, or many tiny parts."""
    data = stream([b"ok"], parts)
    for at in range(len(data) + 1):
        with pytest.raises(MessageTooLarge):
            feed_split(MessageBound(400), data, at)


def test_commands_count_toward_no_message():
    data = stream([b"a" * 400]) + frame(b"\x04PING" + b"p" * 500, command=True) + frame(b"b" * 400)
    MessageBound(400).feed(data)
