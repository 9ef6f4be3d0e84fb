"""Running saved cards: parameters, the exact result cache, limits, and the card editor socket."""

from __future__ import annotations

import asyncio
import json

import pytest
from structlog.testing import capture_logs
from tornado import httpclient, websocket

from server.errors import InvalidRequestError
from server.services.card_runs import FRESHNESS, bind_parameters, parameter_cell, variant_of

from .test_card_socket import Socket
from .test_datasets import upload
from .test_sessions import root, start_cards  # noqa: F401 - fixtures

REGION = {"name": "region", "type": "choice", "default": "東京", "choices": ["東京", "大阪"]}
CODE = "df = load_dataset('売上')\nprint(region)\nint(df[df['店舗'] == region]['売上'].sum())"


async def make_card(api, token: str, csv: str = "店舗,売上\n東京,10\n大阪,20\n東京,5\n"):
    dataset = (await upload(api, "売上", csv.encode(), token)).json()
    response = await api.fetch("POST", "/api/cards", token=token, json_body={
        "title": "地域の売上", "code": CODE, "datasets": [dataset["id"]], "parameters": [REGION]})
    assert response.code == 201, response.body
    return dataset, response.json()


async def run(api, token: str, card_id: str, **parameters):
    return await api.fetch("POST", f"/api/cards/{card_id}/run", token=token, json_body={"parameters": parameters})


def result_value(body: dict) -> str:
    return body["outputs"][-1]["data"]["text/plain"]


async def test_identical_runs_come_from_the_cache_until_the_data_changes(start_cards):
    """Same code, data and parameters: a cache hit; new parameters or a new dataset version: a run."""
    api = await start_cards()
    token = await api.login()
    dataset, card = await make_card(api, token)
    with capture_logs() as logs:
        first = (await run(api, token, card["id"])).json()
        again = (await run(api, token, card["id"])).json()
        osaka = (await run(api, token, card["id"], region="大阪")).json()
    assert (first["cached"], again["cached"], osaka["cached"]) == (False, True, False)
    assert result_value(first) == result_value(again) == "15" and result_value(osaka) == "20"
    assert first["outputs"] == again["outputs"] and first["outputs"][0]["text"] == "東京\n"
    assert again["execution_time_ms"] == first["execution_time_ms"]
    executed = [e for e in logs if e["event"] == "card_executed"]
    assert [(e["card_id"], e["cached"]) for e in executed] == [(card["id"], False), (card["id"], True),
                                                              (card["id"], False)]

    new_version = await api.fetch("POST", f"/api/datasets/{dataset['id']}/versions", token=token,
                                  body="店舗,売上\n東京,100\n".encode(), headers={"Content-Type": "text/csv"})
    assert new_version.code == 201, new_version.body
    fresh = (await run(api, token, card["id"])).json()
    assert fresh["cached"] is False and result_value(fresh) == "100"
    assert api.app.kernel_pool.sessions == {}, "a run's kernel is destroyed afterwards"


async def test_timeouts_are_408_and_not_cached(start_cards):
    """A card past the wall clock gets 408 every time: a timeout is never cached."""
    api = await start_cards(KernelPool__execution_timeout=1.0)
    token = await api.login()
    response = await api.fetch("POST", "/api/cards", token=token, json_body={
        "title": "loop", "code": "while True: pass", "datasets": [], "parameters": []})
    card_id = response.json()["id"]
    for _ in range(2):
        timed_out = await run(api, token, card_id)
        assert timed_out.code == 408 and "1 s limit" in timed_out.json()["error"]["message"]


