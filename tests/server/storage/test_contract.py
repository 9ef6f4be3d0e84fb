"""One contract, every backend: these tests run unchanged on SQLite and on DynamoDB + S3 (moto)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid

import pytest

from server.storage.aws import AWSStore
from server.errors import ConflictError, LeaseLostError, NotFoundError, StoreClosedError
from server.paging import ListQuery, Scope, fold
from server.models import (AuditEvent, AuditQuery, CachedResult, Card, CardVersion, Column, Dashboard, DashboardVersion,
                           Dataset, DatasetVersion, IdempotentAnswer, KernelRecord, Lease, OutputTable, PersonalToken, Share,
                           SignInSession, User, iso_time, utcnow)


def make_user(email: str = "ana@example.com", role: str = "member") -> User:
    return User(id=uuid.uuid4().hex, email=email, name="Ana", role=role,
                password_hash="$argon2id$x", created_at=utcnow())


def make_dataset(owner: User, name: str = "売上") -> tuple[Dataset, DatasetVersion]:
    now = utcnow()
    dataset = Dataset(id=uuid.uuid4().hex, owner_id=owner.id, name=name, current_version=1,
                      created_at=now, updated_at=now)
    return dataset, make_version(dataset.id, 1, owner)


def make_version(dataset_id: str, number: int, owner: User) -> DatasetVersion:
    return DatasetVersion(
        dataset_id=dataset_id, version=number, blob_key=f"datasets/{dataset_id}/v{number}.parquet",
        row_count=3, columns=(Column("店舗", "string"), Column("amount", "int64")), bytes=42,
        encoding="cp932", delimiter=",", created_at=utcnow(), created_by=owner.id)


async def racing(store, writes):
    """Run the coroutines of ``writes`` at once, with their exceptions as results. moto serves concurrent
    conditional writes without DynamoDB's isolation (both condition checks can pass before either write), so
    on the AWS store they run one after the other: the condition is still what refuses the second."""
    if isinstance(store, AWSStore):
        results = []
        for write in writes:
            try:
                results.append(await write)
            except Exception as exc:  # noqa: BLE001 - collected as gather(return_exceptions=True) does
                results.append(exc)
        return results
    return await asyncio.gather(*writes, return_exceptions=True)


class TestUsers:
    async def test_create_and_read_back(self, store):
        """A created user reads back equal by id and by email."""
        user = make_user()
        await store.create_user(user)
        assert await store.get_user(user.id) == user
        assert await store.get_user_by_email(user.email) == user

    async def test_duplicate_email_conflicts(self, store):
        """A second user with the same email is refused and the first is kept."""
        first = make_user()
        await store.create_user(first)
        with pytest.raises(ConflictError):
            await store.create_user(make_user())
        assert await store.list_users() == [first]

    async def test_unknown_user_is_none(self, store):
        """Looking up a missing id or email gives None."""
        assert await store.get_user("nope") is None
        assert await store.get_user_by_email("nobody@example.com") is None

    async def test_list_newest_first(self, store):
        """Users list newest first."""
        users = []
        for i in range(3):
            users.append(make_user(f"u{i}@example.com"))
            await store.create_user(users[-1])
            await asyncio.sleep(0.002)
        assert [u.email for u in await store.list_users()] == [u.email for u in reversed(users)]

    async def test_update_password_hash(self, store):
        """A new password hash replaces the old one."""
        user = make_user()
        await store.create_user(user)
        await store.update_password_hash(user.id, "$argon2id$new")
        assert (await store.get_user(user.id)).password_hash == "$argon2id$new"

    async def test_update_profile(self, store):
        """Name and locale change; a user without a locale reads back with None; a missing user stays missing."""
        user = make_user()
        await store.create_user(user)
        assert (await store.get_user(user.id)).locale is None
        await store.update_profile(user.id, {"locale": "en"})
        await store.update_profile(user.id, {"name": "山田 花子"})
        changed = await store.get_user(user.id)
        assert (changed.locale, changed.name, changed.password_hash) == ("en", "山田 花子", user.password_hash)
        await store.update_profile("ghost", {"locale": "ja"})
        assert await store.get_user("ghost") is None

    async def test_update_user_and_revoke_tokens(self, store):
        """Admin fields change in one write that can also raise the token generation; other fields stay;
        a missing user is None and stays missing."""
        user = make_user()
        await store.create_user(user)
        assert (user.active, user.token_generation, user.password_change_required) == (True, 0, False)
        changed = await store.update_user(user.id, {"active": False, "role": "admin", "id": "x", "email": "x@y.z"},
                                          revoke_tokens=True)
        assert changed == await store.get_user(user.id)
        assert (changed.active, changed.role, changed.token_generation) == (False, "admin", 1)
        assert (changed.id, changed.email, changed.name) == (user.id, user.email, user.name)
        again = await store.update_user(user.id, {"password_change_required": True}, revoke_tokens=True)
        assert (again.token_generation, again.password_change_required, again.active) == (2, True, False)
        assert await store.update_user(user.id, {}) == again
        assert await store.update_user("ghost", {"name": "Boo"}, revoke_tokens=True) is None
        assert await store.get_user("ghost") is None


def make_session(user: User, days: float = 14) -> SignInSession:
    now = utcnow()
    return SignInSession(id=uuid.uuid4().hex, user_id=user.id, rotation=0, generation=user.token_generation,
                         created_at=now, expires_at=iso_time(time.time() + days * 86400))


def make_personal_token(user: User, name: str = "lab") -> PersonalToken:
    return PersonalToken(id=uuid.uuid4().hex, user_id=user.id, name=name, secret_hash="ab" * 32,
                         generation=user.token_generation, created_at=utcnow(),
                         expires_at=iso_time(time.time() + 86400))


class TestSignInSessions:
    async def test_rotation_moves_once(self, store):
        """A session rotates from the rotation it is at, once; a stale rotation or a missing session
        rotates nothing; deleting ends it."""
        user = make_user()
        await store.create_user(user)
        session = make_session(user)
        await store.put_sign_in_session(session)
        assert await store.get_sign_in_session(session.id) == session
        results = await racing(store, [store.rotate_sign_in_session(session.id, 0) for _ in range(4)])
        assert sorted(results) == [False, False, False, True]
        assert (await store.get_sign_in_session(session.id)).rotation == 1
        assert await store.rotate_sign_in_session("ghost", 0) is False
        await store.delete_sign_in_session(session.id)
        await store.delete_sign_in_session(session.id)
        assert await store.get_sign_in_session(session.id) is None


class TestPersonalTokens:
    async def test_listed_by_owner_and_deleted(self, store):
        """A user's tokens list oldest first, nobody else's among them; a deleted one is gone."""
        ana, bo = make_user("ana@example.com"), make_user("bo@example.com")
        await store.create_user(ana)
        await store.create_user(bo)
        first = make_personal_token(ana, "first")
        await store.put_personal_token(first)
        await asyncio.sleep(0.002)
        second = make_personal_token(ana, "second")
        await store.put_personal_token(second)
        await store.put_personal_token(make_personal_token(bo))
        assert await store.get_personal_token(first.id) == first
        assert await store.list_personal_tokens(ana.id) == [first, second]
        await store.delete_personal_token(first.id)
        await store.delete_personal_token(first.id)
        assert await store.get_personal_token(first.id) is None
        assert await store.list_personal_tokens(ana.id) == [second]


class TestDatasets:
    async def test_create_and_read_back(self, store):
        """A dataset and its first version read back equal, Japanese names included."""
        owner = make_user()
        await store.create_user(owner)
        dataset, version = make_dataset(owner)
        await store.create_dataset(dataset, version)
        assert await store.get_dataset(dataset.id) == dataset
        assert await store.get_dataset_version(dataset.id, 1) == version
        assert await store.list_dataset_versions(dataset.id) == [version]

    async def test_name_unique_per_owner(self, store):
        """One owner cannot have two datasets of one name; another owner can."""
        ana, bo = make_user("ana@example.com"), make_user("bo@example.com")
        await store.create_user(ana)
        await store.create_user(bo)
        await store.create_dataset(*make_dataset(ana, "sales"))
        with pytest.raises(ConflictError):
            await store.create_dataset(*make_dataset(ana, "sales"))
        await store.create_dataset(*make_dataset(bo, "sales"))
        assert len(await store.list_datasets(ana.id)) == 1
        assert len(await store.list_datasets()) == 2

    async def test_list_by_owner_newest_first(self, store):
        """Listing by owner shows only that owner's datasets, newest first."""
        ana, bo = make_user("ana@example.com"), make_user("bo@example.com")
        await store.create_user(ana)
        await store.create_user(bo)
        names = ["a", "b", "c"]
        for name in names:
            await store.create_dataset(*make_dataset(ana, name))
            await asyncio.sleep(0.002)
        await store.create_dataset(*make_dataset(bo, "other"))
        assert [d.name for d in await store.list_datasets(ana.id)] == names[::-1]

    async def test_new_version_needs_current(self, store):
        """A version written against a stale current version conflicts and changes nothing."""
        owner = make_user()
        await store.create_user(owner)
        dataset, first = make_dataset(owner)
        await store.create_dataset(dataset, first)
        second = make_version(dataset.id, 2, owner)
        await store.add_dataset_version(second, expected_current=1)
        with pytest.raises(ConflictError):
            await store.add_dataset_version(make_version(dataset.id, 2, owner), expected_current=1)
        assert (await store.get_dataset(dataset.id)).current_version == 2
        assert await store.list_dataset_versions(dataset.id) == [first, second]

    async def test_racing_versions_one_wins(self, store):
        """Of two concurrent writers of version 2, exactly one succeeds."""
        owner = make_user()
        await store.create_user(owner)
        dataset, first = make_dataset(owner)
        await store.create_dataset(dataset, first)
        results = await racing(store, [store.add_dataset_version(make_version(dataset.id, 2, owner), 1) for _ in range(2)])
        assert sorted(type(r).__name__ for r in results) == ["ConflictError", "NoneType"]

    async def test_version_of_missing_dataset(self, store):
        """Adding a version to a dataset that does not exist is NotFound."""
        owner = make_user()
        await store.create_user(owner)
        with pytest.raises(NotFoundError):
            await store.add_dataset_version(make_version("missing", 2, owner), expected_current=1)

    async def test_delete_returns_versions_and_frees_name(self, store):
        """Deleting removes the dataset and its versions, and the name can be used again."""
        owner = make_user()
        await store.create_user(owner)
        dataset, first = make_dataset(owner, "sales")
        await store.create_dataset(dataset, first)
        await store.add_dataset_version(make_version(dataset.id, 2, owner), 1)
        removed = await store.delete_dataset(dataset.id)
        assert [v.version for v in removed] == [1, 2]
        assert await store.get_dataset(dataset.id) is None
        assert await store.list_dataset_versions(dataset.id) == []
        assert await store.list_datasets(owner.id) == []
        await store.create_dataset(*make_dataset(owner, "sales"))

    async def test_rename_keeps_old_names_as_aliases(self, store):
        """A rename moves the name (the old one is free, the new one taken) and keeps the old names as aliases,
        oldest first, in the record and in the list's page, which sorts and finds it by its new name."""
        owner = make_user()
        await store.create_user(owner)
        dataset, first = make_dataset(owner, "sales")
        await store.create_dataset(dataset, first)
        renamed = await store.rename_dataset(dataset.id, "売上", "sales")
        assert (renamed.name, renamed.aliases) == ("売上", ("sales",))
        again = await store.rename_dataset(dataset.id, "売上2024", "売上")
        assert again.aliases == ("sales", "売上")
        assert await store.get_dataset(dataset.id) == again
        assert await store.list_datasets(owner.id) == [again]
        page = await store.page_datasets(ListQuery((Scope("owner", owner.id),), limit=10, search=fold("売上2024")))
        assert page.items == [again]
        assert (await store.page_datasets(ListQuery((Scope("owner", owner.id),), limit=10, search="sales"))).items == []
        await store.create_dataset(*make_dataset(owner, "sales"))  # the old name is free again
        back = await store.rename_dataset(dataset.id, "sales2", "売上2024")
        assert back.aliases == ("sales", "売上", "売上2024")

    async def test_rename_refused(self, store):
        """A name the owner uses already is refused (``dataset_name_taken``), a stale expected name and a gone
        dataset too; nothing changes."""
        owner = make_user()
        await store.create_user(owner)
        dataset, first = make_dataset(owner, "a")
        await store.create_dataset(dataset, first)
        await store.create_dataset(*make_dataset(owner, "b"))
        with pytest.raises(ConflictError) as taken:
            await store.rename_dataset(dataset.id, "b", "a")
        assert taken.value.code == "dataset_name_taken"
        with pytest.raises(ConflictError) as stale:
            await store.rename_dataset(dataset.id, "c", "x")
        assert stale.value.code == "conflict"
        assert await store.get_dataset(dataset.id) == dataset
        with pytest.raises(NotFoundError):
            await store.rename_dataset("missing", "c", "a")
        await store.delete_dataset(dataset.id)
        await store.create_dataset(*make_dataset(owner, "a"))  # a renamed-then-deleted name is free


