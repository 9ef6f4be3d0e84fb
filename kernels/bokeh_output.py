"""Bokeh outputs as pure JSON (DESIGN.md §7): no kernel-made HTML or JavaScript.

A Bokeh UI model (figure, layout, widget) published by a cell, either as the last expression or
through ``bokeh.io.show``, becomes a display bundle ``{MIME_TYPE: json_item(model), "text/plain":
repr(model)}`` that the page renders with ``Bokeh.embed.embed_item``. Other Bokeh models
(a ColumnDataSource...) display as text only.

Seam for live updates (a later issue): ``show_doc`` is where a handle for the shown document
would be returned, and a ``post_run_cell`` hook would collect the document's changes and send
them as patches over the ``bi.bokeh`` comm, keyed by the ``display_id`` (the root id) set here.
"""

from __future__ import annotations

from typing import Any, NoReturn, Sequence

from bokeh.embed import json_item
from bokeh.io.state import curstate
from bokeh.io.notebook import install_notebook_hook
from bokeh.model import Model
from bokeh.models.dom import DOMNode
from bokeh.models.ui import UIElement
from IPython.display import publish_display_data

from kernels import formatters

MIME_TYPE = "application/vnd.bi.bokeh-item.v1+json"
NOTEBOOK_TYPE = "bi"
# ``output_notebook()`` in a card selects "jupyter": it gets our hooks too, not BokehJS loaders.
HOOKED_NOTEBOOK_TYPES = (NOTEBOOK_TYPE, "jupyter")
SHOWABLE = (UIElement, DOMNode)


def bundle(model: Model) -> dict[str, Any]:
    """The MIME bundle of one Bokeh model."""
    return {MIME_TYPE: json_item(model), "text/plain": repr(model)}


def _mimebundle(model: Model) -> dict[str, Any]:
    return bundle(model) if isinstance(model, SHOWABLE) else {"text/plain": repr(model)}


def _load(resources: Any, verbose: bool, hide_banner: bool, load_timeout: int) -> None:
    """BokehJS comes from our server, not from the kernel: nothing to load."""


def _show_doc(obj: Model | Sequence[Model], state: Any, notebook_handle: bool) -> None:
    for model in obj if isinstance(obj, Sequence) else [obj]:
        data = bundle(model)
        publish_display_data(data, transient={"display_id": data[MIME_TYPE]["root_id"]})


def _show_app(app: Any, state: Any, notebook_url: Any, **kwargs: Any) -> NoReturn:
    raise RuntimeError("Bokeh server applications are not available in cards; show a figure or layout")


def install(shell: Any) -> None:
    """Register the formatter on ``shell`` and the notebook hooks, and make ``show`` use them."""
    formatters.register(shell, (Model,), _mimebundle)
    for notebook_type in HOOKED_NOTEBOOK_TYPES:
        install_notebook_hook(notebook_type, _load, _show_doc, _show_app, overwrite=True)
    curstate().output_notebook(NOTEBOOK_TYPE)
