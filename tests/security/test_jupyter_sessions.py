"""A signed-in Jupyter client creating sessions without end: each user's sessions and their fields are bounded.

Sessions on one kernel cost no kernel, so the kernel limit did not hold them: 3,000 of them with 4 KB
in each of path, name and type all got 201, grew the server by 74 MB, and made ``GET /api/sessions``
35 MB long.
"""

from __future__ import annotations

from server import limits


async def test_sessions_per_user_and_their_fields_are_bounded(start_cards):
    api = await start_cards(KernelPool__sessions_per_user=1)
    token = await api.login()
    kernel = (await api.fetch("POST", "/api/kernels", token=token, json_body={"name": "python3"})).json()
    allowed = limits.JUPYTER_SESSIONS_PER_KERNEL

    for i in range(allowed):
        created = await api.fetch("POST", "/api/sessions", token=token, json_body={
            "path": f"work/{i}.ipynb", "name": f"{i}.ipynb", "type": "notebook", "kernel": {"id": kernel["id"]}})
        assert created.code == 201, created.body
    refused = await api.fetch("POST", "/api/sessions", token=token, json_body={
        "path": "work/one-too-many.ipynb", "kernel": {"id": kernel["id"]}})
    assert refused.code == 429, refused.body
    error = refused.json()["error"]
    assert error["code"] == "rate_limited" and "DELETE /api/sessions/" in error["message"], error
    again = await api.fetch("POST", "/api/sessions", token=token, json_body={
        "path": "work/0.ipynb", "kernel": {"id": kernel["id"]}})
    assert again.code == 201, "a path that has a session gets it back, limit or not"
    assert len((await api.fetch("GET", "/api/sessions", token=token)).json()) == allowed

    for field in ("path", "name", "type"):
        body = {"path": "work/long.ipynb", "kernel": {"id": kernel["id"]}, field: "x" * 4000}
        long = await api.fetch("POST", "/api/sessions", token=token, json_body=body)
        assert long.code == 400, long.body
        assert long.json()["error"]["details"]["pointer"] == f"/{field}", long.body
        assert len(long.body) < 1024, "the error does not echo the value"
        first = (await api.fetch("GET", "/api/sessions", token=token)).json()[0]
        patched = await api.fetch("PATCH", f"/api/sessions/{first['id']}", token=token, json_body={field: "x" * 4000})
        assert patched.code == 400, patched.body
