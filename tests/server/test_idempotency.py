"""``Idempotency-Key``: a create or save sent again with the same key gets its first answer (embedded store;
the AWS store under faults is ``test_store_faults.py``)."""

from __future__ import annotations

CARD = {"title": "合計", "code": "1 + 1", "datasets": [], "parameters": []}


async def test_a_retry_gets_the_first_answer_and_another_body_is_refused(api):
    """The same key: the first answer again (no second card); another body: 422; another caller: their own."""
    token = await api.login()
    key = {"Idempotency-Key": "action-1"}
    first = await api.fetch("POST", "/api/cards", token=token, json_body=CARD, headers=key)
    again = await api.fetch("POST", "/api/cards", token=token, json_body=CARD, headers=key)
    assert (first.code, again.code) == (201, 201)
    assert again.body == first.body and again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert len((await api.fetch("GET", "/api/cards", token=token)).json()["cards"]) == 1

    other = await api.fetch("POST", "/api/cards", token=token, json_body={**CARD, "code": "2"}, headers=key)
    assert other.code == 422 and other.error_code == "idempotency_key_reused"
    member = await api.add_user("member@example.com")
    theirs = await api.fetch("POST", "/api/cards", token=member, json_body=CARD, headers=key)
    assert theirs.code == 201 and theirs.json()["id"] != first.json()["id"]


async def test_a_failed_request_is_not_kept_and_bad_keys_are_400(api):
    """Only successes are replayed: a 4xx answered under a key runs again; a malformed key is 400."""
    token = await api.login()
    key = {"Idempotency-Key": "action-2"}
    refused = await api.fetch("POST", "/api/cards", token=token, json_body={**CARD, "title": " "}, headers=key)
    assert refused.code == 400
    assert (await api.fetch("POST", "/api/cards", token=token, json_body=CARD, headers=key)).code == 201
    for bad in ("x" * 129, "a/b", "a b", "é"):
        response = await api.fetch("POST", "/api/cards", token=token, json_body=CARD,
                                   headers={"Idempotency-Key": bad})
        assert response.code == 400, bad


async def test_a_saves_retry_answers_the_version_it_stored(api):
    """A save (PUT) finds its own earlier attempt by itself: the retry answers the version it stored (its If-Match is
    stale now), no second version; the same key with another body is a stale edit (409)."""
    token = await api.login()
    card = (await api.fetch("POST", "/api/cards", token=token, json_body=CARD)).json()
    save = {"Idempotency-Key": "save-1", "If-Match": '"1"'}
    first = await api.fetch("PUT", f"/api/cards/{card['id']}", token=token, json_body={**CARD, "code": "2"},
                            headers=save)
    again = await api.fetch("PUT", f"/api/cards/{card['id']}", token=token, json_body={**CARD, "code": "2"},
                            headers=save)
    assert (first.code, again.code) == (200, 200) and again.json()["version"] == first.json()["version"] == 2
    other = await api.fetch("PUT", f"/api/cards/{card['id']}", token=token, json_body={**CARD, "code": "3"},
                            headers=save)
    assert other.code == 409, other.body
    versions = await api.fetch("GET", f"/api/cards/{card['id']}/versions", token=token)
    assert [v["version"] for v in versions.json()["versions"]] == [2, 1]