def make_card(owner: User) -> tuple[Card, CardVersion]:
    now = utcnow()
    card = Card(id=uuid.uuid4().hex, owner_id=owner.id, current_version=1, created_at=now, updated_at=now)
    return card, make_card_version(card.id, 1, owner)


def make_card_version(card_id: str, number: int, owner: User, code: str = "df = load_dataset('売上')\ndf") -> CardVersion:
    return CardVersion(
        card_id=card_id, version=number, title=f"売上の推移 v{number}", code=code,
        datasets=(uuid.uuid4().hex,),
        parameters=({"name": "region", "type": "choice", "default": "東京", "choices": ["東京", "大阪"],
                     "label": "地域"},
                    {"name": "rate", "type": "number", "default": 0.25},
                    {"name": "count", "type": "number", "default": 3},
                    {"name": "since", "type": "date", "default": "2024-04-01"}),
        created_at=utcnow(), created_by=owner.id)


class TestCards:
    async def test_create_and_read_back(self, store):
        """A card and its first version read back equal: Japanese text, float and int defaults kept."""
        owner = make_user()
        await store.create_user(owner)
        card, version = make_card(owner)
        await store.create_card(card, version)
        assert await store.get_card(card.id) == card
        assert await store.get_card_version(card.id, 1) == version
        assert await store.list_card_versions(card.id) == [version]
        defaults = [p["default"] for p in (await store.get_card_version(card.id, 1)).parameters]
        assert [type(d) for d in defaults] == [str, float, int, str]

    async def test_empty_code_datasets_and_parameters(self, store):
        """A card with no code, datasets or parameters reads back as such."""
        owner = make_user()
        await store.create_user(owner)
        card, version = make_card(owner)
        version = dataclasses.replace(version, code="", datasets=(), parameters=())
        await store.create_card(card, version)
        assert await store.get_card_version(card.id, 1) == version

    async def test_duplicate_id_conflicts(self, store):
        """A second card with the same id is refused and the first is kept."""
        owner = make_user()
        await store.create_user(owner)
        card, version = make_card(owner)
        await store.create_card(card, version)
        with pytest.raises(ConflictError):
            await store.create_card(card, make_card_version(card.id, 1, owner, code="other"))
        assert await store.get_card_version(card.id, 1) == version

    async def test_unknown_card_is_none(self, store):
        """A missing card or version gives None and no versions."""
        assert await store.get_card("scratch") is None
        assert await store.get_card_version("scratch", 1) is None
        assert await store.list_card_versions("scratch") == []

    async def test_list_by_owner_newest_first(self, store):
        """Listing by owner shows only that owner's cards, newest first; None lists everyone's."""
        ana, bo = make_user("ana@example.com"), make_user("bo@example.com")
        await store.create_user(ana)
        await store.create_user(bo)
        cards = []
        for _ in range(3):
            cards.append(make_card(ana))
            await store.create_card(*cards[-1])
            await asyncio.sleep(0.002)
        await store.create_card(*make_card(bo))
        assert await store.list_cards(ana.id) == [c for c, _ in cards[::-1]]
        assert len(await store.list_cards()) == 4

    async def test_new_version_needs_current(self, store):
        """A version written against a stale current version conflicts, names the current one, changes nothing."""
        owner = make_user()
        await store.create_user(owner)
        card, first = make_card(owner)
        await store.create_card(card, first)
        second = make_card_version(card.id, 2, owner)
        await store.add_card_version(second, expected_current=1)
        with pytest.raises(ConflictError) as raised:
            await store.add_card_version(make_card_version(card.id, 2, owner), expected_current=1)
        assert raised.value.details["current_version"] == 2
        with pytest.raises(ConflictError):
            await store.add_card_version(make_card_version(card.id, 4, owner), expected_current=2)
        current = await store.get_card(card.id)
        assert current.current_version == 2 and current.updated_at == second.created_at
        assert await store.list_card_versions(card.id) == [first, second]

    async def test_racing_versions_one_wins(self, store):
        """Of two concurrent writers of version 2, exactly one succeeds."""
        owner = make_user()
        await store.create_user(owner)
        card, first = make_card(owner)
        await store.create_card(card, first)
        results = await racing(store, [store.add_card_version(make_card_version(card.id, 2, owner), 1) for _ in range(2)])
        assert sorted(type(r).__name__ for r in results) == ["ConflictError", "NoneType"]
        assert len(await store.list_card_versions(card.id)) == 2

    async def test_version_of_missing_card(self, store):
        """Adding a version to a card that does not exist is NotFound."""
        owner = make_user()
        await store.create_user(owner)
        with pytest.raises(NotFoundError):
            await store.add_card_version(make_card_version("missing", 2, owner), expected_current=1)

    async def test_delete(self, store):
        """Deleting removes the card, its versions and its place in the owner's list; again is fine."""
        owner = make_user()
        await store.create_user(owner)
        card, first = make_card(owner)
        kept, _ = make_card(owner)
        await store.create_card(card, first)
        await store.create_card(kept, make_card_version(kept.id, 1, owner))
        await store.add_card_version(make_card_version(card.id, 2, owner), 1)
        await store.delete_card(card.id)
        await store.delete_card(card.id)
        assert await store.get_card(card.id) is None
        assert await store.list_card_versions(card.id) == []
        assert await store.list_cards(owner.id) == [kept]
        with pytest.raises(NotFoundError):
            await store.add_card_version(make_card_version(card.id, 3, owner), 2)


