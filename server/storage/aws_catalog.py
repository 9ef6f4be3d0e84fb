"""The AWS store's catalogue (``storage/catalog.py``): every list page is one Query of one partition of
the ``catalog`` table, never a Scan.

An entry is written as one item per list the record is on and per sort, each holding the record's head
(``head``, its fields as JSON) and its search text, so a page is a Query of ``limit + 1`` items:

=================================================  ================  =====================================
pk                                                 sk                list
=================================================  ================  =====================================
``<kind>#<S>#ALL``                                 ``<key>#<id>``    every record of the kind (admins)
``<kind>#<S>#OWNER#<owner>``                       ``<key>#<id>``    an owner's
``<kind>#<S>#ALL#<facet>#<value>``                 ``<key>#<id>``    a tag's, a dataset's (admins)
``<kind>#<S>#OWNER#<owner>#<facet>#<value>``       ``<key>#<id>``    an owner's with a tag, a dataset
``ENTRY#<kind>#<id>``                              ``ENTRY``         the entry with its head (rewrites, shares)
=================================================  ================  =====================================

``<S>`` is ``U`` (key: the updated time, Query newest first) or ``T`` (key: the title; titles compare by
their UTF-8 bytes, which is code-point order). Dashboards shared with a user come from the shares table: one
Query of the user's share items, paged in memory (a user has few: one call reads up to 1 MB, about a thousand).
Each of those items carries a copy of its dashboard's entry (``listed``, the ENTRY item's fields as JSON but its
search text, ``listed_search``, read only by a search, and ``listed_version``, the dashboard version it is of),
with the permission the share grants. A grant copies the
entry in the transaction that writes the share, on the condition that the entry is still the one it read; every
write of a dashboard's entry then copies it to the items of the dashboard's shares that exist, on the condition
that they hold an older version (``copy_to_shares``). So a revoked share's item, deleted with the share, is never
written again; and a grant that meets a save either is seen by the save's copy or sees the saved entry. An item
without a copy (a share made before copies, until ``bi init-tables`` copies them) is listed from its dashboard's
entry (BatchGetItem). A search filters the
list's Query (``contains`` on the folded text) page after page until the page is full, so it reads more
than it returns: about ``(limit + 1) / s`` items for a term in a share ``s`` of the list (flat as the list
grows), the whole partition for a term found nowhere; ``bench/catalogue.py`` reports the read units.

Why not a bigram index (a posting item per distinct NFKC-folded bigram of the text, per list and sort):
every save would rewrite all of them (the updated sort key moves), about 56 items for a 15-character card
title and thousands for a dashboard with a long description (up to 5,000 characters), against 8 to 16
list items now; 100,000 cards would hold 5 to 6 million postings. That write cost is paid on every save of
every record, the filter's read cost only by searches, and mostly by admins' whole-catalogue searches for
rare terms. A member's search reads their own partition (hundreds of items, a few read units).

Entries are written after the record's own transaction, not in it (a list item per facet can pass
DynamoDB's 100 actions): a crash in between leaves the record's lists stale until its next change.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from ..models import Permission
from ..paging import ListQuery, Scope, follows
from .catalog import DASHBOARD, CatalogEntry, ItemMaker, matching

T = TypeVar("T")
BATCH_WRITE_LIMIT = 25
BATCH_GET_LIMIT = 100
TRANSACTION_LIMIT = 100
ATTEMPTS = 5
Transact = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]  # actions -> cancellation reasons ([]: done)


def _projection(*attributes: str) -> dict[str, Any]:
    """The parameters of a read of only ``attributes`` (by placeholder names: some are reserved words)."""
    return {"ProjectionExpression": ", ".join(f"#{name}" for name in attributes),
            "ExpressionAttributeNames": {f"#{name}": name for name in attributes}}


ENTRY_FIELDS = ("kind", "id", "owner_id", "title", "search", "updated_at", "facets", "head", "summary")
ENTRY_PROJECTION = _projection(*(name for name in ENTRY_FIELDS if name != "search"))
LIST_PROJECTION = _projection("sk", "head", "summary")  # what a page reads of a list item

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _item(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in values.items()}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def list_keys(entry: CatalogEntry) -> list[dict[str, str]]:
    """The keys of the list items of ``entry``."""
    lists = ["ALL", f"OWNER#{entry.owner_id}"]
    for facet, value in entry.facets:
        lists += [f"ALL#{facet}#{value}", f"OWNER#{entry.owner_id}#{facet}#{value}"]
    return [{"pk": f"{entry.kind}#{sort}#{name}", "sk": f"{key}#{entry.id}"}
            for sort, key in (("U", entry.updated_at), ("T", entry.title)) for name in lists]


def _entry_key(kind: str, record_id: str) -> dict[str, str]:
    return {"pk": f"ENTRY#{kind}#{record_id}", "sk": "ENTRY"}


def shared_copy(fields: dict[str, Any]) -> dict[str, Any]:
    """What the item of a dashboard's share under its grantee carries of the dashboard's entry (its ENTRY item's
    ``fields``): the entry but its search text (``listed``), that text apart (``listed_search``: read only by a
    search), and the dashboard version it is of."""
    entry = {name: fields[name] for name in ENTRY_FIELDS if name != "search"}
    return {"listed": json.dumps(entry, ensure_ascii=False), "listed_search": fields["search"],
            "listed_version": json.loads(entry["head"])["current_version"]}


def _entry_of(fields: dict[str, Any]) -> CatalogEntry:
    return CatalogEntry(fields["kind"], fields["id"], fields["owner_id"], fields["title"], fields.get("search", ""),
                        fields["updated_at"], tuple((facet, value) for facet, value in fields["facets"]),
                        json.loads(fields.get("summary", "{}")))


class DynamoCatalog:
    """Writes and pages the catalogue in table ``table`` with the store's DynamoDB ``client``."""

    def __init__(self, client: Any, table: str, shares_table: str, transact: Transact):
        self.client = client
        self.table = table
        self.shares_table = shares_table
        self.transact = transact

    # writes ------------------------------------------------------------------
    def write(self, entry: CatalogEntry, head: dict[str, Any], new: bool = False,
              old: tuple[CatalogEntry, dict[str, Any]] | None = None) -> None:
        """Put ``entry`` with the record's ``head`` fields; list items it no longer has are deleted (none
        for a ``new`` record: its earlier entry is not read; nor when the caller read it already, ``old``)."""
        old = old or (None if new else self.entry(entry.kind, entry.id))
        keys = list_keys(entry)
        stale = [key for key in (list_keys(old[0]) if old else []) if key not in keys]
        fields = {"head": json.dumps(head, ensure_ascii=False), "search": entry.search,
                  "summary": json.dumps(entry.summary, ensure_ascii=False)}
        record = {"kind": entry.kind, "id": entry.id, "owner_id": entry.owner_id, "title": entry.title,
                  "search": entry.search, "updated_at": entry.updated_at,
                  "facets": [list(facet) for facet in entry.facets], "head": fields["head"], "summary": fields["summary"]}
        self._batch_write([{"PutRequest": {"Item": _item({**key, **fields})}} for key in keys]
                          + [{"PutRequest": {"Item": _item({**_entry_key(entry.kind, entry.id), **record})}}]
                          + [{"DeleteRequest": {"Key": _item(key)}} for key in stale])
        if entry.kind == DASHBOARD and not new:
            self.copy_to_shares(entry.id, shared_copy(record))

    def copy_to_shares(self, dashboard_id: str, copy: dict[str, Any]) -> None:
        """Give the items of the dashboard's shares under their grantees ``copy`` (``shared_copy``) where they exist
        and hold an older one: one Query of the shares, then transactions of up to 100 updates (a cancelled one is
        run again without the items whose condition failed)."""
        users = [_plain(item)["user_id"] for item in self._query_all({
            "TableName": self.shares_table, "ConsistentRead": True, **_projection("user_id"),
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": _item({":pk": f"DASHBOARD#{dashboard_id}", ":prefix": "USER#"})})]
        values = _item({":listed": copy["listed"], ":search": copy["listed_search"], ":version": copy["listed_version"]})
        pending = [{"Update": {
            "TableName": self.shares_table, "Key": _item({"pk": f"USER#{user_id}", "sk": f"DASHBOARD#{dashboard_id}"}),
            "UpdateExpression": "SET listed = :listed, listed_search = :search, listed_version = :version",
            "ConditionExpression": "attribute_exists(pk) AND "
                                   "(attribute_not_exists(listed_version) OR listed_version < :version)",
            "ExpressionAttributeValues": values}} for user_id in users]
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(min(0.05 * 2 ** attempt, 2.0))
            left = []
            for start in range(0, len(pending), TRANSACTION_LIMIT):
                chunk = pending[start:start + TRANSACTION_LIMIT]
                reasons = self.transact(chunk)
                if reasons:  # cancelled: again, without the items whose condition failed
                    left += [action for action, reason in zip(chunk, reasons, strict=True)
                             if reason.get("Code") != "ConditionalCheckFailed"]
            if not left:
                return
            pending = left
        raise RuntimeError(f"DynamoDB left copies of a dashboard's entry unwritten after {ATTEMPTS} rounds.")

    def delete(self, kind: str, record_id: str) -> None:
        old = self.entry(kind, record_id)
        if old is not None:
            self._batch_write([{"DeleteRequest": {"Key": _item(key)}}
                               for key in [*list_keys(old[0]), _entry_key(kind, record_id)]])

    def entry(self, kind: str, record_id: str) -> tuple[CatalogEntry, dict[str, Any]] | None:
        """The record's entry and the head fields written with it, or None."""
        fields = self.entry_fields(kind, record_id)
        return None if fields is None else (_entry_of(fields), json.loads(fields["head"]))

    def entry_fields(self, kind: str, record_id: str) -> dict[str, Any] | None:
        """The fields of the record's ENTRY item, or None."""
        item = self.client.get_item(TableName=self.table, Key=_item(_entry_key(kind, record_id)),
                                    ConsistentRead=True).get("Item")
        return None if item is None else _plain(item)

    @staticmethod
    def entry_unchanged(kind: str, record_id: str, fields: dict[str, Any] | None) -> dict[str, Any]:
        """A transaction's check that the record's ENTRY item is still the one read as ``fields`` (or still missing)."""
        check: dict[str, Any] = {"Key": _item(_entry_key(kind, record_id))}
        if fields is None:
            check["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            check |= {"ConditionExpression": "#head = :head", "ExpressionAttributeNames": {"#head": "head"},
                      "ExpressionAttributeValues": _item({":head": fields["head"]})}
        return check

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        for start in range(0, len(requests), BATCH_WRITE_LIMIT):
            pending: dict[str, Any] = {self.table: requests[start:start + BATCH_WRITE_LIMIT]}
            for attempt in range(ATTEMPTS):
                if attempt:
                    time.sleep(min(0.05 * 2 ** attempt, 2.0))
                pending = self.client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                if not pending:
                    break
            else:
                raise RuntimeError(f"DynamoDB left catalogue writes unprocessed after {ATTEMPTS} rounds.")

    # reads -------------------------------------------------------------------
    def scope(self, kind: str, query: ListQuery, scope: Scope, record: ItemMaker[T]) -> list[tuple[str, str, T]]:
        """The first ``limit + 1`` records of one scope of ``query`` after its cursor, as (key, id, record); each
        made by ``record`` (only what it takes and the keys are read, and the search text of a search)."""
        if scope.kind == "shared":
            pairs = [(entry, record(head, entry.summary, permission))
                     for entry, head, permission in self._shared_entries(kind, scope.user_id, bool(query.search))]
            chosen = matching(pairs, dataclasses.replace(query, scopes=(scope,)), {entry.id for entry, _ in pairs})
            return [triple for triple in chosen if follows(triple[:2], query.after, query.sort)][:query.limit + 1]
        owner = scope.user_id if scope.kind == "owner" else query.owner_id
        if scope.kind == "owner" and query.owner_id not in (None, owner):
            return []
        name = "ALL" if owner is None else f"OWNER#{owner}"
        facet = ("tag", query.tag) if query.tag is not None else (
            ("dataset", query.dataset_id) if query.dataset_id is not None else None)
        if facet is not None:
            name += f"#{facet[0]}#{facet[1]}"
        descending = query.sort == "updated"
        condition, values = "pk = :pk", {":pk": f"{kind}#{'U' if descending else 'T'}#{name}"}
        if query.after is not None:
            condition += f" AND sk {'<' if descending else '>'} :after"
            values[":after"] = f"{query.after[0]}#{query.after[1]}"
        params: dict[str, Any] = {"TableName": self.table, "KeyConditionExpression": condition,
                                  "ScanIndexForward": not descending, "Limit": query.limit + 1,
                                  "ConsistentRead": True, **LIST_PROJECTION}
        if query.search:
            params["FilterExpression"] = "contains(#search, :q)"
            params["ExpressionAttributeNames"] = {**LIST_PROJECTION["ExpressionAttributeNames"], "#search": "search"}
            values[":q"] = query.search
        params["ExpressionAttributeValues"] = _item(values)
        found: list[tuple[str, str, T]] = []
        while len(found) <= query.limit:
            response = self.client.query(**params)
            for item in response["Items"]:
                fields = _plain(item)
                key, _, record_id = fields["sk"].rpartition("#")
                found.append((key, record_id, record(json.loads(fields["head"]), json.loads(fields.get("summary", "{}")),
                                                     None)))
            if "LastEvaluatedKey" not in response:
                break
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return found[:query.limit + 1]

    def _shared_entries(self, kind: str, user_id: str,
                        search: bool) -> list[tuple[CatalogEntry, dict[str, Any], Permission]]:
        """The entries of the dashboards shared with ``user_id`` and the permissions their shares grant: one Query of
        the user's share items, which carry copies of the entries; the entries of those without one by BatchGetItem
        (without their search text unless ``search``)."""
        found, missing = [], {}
        for item in self._query_all({
                "TableName": self.shares_table, "ConsistentRead": True,
                **_projection("dashboard_id", "permission", "listed", *(("listed_search",) if search else ())),
                "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                "ExpressionAttributeValues": _item({":pk": f"USER#{user_id}", ":prefix": "DASHBOARD#"})}):
            fields = _plain(item)
            if "listed" in fields:
                entry = {**json.loads(fields["listed"]), "search": fields.get("listed_search", "")}
                found.append((_entry_of(entry), json.loads(entry["head"]), fields["permission"]))
            else:
                missing[fields["dashboard_id"]] = fields["permission"]
        ids = list(missing)
        for start in range(0, len(ids), BATCH_GET_LIMIT):
            pending: dict[str, Any] = {self.table: {"Keys": [_item(_entry_key(kind, i)) for i in ids[start:start + BATCH_GET_LIMIT]],
                                                    "ConsistentRead": True, **({} if search else ENTRY_PROJECTION)}}
            while pending:
                response = self.client.batch_get_item(RequestItems=pending)
                for item in response["Responses"].get(self.table, []):
                    fields = _plain(item)
                    found.append((_entry_of(fields), json.loads(fields["head"]), missing[fields["id"]]))
                pending = response.get("UnprocessedKeys") or {}
        return found

    def _query_all(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every item a Query of ``params`` finds (a call per 1 MB)."""
        items: list[dict[str, Any]] = []
        while True:
            response = self.client.query(**params)
            items += response["Items"]
            if "LastEvaluatedKey" not in response:
                return items
            params = {**params, "ExclusiveStartKey": response["LastEvaluatedKey"]}
