"""``bi fsck``: find (and with ``repair``, fix) what store faults can leave behind, in either store.

Writes are ordered so that a fault leaves the old state or the new one plus garbage
(``services/store_writes.py``); this is the sweeper of that garbage, and the check that nothing
worse happened:

- ``blob_missing``: a dataset version whose Parquet blob is gone. Not repairable here: restore the
  blob's previous S3 object version (the buckets keep them, ``ops/RUNBOOK.md``), or delete the dataset.
- ``orphan_blob``: a blob no record points to (a write that failed after its blob was stored, a
  deletion cut short). Repair deletes it; blobs younger than ``grace_seconds`` are left alone, as an
  upload may be about to write their record.
- ``broken_table``: an output table whose blob is gone. Repair deletes the record (its rows are 404,
  and a cached result of it is a miss). A cached result whose blob is gone is a miss by itself
  (``services/card_runs.py``), replaced by the next run.
- ``headless``: versions (or shares) of a dataset, card or dashboard whose head is gone (a deletion
  cut short). Repair finishes the deletion.
- ``unlisted``: a dataset, card or dashboard missing from the lists, or listed as it was before its last
  change (its catalogue entry was not written after its record, or the record landed late: a write whose
  attempts timed out can commit after the service answered 503); ``listed_orphan``: list entries of a
  record that is gone. Repair writes the entry from the record as it is now, or deletes it.
"""

from __future__ import annotations

import dataclasses
import time

from ..storage.base import Store

GRACE_SECONDS = 3600.0
ORPHAN_PREFIXES = ("datasets/", "results/", "tables/")


@dataclasses.dataclass(frozen=True)
class Problem:
    kind: str  # blob_missing, orphan_blob, broken_table, headless, unlisted, listed_orphan
    subject: str  # the blob key, record id or "noun/id"
    repaired: bool = False

    def line(self) -> str:
        return f"{self.kind}\t{self.subject}\t{'repaired' if self.repaired else 'found'}"


async def fsck(store: Store, repair: bool = False, grace_seconds: float = GRACE_SECONDS) -> list[Problem]:
    """Every inconsistency found (repaired, if ``repair`` and it can be), in a stable order."""
    problems = await _headless(store, repair)
    for gap in await store.catalogue_gaps():
        if repair:
            await store.relist(gap)
        problems.append(Problem(gap.problem, f"{gap.kind}/{gap.id}", repair))
    referenced: set[str] = set()
    blobs = {key: stored for prefix in ORPHAN_PREFIXES for key, stored in await store.list_blobs(prefix)}

    for dataset in await store.list_datasets():
        for version in await store.list_dataset_versions(dataset.id):
            referenced.add(version.blob_key)
            if version.blob_key not in blobs:
                problems.append(Problem("blob_missing", version.blob_key))
    for user in await store.list_users():
        for table in await store.list_output_tables(user.id):
            referenced.add(table.blob_key)
            if table.blob_key not in blobs:
                if repair:
                    await store.delete_output_table(table.output_id)
                problems.append(Problem("broken_table", table.output_id, repair))
    for key in blobs:
        if key.startswith("results/"):  # results/<cache key>/<n>.json: only the record of that key points to it
            result = await store.get_cached_result(key.split("/")[1])
            if result is not None and result.blob_key == key:
                referenced.add(key)
    settled = time.time() - grace_seconds
    for key, stored in sorted(blobs.items()):
        if key not in referenced and stored < settled:
            if repair:
                await store.delete_blob(key)
            problems.append(Problem("orphan_blob", key, repair))
    return problems


async def _headless(store: Store, repair: bool) -> list[Problem]:
    problems = []
    for noun, record_id in await store.list_headless():
        if repair:
            if noun == "dataset":
                for version in await store.delete_dataset(record_id):
                    await store.delete_blob(version.blob_key)
            elif noun == "card":
                await store.delete_card(record_id)
            else:  # a dashboard's versions, or its shares
                await store.delete_dashboard(record_id)
        problems.append(Problem("headless", f"{noun}/{record_id}", repair))
    return problems
