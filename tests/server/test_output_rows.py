"""DataFrame outputs through the server: a summary on the wire, the rest paged from stored Arrow data."""

from __future__ import annotations

from kernels.wire import ARROW_STREAM, DATAFRAME

from .test_sessions import open_session, root, run, start_cards  # noqa: F401 - fixtures

FRAME = "import pandas as pd\npd.DataFrame({'n': range(1000), '名前': [f'行{i}' for i in range(1000)]})"


async def test_table_pages_for_its_user_only(start_cards):
    """The output carries the first rows and an output_id, never the Arrow stream; pages come from
    the stored table; another member gets 404, an admin may read it; bad pages are 400."""
    api = await start_cards()
    member = await api.add_user("analyst@example.com")
    session_id = await open_session(api, member)
    result = (await run(api, member, session_id, FRAME)).json()
    output = result["outputs"][-1]
    summary = output["data"][DATAFRAME]
    assert ARROW_STREAM not in output["data"] and "text/html" not in output["data"]
    assert summary["row_count"] == 1000 and summary["rows"][0] == [0, "行0"] and len(summary["rows"]) == 50
    page = await api.fetch("GET", f"/api/outputs/{output['output_id']}/rows?offset=990&limit=100", token=member)
    assert page.code == 200, page.body
    body = page.json()
    assert body["row_count"] == 1000 and body["rows"] == [[i, f"行{i}"] for i in range(990, 1000)]

    stranger = await api.add_user("stranger@example.com")
    hidden = await api.fetch("GET", f"/api/outputs/{output['output_id']}/rows", token=stranger)
    assert hidden.code == 404
    admin = await api.login()
    assert (await api.fetch("GET", f"/api/outputs/{output['output_id']}/rows?limit=1", token=admin)).json()["rows"] == [[0, "行0"]]
    for query in ("limit=5000", "offset=-1", "limit=x"):
        assert (await api.fetch("GET", f"/api/outputs/{output['output_id']}/rows?{query}", token=member)).code == 400
    assert (await api.fetch("GET", f"/api/outputs/{'0' * 32}/rows", token=member)).code == 404


async def test_a_whole_table_downloads_as_csv_for_excel(start_cards):
    """UTF-8 with a byte order mark by default, CP932 on request; formulas are defused; the same access as pages."""
    api = await start_cards()
    member = await api.add_user("analyst@example.com")
    session_id = await open_session(api, member)
    code = FRAME + ".assign(式=['=1+1', '東京'] * 500)"
    output = (await run(api, member, session_id, code)).json()["outputs"][-1]
    csv_url = f"/api/outputs/{output['output_id']}/csv"
    utf8 = await api.fetch("GET", csv_url + "?name=店舗/売上", token=member)
    assert utf8.code == 200, utf8.body
    assert utf8.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "filename*=UTF-8''%E5%BA%97%E8%88%97_%E5%A3%B2%E4%B8%8A.csv" in utf8.headers["Content-Disposition"]
    assert utf8.body.startswith(b"\xef\xbb\xbf")
    lines = utf8.body.decode("utf-8-sig").splitlines()
    assert lines[:3] == ['"n","名前","式"', "0,\"行0\",\"'=1+1\"", '1,"行1","東京"'] and len(lines) == 1001
    cp932 = await api.fetch("GET", csv_url + "?encoding=cp932", token=member)
    assert cp932.headers["Content-Type"] == "text/csv; charset=Shift_JIS"
    assert cp932.body.decode("cp932").splitlines() == lines

    assert (await api.fetch("GET", csv_url + "?encoding=latin-1", token=member)).code == 400
    stranger = await api.add_user("stranger@example.com")
    assert (await api.fetch("GET", csv_url, token=stranger)).code == 404
