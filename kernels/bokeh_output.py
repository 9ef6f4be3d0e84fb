"""Bokeh outputs as pure JSON (DESIGN.md §7): no kernel-made HTML or JavaScript.

Showing. A Bokeh UI model (figure, layout, widget) published by a cell, as the last expression,
through ``display`` or through ``bokeh.io.show``, becomes the display bundle ``{BOKEH_ITEM:
json_item(model), "text/plain": repr(model)}`` that the page renders with
``Bokeh.embed.embed_item``; its ``display_id`` is the root id. Other Bokeh models (a
ColumnDataSource...) display as text only. The server lets through only the models it knows to be
safe (``server/execution/sanitize.py``).

Live updates. As in bokeh's notebook support, a shown model joins the current document
(``curdoc()``, unless it already has a document), whose changes are recorded from then on. After
each cell, and before a model is shown again, the changes to the models of each shown root go to
the page as one Bokeh document patch, a message on the ``bi.bokeh`` comm::

    {"target": "bi.bokeh", "root_id": "p1001", "seq": 1,
     "patch": {"events": [{"kind": "ColumnsStreamed", "model": {"id": "p1040"}, ...}]}}

``seq`` numbers the patches of each root from 1, without gaps. ``patch`` is what BokehJS's
``Document.apply_json_patch`` takes: ``ModelChanged``, ``ColumnDataChanged``, ``ColumnsStreamed``
and ``ColumnsPatched`` events, arrays inline as base64, models the page has not seen (a glyph
added later) in full. ``target`` is in every message so that the server knows them without
tracking the comm's opening.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NoReturn
from collections.abc import Sequence

import comm
from bokeh.core.serialization import Serializer
from bokeh.document.events import (ColumnDataChangedEvent, ColumnsPatchedEvent, ColumnsStreamedEvent,
                                   DocumentChangedEvent, ModelChangedEvent)
from bokeh.embed import json_item
from bokeh.io.notebook import install_notebook_hook
from bokeh.io.state import curstate
from bokeh.model import Model
from bokeh.models import Axis, BasicTickFormatter, Plot
from bokeh.models.dom import DOMNode
from bokeh.models.ui import UIElement
from IPython.display import publish_display_data

from kernels import formatters
from kernels.wire import BOKEH_COMM_TARGET, BOKEH_ITEM

NOTEBOOK_TYPE = "bi"
# ``output_notebook()`` in a card selects "jupyter": it gets our hooks too, not BokehJS loaders.
HOOKED_NOTEBOOK_TYPES = (NOTEBOOK_TYPE, "jupyter")
SHOWABLE = (UIElement, DOMNode)
PATCH_EVENTS = (ModelChangedEvent, ColumnDataChangedEvent, ColumnsStreamedEvent, ColumnsPatchedEvent)
PatchEvent = ModelChangedEvent | ColumnDataChangedEvent | ColumnsStreamedEvent | ColumnsPatchedEvent


@dataclass
class ShownRoot:
    model: Model
    known: set[Model]  # the models the page has for this root
    seq: int = 0


@dataclass
class LivePatches:
    """The shown roots, the changes not yet sent, and the comm they go out on."""

    roots: dict[str, ShownRoot] = field(default_factory=dict)
    events: list[PatchEvent] = field(default_factory=list)
    comm: Any = None

    def bundle(self, model: Model) -> dict[str, Any]:
        """The MIME bundle of ``model``, whose changes are sent from now on."""
        self.flush()  # pending changes are for the earlier displays, not this one
        document = model.document
        if document is None:
            document = curstate().document
            document.add_root(model)
        fit(model)
        data = {BOKEH_ITEM: json_item(model), "text/plain": repr(model)}
        self.events.clear()  # what ``fit`` changed is in the item already
        document.on_change(self.changed)
        root = self.roots.setdefault(model.id, ShownRoot(model, set()))
        root.known = model.references()
        return data

    def changed(self, event: DocumentChangedEvent) -> None:
        if isinstance(event, PATCH_EVENTS) and not (self.events and self.events[-1].combine(event)):
            self.events.append(event)

    def flush(self) -> None:
        """Send each shown root the changes to its models, as one patch."""
        events, self.events = self.events, []
        if not events:
            return
        for root_id, root in self.roots.items():
            models = root.model.references()
            ours = [event for event in events if event.model in models]
            if ours:
                root.seq += 1
                patch = {"events": Serializer(references=root.known, deferred=False).encode(ours)}
                self.send({"target": BOKEH_COMM_TARGET, "root_id": root_id, "seq": root.seq, "patch": patch})
            root.known = models

    def send(self, data: dict[str, Any]) -> None:
        if self.comm is None:
            self.comm = comm.create_comm(target_name=BOKEH_COMM_TARGET)
        self.comm.send(data)


def fit(model: Model) -> None:
    """Make a shown figure fit the pane or tile it is shown in: a figure of its own (not in a layout)
    without a sizing mode stretches to the width there and follows resizes (a 600 px figure is otherwise
    cut off in a narrower pane); axes with Bokeh's default number format write 194852276 as such,
    not as 1.95e+8."""
    if isinstance(model, Plot) and model.sizing_mode is None:
        model.sizing_mode = "stretch_width"
    for axis in model.select({"type": Axis}):
        formatter = getattr(axis, "formatter", None)
        if type(formatter) is BasicTickFormatter:
            formatter.use_scientific = False


LIVE = LivePatches()


def _mimebundle(model: Model) -> dict[str, Any]:
    return LIVE.bundle(model) if isinstance(model, SHOWABLE) else {"text/plain": repr(model)}


def _load(resources: Any, verbose: bool, hide_banner: bool, load_timeout: int) -> None:
    """BokehJS comes from our server, not from the kernel: nothing to load."""


def _show_doc(obj: Model | Sequence[Model], state: Any, notebook_handle: bool) -> None:
    for model in obj if isinstance(obj, Sequence) else [obj]:
        publish_display_data(LIVE.bundle(model), transient={"display_id": model.id})


def _show_app(app: Any, state: Any, notebook_url: Any, **kwargs: Any) -> NoReturn:
    raise RuntimeError("Bokeh server applications are not available in cards; show a figure or layout")


def install(shell: Any) -> None:
    """Register the formatter on ``shell`` and the notebook hooks, make ``show`` use them, and
    send the changes of shown models after each cell."""
    formatters.register(shell, (Model,), _mimebundle)
    for notebook_type in HOOKED_NOTEBOOK_TYPES:
        install_notebook_hook(notebook_type, _load, _show_doc, _show_app, overwrite=True)  # type: ignore[arg-type]  # stubs know only jupyter and zeppelin
    curstate().output_notebook(NOTEBOOK_TYPE)  # type: ignore[arg-type]
    shell.events.register("post_execute", LIVE.flush)
