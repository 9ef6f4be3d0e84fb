"""A Jupyter kernel is its user's only while their credentials and rights hold.

Before, a Jupyter kernel started with a personal access token went on running code through its open
channels after the token was revoked, after sign-out everywhere and after the user was deactivated, and
a demoted admin's kernel kept every dataset it had loaded as an admin. The rule now:

- a revoked personal access token, sign-out everywhere or a password change closes the channels their
  tokens opened at once (4401 ``session_revoked``) and the REST API refuses those tokens (401); the
  kernel is the user's and is kept for their return (under its idle limit), reached with a valid token;
- deactivation closes the channels and shuts the user's kernels down at once (a deactivated user's
  kernels hold pool capacity and data for nobody);
- a kernel that loaded a dataset its user may no longer read (a demotion) is shut down, its channels told
  why.
"""

from __future__ import annotations


from tests.server.test_datasets import upload
from tests.server.test_jupyter_api import connect, start_kernel, text_of

from .sharing import PAYMENTS, SECRET
from .test_revoked_sockets import SESSION_REVOKED, closed, sign_in


async def personal_token(api, token: str) -> tuple[str, str]:
    response = await api.fetch("POST", "/api/me/tokens", token=token, json_body={"name": "lab", "expires_in_days": 1})
    assert response.code == 201, response.body
    return response.json()["id"], response.json()["token"]


async def kernels(api, token: str) -> tuple[int, list]:
    response = await api.fetch("GET", "/api/kernels", token="", headers={"Authorization": f"token {token}"})
    return response.code, response.json() if response.code == 200 else []


async def test_revoked_and_deactivated_users_lose_their_kernels(start_cards):
    api = await start_cards()
    admin = await api.login()
    await api.add_user("ana@example.com")
    ana = await sign_in(api, "ana@example.com")
    first_id, first = await personal_token(api, ana["access_token"])
    _, second = await personal_token(api, ana["access_token"])
    kernel = (await start_kernel(api, first))["id"]
    channels = await connect(api, first, kernel)
    assert text_of(await channels.execute("kept = 'state'\nprint(kept)")) == "state\n"

    # the revoked token's channels close at once and its REST calls are refused; the kernel waits for her
    revoked = await api.fetch("DELETE", f"/api/me/tokens/{first_id}", token=ana["access_token"])
    assert revoked.code == 204
    code, reason = await closed(channels)
    assert code == SESSION_REVOKED and reason.startswith("session_revoked"), (code, reason)
    assert (await kernels(api, first))[0] == 401
    assert [k["id"] for k in (await kernels(api, second))[1]] == [kernel]
    channels = await connect(api, second, kernel)
    assert text_of(await channels.execute("print(kept)")) == "state\n", "the kernel was kept for its user"

    # sign-out everywhere: the same
    assert (await api.fetch("POST", "/api/auth/logout-everywhere", token=ana["access_token"])).code == 204
    assert (await closed(channels))[0] == SESSION_REVOKED
    assert (await kernels(api, second))[0] == 401

    # deactivation closes the channels and shuts her kernels down
    ana = await sign_in(api, "ana@example.com")
    _, third = await personal_token(api, ana["access_token"])
    channels = await connect(api, third, kernel)
    assert text_of(await channels.execute("print(kept)")) == "state\n"
    ana_id = ana["user"]["id"]
    assert (await api.fetch("PATCH", f"/api/users/{ana_id}", token=admin, json_body={"active": False})).code == 200
    assert (await closed(channels))[0] == SESSION_REVOKED
    assert (await kernels(api, third))[0] == 401
    assert [s for s in api.app.kernel_pool.sessions.values() if s.user_id == ana_id] == [], "her kernels still run"

    # a demoted admin's kernel loaded datasets only admins may read: it is shut down
    assert (await api.fetch("PATCH", f"/api/users/{ana_id}", token=admin, json_body={"active": True})).code == 200
    ana = await sign_in(api, "ana@example.com")
    assert (await upload(api, "payments", PAYMENTS.encode(), ana["access_token"])).code == 201
    await api.add_user("bo@example.com", role="admin")
    bo = await sign_in(api, "bo@example.com")
    _, bo_token = await personal_token(api, bo["access_token"])
    bo_kernel = (await start_kernel(api, bo_token))["id"]
    channels = await connect(api, bo_token, bo_kernel)
    assert SECRET in text_of(await channels.execute("print(load_dataset('payments').to_csv())"))
    demoted = await api.fetch("PATCH", f"/api/users/{bo['user']['id']}", token=admin, json_body={"role": "member"})
    assert demoted.code == 200, demoted.body
    code, reason = await closed(channels)
    assert code is not None and "access" in reason, (code, reason)
    assert (await kernels(api, bo_token))[1] == [], "the demoted admin's kernel still holds the owner's dataset"
