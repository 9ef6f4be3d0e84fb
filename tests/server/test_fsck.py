"""``bi fsck``: what store faults leave behind is found in both stores, and ``--repair`` fixes it."""

from __future__ import annotations

import subprocess

from server.services.fsck import fsck

from ..conftest import AWS_TEST_ENV
from ..serve_process import BI, ROOT
from .storage.test_contract import make_card, make_dataset, make_table, make_user


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
    if store_kind == "aws":
        expected.insert(2, ("headless", f"card/{card.id}", False))
    assert found == expected

    repaired = sorted((p.kind, p.repaired) for p in await fsck(store, repair=True, grace_seconds=0))
    assert repaired == sorted((kind, kind != "blob_missing") for kind, _, _ in expected)
    assert [(p.kind, p.subject) for p in await fsck(store, grace_seconds=0)] == [("blob_missing", version.blob_key)]
    assert await store.list_card_versions(card.id) == ([] if store_kind == "aws" else [card_version])


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
    assert bi().returncode == 0 and not orphan.exists()
