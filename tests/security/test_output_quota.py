"""Stored output tables have an owner and a lifetime: nobody fills the store by running cards.

Every DataFrame output keeps its whole table (an Arrow stream) for paging. Before, nothing was ever
deleted: one 7 s run stored 366 MB, and a user re-running a card grew the store without end.
Now an editor session's tables go when it runs again or closes, a card's cached results keep the
newest few per parameter values (their tables go with them), and each user's tables fit their
quota, least recently used first, never the current output of a dashboard tile. Deleting never
leaves a record pointing at a missing blob, nor a blob no record points at.

Cached results' outputs blobs are charged the same way: every distinct value of a text parameter is a
cache variant of its own, so "the newest few per variant" bounded nothing (20 runs of a 4 MB print with
20 values in 10 s grew the store by 76 MB). They count in the runner's quota beside its tables.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.server.conftest import api, start_server  # noqa: F401 - fixtures
from tests.server.test_sessions import open_session, root, run, start_cards  # noqa: F401 - fixtures

ROWS = 50_000
BIG = f"import pandas as pd\npd.DataFrame({{'n': range({ROWS})}}) + seed\n"  # about 400 KB of Arrow
TABLE_BYTES = ROWS * 8
QUOTA = 2 * TABLE_BYTES + TABLE_BYTES // 2  # the tile's table and one more


async def user_id(api, token: str) -> str:
    return (await api.fetch("GET", "/api/me", token=token)).json()["id"]


def table_of(outputs: list[dict]) -> str:
    (output_id,) = [output["output_id"] for output in outputs if "output_id" in output]
    return output_id


async def page(api, token: str, output_id: str) -> int:
    return (await api.fetch("GET", f"/api/outputs/{output_id}/rows?limit=5", token=token)).code


async def gone(api, token: str, output_id: str) -> bool:
    """Whether the table is deleted within a few seconds: superseded tables are deleted in the background."""
    for _ in range(100):
        if await page(api, token, output_id) == 404:
            return True
        await asyncio.sleep(0.05)
    return False


async def stored(api) -> tuple[set[str], set[str]]:
    """The blob keys of every table record, and the table blobs on disk, once the tables being stored (behind the
    run's answer) are."""
    tables = api.app.kernel_pool.tables
    for output_id in list(tables._storing):
        await tables.settled(output_id)
    store = api.app.store_instance
    users = [user.id for user in await store.list_users()]
    records = {table.blob_key for user in users for table in await store.list_output_tables(user)
               if getattr(table, "result_key", None) is None}
    folder = Path(api.app.data_dir) / "blobs" / "tables"
    return records, {f"tables/{path.name}" for path in folder.iterdir()} if folder.exists() else set()


async def test_editor_outputs_vanish_when_superseded_and_users_keep_within_quota(start_cards):
    """An editor session's table goes when the session runs code again (with tables or without),
    and when it closes. A member who runs a card making a big table many times keeps at most their
    quota of tables: the least recently used go, the current output of a dashboard tile stays, and
    another user's table is untouched."""
    api = await start_cards(OutputTables__quota_bytes=QUOTA)
    other = await api.add_user("other@example.com")
    session_id = await open_session(api, other)
    first = table_of((await run(api, other, session_id, BIG.replace("seed", "1"))).json()["outputs"])
    assert await page(api, other, first) == 200
    second = table_of((await run(api, other, session_id, BIG.replace("seed", "2"))).json()["outputs"])
    assert await page(api, other, second) == 200
    assert await gone(api, other, first)
    assert (await run(api, other, session_id, "print('no table')")).code == 200
    assert await gone(api, other, second), "a run without tables supersedes them too"
    other_table = table_of((await run(api, other, session_id, BIG.replace("seed", "3"))).json()["outputs"])

    analyst = await api.add_user("analyst@example.com")
    created = await api.fetch("POST", "/api/dashboards", token=analyst, json_body={
        "schemaVersion": 1, "title": "大きい表", "parameters": [], "refresh": None,
        "cards": [{"key": "big", "title": "big", "datasets": [],
                   "parameters": [{"name": "seed", "type": "number", "default": 0}], "code": BIG}],
        "layout": [{"card": "big", "x": 0, "y": 0, "w": 6, "h": 4}]})
    assert created.code == 201, created.body
    dashboard = created.json()
    card_id = dashboard["document"]["cards"][0]["card"]
    tile = await api.fetch("POST", f"/api/dashboards/{dashboard['id']}/cards/big/run", token=analyst, json_body={})
    assert tile.code == 200, tile.body
    tile_table = table_of(tile.json()["outputs"])

    runs = []
    for seed in range(1, 5):
        ran = await api.fetch("POST", f"/api/cards/{card_id}/run", token=analyst,
                              json_body={"parameters": {"seed": seed}})
        assert ran.code == 200 and not ran.json()["cached"], ran.body
        runs.append(table_of(ran.json()["outputs"]))
        assert await page(api, analyst, runs[-1]) == 200

    assert [await page(api, analyst, output_id) for output_id in runs] == [404] * 3 + [200]
    assert await page(api, analyst, tile_table) == 200, "a dashboard tile's current output survives eviction"
    assert await page(api, other, other_table) == 200, "another user's quota is theirs"
    kept = await api.app.store_instance.list_output_tables(await user_id(api, analyst))
    assert sum(table.bytes for table in kept) <= QUOTA
    kept = [table for table in kept if getattr(table, "result_key", None) is None]
    assert {table.output_id for table in kept} == {tile_table, runs[-1]}
    records, blobs = await stored(api)
    assert records == blobs and len(records) == 3

    assert (await api.fetch("DELETE", f"/api/card-sessions/{session_id}", token=other)).code == 204
    for _ in range(50):  # the tables of a closed session are deleted in the background
        if await page(api, other, other_table) == 404:
            break
        await asyncio.sleep(0.05)
    assert await page(api, other, other_table) == 404, "a closed editor session's tables go with it"
    records, blobs = await stored(api)
    assert records == blobs and len(records) == 2


async def test_the_result_cache_keeps_the_newest_per_parameters(start_cards):
    """Edits of a card's code make new cache entries for the same parameters: only the newest
    ``results_per_variant`` stay, and the tables of the others go with them."""
    api = await start_cards(CardRunner__results_per_variant=1)
    token = await api.add_user("author@example.com")
    created = await api.fetch("POST", "/api/cards", token=token, json_body={
        "title": "big", "code": BIG, "datasets": [],
        "parameters": [{"name": "seed", "type": "number", "default": 0}]})
    assert created.code == 201, created.body
    card_id = created.json()["id"]
    tables = []
    for version in range(1, 3):
        if version > 1:
            saved = await api.fetch("PUT", f"/api/cards/{card_id}", token=token, json_body={
                "version": version - 1, "title": "big", "datasets": [], "code": BIG + f"# v{version}\n",
                "parameters": [{"name": "seed", "type": "number", "default": 0}]})
            assert saved.code == 200, saved.body
        ran = await api.fetch("POST", f"/api/cards/{card_id}/run", token=token, json_body={"parameters": {}})
        assert ran.code == 200 and not ran.json()["cached"], ran.body
        tables.append(table_of(ran.json()["outputs"]))
        assert await page(api, token, tables[-1]) == 200
    await api.app.card_runs.settled()  # the second result is cached (superseding the first) just after its answer
    assert [await page(api, token, output_id) for output_id in tables] == [404, 200]
    records, blobs = await stored(api)
    assert records == blobs and len(records) == 1
    results = Path(api.app.data_dir) / "blobs" / "results"
    assert len([path for path in results.rglob("*") if path.is_file()]) == 1


def result_blobs(api) -> int:
    folder = Path(api.app.data_dir) / "blobs" / "results"
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) if folder.exists() else 0


