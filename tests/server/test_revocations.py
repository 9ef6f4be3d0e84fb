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


async def test_a_revocation_closes_what_it_covers_and_nothing_else():
    revocations = Revocations(LocalBus())
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
    revocations = Revocations(LocalBus())
    seen = revocations.clock  # read before the socket's token was checked
    await revocations.revoke(Revocation("ana", "signed out everywhere", generation=5))
    late, other = Socket(Credential("ana", 5, session_id="s9")), Socket(Credential("bo", 1))
    revocations.track(late, seen)
    revocations.track(other, seen)
    assert (late.closed, other.closed) == (SESSION_REVOKED, None)
