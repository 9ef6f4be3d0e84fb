"""Costly outputs: outputs under the output cap whose cleaning costs the server seconds.

Every output is sanitised before it is passed on (``server/execution/sanitize.py``). A card's SVG
of 340,000 nested ``<g>`` or a forged Bokeh item of 70,000 ``Spacer`` models is within the 5 MB
output cap, yet cleaning it took seconds on the event loop: every other request waited (from four
sessions ``/api/health`` waited 7.6 s and 14.5 s; a plain-text output of the same size, 0.6 s).
Cleaning is bounded in work (``SVG_ELEMENTS`` tags, ``BOKEH_MODELS`` models, counted cheaply before or
while checking; past them the output is the error ``output_too_complex``) and runs in a thread. The
item here has 20,000 models (past the bound). Parsing a kernel message happens on the event loop
(``execution.links.unpack_part``): a part is counted first and refused past ``KERNEL_JSON_VALUES``
values, and sessions take turns for the parsed bytes they hold (``execution.decode_budget``).

Red team 5, costly for viewers: the sanitizer checked a Bokeh item's models and properties, not its sizes.
BokehJS allocates canvases of each figure's width x height (x device pixels): one ``figure(width=30_000,
height=8_000)``, a valid model, cost a dashboard viewer's Chromium tab 21 s and 3.8 GB; ``figure(height=30_000)``
stretched to a 516 px tile 400 MB. Sizes and borders of layouts are now at most ``BOKEH_LENGTH`` pixels and
the figures of one run's items and patches at most ``BOKEH_PIXELS`` in all. Images too: a 380 KB PNG declaring 20,000 x 20,000
pixels cost a tab 8 s and 2.2 GB; a PNG or JPEG is now read to its header and refused past ``IMAGE_PIXELS``,
and one that is not what its type says is dropped (the browser would sniff and decode it, unmeasured).
"""

from __future__ import annotations

import asyncio
import base64
import struct
import time
import zlib

import pytest

from kernels.wire import BOKEH_ITEM
from server.execution.sanitize import sanitize_output
from bokeh.embed import json_item
from bokeh.layouts import gridplot
from bokeh.plotting import figure

from server.execution.outputs import OutputCollector
from server.limits import BOKEH_LENGTH, BOKEH_MODELS, BOKEH_PIXELS, IMAGE_PIXELS, SVG_ELEMENTS
from tests.server.conftest import api, start_server  # noqa: F401 - fixtures
from tests.server.test_sessions import open_session, root, run, start_cards  # noqa: F401 - fixtures

HEALTH_SECONDS = 1.5  # generous: the machine is shared; the unbounded cleaning blocked for seconds

NESTED_SVG = """
from IPython.display import display
n = 340_000
display({'image/svg+xml': '<svg xmlns="http://www.w3.org/2000/svg">' + '<g>' * n + '</g>' * n + '</svg>',
         'text/plain': 'x'}, raw=True)
"""

SPACERS = """
from IPython.display import display
spacers = [{'type': 'object', 'name': 'Spacer', 'id': f'p{i}', 'attributes': {}} for i in range(20_000)]
display({%r: {'target_id': None, 'root_id': 'c', 'version': '3.9.2',
         'doc': {'version': '3.9.2', 'title': '', 'roots': [
             {'type': 'object', 'name': 'Column', 'id': 'c', 'attributes': {'children': spacers}}]}},
         'text/plain': 'x'}, raw=True)
""" % BOKEH_ITEM


async def test_outputs_too_costly_to_clean_are_refused_and_block_no_one(start_cards):
    api = await start_cards()
    token = await api.add_user("costly@example.com")
    session_id = await open_session(api, token)
    for name, code in {"nested_svg": NESTED_SVG, "spacers": SPACERS}.items():
        response, waits = await while_polling_health(api, run(api, token, session_id, code))
        assert response.code == 200, (name, response.body[:300])
        errors = [o for o in response.json()["outputs"] if o["output_type"] == "error"]
        assert [o["ename"] for o in errors] == ["output_too_complex"], (name, response.body[:300])
        assert max(waits) < HEALTH_SECONDS, f"{name}: /api/health waited {max(waits):.1f} s"


