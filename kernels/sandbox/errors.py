"""The one exception every sandbox layer raises when it cannot be applied."""

from __future__ import annotations

import errno as errno_codes
import os


class SandboxError(RuntimeError):
    """A layer could not be applied (or did not verify); ``layer`` names it."""

    def __init__(self, layer: str, message: str):
        super().__init__(f"sandbox layer {layer!r}: {message}")
        self.layer = layer


def os_error(layer: str, what: str, code: int) -> SandboxError:
    """A ``SandboxError`` for a failed system call, naming the errno."""
    name = errno_codes.errorcode.get(code, str(code))
    return SandboxError(layer, f"{what} failed: {name} ({os.strerror(code)})")
