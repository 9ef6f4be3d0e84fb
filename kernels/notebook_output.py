"""Outputs for Jupyter frontends: what JupyterLab, Notebook 7 and nbconvert render.

The rule. Card and dashboard outputs are data (``table_output``, ``bokeh_output``): their readers
are other people, so the server lets through only what it can sanitize, and never a kernel's HTML
or script. A kernel opened through the Jupyter API belongs to one user, and its outputs go only to
that user's own frontend, which renders HTML and scripts under the notebook trust model, as it does
for any Jupyter kernel. So the server switches each such kernel, before its user's first message,
with ``wire.NOTEBOOK_REQUEST`` (a shell message only the server sends: Jupyter clients' messages of
that type are refused), and from then on it publishes:

- DataFrames: pandas' own ``text/html`` and ``text/plain`` (cut to pandas' ``display.max_rows``),
  and no table file: nothing reads one;
- Bokeh: bokeh.io's notebook outputs (``show`` publishes the document as ``text/html`` with
  Bokeh's exec MIME type; ``output_notebook`` the loader), with BokehJS inline, never from a CDN
  the user's browser may not reach. The loader leaves out MathJax (1.8 MB), so that it fits a
  cell's output limit; it is published once per kernel, before the first ``show``, unless
  ``output_notebook`` already did. JupyterLab renders them with the ``jupyter_bokeh`` extension;
- styled tables (``DataFrame.style``, ``IPython.display.HTML``): their HTML with its ``<style>`` as it is;
- matplotlib figures: PNG, as in cards.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from bokeh.io import notebook
from bokeh.io.notebook import install_notebook_hook
from bokeh.io.state import curstate
from bokeh.model import Model
from bokeh.resources import Component, Resources

from kernels.bokeh_output import HOOKED_NOTEBOOK_TYPES
from kernels.html_output import STYLED

BOKEH_COMPONENTS: list[Component] = ["bokeh", "bokeh-gl", "bokeh-widgets", "bokeh-tables"]  # BokehJS inline, without MathJax


class BokehLoader:
    """Publish BokehJS (inline) when asked, and before a kernel's first shown document."""

    def __init__(self) -> None:
        self.loaded = False

    def load(self, resources: Any, verbose: bool, hide_banner: bool, load_timeout: int) -> None:
        notebook.load_notebook(Resources(mode="inline", components=BOKEH_COMPONENTS), verbose, hide_banner,
                               load_timeout)
        self.loaded = True

    def show_doc(self, obj: Model, state: Any, notebook_handle: Any = None) -> Any:
        if not self.loaded:
            self.load(None, False, True, 5000)
        return notebook.show_doc(obj, state, notebook_handle)


def _unregister(shell: Any, types: tuple[type | str, ...]) -> None:
    """Undo ``formatters.register`` (and ``html_output.install``) for ``types`` (or their dotted names):
    IPython's formatters see them as they are again."""
    formatter = shell.display_formatter
    for type_ in types:
        formatter.mimebundle_formatter.pop(type_, None)
        for mime_formatter in formatter.formatters.values():
            mime_formatter.pop(type_, None)


def enable(shell: Any) -> None:
    """Switch this kernel's outputs to a Jupyter frontend's (see the module docstring)."""
    _unregister(shell, (pd.DataFrame, pd.Series, Model, *STYLED))
    loader = BokehLoader()
    for notebook_type in HOOKED_NOTEBOOK_TYPES:
        install_notebook_hook(notebook_type, loader.load, loader.show_doc,  # type: ignore[arg-type]  # stubs know only jupyter and zeppelin
                              notebook.show_app, overwrite=True)
    curstate().output_notebook("jupyter")
