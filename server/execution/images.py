"""The size of a PNG or JPEG output, read from its header: a small image may declare a huge one, which every
page that shows it decodes whole (a 380 KB PNG of 20,000 x 20,000 pixels cost a viewer's Chromium tab 8 s
and 2.2 GB).

``readable`` refuses an image of more than ``IMAGE_PIXELS`` (``OutputTooComplexError``) and tells one that is
not what its MIME type says, which the bundle drops (the browser sniffs the bytes: a GIF or WebP sent as
``image/png`` would be decoded as what it is, its size unread here).
"""

from __future__ import annotations

import base64
import binascii
import struct

from ..errors import OutputTooComplexError
from ..limits import IMAGE_PIXELS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_FRAMES = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
"""Start-of-frame markers: the segment that holds the image's height and width."""
JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})
"""Markers without a length (restarts, start of image)."""


def _png_size(data: bytes) -> tuple[int, int] | None:
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR" or len(data) < 24:
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    if not data.startswith(b"\xff\xd8"):
        return None
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in JPEG_STANDALONE:
            at += 2
            continue
        if marker in JPEG_FRAMES:
            if at + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return width, height
        at += 2 + struct.unpack(">H", data[at + 2:at + 4])[0]
    return None


def readable(mime: str, value: object) -> bool:
    """Whether the base64 ``value`` of an ``image/png`` or ``image/jpeg`` output is that kind of image (its size
    read); ``OutputTooComplexError`` if it has more than ``IMAGE_PIXELS`` pixels."""
    try:
        data = base64.b64decode(value if isinstance(value, str) else "", validate=False)
    except (binascii.Error, ValueError):
        return False
    size = _png_size(data) if mime == "image/png" else _jpeg_size(data)
    if size is None:
        return False
    if size[0] * size[1] > IMAGE_PIXELS:
        raise OutputTooComplexError(f"This image has {size[0]:,} x {size[1]:,} pixels, more than the "
                                    f"{IMAGE_PIXELS:,} a page may decode. Save it smaller (a lower dpi or figsize).",
                                    {"bound": "image_pixels", "max": IMAGE_PIXELS})
    return True
