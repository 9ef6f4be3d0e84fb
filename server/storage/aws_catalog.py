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
their UTF-8 bytes, which is code-point order). Dashboards shared with a user come from the shares table
(one Query) and their entries (BatchGetItem), paged in memory: a user has few. A search filters the
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

from ..paging import ListQuery, Scope, follows
from .catalog import CatalogEntry, matching

T = TypeVar("T")
BATCH_WRITE_LIMIT = 25
BATCH_GET_LIMIT = 100
ATTEMPTS = 5


def _projection(*attributes: str) -> dict[str, Any]:
    """The parameters of a read of only ``attributes`` (by placeholder names: some are reserved words)."""
    return {"ProjectionExpression": ", ".join(f"#{name}" for name in attributes),
            "ExpressionAttributeNames": {f"#{name}": name for name in attributes}}


ENTRY_PROJECTION = _projection("kind", "id", "owner_id", "title", "updated_at", "facets", "head", "summary")
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


def _entry_of(fields: dict[str, Any]) -> CatalogEntry:
    return CatalogEntry(fields["kind"], fields["id"], fields["owner_id"], fields["title"], fields.get("search", ""),
                        fields["updated_at"], tuple((facet, value) for facet, value in fields["facets"]),
                        json.loads(fields.get("summary", "{}")))


class DynamoCatalog:
    """Writes and pages the catalogue in table ``table`` with the store's DynamoDB ``client``."""

    def __init__(self, client: Any, table: str, shares_table: str):
        self.client = client
        self.table = table
        self.shares_table = shares_table

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

    def delete(self, kind: str, record_id: str) -> None:
        old = self.entry(kind, record_id)
        if old is not None:
            self._batch_write([{"DeleteRequest": {"Key": _item(key)}}
                               for key in [*list_keys(old[0]), _entry_key(kind, record_id)]])

    def entry(self, kind: str, record_id: str) -> tuple[CatalogEntry, dict[str, Any]] | None:
        """The record's entry and the head fields written with it, or None."""
        item = self.client.get_item(TableName=self.table, Key=_item(_entry_key(kind, record_id)),
                                    ConsistentRead=True).get("Item")
        if item is None:
            return None
        fields = _plain(item)
        return _entry_of(fields), json.loads(fields["head"])

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
    def scope(self, kind: str, query: ListQuery, scope: Scope,
              record: Callable[[dict[str, Any], dict[str, Any]], T]) -> list[tuple[str, str, T]]:
        """The first ``limit + 1`` records of one scope of ``query`` after its cursor, as (key, id, record); each
        made by ``record`` of its head's fields and its summary (only those and the keys are read, and the search
        text of a search)."""
        if scope.kind == "shared":
            pairs = [(entry, record(head, entry.summary))
                     for entry, head in self._shared_entries(kind, scope.user_id, bool(query.search))]
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
                found.append((key, record_id, record(json.loads(fields["head"]), json.loads(fields.get("summary", "{}")))))
            if "LastEvaluatedKey" not in response:
                break
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return found[:query.limit + 1]

    def _shared_entries(self, kind: str, user_id: str, search: bool) -> list[tuple[CatalogEntry, dict[str, Any]]]:
        """The entries of the dashboards shared with ``user_id``: one Query of their shares, then BatchGetItem
        (without their search text unless ``search``)."""
        ids, params = [], {"TableName": self.shares_table, "ConsistentRead": True,
                           "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                           "ExpressionAttributeValues": _item({":pk": f"USER#{user_id}", ":prefix": "DASHBOARD#"})}
        while True:
            response = self.client.query(**params)
            ids += [_plain(item)["dashboard_id"] for item in response["Items"]]
            if "LastEvaluatedKey" not in response:
                break
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        entries = []
        for start in range(0, len(ids), BATCH_GET_LIMIT):
            pending: dict[str, Any] = {self.table: {"Keys": [_item(_entry_key(kind, i)) for i in ids[start:start + BATCH_GET_LIMIT]],
                                                    "ConsistentRead": True, **({} if search else ENTRY_PROJECTION)}}
            while pending:
                response = self.client.batch_get_item(RequestItems=pending)
                for item in response["Responses"].get(self.table, []):
                    fields = _plain(item)
                    entries.append((_entry_of(fields), json.loads(fields["head"])))
                pending = response.get("UnprocessedKeys") or {}
        return entries