class TestResultCache:
    async def test_put_get_and_replace(self, store):
        """A result reads back by key; putting the same key again replaces it; other keys miss."""
        first = CachedResult("k" * 64, "results/k.json", "card1", "ok", 12, "2026-01-01T00:00:00.000Z")
        assert await store.get_cached_result(first.key) is None
        await store.put_cached_result(first)
        assert await store.get_cached_result(first.key) == first
        again = dataclasses.replace(first, execution_time_ms=15)
        await store.put_cached_result(again)
        assert await store.get_cached_result(first.key) == again
        assert await store.get_cached_result("x" * 64) is None

    async def test_variant_newest_first_and_delete(self, store):
        """A variant's results list newest first with their output ids; other variants and
        results without one stay apart; a deleted result is gone, deleting it again is fine."""
        results = [CachedResult(f"{i}" * 64, f"results/{i}.json", "card1", "ok", i, f"2026-01-0{i}T00:00:00.000Z",
                                "v1", (f"out{i}a", f"out{i}b")) for i in (1, 3, 2)]
        other = CachedResult("o" * 64, "results/o.json", "card1", "ok", 1, "2026-01-04T00:00:00.000Z", "v2")
        plain = CachedResult("p" * 64, "results/p.json", "card1", "ok", 1, "2026-01-05T00:00:00.000Z")
        for result in [*results, other, plain]:
            await store.put_cached_result(result)
        assert [r.execution_time_ms for r in await store.list_cached_results("v1")] == [3, 2, 1]
        assert (await store.list_cached_results("v1"))[0].output_ids == ("out3a", "out3b")
        assert await store.list_cached_results("v2") == [other]
        await store.delete_cached_result(results[1].key)
        await store.delete_cached_result(results[1].key)
        assert await store.get_cached_result(results[1].key) is None
        assert [r.execution_time_ms for r in await store.list_cached_results("v1")] == [2, 1]


