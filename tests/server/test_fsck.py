"""``bi fsck``: what store faults leave behind is found in both stores, and ``--repair`` fixes it."""

from __future__ import annotations

import subprocess

import dataclasses

from server.paging import ListQuery, Scope
from server.services.fsck import fsck
from server.storage.catalog import card_entry

from ..conftest import AWS_TEST_ENV
from ..serve_process import BI, ROOT
from .storage.test_contract import make_card, make_card_version, make_dataset, make_table, make_user


async def blob(store, tmp_path, key: str) -> None:
    source = tmp_path / "blob.bin"
    source.write_bytes(b"x")
    await store.put_blob(key, source)


async def test_finds_and_repairs_what_faults_leave(store, store_kind, tmp_path):
    """An orphan blob, a dataset version without its blob, a table without its blob and (AWS: where a
    deletion is several calls) a card's versions without their head: found, then repaired where possible."""
    owner = make_user()
    await store.create_user(owner)
    dataset, version = make_dataset(owner)
    await store.create_dataset(dataset, version)  # its blob never arrived
    await blob(store, tmp_path, "datasets/0123456789abcdef0123456789abcdef/v1-orphan.parquet")
    table = make_table(owner.id, "2026-01-01T00:00:00.000Z")
    await store.put_output_table(table)  # its blob never arrived
    card, card_version = make_card(owner)
    await store.create_card(card, card_version)
    if store_kind == "aws":  # a deletion cut short after the head
        store._dynamodb.delete_item(TableName=store._table("cards"), Key={"pk": {"S": f"CARD#{card.id}"},
                                                                         "sk": {"S": "META"}})
    assert "orphan_blob" not in {p.kind for p in await fsck(store)}, "a young blob may be an upload's"
    found = sorted((p.kind, p.subject, p.repaired) for p in await fsck(store, grace_seconds=0))
    expected = [("blob_missing", version.blob_key, False), ("broken_table", table.output_id, False),
                ("orphan_blob", "datasets/0123456789abcdef0123456789abcdef/v1-orphan.parquet", False)]
    if store_kind == "aws":  # still listed, too (finishing the deletion takes it off the lists)
        expected[2:2] = [("headless", f"card/{card.id}", False), ("listed_orphan", f"card/{card.id}", False)]
    assert found == expected

    repaired = sorted((p.kind, p.repaired) for p in await fsck(store, repair=True, grace_seconds=0))
    assert repaired == sorted((kind, kind != "blob_missing") for kind, _, _ in expected if kind != "listed_orphan")
    assert [(p.kind, p.subject) for p in await fsck(store, grace_seconds=0)] == [("blob_missing", version.blob_key)]
    assert await store.list_card_versions(card.id) == ([] if store_kind == "aws" else [card_version])


async def test_finds_and_repairs_the_lists(store, store_kind):
    """A card missing from the lists (its entry never written after its record), one listed as it was before
    its last change (AWS, where the entry is written after the record) and the entry of a card that is gone:
    found, and repaired from the records as they are now."""
    owner = make_user()
    await store.create_user(owner)
    unlisted, unlisted_version = make_card(owner)
    ghost, ghost_version = make_card(owner)
    for card, version in ((unlisted, unlisted_version), (ghost, ghost_version)):
        await store.create_card(card, version)
    stale, _ = make_card(owner)
    await store.create_card(stale, make_card_version(stale.id, 1, owner))
    if store_kind == "aws":
        store._catalogue.delete("card", unlisted.id)
        await store.add_card_version(make_card_version(stale.id, 2, owner), 1)
        store._catalogue.write(card_entry(stale, make_card_version(stale.id, 1, owner)), dataclasses.asdict(stale))
        store._dynamodb.delete_item(TableName=store._table("cards"), Key={"pk": {"S": f"CARD#{ghost.id}"},
                                                                         "sk": {"S": "META"}})
        store._dynamodb.delete_item(TableName=store._table("cards"), Key={"pk": {"S": f"CARD#{ghost.id}"},
                                                                         "sk": {"S": "VERSION#000001"}})
    else:  # only a hand-made change does it here: records and entries are written together
        await store._run(store._query, "DELETE FROM catalog WHERE id = ?", unlisted.id)
        await store._run(store._query, "DELETE FROM cards WHERE id = ?", ghost.id)

    def listed() -> list[str]:
        return sorted(listed.record.id for listed in page.items)

    page = await store.page_cards(ListQuery((Scope("all"),), limit=10))
    assert unlisted.id not in listed() and (ghost.id in listed()) == (store_kind == "aws"), "SQLite joins the heads"
    expected = sorted([("unlisted", f"card/{unlisted.id}"), ("listed_orphan", f"card/{ghost.id}")]
                      + ([("unlisted", f"card/{stale.id}")] if store_kind == "aws" else []))
    gaps = [(p.kind, p.subject) for p in await fsck(store, grace_seconds=0) if p.kind in ("unlisted", "listed_orphan")]
    assert sorted(gaps) == expected
    repaired = await fsck(store, repair=True, grace_seconds=0)
    assert sorted((p.kind, p.subject) for p in repaired if p.repaired and p.kind != "orphan_blob") == expected
    page = await store.page_cards(ListQuery((Scope("all"),), limit=10))
    assert listed() == sorted([unlisted.id, stale.id])
    assert [c.record.current_version for c in page.items if c.record.id == stale.id] == [2 if store_kind == "aws" else 1]
    assert not [p for p in await fsck(store, grace_seconds=0) if p.kind in ("unlisted", "listed_orphan")]


def test_bi_fsck_exits_1_while_problems_are_left(tmp_path):
    """The command prints each problem and exits 1 until none is left unrepaired."""
    data = tmp_path / "data"
    orphan = data / "blobs" / "tables" / "0123.arrow"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x")

    def bi(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*BI, "fsck", "--data-dir", str(data), "--grace=0",
                               *args], capture_output=True, text=True, cwd=ROOT, timeout=120,
                              env={"PATH": "/usr/bin:/bin", **AWS_TEST_ENV})

    found = bi()
    assert (found.returncode, found.stdout) == (1, "orphan_blob\ttables/0123.arrow\tfound\n"), found.stderr
    repaired = bi("--repair")
    assert (repaired.returncode, repaired.stdout) == (0, "orphan_blob\ttables/0123.arrow\trepaired\n")
    assert not orphan.exists()