async def while_polling_health(api, work):
    """``work``'s result and how long each ``/api/health`` asked meanwhile (every 50 ms) waited."""
    task = asyncio.ensure_future(work)
    waits: list[float] = []
    while not task.done():
        start = time.monotonic()
        health = await api.fetch("GET", "/api/health")
        waits.append(time.monotonic() - start)
        assert health.code == 200
        await asyncio.sleep(0.05)
    return await task, waits


def bundle(data: dict) -> dict:
    return {"output_type": "display_data", "data": data, "metadata": {}}


def test_the_bounds_count_elements_and_models_however_laid_out():
    """Flat elements count as nested ones do; models anywhere in a patch count as in an item."""
    rects = "<rect/>" * (SVG_ELEMENTS + 1)
    assert sanitize_output(bundle({"image/svg+xml": f"<svg>{rects}</svg>"}))["ename"] == "output_too_complex"
    assert "image/svg+xml" in sanitize_output(bundle({"image/svg+xml": "<svg><rect/></svg>"}))["data"]
    spacer = {"type": "object", "name": "Spacer", "id": "s", "attributes": {}}
    patch = {"events": [{"kind": "ColumnDataChanged", "cols": [[spacer] * (BOKEH_MODELS + 1)]}]}
    output = sanitize_output({"output_type": "bokeh_patch", "root_id": "r", "seq": 1, "patch": patch})
    assert output["ename"] == "output_too_complex"


EMPTY_LISTS = """
from IPython.display import display
display({'application/json': [[]] * 450_000, 'text/plain': 'x'}, raw=True)
"""


async def test_a_message_of_too_many_values_is_refused_unparsed(start_cards):
    """A 1.4 MB message of 450,000 empty lists would be a 30 MB tree (10 MB of them, 210 MB): past
    ``KERNEL_JSON_VALUES`` it is never parsed, and its run gets ``output_too_complex``."""
    api = await start_cards()
    token = await api.add_user("values@example.com")
    session_id = await open_session(api, token)
    response = await run(api, token, session_id, EMPTY_LISTS)
    assert response.code == 200, response.body[:300]
    outputs = response.json()["outputs"]
    assert [o.get("ename") for o in outputs] == ["output_too_complex"], response.body[:300]
    assert "400,000 values" in outputs[0]["evalue"]


def bokeh_output(layout) -> dict:
    return bundle({BOKEH_ITEM: json_item(layout), "text/plain": "x"})


def plot(**properties):
    chart = figure(**properties)
    chart.line([0, 1], [0, 1])
    return chart


HUGE_CHARTS = {
    "wide and tall": (lambda: plot(width=30_000, height=8_000), "bokeh_length"),
    "tall, stretched to the tile": (lambda: plot(height=30_000, sizing_mode="stretch_width"), "bokeh_length"),
    "a wide border": (lambda: plot(min_border_left=30_000), "bokeh_length"),
    "a large frame": (lambda: plot(frame_width=20_000, frame_height=300), "bokeh_length"),
    "many figures at the bound": (lambda: gridplot([[plot(width=BOKEH_LENGTH, height=BOKEH_LENGTH)
                                                     for _ in range(3)]]), "bokeh_pixels"),
    "many default figures": (lambda: gridplot([[plot() for _ in range(8)] for _ in range(6)]), "bokeh_pixels"),
}


@pytest.mark.parametrize("kind", HUGE_CHARTS)
def test_charts_too_large_for_a_viewers_page_are_refused(kind):
    make, bound = HUGE_CHARTS[kind]
    output = sanitize_output(bokeh_output(make()))
    assert output.get("ename") == "output_too_complex", output.get("data", output).keys()
    assert f"{BOKEH_LENGTH if bound == 'bokeh_length' else BOKEH_PIXELS:,}" in output["evalue"], output["evalue"]