def make_table(user_id: str, used: str, **fields) -> OutputTable:
    output_id = uuid.uuid4().hex
    return OutputTable(output_id, f"tables/{output_id}.arrow", user_id, fields.pop("card_id", None),
                       "2026-01-01T00:00:00.000Z", bytes=1000, last_used=used, **fields)


class TestLeases:
    async def test_one_holder_at_a_time_with_rising_versions(self, store):
        """Nobody takes a held lease; once it expires the next holder gets the next version."""
        now = time.time()
        first = await store.acquire_lease("refresh:d1:7", "task-a", now + 30)
        assert first is not None and (first.holder, first.version, first.done) == ("task-a", 1, False)
        assert await store.acquire_lease("refresh:d1:7", "task-b", now + 30) is None
        assert await store.acquire_lease("refresh:d1:8", "task-b", now + 30) is not None, "another name is free"
        renewed = await store.renew_lease(first, now + 0.3)
        await asyncio.sleep(0.4)
        second = await store.acquire_lease("refresh:d1:7", "task-b", now + 30)
        assert second is not None and (second.holder, second.version) == ("task-b", 2)
        assert await store.get_lease("refresh:d1:7") == second
        with pytest.raises(LeaseLostError):
            await store.renew_lease(renewed, now + 60)

    async def test_writes_under_a_lost_lease_do_not_happen(self, store):
        """A result written under a lease lands only while that version of the lease is held."""
        lease = await store.acquire_lease("refresh:d2:1", "task-a", time.time() + 0.3)
        held = CachedResult("h" * 64, "results/h.json", "card1", "ok", 12, "2026-01-01T00:00:00.000Z", "v")
        await store.put_cached_result(held, fence=lease)
        assert await store.get_cached_result(held.key) == held
        await asyncio.sleep(0.4)
        late = dataclasses.replace(held, key="l" * 64)
        with pytest.raises(LeaseLostError):
            await store.put_cached_result(late, fence=lease)
        taken = await store.acquire_lease("refresh:d2:1", "task-b", time.time() + 30)
        with pytest.raises(LeaseLostError):
            await store.put_cached_result(late, fence=lease)
        assert await store.get_cached_result(late.key) is None
        await store.put_cached_result(late, fence=taken)
        assert await store.get_cached_result(late.key) == late

    async def test_finished_work_is_not_taken_again_until_its_lease_expires(self, store):
        """Finishing keeps the lease taken until the time given; a stale holder cannot finish."""
        lease = await store.acquire_lease("rerun:ds:2", "task-a", time.time() + 30)
        await store.finish_lease(lease, time.time() + 0.3)
        assert (await store.get_lease("rerun:ds:2")).done
        assert await store.acquire_lease("rerun:ds:2", "task-b", time.time() + 30) is None, "done"
        with pytest.raises(LeaseLostError):
            await store.finish_lease(lease, time.time() + 30)
        await asyncio.sleep(0.4)
        again = await store.acquire_lease("rerun:ds:2", "task-b", time.time() + 30)
        assert again is not None and again.version == 2 and not again.done


