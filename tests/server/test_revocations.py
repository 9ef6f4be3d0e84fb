"""``Revocations`` alone, on the in-process bus: which sockets a revocation closes, and the gap between a
socket's authentication and its registration."""

from __future__ import annotations

import asyncio

from server.bus import LocalBus
from server.services.revocations import SESSION_REVOKED, Credential, Revocation, Revocations


class Socket:
    """What ``Revocations`` needs of a websocket handler."""

    def __init__(self, credential: Credential):
        self.credential: Credential | None = credential
        self.closed: int | None = None

    def close_now(self, code: int, reason: str) -> None:
        self.closed = code


async def nothing_lost(user_id: str, credentials) -> dict[Credential, str]:
    return {}


async def test_a_revocation_closes_what_it_covers_and_nothing_else():
    revocations = Revocations(LocalBus(), nothing_lost)
    swept: list[str] = []

    async def sweep(user_id: str) -> None:
        swept.append(user_id)

    revocations.sweeps.append(sweep)
    old, new = Socket(Credential("ana", 1, session_id="s1")), Socket(Credential("ana", 2, session_id="s2"))
    pat, bo = Socket(Credential("ana", 2, token_id="t1")), Socket(Credential("bo", 1, session_id="s3"))
    for socket in (old, new, pat, bo):
        revocations.track(socket, revocations.clock)
    await revocations.revoke(Revocation("ana", "signed out everywhere", generation=2))
    assert (old.closed, new.closed, pat.closed, bo.closed) == (SESSION_REVOKED, None, None, None)
    await revocations.revoke(Revocation("ana", "its personal access token was revoked", token_id="t1"))
    await revocations.revoke(Revocation("ana", "signed out", session_id="s2"))
    assert (new.closed, pat.closed, bo.closed) == (SESSION_REVOKED, SESSION_REVOKED, None)
    await revocations.revoke(Revocation("bo", "the role changed"))
    assert bo.closed is None, "a role change revokes no token: the sweeps check rights"
    await asyncio.sleep(0)  # the sweeps run as tasks
    assert swept == ["ana", "ana", "ana", "bo"]


async def test_a_revocation_while_a_socket_opens_closes_it_when_it_registers():
    revocations = Revocations(LocalBus(), nothing_lost)
    seen = revocations.clock  # read before the socket's token was checked
    await revocations.revoke(Revocation("ana", "signed out everywhere", generation=5))
    late, other = Socket(Credential("ana", 5, session_id="s9")), Socket(Credential("bo", 1))
    revocations.track(late, seen)
    revocations.track(other, seen)
    assert (late.closed, other.closed) == (SESSION_REVOKED, None)


async def test_a_recheck_closes_what_the_store_says_was_revoked_and_sweeps_every_holder():
    """What the bus did not bring (it was down) the store tells: a re-check closes the sockets whose
    credentials ``verify`` finds revoked and runs the sweeps for every user with a socket or a session."""
    asked: list[tuple[str, set[Credential]]] = []

    async def verify(user_id: str, credentials) -> dict[Credential, str]:
        asked.append((user_id, set(credentials)))
        await asyncio.sleep(0.05)  # a store read
        return {credential: "signed out everywhere" for credential in credentials if credential.generation < 2}

    revocations = Revocations(LocalBus(), verify)
    swept: list[str] = []

    async def sweep(user_id: str) -> None:
        swept.append(user_id)

    revocations.sweeps.append(sweep)
    revocations.holders.append(lambda: ["cy"])
    old, twin = Socket(Credential("ana", 1, session_id="s1")), Socket(Credential("ana", 1, session_id="s1"))
    new, bo = Socket(Credential("ana", 2, session_id="s2")), Socket(Credential("bo", 1, session_id="s3"))
    for socket in (old, twin, new, bo):
        revocations.track(socket, revocations.clock)
    revocations.recheck("test")
    await asyncio.sleep(0.01)
    revocations.recheck("test again")  # asked while the first runs: one more pass after it
    while revocations._rechecking is not None and not revocations._rechecking.done():
        await asyncio.sleep(0.01)
    assert (old.closed, twin.closed, new.closed, bo.closed) == (SESSION_REVOKED, SESSION_REVOKED, None, SESSION_REVOKED)
    assert sorted(swept) == ["ana", "ana", "bo", "cy", "cy"], "bo's only socket closed in the first pass"
    first = dict(asked[:2])
    assert first["ana"] == {Credential("ana", 1, session_id="s1"), Credential("ana", 2, session_id="s2")}, \
        "each credential read once"
    assert "cy" not in first, "a user without sockets has no credential to read, only rights to sweep"
