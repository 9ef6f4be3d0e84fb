"""The HTML-table and SVG cleaners (nh3 over html5ever) on the costliest markup their bounds let through.

Offline, no server. Each case is cut to ``HTML_ELEMENTS``/``SVG_ELEMENTS`` tags and run through
``html_tables.clean`` or ``sanitize.clean_svg``; prints the seconds, the growth of peak RSS and the
outcome (characters out, or the bound that refused it). Cases: the reconstruct bomb of red team 4 at the
``HTML_FORMATTING`` bound (that many open formatting elements, the rest ``<div>x</div>``) and past it,
nesting at the ``HTML_DEPTH`` bound and past it, the scan's own worst case (end tags that walk a full
stack), and a plain table of ``HTML_ELEMENTS`` tags for reference. Target: every case under 2 s and 200 MB.

    python bench/markup_cleaning.py
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.errors import OutputTooComplexError  # noqa: E402
from server.execution import html_tables, sanitize  # noqa: E402
from server.limits import HTML_DEPTH, HTML_ELEMENTS, HTML_FORMATTING  # noqa: E402


def fill(head: str, unit: str, tail: str = "") -> str:
    """``head``, then ``unit`` as many times as the tag bound allows, then ``tail``."""
    left = HTML_ELEMENTS - head.count("<") - tail.count("<")
    return head + unit * (left // unit.count("<")) + tail


def bomb(open_elements: int) -> str:
    return fill("<table></table><div>" + "".join(f"<b title={i}>" for i in range(open_elements)) + "</div>",
                "<div>x</div>")


CASES: dict[str, tuple[Callable[[str], str | None], str]] = {
    "reconstruct at the bound": (html_tables.clean, bomb(HTML_FORMATTING)),
    "reconstruct past the bound": (html_tables.clean, bomb(HTML_FORMATTING + 1)),
    "svg reconstruct at the bound": (sanitize.clean_svg, bomb(HTML_FORMATTING).replace("<table></table>", "<svg></svg>")),
    "nesting at the bound": (html_tables.clean, fill("<table></table>" + "<div>" * (HTML_DEPTH - 1), "<span>x</span>")),
    "nesting past the bound": (html_tables.clean, "<table></table>" + "<div>" * (HTML_DEPTH + 1)),
    "svg end tags walking the stack": (sanitize.clean_svg, fill("<svg>" + "<g>" * (HTML_DEPTH - 1), "</x>")),
    "plain table": (html_tables.clean, fill("<table>", "<tr><td>1</td></tr>", "</table>")),
}


def main() -> None:
    for name, (clean, markup) in CASES.items():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        try:
            outcome = f"{len(clean(markup) or ''):,} characters out"
        except OutputTooComplexError as refused:
            outcome = f"refused ({refused.details['bound']})"
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024
        print(f"{name:32} {markup.count('<'):6,} tags {time.perf_counter() - started:6.2f} s {grown:5} MB  {outcome}",
              flush=True)


if __name__ == "__main__":
    main()
