"""Matplotlib in kernels: figures drawn by Agg, shown as PNG, with Japanese labels that never show boxes.

The template calls ``prepare()`` before it forks, so every kernel starts with matplotlib set up:

- the backend is ``matplotlib_inline``'s (Agg drawing; a cell's figures are published as
  ``image/png`` once the cell ends, as in Jupyter), so ``df.plot()`` or ``plt.plot(...)`` shows a
  chart and ``plt.show()`` works too;
- the font list holds only the fonts under the Python prefixes (matplotlib's own DejaVu and
  IPAexGothic from the ``japanize-matplotlib`` distribution): a kernel's mount view and Landlock
  rules let it read those, not the host's font folders. The list is built (or read from
  matplotlib's cache) here, once, so no kernel scans fonts or writes a cache;
- ``font.family`` is ``sans-serif`` (DejaVu Sans), then IPAexGothic: Latin text looks as
  matplotlib's default, and each glyph the first lacks (kana, kanji, full-width forms) is drawn from
  IPAexGothic through matplotlib's font fallback, so Japanese labels render instead of boxes and
  "Glyph ... missing" warnings;
- one DataFrame plot with Japanese labels is drawn to PNG, so the modules a first plot imports
  lazily (pandas' plotting backend, its date converters, Pillow's PNG writer) are loaded once for
  all kernels. Open font files are not inherited: matplotlib empties its font cache in a forked child.

Each kernel then calls ``install(shell)``, the ``%matplotlib inline`` that the card policy would
refuse as a magic.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

import matplotlib

INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
JAPANESE_FONT = "IPAexGothic"
FONT_FAMILY = ("sans-serif", JAPANESE_FONT)


def japanese_font_file() -> str:
    """IPAexGothic as ``japanize-matplotlib`` ships it (found without importing that package, which
    would set fonts its own way)."""
    spec = importlib.util.find_spec("japanize_matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("japanize-matplotlib is not installed: kernels have no Japanese font")
    return os.path.join(list(spec.submodule_search_locations)[0], "fonts", "ipaexg.ttf")


def prepare() -> None:
    """Set matplotlib up, once per process: in the template before it forks (see the module docstring),
    or in a kernel started on its own (``python -m kernels.kernel``)."""
    if matplotlib.rcParams["font.family"] == list(FONT_FAMILY):
        return
    matplotlib.use(INLINE_BACKEND)
    from matplotlib import font_manager

    manager = font_manager.fontManager
    manager.addfont(japanese_font_file())
    manager.ttflist = [font for font in manager.ttflist if _in_python_prefix(font.fname)]
    manager.afmlist = [font for font in manager.afmlist if _in_python_prefix(font.fname)]
    matplotlib.rcParams["font.family"] = list(FONT_FAMILY)
    _draw_once()


def _in_python_prefix(path: str) -> bool:
    prefixes = {os.path.join(os.path.realpath(prefix), "") for prefix in (sys.prefix, sys.base_prefix)}
    return os.path.realpath(path).startswith(tuple(prefixes))


def _draw_once() -> None:
    """One DataFrame plot with a Japanese title and dates, drawn to PNG as a kernel would publish it."""
    import pandas as pd
    from IPython.core.pylabtools import print_figure
    from matplotlib import pyplot

    frame = pd.DataFrame({"売上": [1.0, 3.0, 2.0]}, index=pd.date_range("2026-01-01", periods=3, name="日付"))
    axes = frame.plot(title="月別の売上")
    print_figure(axes.figure, "png", bbox_inches="tight")
    pyplot.close("all")


def install(shell: Any) -> None:
    """Show a cell's figures as PNG once it ends: ``%matplotlib inline`` without its GUI event loop
    step (``shell.enable_matplotlib`` needs the running kernel application, not there yet)."""
    from IPython.core.pylabtools import activate_matplotlib
    from matplotlib_inline.backend_inline import configure_inline_support

    activate_matplotlib(INLINE_BACKEND)
    configure_inline_support(shell, INLINE_BACKEND)