class TestOutputTables:
    @pytest.mark.parametrize("card_id", [None, "card1"])
    async def test_put_and_get(self, store, card_id):
        """A table's record reads back whole, with or without a card; unknown ids are None."""
        table = OutputTable("o" * 32, "tables/o.arrow", "user1", card_id, "2026-01-01T00:00:00.000Z",
                            bytes=123, last_used="2026-01-02T00:00:00.000Z", pinned=True)
        await store.put_output_table(table)
        assert await store.get_output_table(table.output_id) == table
        assert await store.get_output_table("x" * 32) is None

    async def test_a_cached_results_outputs_record(self, store):
        """The record that charges a cached result's outputs blob to a user names the entry, and lists
        among the user's tables."""
        record = make_table("ana", "2026-01-01T00:00:00.000Z", card_id="card1", result_key="k" * 64)
        await store.put_output_table(record)
        assert await store.get_output_table(record.output_id) == record
        assert await store.list_output_tables("ana") == [record]

    async def test_listed_by_user_least_recently_used_first(self, store):
        """A user's tables list by last use, oldest first, and follow a new use; others' stay apart."""
        tables = [make_table("ana", f"2026-01-0{day}T00:00:00.000Z") for day in (3, 1, 2)]
        for table in [*tables, make_table("bo", "2026-01-01T00:00:00.000Z")]:
            await store.put_output_table(table)
        assert [t.output_id for t in await store.list_output_tables("ana")] == \
            [tables[1].output_id, tables[2].output_id, tables[0].output_id]
        await store.update_output_table(tables[1].output_id, last_used="2026-01-04T00:00:00.000Z")
        listed = await store.list_output_tables("ana")
        assert [t.output_id for t in listed] == [tables[2].output_id, tables[0].output_id, tables[1].output_id]
        assert listed[-1] == dataclasses.replace(tables[1], last_used="2026-01-04T00:00:00.000Z")
        assert len(await store.list_output_tables("bo")) == 1
        assert await store.list_output_tables("nobody") == []

    async def test_pin_and_delete(self, store):
        """Pinning and unpinning change only that; updating or deleting a missing table does not
        create it, and deleting twice is fine."""
        table = make_table("ana", "2026-01-01T00:00:00.000Z", card_id="card1")
        await store.put_output_table(table)
        await store.update_output_table(table.output_id, pinned=True)
        assert await store.get_output_table(table.output_id) == dataclasses.replace(table, pinned=True)
        await store.update_output_table(table.output_id, pinned=False)
        assert await store.get_output_table(table.output_id) == table
        await store.delete_output_table(table.output_id)
        await store.delete_output_table(table.output_id)
        await store.update_output_table(table.output_id, last_used="2026-02-01T00:00:00.000Z", pinned=True)
        assert await store.get_output_table(table.output_id) is None
        assert await store.list_output_tables("ana") == []