async def test_cached_results_of_distinct_parameter_values_keep_within_quota(start_cards):
    """A member runs a card printing 400 KB with eight distinct text values (each a cache variant of its
    own): the results' blobs stay within their quota, the newest are still cached, the oldest went,
    and a dashboard tile's current output (its cached result) stays."""
    quota = 1_000_000
    api = await start_cards(OutputTables__quota_bytes=quota)
    token = await api.add_user("filler@example.com")
    created = await api.fetch("POST", "/api/dashboards", token=token, json_body={
        "schemaVersion": 1, "title": "大きい出力", "parameters": [], "refresh": None,
        "cards": [{"key": "big", "title": "big", "datasets": [],
                   "parameters": [{"name": "t", "type": "text", "default": "tile"}],
                   "code": "print('x' * 400_000 + t)"}],
        "layout": [{"card": "big", "x": 0, "y": 0, "w": 6, "h": 4}]})
    assert created.code == 201, created.body
    dashboard = created.json()
    card_id = dashboard["document"]["cards"][0]["card"]
    tile = await api.fetch("POST", f"/api/dashboards/{dashboard['id']}/cards/big/run", token=token, json_body={})
    assert tile.code == 200 and not tile.json()["cached"], tile.body
    await asyncio.sleep(0.5)  # the tile's output is pinned in the background

    async def run(value: str) -> dict:
        ran = await api.fetch("POST", f"/api/cards/{card_id}/run", token=token, json_body={"parameters": {"t": value}})
        assert ran.code == 200, ran.body
        return ran.json()

    values = [f"v{n}" for n in range(8)]
    for value in values:
        assert not (await run(value))["cached"]
    await api.app.card_runs.settled()  # each result is stored (and the quota kept) just after its answer
    assert result_blobs(api) <= quota
    assert (await run(values[-1]))["cached"], "the newest result is still cached"
    assert not (await run(values[0]))["cached"], "the oldest went first"
    tile = await api.fetch("POST", f"/api/dashboards/{dashboard['id']}/cards/big/run", token=token, json_body={})
    assert tile.json()["cached"], "a dashboard tile's current output is never evicted"


async def test_one_run_stores_a_bounded_number_of_tables(start_cards):
    """A run's stored tables are charged to the run: one run showing many DataFrames (each summary small, under
    the output cap) stores at most ``RUN_TABLES`` of them (``RUN_TABLE_BYTES`` together); the later ones keep
    their first rows and the run says why. Before, every one was fetched, validated and stored (30 here, 1,000
    in a loop), only to be evicted again by the user's quota."""
    from server.limits import RUN_TABLES

    api = await start_cards()
    token = await api.add_user("many@example.com")
    session_id = await open_session(api, token)
    shown = RUN_TABLES + 10
    ran = await run(api, token, session_id, "import pandas as pd\n"
                    f"for i in range({shown}):\n    display(pd.DataFrame({{'n': range(1000)}}) + i)\n")
    assert ran.code == 200, ran.body
    outputs = ran.json()["outputs"]
    assert len([o for o in outputs if o.get("output_type") == "display_data"]) == shown, "every table is shown"
    assert len([o for o in outputs if "output_id" in o]) == RUN_TABLES
    assert any("tables" in o.get("text", "") for o in outputs if o.get("output_type") == "stream"), outputs[:2]
    records, blobs = await stored(api)
    assert len(records) == len(blobs) == RUN_TABLES