async def test_bad_parameters_and_strangers(start_cards):
    """Unknown or ill-typed parameters are 400; someone else's card is 404, run or socket."""
    api = await start_cards()
    token = await api.login()
    _, card = await make_card(api, token)
    bad = await run(api, token, card["id"], region="札幌")
    assert bad.code == 400 and "one of" in bad.json()["error"]["message"]
    assert (await run(api, token, card["id"], city="x")).code == 400
    stranger = await api.add_user("stranger@example.com")
    assert (await run(api, stranger, card["id"])).code == 404
    url = api.base_url.replace("http://", "ws://") + f"/api/cards/{card['id']}/ws"
    with pytest.raises(httpclient.HTTPClientError) as hidden:
        await websocket.websocket_connect(httpclient.HTTPRequest(url, headers={"Authorization": f"Bearer {stranger}"}))
    assert hidden.value.code == 404


async def test_card_editor_socket_loads_the_cards_datasets(start_cards):
    """The saved card's editor socket has the card's datasets loaded."""
    api = await start_cards()
    token = await api.login()
    _, card = await make_card(api, token)
    url = api.base_url.replace("http://", "ws://") + f"/api/cards/{card['id']}/ws"
    socket = Socket(await websocket.websocket_connect(
        httpclient.HTTPRequest(url, headers={"Authorization": f"Bearer {token}"})))
    await socket.receive()
    socket.send(type="execute", code="region = '大阪'\n" + CODE)
    messages = await socket.until("done")
    assert messages[-1]["status"] == "ok" and messages[-3]["output"]["data"]["text/plain"] == "20"
    socket.close()


def test_parameters_bind_to_literals():
    """Values are checked against their declared type and become Python literals, never code."""
    declared = (REGION, {"name": "n", "type": "number", "default": 1},
                {"name": "day", "type": "date", "default": "2026-01-31"},
                {"name": "q", "type": "text", "default": "x"})
    values = bind_parameters(declared, {"q": "'); import os #", "n": 2.5})
    assert parameter_cell(values) == ("region = '東京'\nn = 2.5\nday = '2026-01-31'\n"
                                      "q = \"'); import os #\"\n")
    for wrong in ({"n": "2"}, {"n": True}, {"n": float("nan")}, {"day": "2026-02-30"}, {"q": 3}):
        with pytest.raises(InvalidRequestError):
            bind_parameters(declared, wrong)
    assert json.loads(json.dumps(values)) == values


async def test_card_runs_do_not_count_against_interactive_sessions(start_cards):
    """A user who holds every interactive session they may open still gets their dashboards' and cards'
    runs (a tile once showed "You already have 4 open sessions" to every viewer); runs past the per-user
    bound wait their turn instead of failing."""
    api = await start_cards(KernelPool__sessions_per_user=1, CardRunner__runs_per_user=1)
    token = await api.login()
    held = await api.fetch("POST", "/api/card-sessions", token=token, json_body={"datasets": []})
    assert held.code == 201, held.body
    _, card = await make_card(api, token)
    answers = await asyncio.gather(*(run(api, token, card["id"], region=region) for region in ("東京", "大阪")))
    assert [answer.code for answer in answers] == [200, 200], [answer.body[:200] for answer in answers]
    refused = await api.fetch("POST", "/api/card-sessions", token=token, json_body={"datasets": []})
    assert refused.code == 429, "the interactive limit still holds"


async def test_identical_runs_under_way_are_one_kernel_run(start_cards):
    """Viewers asking at once for the same card, parameters and data share one run in one kernel."""
    api = await start_cards()
    token = await api.login()
    _, card = await make_card(api, token)
    with capture_logs() as logs:
        answers = await asyncio.gather(*(run(api, token, card["id"]) for _ in range(3)))
    assert [answer.code for answer in answers] == [200] * 3
    results = [answer.json() for answer in answers]
    assert len({json.dumps({**result, "cached": None}, sort_keys=True) for result in results}) == 1, "one result for all"
    assert sorted(result["cached"] for result in results) == [False, True, True], "run for one, shared with the others"
    assert len([e for e in logs if e["event"] == "session_opened"]) == 1, "one kernel ran it"


