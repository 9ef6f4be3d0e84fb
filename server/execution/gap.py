"""The messages a kernel published while no server held it, as a reattaching server gets them from the agent.

The agent keeps each message's frames as the kernel signed them (``kernels/gap.py``); only those that bear
the kernel's signature are used. A card session replays their outputs (``card_outputs``) and follows the run
they show still going (``unfinished_run``), a Jupyter kernel the messages themselves (``jupyter/kernel.py``).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Any

from ..logs import get_logger
from .links import unpack_part
from .outputs import output_of
from .sanitize import sanitize_output
from .session import Kernel, run_label

log = get_logger("bi.execution.gap")


def signed_parts(kernel: Kernel, gap: list[list[bytes]]) -> Iterator[list[bytes]]:
    """Each kept message's parts (its signature, four JSON parts, buffers) signed with the kernel's key."""
    session = kernel.client.session
    for frames in gap:
        try:
            parts = session.feed_identities(frames)[1]
        except ValueError:
            parts = []
        if len(parts) >= 5 and hmac.compare_digest(parts[0], session.sign(parts[1:5])):
            yield parts
        else:
            log.warning("gap_message_dropped", kernel_id=kernel.kernel_id, reason="not signed with the kernel's key")


def card_outputs(kernel: Kernel, gap: list[list[bytes]]) -> Iterator[tuple[str | None, dict[str, Any] | None]]:
    """The kept messages as a card session replays them, in order: ``(run label, output)`` for an output
    (sanitised), ``(run label, None)`` for the ``idle`` status that ends a labelled run."""
    for parts in signed_parts(kernel, gap):
        try:
            header, parent, content = unpack_part(parts[1]), unpack_part(parts[2]), unpack_part(parts[4])
            label = run_label(parent.get("msg_id"))
            if header.get("msg_type") == "status":
                if label is not None and content.get("execution_state") == "idle":
                    yield label, None
                continue
            output = output_of({"msg_type": header.get("msg_type"), "content": content})
        except (ValueError, KeyError, AttributeError) as exc:
            log.warning("gap_message_dropped", kernel_id=kernel.kernel_id, reason=str(exc))
            continue
        if output is not None:
            yield label, sanitize_output(output)


def unfinished_run(kernel: Kernel, gap: list[list[bytes]]) -> str | None:
    """The msg_id of the labelled run the kept messages show going on (messages of it, and no ``idle`` after
    them), or None. A run that published nothing in the gap (nor in the last moments before it) is not seen."""
    going = None
    for parts in signed_parts(kernel, gap):
        try:
            header, parent, content = unpack_part(parts[1]), unpack_part(parts[2]), unpack_part(parts[4])
            msg_id = parent.get("msg_id")
            idle = header.get("msg_type") == "status" and content.get("execution_state") == "idle"
        except (ValueError, AttributeError):
            continue
        if run_label(msg_id) is not None:
            going = None if idle else msg_id
    return going
