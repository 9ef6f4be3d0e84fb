"""The libraries analysts reach for, in one real kernel forked from the template into the full sandbox.

Plots come out as PNG with Japanese text drawn from the Japanese font (read through the sandbox),
statistics and models run, tqdm's bars rewrite their line, widgets publish their view, and
jupyter_kernel_client's ``set_variable`` works.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from pathlib import Path
from collections.abc import AsyncIterator
from typing import Any

import pandas as pd
import pytest
import pytest_asyncio
from jupyter_kernel_client.snippets import SNIPPETS_REGISTRY
from jupyter_mimetypes import serialize_object

from kernels.launcher import KernelLauncher, LaunchedKernel
from tests.kernels.conftest import uid_slice
from tests.kernels.kernel_fixtures import run, texts
from tests.kernels.sandbox.helpers import require

pytestmark = pytest.mark.asyncio(loop_scope="module")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def forked() -> AsyncIterator[tuple[KernelLauncher, LaunchedKernel]]:
    """One sandboxed kernel forked from a template, shared by this module's tests."""
    require(os.geteuid() == 0, "needs root (per-kernel uids, namespaces, mounts, cgroups)")
    run_dir = Path(tempfile.mkdtemp(prefix="bi-run-"))
    launcher = KernelLauncher(run_dir, uid_slice())
    await launcher.start()
    kernel = await launcher.launch()
    yield launcher, kernel
    await launcher.close()
    shutil.rmtree(run_dir, ignore_errors=True)


async def cell(forked: tuple[KernelLauncher, LaunchedKernel], code: str) -> list[dict[str, Any]]:
    """Run ``code``; its iopub messages (it must succeed)."""
    status, outputs = await run(*forked, code)
    assert status == "ok", texts(outputs)
    return outputs


def printed_json(outputs: list[dict[str, Any]]) -> Any:
    return json.loads("".join(m["content"]["text"] for m in outputs
                              if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"))


def bundles(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["content"]["data"] for m in outputs if m["msg_type"] in ("display_data", "execute_result")]


async def test_dataframe_plot_is_published_as_png(forked):
    """``df.plot()`` shows its figure as a PNG once the cell ends, as in Jupyter."""
    outputs = await cell(forked, "import pandas as pd\n"
                                 "pd.DataFrame({'sales': [3, 1, 2]}).plot()\n")
    [png] = [bundle["image/png"] for bundle in bundles(outputs) if "image/png" in bundle]
    image = base64.b64decode(png)
    assert image.startswith(PNG_SIGNATURE) and len(image) > 5000


async def test_japanese_labels_are_drawn_from_the_japanese_font(forked):
    """Each kana and kanji of a label is drawn from IPAexGothic, Latin from DejaVu Sans, and drawing
    warns of no missing glyph (what a label of boxes would do)."""
    outputs = await cell(forked, (
        "import json, warnings\n"
        "import matplotlib.pyplot as plt\n"
        "from matplotlib import font_manager\n"
        "from matplotlib.ft2font import LoadFlags\n"
        "fig, ax = plt.subplots()\n"
        "ax.set_title('月別の売上 Sales')\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    fig.canvas.draw()\n"
        "font = font_manager.get_font(font_manager.fontManager._find_fonts_by_props(ax.title.get_fontproperties()))\n"
        "layout = font._layout('月別の売上 Sales', LoadFlags.NO_HINTING)  # what Agg draws, glyph by glyph\n"
        "drawn = {item.char: item.ft_object.fname.rsplit('/', 1)[-1] for item in layout}\n"
        "plt.close(fig)\n"
        "print(json.dumps({'drawn': drawn, 'warnings': [str(w.message) for w in caught]}))\n"))
    result = printed_json(outputs)
    assert result["warnings"] == []
    assert {char: result["drawn"][char] for char in "月別の売上"} == dict.fromkeys("月別の売上", "ipaexg.ttf")
    assert {char: result["drawn"][char] for char in "Sales"} == dict.fromkeys("Sales", "DejaVuSans.ttf")


async def test_statistics_and_models_run(forked):
    """scipy, scikit-learn and statsmodels import and fit inside the sandbox, without a warning."""
    outputs = await cell(forked, (
        "import json\n"
        "import numpy as np, pandas as pd\n"
        "from scipy import stats\n"
        "from sklearn.linear_model import LinearRegression\n"
        "import statsmodels.formula.api as smf\n"
        "x = np.arange(20.0)\n"
        "frame = pd.DataFrame({'x': x, 'y': 2 * x + 1})\n"
        "fit = LinearRegression().fit(frame[['x']], frame['y'])\n"
        "ols = smf.ols('y ~ x', data=frame).fit()\n"
        "print(json.dumps({'pearson': round(float(stats.pearsonr(x, 2 * x).statistic), 6),\n"
        "                  'sklearn': round(float(fit.coef_[0]), 6), 'statsmodels': round(float(ols.params['x']), 6)}))\n"))
    assert printed_json(outputs) == {"pearson": 1.0, "sklearn": 2.0, "statsmodels": 2.0}
    assert [m["content"]["text"] for m in outputs if m["msg_type"] == "stream" and m["content"]["name"] == "stderr"] == []


async def test_tqdm_rewrites_its_line_with_carriage_returns(forked):
    """tqdm's bar goes to stderr, each update rewriting the line after a carriage return."""
    outputs = await cell(forked, "from tqdm import tqdm\n"
                                 "for _ in tqdm(range(3), mininterval=0):\n"
                                 "    pass\n")
    text = "".join(m["content"]["text"] for m in outputs if m["msg_type"] == "stream" and m["content"]["name"] == "stderr")
    assert text.count("\r") >= 2 and "100%" in text.rsplit("\r", 1)[-1]


async def test_widget_publishes_its_view(forked):
    """A widget publishes the Jupyter widget view (which Jupyter clients draw) beside its text."""
    outputs = await cell(forked, "import ipywidgets\nipywidgets.IntSlider(value=3)\n")
    [bundle] = bundles(outputs)
    assert "model_id" in bundle["application/vnd.jupyter.widget-view+json"]
    assert "IntSlider" in bundle["text/plain"]


async def test_jupyter_kernel_client_set_variable(forked):
    """The code jupyter_kernel_client's ``set_variable`` sends sets a DataFrame in the kernel."""
    data, metadata = serialize_object(pd.DataFrame({"地域": ["東京", "大阪"], "売上": [10, 20]}))
    snippet = SNIPPETS_REGISTRY.get_set_variable("python").format(name="frame", data=data, metadata=metadata)
    await cell(forked, snippet)
    outputs = await cell(forked, "print(frame.to_json(force_ascii=False))")
    assert json.loads(texts(outputs)) == {"地域": {"0": "東京", "1": "大阪"}, "売上": {"0": 10, "1": 20}}