def test_patches_cannot_make_a_chart_huge():
    for attr in ("width", "height", "min_border_top", "frame_height"):
        patch = {"events": [{"kind": "ModelChanged", "model": {"id": "p"}, "attr": attr, "new": 40_000}]}
        output = sanitize_output({"output_type": "bokeh_patch", "root_id": "r", "seq": 1, "patch": patch})
        assert output.get("ename") == "output_too_complex", (attr, output)


def test_a_runs_charts_share_one_pixel_budget():
    """Red team 5: each item and patch was held to ``BOKEH_PIXELS`` alone, so a run of many showed as much as one
    over it. A run's items and patches now draw from one budget."""
    collector = OutputCollector(10_000_000, 512)
    for _ in range(3):  # 3 x 3,000,000 > BOKEH_PIXELS = 8,000,000
        collector.add(bokeh_output(plot(width=3_000, height=1_000)))
    assert [o.get("ename") for o in collector.outputs] == [None, None, "output_too_complex"], collector.outputs
    patch = {"events": [{"kind": "ModelChanged", "model": {"id": "r"}, "attr": "children", "new": [
        {"type": "object", "name": "Plot", "id": "p2", "attributes": {"width": 1_000, "height": 1_000}}]}]}
    collector.add({"output_type": "bokeh_patch", "root_id": "r", "seq": 1, "patch": patch})
    assert collector.outputs[-1].get("ename") == "output_too_complex", collector.outputs[-1]


def test_ordinary_charts_pass():
    for layout in (plot(), plot(height=900, sizing_mode="stretch_width"), plot(width=1600, height=500),
                   gridplot([[plot(width=400, height=300) for _ in range(3)] for _ in range(3)])):
        assert BOKEH_ITEM in sanitize_output(bokeh_output(layout))["data"]


def png(width: int, height: int) -> str:
    """A grey PNG of ``width`` x ``height`` zero pixels, in base64 (a few hundred KB for 20,000 x 20,000)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(b"\0" * (width + 1)) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body)
                            + chunk(b"IEND", b"")).decode()


def jpeg_header(width: int, height: int) -> str:
    """The start of a JPEG (an APP0 segment, then a frame header) declaring ``width`` x ``height``."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    frame = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return base64.b64encode(b"\xff\xd8" + app0 + frame + b"\xff\xd9").decode()


IMAGE_BOMBS = {
    "png": ("image/png", lambda: png(20_000, 20_000)),
    "png wide": ("image/png", lambda: png(200_000, 200)),
    "jpeg": ("image/jpeg", lambda: jpeg_header(60_000, 60_000)),
}


@pytest.mark.parametrize("kind", IMAGE_BOMBS)
def test_images_declaring_more_pixels_than_a_page_may_decode_are_refused(kind):
    mime, make = IMAGE_BOMBS[kind]
    output = sanitize_output(bundle({mime: make(), "text/plain": "x"}))
    assert output.get("ename") == "output_too_complex", output.get("data", output).keys()
    assert f"{IMAGE_PIXELS:,}" in output["evalue"]


@pytest.mark.parametrize("disguised", [base64.b64encode(b"GIF89a" + b"\0" * 20).decode(), "not base64 at all", "iVBORw0KGgo="])
def test_images_that_are_not_their_type_are_dropped(disguised):
    output = sanitize_output(bundle({"image/png": disguised, "image/jpeg": disguised, "text/plain": "x"}))
    assert output["data"] == {"text/plain": "x"}


def test_ordinary_images_pass():
    output = sanitize_output(bundle({"image/png": png(640, 480), "image/jpeg": jpeg_header(4000, 3000)}))
    assert set(output["data"]) == {"image/png", "image/jpeg"}