class TestBlobs:
    async def test_put_then_read(self, store, tmp_path):
        """A stored blob reads back byte for byte from its local path."""
        source = tmp_path / "x.parquet"
        source.write_bytes(b"PAR1" + bytes(range(256)) * 100)
        await store.put_blob("datasets/d1/v1.parquet", source)
        path = await store.blob_path("datasets/d1/v1.parquet")
        assert path.read_bytes() == source.read_bytes()

    async def test_missing_blob(self, store):
        """Asking for a missing blob is NotFound."""
        with pytest.raises(NotFoundError):
            await store.blob_path("datasets/none/v1.parquet")

    async def test_delete_blob(self, store, tmp_path):
        """A deleted blob is gone, and deleting it again is fine."""
        source = tmp_path / "x.bin"
        source.write_bytes(b"data")
        await store.put_blob("outputs/o1", source)
        await store.delete_blob("outputs/o1")
        await store.delete_blob("outputs/o1")
        with pytest.raises(NotFoundError):
            await store.blob_path("outputs/o1")

    async def test_key_cannot_escape(self, store):
        """A key that climbs out of the blob area is refused."""
        with pytest.raises(NotFoundError):
            await store.blob_path("../../etc/passwd")

    async def test_list_blobs_under_a_prefix(self, store, tmp_path):
        """The keys under a prefix, sorted; nothing for an empty or unknown prefix."""
        source = tmp_path / "x.bin"
        source.write_bytes(b"x")
        for key in ("datasets/d1/v2.parquet", "datasets/d1/v1.parquet", "datasets/d10/v1.parquet"):
            await store.put_blob(key, source)
        listed = await store.list_blobs("datasets/d1/")
        assert [key for key, _ in listed] == ["datasets/d1/v1.parquet", "datasets/d1/v2.parquet"]
        assert all(abs(stored - time.time()) < 60 for _, stored in listed)
        assert await store.list_blobs("datasets/none/") == []
        for hostile in ("datasets/../", "datasets/d1/../../", "./", "/", "datasets/d1", "datasets/\0/"):
            with pytest.raises(NotFoundError):
                await store.list_blobs(hostile)


class TestIdempotentAnswers:
    async def test_an_answer_is_kept_until_it_expires(self, store):
        """An answer reads back under its key until its expiry; a later one replaces it."""
        answer = IdempotentAnswer("k1", "f1", 201, json.dumps({"Location": "/api/cards/c1"}), "{\"id\": \"c1\"}",
                                  "2030-01-01T00:00:00.000Z")
        await store.put_idempotent_answer(answer)
        assert await store.get_idempotent_answer("k1", "2029-12-31T23:59:59.999Z") == answer
        assert await store.get_idempotent_answer("k1", "2030-01-01T00:00:00.001Z") is None
        assert await store.get_idempotent_answer("k2", "2029-01-01T00:00:00.000Z") is None
        await store.put_idempotent_answer(dataclasses.replace(answer, body="{}" * 100_000))
        assert (await store.get_idempotent_answer("k1", "2029-01-01T00:00:00.000Z")).body == "{}" * 100_000


class TestLifecycle:
    async def test_schema_creation_is_idempotent(self, store):
        """Creating the schema again keeps existing data."""
        user = make_user()
        await store.create_user(user)
        await store.create_schema()
        assert await store.get_user(user.id) == user

    async def test_closed_store_refuses(self, store):
        """After close, calls raise StoreClosedError and close stays idempotent."""
        await store.close()
        await store.close()
        with pytest.raises(StoreClosedError):
            await store.get_user("x")


def make_dashboard(owner: User, uid: str = "sales-overview") -> tuple[Dashboard, DashboardVersion]:
    now = utcnow()
    dashboard = Dashboard(id=uuid.uuid4().hex, uid=uid, owner_id=owner.id, current_version=1,
                          created_at=now, updated_at=now)
    return dashboard, make_dashboard_version(dashboard.id, 1, owner)


def make_dashboard_version(dashboard_id: str, number: int, owner: User) -> DashboardVersion:
    document = {"schemaVersion": 1, "title": f"売上 v{number}", "refresh": {"every_seconds": 3600},
                "parameters": [{"name": "rate", "type": "number", "default": 0.5}],
                "cards": [{"key": "a", "card": uuid.uuid4().hex}],
                "layout": [{"card": "a", "x": 0, "y": 0, "w": 12, "h": 4}]}
    return DashboardVersion(dashboard_id, number, document, utcnow(), owner.id)


