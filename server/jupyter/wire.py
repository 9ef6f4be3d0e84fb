"""Kernel messages on the Jupyter websocket, in both of its forms.

A message in transit is its channel and its parts as the kernel's ZeroMQ frames carry them:
header, parent_header, metadata, content (JSON), then any binary buffers. The v1 form carries those
parts untouched; only the legacy form needs them parsed and re-encoded.

- ``v1.kernel.websocket.jupyter.org`` (chosen when the client offers it): each message is one
  binary frame: the number n of offsets (8 bytes, little-endian), n offsets of 8 bytes, then the
  channel name and the parts, each starting at its offset.
- legacy (no subprotocol): a message is a JSON text frame ``{"channel", "header", "parent_header",
  "metadata", "content", "buffers": []}``, or, when it has buffers, one binary frame: the number n
  of pieces (4 bytes, big-endian), n offsets of 4 bytes, the JSON, then each buffer. Clients may
  send either. Buffers are never decoded as text (ipywidgets#3798).

Every JSON part, from a client or a kernel, is read by ``json_io.loads`` (depth, numbers, no NaN,
no lone surrogates, at most ``KERNEL_JSON_VALUES`` values, counted before it is parsed); a client's
message is checked whole when it arrives, a kernel's part when the server needs it (its status, or
every part for a legacy client). The frame's size is bounded by the websocket's.
"""

from __future__ import annotations

import dataclasses
import functools
import struct
from typing import Any

from .. import json_io
from ..errors import BIError
from ..limits import KERNEL_JSON_VALUES

V1 = "v1.kernel.websocket.jupyter.org"
JSON_PARTS = ("header", "parent_header", "metadata", "content")


class BadFrame(ValueError):
    """A websocket frame that is not a kernel message; the text says what is wrong."""


@dataclasses.dataclass
class KernelMessage:
    channel: str
    parts: list[bytes]  # header, parent_header, metadata, content, *buffers

    @functools.cached_property
    def header(self) -> dict[str, Any]:
        return _json_object(self.parts[0], "header")

    @functools.cached_property
    def parent_header(self) -> dict[str, Any]:
        return _json_object(self.parts[1], "parent_header")

    @functools.cached_property
    def content(self) -> dict[str, Any]:
        return _json_object(self.parts[3], "content")

    @property
    def msg_id(self) -> str:
        return str(self.header.get("msg_id", ""))

    @property
    def msg_type(self) -> str:
        return str(self.header.get("msg_type", ""))

    @property
    def parent_id(self) -> str | None:
        return self.parent_header.get("msg_id")

    @property
    def size(self) -> int:
        return sum(len(part) for part in self.parts)


def from_fields(channel: str, fields: dict[str, Any], buffers: list[bytes]) -> KernelMessage:
    """A message from its JSON fields (``header``, ``parent_header``, ``metadata``, ``content``)."""
    if not isinstance(fields.get("header"), dict) or not fields["header"].get("msg_type"):
        raise BadFrame("a message needs a header with a msg_type")
    for name in JSON_PARTS[1:]:
        if not isinstance(fields.get(name) or {}, dict):
            raise BadFrame(f"the {name} is not a JSON object")
    parts = [json_io.dumps(fields.get(name) or {}) for name in JSON_PARTS]
    return KernelMessage(channel, parts + buffers)


def decode(frame: str | bytes, protocol: str | None) -> KernelMessage:
    """The message in one frame from a client speaking ``protocol`` (``V1`` or None for legacy)."""
    if protocol == V1:
        if not isinstance(frame, bytes):
            raise BadFrame("the v1 protocol sends binary frames")
        message = _decode_v1(frame)
        for part, name in zip(message.parts, JSON_PARTS, strict=False):
            _json_object(part, name)
        return message
    if isinstance(frame, bytes):
        fields, buffers = _split_legacy_binary(frame)
    else:
        fields, buffers = _json_object(frame, "message"), []
    return from_fields(str(fields.get("channel") or "shell"), fields, buffers)


def encode(message: KernelMessage, protocol: str | None) -> str | bytes:
    """One frame carrying ``message`` to a client speaking ``protocol``."""
    if protocol == V1:
        return _encode_v1(message)
    header = message.header
    fields = {"header": header, "msg_id": header.get("msg_id"), "msg_type": header.get("msg_type"),
              "parent_header": message.parent_header, "metadata": _json_object(message.parts[2], "metadata"),
              "content": message.content, "channel": message.channel}
    buffers = message.parts[4:]
    if not buffers:
        return json_io.dumps({**fields, "buffers": []}).decode()
    pieces = [json_io.dumps(fields), *buffers]
    offsets = [4 * (len(pieces) + 1)]
    for piece in pieces[:-1]:
        offsets.append(offsets[-1] + len(piece))
    return struct.pack(f"!{len(pieces) + 1}I", len(pieces), *offsets) + b"".join(pieces)


def _decode_v1(frame: bytes) -> KernelMessage:
    try:
        count = int.from_bytes(frame[:8], "little")
        if not 6 <= count <= 1024 or len(frame) < 8 * (count + 1):
            raise BadFrame("bad v1 offset table")
        offsets = [int.from_bytes(frame[8 * (i + 1):8 * (i + 2)], "little") for i in range(count)]
        if offsets != sorted(offsets) or offsets[0] < 8 * (count + 1) or offsets[-1] > len(frame):
            raise BadFrame("bad v1 offsets")
        channel = frame[offsets[0]:offsets[1]].decode()
    except UnicodeDecodeError as exc:
        raise BadFrame("the channel name is not UTF-8") from exc
    return KernelMessage(channel, [frame[a:b] for a, b in zip(offsets[1:-1], offsets[2:], strict=False)])


def _encode_v1(message: KernelMessage) -> bytes:
    channel = message.channel.encode()
    offsets = [8 * (len(message.parts) + 3), 8 * (len(message.parts) + 3) + len(channel)]
    for part in message.parts:
        offsets.append(offsets[-1] + len(part))
    table = b"".join(n.to_bytes(8, "little") for n in [len(offsets), *offsets])
    return b"".join([table, channel, *message.parts])


def _split_legacy_binary(frame: bytes) -> tuple[dict[str, Any], list[bytes]]:
    try:
        (count,) = struct.unpack("!I", frame[:4])
        if not 1 <= count <= 1024:
            raise BadFrame("bad piece count")
        offsets = [*struct.unpack(f"!{count}I", frame[4:4 * (count + 1)]), len(frame)]
    except struct.error as exc:
        raise BadFrame("the offset table is cut short") from exc
    if offsets != sorted(offsets) or offsets[0] < 4 * (count + 1):
        raise BadFrame("bad offsets")
    pieces = [frame[a:b] for a, b in zip(offsets, offsets[1:], strict=False)]
    return _json_object(pieces[0], "message"), pieces[1:]


def _json_object(raw: str | bytes, what: str) -> dict[str, Any]:
    try:
        value = json_io.loads(raw, None, KERNEL_JSON_VALUES)
    except BIError as exc:
        raise BadFrame(f"the {what}: {exc.message.rstrip('.')}") from None
    if not isinstance(value, dict):
        raise BadFrame(f"the {what} is not a JSON object")
    return value