async def test_forced_runs_and_the_freshness_of_results(start_cards):
    """Every result says when and why it was computed, with the card and dataset versions it read; a cache hit
    keeps the run's; ``force`` runs past the cache (for those who may edit the card); results stored before
    say unknown."""
    api = await start_cards()
    token = await api.login()
    dataset, card = await make_card(api, token)
    first = (await run(api, token, card["id"])).json()
    assert (first["reason"], first["card_version"], first["dataset_versions"]) == ("edit", 1, {dataset["id"]: 1})
    hit = (await run(api, token, card["id"])).json()
    assert hit["cached"] is True and {k: hit[k] for k in FRESHNESS} == {k: first[k] for k in FRESHNESS}
    forced = await api.fetch("POST", f"/api/cards/{card['id']}/run", token=token, json_body={"force": True})
    assert forced.code == 200 and forced.json()["cached"] is False and forced.json()["reason"] == "forced"
    assert forced.json()["computed_at"] >= first["computed_at"]

    viewer = await api.add_user("viewer@example.com")
    refused = await api.fetch("POST", f"/api/cards/{card['id']}/run", token=viewer, json_body={"force": True})
    assert refused.code == 404, "someone who may not edit the card cannot force its run"

    store = api.app.store_instance
    [entry] = await store.list_cached_results(variant_of(card["id"], {"region": "東京"}))
    (await store.blob_path(entry.blob_key)).write_text(json.dumps(forced.json()["outputs"]))  # as stored before
    old = (await run(api, token, card["id"])).json()
    assert old["cached"] is True and (old["reason"], old["card_version"], old["dataset_versions"]) == (
        "unknown", None, None) and old["computed_at"] == entry.created_at


async def test_every_refusal_names_its_cause(start_cards, start_server):
    """A card whose dataset was deleted, and a server that cannot run cards, say so with their own codes."""
    api = await start_cards()
    token = await api.login()
    dataset, card = await make_card(api, token)
    assert (await api.fetch("DELETE", f"/api/datasets/{dataset['id']}", token=token)).code == 204
    deleted = await run(api, token, card["id"])
    assert deleted.code == 404 and deleted.error_code == "dataset_deleted"
    assert deleted.json()["error"]["details"] == {"dataset_id": dataset["id"]}

    off = await start_server()
    token = await off.login()
    _, card = await make_card(off, token)
    refused = await run(off, token, card["id"])
    assert refused.code == 503 and refused.error_code == "execution_off", refused.body


async def test_runs_past_the_pools_capacity_wait_for_a_kernel(start_cards):
    """More card runs at once than the agent has kernels (8): those that find every kernel running wait for
    one to be destroyed instead of failing (at 16 users one run in ~360 got a 503 ``no_capacity``); past
    ``queued_runs`` waiting, a run is refused at once."""
    api = await start_cards(CardRunner__runs_per_user=12)
    token = await api.login()
    response = await api.fetch("POST", "/api/cards", token=token, json_body={
        "title": "slow", "code": "import time\ntime.sleep(4)\nn", "datasets": [],
        "parameters": [{"name": "n", "type": "number", "default": 0}]})
    card_id = response.json()["id"]
    answers = await asyncio.gather(*(run(api, token, card_id, n=n) for n in range(10)))
    assert [answer.code for answer in answers] == [200] * 10, [answer.body[:200] for answer in answers]
    assert sorted(int(result_value(answer.json())) for answer in answers) == list(range(10))

    api.app.kernel_pool.queued_runs = 0  # none may wait: as before the queue, a run that finds no kernel fails
    answers = await asyncio.gather(*(run(api, token, card_id, n=n) for n in range(10, 22)))
    assert {answer.code for answer in answers} == {200, 503}, [answer.body[:200] for answer in answers]
    refused = next(answer for answer in answers if answer.code == 503)
    assert refused.error_code == "no_capacity" and "waiting" in refused.json()["error"]["message"], refused.body