class TestDashboards:
    async def test_versions_uid_and_delete(self, store):
        """A dashboard reads back by id and uid with its versions; a taken uid conflicts; a stale
        version conflicts; delete takes its versions and shares along."""
        owner, guest = make_user(), make_user("guest@example.com")
        await store.create_user(owner)
        await store.create_user(guest)
        dashboard, first = make_dashboard(owner)
        await store.create_dashboard(dashboard, first)
        assert await store.get_dashboard(dashboard.id) == dashboard
        assert await store.get_dashboard_by_uid("sales-overview") == dashboard
        assert await store.get_dashboard_version(dashboard.id, 1) == first
        with pytest.raises(ConflictError):
            await store.create_dashboard(*make_dashboard(owner))
        second = make_dashboard_version(dashboard.id, 2, owner)
        await store.add_dashboard_version(second, expected_current=1)
        with pytest.raises(ConflictError):
            await store.add_dashboard_version(make_dashboard_version(dashboard.id, 2, owner), expected_current=1)
        assert await store.list_dashboard_versions(dashboard.id) == [first, second]
        assert (await store.get_dashboard(dashboard.id)).current_version == 2
        other, _ = make_dashboard(guest, "other")
        await store.create_dashboard(other, make_dashboard_version(other.id, 1, guest))
        assert [d.id for d in await store.list_dashboards(owner.id)] == [dashboard.id]
        assert {d.id for d in await store.list_dashboards()} == {dashboard.id, other.id}

        await store.put_share(Share(dashboard.id, guest.id, "view", utcnow(), owner.id))
        await store.delete_dashboard(dashboard.id)
        await store.delete_dashboard(dashboard.id)
        assert await store.get_dashboard(dashboard.id) is None
        assert await store.get_dashboard_by_uid("sales-overview") is None
        assert await store.list_dashboard_versions(dashboard.id) == []
        assert await store.list_user_shares(guest.id) == []
        await store.create_dashboard(*make_dashboard(owner))  # the uid is free again

    async def test_shares(self, store):
        """A share is listed by dashboard and by grantee; granting again replaces; revoking twice is False."""
        owner, ana, bo = make_user("o@example.com"), make_user("ana@example.com"), make_user("bo@example.com")
        for user in (owner, ana, bo):
            await store.create_user(user)
        dashboard, version = make_dashboard(owner)
        await store.create_dashboard(dashboard, version)
        view = Share(dashboard.id, ana.id, "view", utcnow(), owner.id)
        await store.put_share(view)
        await asyncio.sleep(0.002)
        await store.put_share(Share(dashboard.id, bo.id, "edit", utcnow(), owner.id))
        edit = dataclasses.replace(view, permission="edit")
        await store.put_share(edit)
        assert [(s.user_id, s.permission) for s in await store.list_shares(dashboard.id)] == [
            (ana.id, "edit"), (bo.id, "edit")]
        assert await store.list_user_shares(ana.id) == [edit]
        assert await store.delete_share(dashboard.id, ana.id) is True
        assert await store.delete_share(dashboard.id, ana.id) is False
        assert await store.list_user_shares(ana.id) == []
        assert [s.user_id for s in await store.list_shares(dashboard.id)] == [bo.id]

    async def test_document_round_trips_exactly(self, store):
        """Floats (1.0 stays a float), big ints, nested Japanese text and nulls read back as written."""
        owner = make_user()
        await store.create_user(owner)
        dashboard, first = make_dashboard(owner)
        document = {**first.document, "title": "月次売上 📈", "extra": {
            "floats": [0.1, 1.0, -2.5e-7, 1e-300, 1.7976931348623157e308], "ints": [0, -1, 2 ** 53 + 1],
            "nested": [{"ラベル": "東京", "値": [None, True, False, "", {}]}]}}
        version = dataclasses.replace(first, document=document)
        await store.create_dashboard(dashboard, version)
        read = await store.get_dashboard_version(dashboard.id, 1)
        assert read == version
        assert json.dumps(read.document) == json.dumps(document)


def audit_event(at: str, event: str = "login_success", user_id: str | None = "u1", **fields) -> AuditEvent:
    return AuditEvent(f"{uuid.uuid4().int % 16**24:024x}", at, event, user_id, {"ip": "10.0.0.1", **fields})


class TestAuditTrail:
    """Paged newest first by time, by user and by event, each a Query; kept for the retention."""

    @pytest.fixture
    async def trail(self, store) -> list[AuditEvent]:
        """Eight events over three months: two users, two kinds, one without a user; newest first."""
        times = ["2026-10-31T23:59:59.999Z", "2026-11-01T00:00:00.000Z", "2026-11-15T12:00:00.000Z",
                 "2026-11-15T12:00:00.000Z", "2026-12-01T08:00:00.000Z", "2026-12-05T09:30:00.000Z",
                 "2026-12-06T07:00:00.000Z", "2026-12-06T07:00:00.001Z"]
        kinds = [("login_success", "u1"), ("login_failed", None), ("dashboard_shared", "u2"), ("login_success", "u2"),
                 ("login_failed", "u1"), ("dashboard_shared", "u1"), ("login_success", "u1"), ("login_failed", "u2")]
        events = [audit_event(at, event, user_id, n=n) for n, (at, (event, user_id)) in enumerate(zip(times, kinds))]
        store.audit_retention_days = 3650
        for event in events:
            await store.put_audit_event(event)
        return sorted(events, key=lambda e: e.key, reverse=True)

    async def pages(self, store, limit: int, **filters) -> list[list[AuditEvent]]:
        pages, before = [], None
        while True:
            page = await store.list_audit_events(AuditQuery(limit, before=before, **filters))
            pages.append(page)
            if len(page) < limit:
                return pages
            before = page[-1].key

    async def test_reads_back_newest_first_in_pages(self, store, trail):
        assert await store.list_audit_events(AuditQuery(100)) == trail
        pages = await self.pages(store, 3)
        assert [len(p) for p in pages] == [3, 3, 2] and sum(pages, []) == trail
        assert trail[0].public() == {"id": trail[0].id, "at": trail[0].at, "event": "login_failed",
                                     "user_id": "u2", "ip": "10.0.0.1", "n": 7}

    async def test_filters_by_time_user_and_event(self, store, trail):
        def expected(keep) -> list[AuditEvent]:
            return [e for e in trail if keep(e)]

        november = {"since": "2026-11-01T00:00:00.000Z", "until": "2026-12-01T08:00:00.000Z"}
        assert await store.list_audit_events(AuditQuery(100, **november)) == expected(
            lambda e: e.at.startswith("2026-11"))
        assert await store.list_audit_events(AuditQuery(100, user_id="u1")) == expected(lambda e: e.user_id == "u1")
        assert await store.list_audit_events(AuditQuery(100, event="login_failed")) == expected(
            lambda e: e.event == "login_failed")
        both = await self.pages(store, 1, user_id="u2", event="login_success", since="2026-11-02T00:00:00.000Z")
        assert sum(both, []) == expected(lambda e: e.user_id == "u2" and e.event == "login_success")
        assert sum(await self.pages(store, 2, event="login_failed", until="2026-12-06T07:00:00.001Z"), []) == expected(
            lambda e: e.event == "login_failed" and e.at < "2026-12-06T07:00:00.001Z")

    async def test_expired_events_are_left_out(self, store):
        store.audit_retention_days = 30
        old = audit_event("2020-01-01T00:00:00.000Z")
        new = audit_event(utcnow())
        for event in (old, new):
            await store.put_audit_event(event)
        assert await store.list_audit_events(AuditQuery(10)) == [new]
        assert await store.list_audit_events(AuditQuery(10, user_id="u1")) == [new]


class TestKernelRecords:
    async def test_put_get_replace_delete_and_expiry(self, store):
        now = utcnow()
        record = KernelRecord(uuid.uuid4().hex, "jupyter", uuid.uuid4().hex, "http://10.0.3.7:8080", "a1",
                              uuid.uuid4().hex, 2048, json.dumps({"transport": "tcp", "shell_port": 20001}),
                              "k1", "c2VhbGVk", json.dumps([["売上", "/d/1.parquet"]]),
                              json.dumps({"dataset_ids": ["d1"], "card_id": None}), now, iso_time(time.time() + 60),
                              "task-a")
        await store.put_kernel_record(record)
        assert await store.get_kernel_record(record.id) == record
        moved = dataclasses.replace(record, agent_id="a2", holder="task-b")  # another task reattached
        await store.put_kernel_record(moved)
        assert await store.get_kernel_record(record.id) == moved
        assert await store.delete_kernel_record(record.id, "task-a") is False  # not a's to end any more
        assert await store.get_kernel_record(record.id) == moved
        assert await store.delete_kernel_record(record.id, "task-b") is True
        assert await store.delete_kernel_record(record.id, "task-a") is True  # none left: nobody else holds it
        assert await store.get_kernel_record(record.id) is None
        expired = dataclasses.replace(record, id=uuid.uuid4().hex, expires_at=iso_time(time.time() - 1))
        await store.put_kernel_record(expired)
        assert await store.get_kernel_record(expired.id) is None

    async def test_notebooks_are_kept_across_puts_and_listed_by_user(self, store):
        user_id = uuid.uuid4().hex
        record = KernelRecord(uuid.uuid4().hex, "jupyter", user_id, "http://10.0.3.7:8080", "a1", uuid.uuid4().hex,
                              2048, "{}", "k1", "c2VhbGVk", "[]", json.dumps({"dataset_ids": [], "card_id": None}),
                              utcnow(), iso_time(time.time() + 60), "task-a")
        card = dataclasses.replace(record, id=uuid.uuid4().hex, kind="card")
        others = dataclasses.replace(record, id=uuid.uuid4().hex, user_id=uuid.uuid4().hex)
        expired = dataclasses.replace(record, id=uuid.uuid4().hex, expires_at=iso_time(time.time() - 1))
        for each in (record, card, others, expired):
            await store.put_kernel_record(each)
        notebooks = json.dumps([{"id": "s1", "path": "売上.ipynb", "name": "", "type": "notebook"}])
        assert await store.set_kernel_notebooks(record.id, notebooks) is True
        assert await store.set_kernel_notebooks(expired.id, notebooks) is False
        assert await store.set_kernel_notebooks(uuid.uuid4().hex, notebooks) is False
        moved = dataclasses.replace(record, holder="task-b")  # another task reattached: the notebooks stay
        await store.put_kernel_record(moved)
        assert await store.get_kernel_record(record.id) == dataclasses.replace(moved, notebooks=notebooks)
        assert await store.list_kernel_records(user_id, "jupyter") == [dataclasses.replace(moved, notebooks=notebooks)]
        assert await store.list_kernel_records(user_id, "card") == [card]
        assert await store.delete_kernel_record(record.id, "task-b") is True
        assert await store.list_kernel_records(user_id, "jupyter") == []
