"""The AWS store: DynamoDB tables for records, S3 buckets for blobs.

Every table has a string partition key ``pk`` and sort key ``sk``; one table
holds several kinds of item, told apart by their keys:

==========  ======================  ==================  ===============================
table       pk                      sk                  holds
==========  ======================  ==================  ===============================
users       ``USER#<id>``           ``PROFILE``         the user's fields
users       ``EMAIL#<email>``       ``EMAIL``           ``user_id`` (email uniqueness)
datasets    ``DATASET#<id>``        ``META``            the dataset's fields
datasets    ``DATASET#<id>``        ``VERSION#000001``  a version's fields, zero-padded
datasets    ``OWNER#<owner_id>``    ``NAME#<name>``     ``dataset_id`` (name uniqueness)
cards       ``CARD#<id>``           ``META``            the card's fields
cards       ``CARD#<id>``           ``VERSION#000001``  a version's fields; ``parameters`` as JSON
cards       ``OWNER#<owner_id>``    ``CARD#<id>``       ``card_id`` (the owner's cards)
dashboards  ``DASHBOARD#<id>``      ``META``            the dashboard's fields
dashboards  ``DASHBOARD#<id>``      ``VERSION#000001``  a version's fields; ``document`` as JSON
dashboards  ``OWNER#<owner_id>``    ``DASHBOARD#<id>``  ``dashboard_id`` (the owner's dashboards)
dashboards  ``UID#<uid>``           ``UID``             ``dashboard_id`` (uid uniqueness)
dashboards  ``CARD#<card_id>``      ``DASHBOARD#<id>``  ``dashboard_id`` (the dashboards that hold a card)
dashboards  ``DASHBOARD#<id>``      ``CARD#<card_id>``  the same again (what a save or deletion takes away)
dashboards  ``INDEX#cards``         ``DONE``            ``bi init-tables`` indexed the older dashboards' cards
dashboards  ``REFRESH``             ``DASHBOARD#<id>``  ``every_seconds``, ``created_at`` (the dashboards with a refresh)
dashboards  ``INDEX#refresh``       ``DONE``            ``bi init-tables`` indexed the older dashboards' refreshes
dashboards  ``INDEX#share-copies``  ``DONE``            ``bi init-tables`` copied entries to the older shares
shares      ``DASHBOARD#<id>``      ``USER#<user_id>``  the share's fields (the dashboard's shares)
shares      ``USER#<user_id>``      ``DASHBOARD#<id>``  the same fields again (the user's shares), and a copy
                                                        of the dashboard's catalogue entry (``aws_catalog.py``)
cache       ``RESULT#<key>``        ``RESULT``          a cached card result (outputs: a blob)
cache       ``TABLE#<output_id>``   ``TABLE``           who may page a DataFrame output (rows: a blob)
audit       ``MONTH#<yyyy-mm>``     ``<at>#<id>``       an audit event; ``fields`` as JSON
cache       ``ANSWER#<key>``        ``ANSWER``          an idempotent answer (body zlib-compressed)
tokens      ``SESSION#<id>``        ``SESSION``         a sign-in session (the server side of a refresh token)
tokens      ``TOKEN#<id>``          ``TOKEN``           a personal access token (its secret hashed)
tokens      ``KERNEL#<id>``         ``KERNEL``          a session's kernel record (its HMAC key sealed)
leases      ``LEASE#<name>``        ``LEASE``           holder, version, ``expires_ms``, done, ``purge_at``
==========  ======================  ==================  ===============================

The cache table's items with an ``expires`` attribute (epoch seconds: idempotent answers) are
deleted by DynamoDB's time to live after they expire; reads ignore expired ones before that.

The cache, tokens, users and shares tables have one global secondary index, ``by_group`` (keys ``gpk`` and
``gsk``, all attributes projected), so that what lifetimes need is a Query, never a Scan: a table
item has ``gpk`` ``USER#<user_id>`` and ``gsk`` ``<last_used>#<output_id>`` (a user's tables, least
recently used first), a result item ``gpk`` ``VARIANT#<variant>`` and ``gsk``
``<created_at>#<key>`` (a card's results for some parameter values, newest last), a personal
token ``gpk`` ``USER#<user_id>`` and ``gsk`` ``<created_at>#<id>`` (a user's tokens, oldest
first), a user's profile ``gpk`` ``USERS`` and ``gsk`` ``<created_at>#<id>`` (the users, newest
first), a share's item under its dashboard ``gpk`` ``DASHBOARD#<id>`` and ``gsk``
``<created_at>#<user_id>`` (its shares, newest first). A record's versions page by their own sort keys
(``VERSION#<n>``, newest first). Items of the tokens table carry ``expires`` (epoch seconds), the table's TTL attribute, so
DynamoDB deletes them once they have expired.

The audit table is paged by time: newest first within a month, month after month back to the
retention (at most 13 Queries for a year). Its indexes ``by_user`` (``upk`` ``USER#<user_id>``) and
``by_event`` (``epk`` ``EVENT#<event>``), both sorted by ``sk``, answer a filter by user or event with a
Query; an item expires by TTL on ``expires_at``.

A lease is taken, renewed and finished by conditional updates on its version and expiry
(``expires_ms``, the holders' clocks), and a write under a lease (a cached result) is a transaction
with a condition check on the lease item; DynamoDB's TTL deletes a lease item a day after it
expired (``purge_at``).

Writes that must be unique or that can race are transactions with condition
expressions: the items that point at a head (name, owner and uid items) are written
and deleted in the head's transactions; a share's two items are written in one
transaction that also checks that the dashboard exists, and deleting a dashboard
deletes its head first, then its versions and shares. The card index items of a dashboard version are
written before its transaction and the ones it no longer has deleted after it: a save cut short leaves
items too many, never too few, and readers check the current version (``Store.dashboards_with_card``); so is
a dashboard's refresh item (``Store.refresh_schedules``).

Blobs go to the datasets bucket (keys under ``datasets/``) or the
outputs bucket (everything else) and are read through a local cache under
``data_dir/blob-cache``; keys are never overwritten, so a cached file stays valid.

All boto3 calls run on a thread pool; the clients are thread-safe and retry
with botocore's standard mode. DynamoDB gets short timeouts of its own (its calls are small: a
slow one is better retried), S3 the long ones that blobs need. A call that still fails
(throttling, 5xx, a lost connection, a timeout) raises ``StorageUnavailableError``, whose outcome
is unknown for a write (``maybe_done``) unless DynamoDB refused every attempt: an attempt that timed out may
still land later, so callers undo nothing it could point to (``services/store_writes.py``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import contextlib
import dataclasses
import datetime
import functools
import hashlib
import json
import os
import random
import tempfile
import time
import uuid
import zlib
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from collections.abc import Callable, Collection, Iterator

import boto3
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from boto3.exceptions import S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import (ClientError, ConnectionError as BotoConnectionError, ConnectTimeoutError,
                                 EndpointConnectionError, HTTPClientError)
from traitlets import Float, Int, Unicode, default

from ..environment import setting
from ..errors import ConflictError, LeaseLostError, NotFoundError, StorageUnavailableError, StoreClosedError
from ..logs import get_logger
from ..models import (AuditEvent, AuditQuery, CachedResult, Card, CardVersion, Column, Dashboard, DashboardVersion,
                      Dataset, DatasetVersion, IdempotentAnswer, KernelRecord, Lease, OutputTable, PersonalToken,
                      RefreshSchedule, Share, SignInSession, User, VersionStamp, card_ids, epoch_seconds,
                      refresh_seconds, utcnow)
from ..paging import ListQuery, Page, after_number, number_key, ordered, take
from .aws_catalog import DynamoCatalog, _entry_key as entry_key, list_keys, shared_copy
from .base import LEASE_KEPT_SECONDS, USER_FIELDS, SharesPage, Store, blob_prefix, request_scope
from .catalog import (CARD, DASHBOARD, DATASET, CatalogEntry, CatalogueGap, ItemMaker, Listed, card_entry, dashboard_entry,
                      dataset_entry)
from .versioned import CARDS, DASHBOARDS, DATASETS, Versioned, newest_first

T = TypeVar("T")
Entry = concurrent.futures.Future[tuple[CatalogEntry, dict[str, Any]] | None]  # a catalogue entry read ahead
_FAILED_ATTEMPTS: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar("failed_attempts", default=None)

TABLES = ("users", "datasets", "cards", "dashboards", "shares", "cache", "audit", "tokens", "leases", "catalog")
BLOB_CACHE = "blob-cache"
BATCH_GET_LIMIT = 100
VERSION_DIGITS = 6  # a version item's sort key: VERSION#000001
BATCH_WRITE_LIMIT = 25
# What DynamoDB Local says (UnknownOperationException), and what AWS says for a
# table whose backups are still being set up: both mean "no PITR for now".
PITR_UNAVAILABLE = {"UnknownOperationException", "ContinuousBackupsUnavailableException"}
# Cancellation reasons a caller maps to a domain error; any other reason propagates.
EXPECTED_CANCELLATIONS = {"None", "ConditionalCheckFailed", "TransactionConflict"}
CONFLICT_ATTEMPTS = 3  # tries of a new version's transaction that meets another on its head
RELIST_TRIES = 5  # tries of a catalogue entry's later write while the store fails (late_write_seconds apart)
MISSING_OBJECT = {"404", "NoSuchKey", "NotFound"}
# Error codes that mean "the service could not take the call now", as opposed to "the call is wrong".
THROTTLED = {"Throttling", "ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
             "SlowDown", "TooManyRequestsException", "LimitExceededException"}
# Answers that say the call was not done (a refusal): an attempt that failed any other way (a timeout, a lost
# connection, a 5xx) may have been done, or be done later.
REFUSED = THROTTLED | {"TransactionCanceledException"}
NOT_CONNECTED = (EndpointConnectionError, ConnectTimeoutError)  # never sent
# DynamoDB's answer to a transaction whose ClientRequestToken an earlier attempt still holds (that one may land);
# botocore retries it as throttling.
IN_PROGRESS = "TransactionInProgressException"
UNAVAILABLE = {"InternalError", "InternalServerError", "InternalFailure", "ServiceUnavailable",
               "RequestTimeout", "RequestTimeoutException", IN_PROGRESS}
NONCURRENT_DAYS_DATASETS = 90  # days an overwritten or deleted blob's old version is kept (as the stack has it)
NONCURRENT_DAYS_OUTPUTS = 30
MULTIPART_DAYS = 7  # days before an abandoned multipart upload is aborted
LIFECYCLE_RULE = "expire-old-versions"  # the id of our lifecycle rule in a bucket's rules (the stack's too)
PUBLIC_ACCESS_BLOCK = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
CARD_STAMP = ("version", "title", "created_at", "created_by")  # what a list of versions reads of each
DASHBOARD_STAMP = ("version", "created_at", "created_by")
CARD_INDEX_DONE = {"pk": "INDEX#cards", "sk": "DONE"}  # in the dashboards table once its cards are indexed
REFRESH_INDEX_DONE = {"pk": "INDEX#refresh", "sk": "DONE"}  # and once its refreshes are
SHARE_COPIES_DONE = {"pk": "INDEX#share-copies", "sk": "DONE"}  # and once its shares carry copies of entries
REFRESH_PK = "REFRESH"  # the partition of the dashboards with a refresh
GROUP_INDEX = "by_group"  # the cache table's index of tables by user and results by variant
GROUP_KEYS = ("gpk", "gsk")
AUDIT_INDEXES = {"by_user": "upk", "by_event": "epk"}  # the audit table's indexes and their hash keys
AUDIT_TTL = "expires_at"
EXPIRES = "expires"  # the cache and tokens tables' time-to-live attribute
GROUPED_TABLES = ("cache", "tokens", "users", "shares")  # the tables with the by_group index
TTL_ATTRIBUTES = {"cache": EXPIRES, "tokens": EXPIRES, "audit": AUDIT_TTL, "leases": "purge_at"}  # DynamoDB deletes items past that time

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

log = get_logger("bi.store")


class AWSStore(Store):
    """DynamoDB + S3. ``create_schema()`` (``bi init-tables``) creates the tables and buckets."""

    region_name = Unicode(help="AWS region of the tables and buckets.").tag(config=True)
    dynamodb_endpoint_url = Unicode(help="DynamoDB endpoint; empty for AWS's own.").tag(config=True)
    s3_endpoint_url = Unicode(help="S3 endpoint; empty for AWS's own.").tag(config=True)
    table_prefix = Unicode(help="Prefix of every DynamoDB table name.").tag(config=True)
    datasets_bucket = Unicode(help="S3 bucket for dataset Parquet files.").tag(config=True)
    outputs_bucket = Unicode(help="S3 bucket for large card outputs.").tag(config=True)
    max_attempts = Int(5, help="Attempts per AWS call, the first included (botocore standard retries).").tag(config=True)
    connect_timeout = Float(5.0, help="Seconds to wait for an S3 connection.").tag(config=True)
    read_timeout = Float(30.0, help="Seconds to wait for an S3 response.").tag(config=True)
    dynamodb_connect_timeout = Float(1.5, help="Seconds to wait for a DynamoDB connection.").tag(config=True)
    dynamodb_read_timeout = Float(4.0, help="Seconds to wait for a DynamoDB response; a slower call is "
                                            "retried.").tag(config=True)
    late_write_seconds = Float(help="Seconds after a catalogue write with an attempt that may still land (it timed "
                                    "out, its answer was lost) at which the record's entry is written again from the "
                                    "record; default: twice dynamodb_read_timeout.").tag(config=True)
    max_workers = Int(32, help="Threads (and pooled connections) for AWS calls.").tag(config=True)
    page_size = Int(0, help="Items per DynamoDB Scan/Query page; 0 lets DynamoDB decide.").tag(config=True)

    @default("region_name")
    def _default_region_name(self) -> str:
        return setting("AWS_REGION", "us-east-1")

    @default("late_write_seconds")
    def _default_late_write_seconds(self) -> float:
        return 2 * self.dynamodb_read_timeout

    @default("dynamodb_endpoint_url")
    def _default_dynamodb_endpoint_url(self) -> str:
        return setting("AWS_ENDPOINT_URL_DYNAMODB")

    @default("s3_endpoint_url")
    def _default_s3_endpoint_url(self) -> str:
        return setting("AWS_ENDPOINT_URL_S3")

    @default("table_prefix")
    def _default_table_prefix(self) -> str:
        return setting("BI_TABLE_PREFIX", "bi_")

    @default("datasets_bucket")
    def _default_datasets_bucket(self) -> str:
        return setting("BI_DATASETS_BUCKET", "bi-datasets")

    @default("outputs_bucket")
    def _default_outputs_bucket(self) -> str:
        return setting("BI_OUTPUTS_BUCKET", "bi-outputs")

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._dynamodb: Any = None
        self._s3: Any = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._relists: set[concurrent.futures.Future[None]] = set()  # ``_relist_later``'s, until done

    # plumbing ----------------------------------------------------------------
    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the pool; what the SDK could not get through its retries is ``StorageUnavailableError``."""
        if self._closed or self._executor is None:
            raise StoreClosedError("The store is closed.")
        context = contextvars.copy_context()  # the thread sees the request's (``request_scope``)
        failed: list[bool] = []  # per failed attempt of the SDK's (``_attempt_failed``): whether it may have been done
        context.run(_FAILED_ATTEMPTS.set, failed)
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, functools.partial(context.run, fn, *args))
        except (ClientError, BotoConnectionError, HTTPClientError, S3UploadFailedError) as exc:
            reason = _unavailable(exc)
            if reason is None:
                raise
            for listener in self.failed:
                listener(reason)
            log.warning("store_unavailable", call=getattr(fn, "__name__", "call"), reason=reason, error=str(exc))
            raise StorageUnavailableError("The data store did not answer in time; try again in a few seconds.",
                                          maybe_done=not failed or any(failed)) from exc

    def _table(self, kind: str) -> str:
        return self.table_prefix + kind

    def _connect(self) -> None:
        session = boto3.session.Session(region_name=self.region_name)
        config = Config(
            retries={"mode": "standard", "total_max_attempts": self.max_attempts},
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_pool_connections=self.max_workers,
        )
        self._dynamodb = session.client(
            "dynamodb", endpoint_url=self.dynamodb_endpoint_url or None, config=config.merge(Config(
                connect_timeout=self.dynamodb_connect_timeout, read_timeout=self.dynamodb_read_timeout)))
        if self.s3_endpoint_url:
            # MinIO and moto serve buckets by path, not by virtual host name.
            config = config.merge(Config(s3={"addressing_style": "path"}))
        self._s3 = session.client("s3", endpoint_url=self.s3_endpoint_url or None, config=config)
        for service, client in (("dynamodb", self._dynamodb), ("s3", self._s3)):
            client.meta.events.register("needs-retry", functools.partial(self._attempt_failed, service))

    def _attempt_failed(self, service: str, response: Any = None, caught_exception: Any = None,
                        **kwargs: Any) -> None:
        """Tell ``retried`` of an attempt that failed the way the SDK retries (it decides; this only counts), and
        note for ``_run`` whether each failed attempt may have been done (anything but a refusal or no connection)."""
        code = response[1].get("Error", {}).get("Code") if response is not None else None
        if caught_exception is not None or (response is not None and (
                response[0].status_code >= 500 or code in THROTTLED or code == IN_PROGRESS)):
            for listener in self.retried:
                listener(service)
        failed = _FAILED_ATTEMPTS.get()
        if failed is not None and (caught_exception is not None or code is not None):
            failed.append(not isinstance(caught_exception, NOT_CONNECTED) and code not in REFUSED)

    def _disconnect(self, executor: concurrent.futures.ThreadPoolExecutor) -> None:
        executor.shutdown(wait=True)
        for client in (self._dynamodb, self._s3):
            if client is not None:
                client.close()

    def _get(self, kind: str, key: dict[str, str]) -> dict[str, Any] | None:
        response = self._dynamodb.get_item(
            TableName=self._table(kind), Key=_serialize(key), ConsistentRead=True)
        return response.get("Item")

    def _pages(self, operation: str, kind: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paginated Scan or Query, page after page."""
        paginator = self._dynamodb.get_paginator(operation)
        pages = paginator.paginate(
            TableName=self._table(kind), ConsistentRead=True,
            PaginationConfig={"PageSize": self.page_size or None}, **params)
        for page in pages:
            yield from page["Items"]

    def _scan_sort_key(self, kind: str, sk: str) -> Iterator[dict[str, Any]]:
        return self._pages("scan", kind, FilterExpression="sk = :sk",
                           ExpressionAttributeValues=_serialize({":sk": sk}))

    def _query_prefix(self, kind: str, pk: str, sk_prefix: str) -> Iterator[dict[str, Any]]:
        return self._pages(
            "query", kind, KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=_serialize({":pk": pk, ":prefix": sk_prefix}))

    def _drain(self, call: Callable[..., dict[str, Any]], requests: dict[str, Any],
               leftover: str) -> list[dict[str, Any]]:
        """Repeat a batch call on what DynamoDB left unprocessed, backing off between rounds."""
        responses = []
        for attempt in range(self.max_attempts):
            if attempt:
                time.sleep(random.uniform(0, min(0.05 * 2 ** attempt, 2.0)))  # full jitter
            responses.append(call(RequestItems=requests))
            requests = responses[-1].get(leftover) or {}
            if not requests:
                return responses
        raise StorageUnavailableError("The data store is busy (it left part of a batch undone); try again "
                                      "in a few seconds.")

    def _batch_get(self, kind: str, keys: list[dict[str, str]]) -> list[dict[str, Any]]:
        return self._batch_get_tables({kind: keys})[kind]

    def _batch_get_tables(self, keys: dict[str, list[dict[str, str]]]) -> dict[str, list[dict[str, Any]]]:
        """The items of ``keys`` (by table kind) that exist: BatchGetItem, one call per 100 keys of any tables."""
        wanted = [(kind, key) for kind, kind_keys in keys.items() for key in kind_keys]
        items: dict[str, list[dict[str, Any]]] = {kind: [] for kind in keys}
        kinds = {self._table(kind): kind for kind in keys}
        for start in range(0, len(wanted), BATCH_GET_LIMIT):
            requests: dict[str, Any] = {}
            for kind, key in wanted[start:start + BATCH_GET_LIMIT]:
                requests.setdefault(self._table(kind), {"Keys": [], "ConsistentRead": True})["Keys"].append(_serialize(key))
            for response in self._drain(self._dynamodb.batch_get_item, requests, "UnprocessedKeys"):
                for table, found in response["Responses"].items():
                    items[kinds[table]].extend(found)
        return items

    def _batch_get_by_key(self, kind: str, keys: list[dict[str, str]]) -> list[dict[str, Any] | None]:
        """The items of ``keys`` in their order (None where missing): BatchGetItem, one call per 100 keys."""
        unique = list({(key["pk"], key["sk"]): key for key in keys}.values())  # BatchGetItem refuses repeats
        found = {(item["pk"]["S"], item["sk"]["S"]): item for item in self._batch_get(kind, unique)}
        return [found.get((key["pk"], key["sk"])) for key in keys]

    def _batch_delete(self, kind: str, keys: list[dict[str, str]]) -> None:
        table = self._table(kind)
        for start in range(0, len(keys), BATCH_WRITE_LIMIT):
            chunk = [{"DeleteRequest": {"Key": _serialize(key)}}
                     for key in keys[start:start + BATCH_WRITE_LIMIT]]
            self._drain(self._dynamodb.batch_write_item, {table: chunk}, "UnprocessedItems")

    def _transact(self, actions: list[dict[str, Any]], gone_is_done: bool = False) -> list[dict[str, Any]]:
        """Run a write transaction: ``[]`` when it commits, else the cancellation reasons.

        Reasons other than a failed condition or a conflicting transaction propagate. Its
        ``ClientRequestToken`` derives from the request and the actions: a repeat of the same write for
        the same request (botocore's retries, a repeat after an answer was lost) is answered by
        DynamoDB from the first, within its 10 minutes, instead of running again; while the first is still
        in progress, by ``TransactionInProgressException`` (retried; past the attempts, the outcome is unknown).

        A cancellation that follows an attempt of this call that may have landed (a timeout, a lost answer) may
        be that attempt's own doing (one that landed while the token's answer was out of reach, or a store
        that does not keep tokens): it is no conflict but an unknown outcome, ``StorageUnavailableError``
        (maybe done), which the services settle by reading back. With ``gone_is_done`` (the conditions only
        check that what is deleted is there) such a failed condition means done: ``[]``.
        """
        scope = request_scope.get() or uuid.uuid4().hex
        token = hashlib.sha256(f"{scope}\n{json.dumps(actions, sort_keys=True, default=str)}".encode())
        mark = _attempts()
        try:
            self._dynamodb.transact_write_items(TransactItems=actions, ClientRequestToken=token.hexdigest()[:36])
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons", [])
            if _code(exc) != "TransactionCanceledException" or not reasons or any(
                    reason.get("Code") not in EXPECTED_CANCELLATIONS for reason in reasons):
                raise
            if not _maybe_landed(mark):
                return reasons
            codes = [reason.get("Code", "") for reason in reasons]
            if gone_is_done and set(codes) <= {"None", "ConditionalCheckFailed"}:
                return []
            log.warning("store_write_in_doubt", reasons=codes)
            raise StorageUnavailableError("The data store did not answer in time; try again in a few seconds.",
                                          maybe_done=True) from None
        return []

    # lifecycle ---------------------------------------------------------------
    async def open(self) -> None:
        if self._closed:
            raise StoreClosedError("The store is closed.")
        if self._executor is not None:
            return
        self._executor = concurrent.futures.ThreadPoolExecutor(
            self.max_workers, thread_name_prefix="aws-store")
        self._loop = asyncio.get_running_loop()
        await self._run(self._connect)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for relist in list(self._relists):
            relist.cancel()
        if self._executor is not None:
            await asyncio.to_thread(self._disconnect, self._executor)

    async def ping(self) -> None:
        await self._run(self._ping)

    def _ping(self) -> None:
        """A read of an item that never exists (half a read unit) and a HEAD of the datasets bucket."""
        self._dynamodb.get_item(TableName=self._table("users"), Key=_serialize({"pk": "PING", "sk": "PING"}))
        self._s3.head_bucket(Bucket=self.datasets_bucket)

    async def create_schema(self, tables: bool = True, buckets: bool = True) -> None:
        await self.open()
        if tables:
            await self._run(self._create_tables)
        if buckets:
            await self._run(self._create_buckets)

    def _create_tables(self) -> None:
        names = [self._table(kind) for kind in TABLES]
        created = [name for name in names if self._create_table(name)]
        waiter = self._dynamodb.get_waiter("table_exists")
        for name in names:
            waiter.wait(TableName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 60})
        for kind in GROUPED_TABLES:
            if self._table(kind) not in created:
                self._add_group_index(self._table(kind))
                if kind in GROUP_BACKFILLS:
                    self._backfill_group(kind)
        if self._table("audit") not in created:
            self._add_audit_indexes(self._table("audit"))
        for kind, attribute in TTL_ATTRIBUTES.items():
            self._enable_ttl(self._table(kind), attribute)
        if self._table("catalog") in created and len(created) < len(names):  # added to tables holding records
            self._backfill_catalog()
        if self._table("dashboards") not in created:
            self._backfill_dashboard_indexes()
        for name in names:
            self._enable_pitr(name)
        if created:
            self.log.info("Created DynamoDB tables: %s", ", ".join(created))

    def _create_table(self, name: str) -> bool:
        """Create one table (the grouped ones and the audit table with their indexes); False if it already exists."""
        grouped = {self._table(kind) for kind in GROUPED_TABLES}
        indexes = [_GROUP_INDEX] if name in grouped else _AUDIT_INDEXES if name == self._table("audit") else []
        index = {"GlobalSecondaryIndexes": indexes} if indexes else {}
        try:
            self._dynamodb.create_table(
                TableName=name,
                AttributeDefinitions=_key_attributes("pk", "sk", *_secondary_keys(indexes)),
                KeySchema=_key_schema("pk", "sk"),
                BillingMode="PAY_PER_REQUEST",
                **index,
            )
        except ClientError as exc:
            if _code(exc) == "ResourceInUseException":
                return False
            raise
        return True

    def _add_group_index(self, name: str) -> None:
        """Add the group index to a table made before it; it serves once DynamoDB has built it."""
        table = self._dynamodb.describe_table(TableName=name)["Table"]
        if any(index["IndexName"] == GROUP_INDEX for index in table.get("GlobalSecondaryIndexes", [])):
            return
        self._dynamodb.update_table(TableName=name, AttributeDefinitions=_key_attributes(*GROUP_KEYS),
                                    GlobalSecondaryIndexUpdates=[{"Create": _GROUP_INDEX}])
        self.log.info("Adding index %s to DynamoDB table %s", GROUP_INDEX, name)

    def _backfill_group(self, kind: str) -> None:
        """Give the items written before the table had its group index (or by tasks of the image before) their
        group keys: one Scan of the items without them, on every ``bi init-tables``, writing only those."""
        written = 0
        for item in self._pages("scan", kind, FilterExpression="attribute_not_exists(gpk)"):
            group = GROUP_BACKFILLS[kind](item)
            if group is None:
                continue
            with contextlib.suppress(ClientError):  # gone meanwhile (the condition): nothing to list
                self._dynamodb.update_item(
                    TableName=self._table(kind), Key={"pk": item["pk"], "sk": item["sk"]},
                    UpdateExpression="SET gpk = :gpk, gsk = :gsk", ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeValues=_serialize({":gpk": group["gpk"], ":gsk": group["gsk"]}))
                written += 1
        if written:
            self.log.info("Gave %d items of DynamoDB table %s their by_group keys", written, self._table(kind))

    def _add_audit_indexes(self, name: str) -> None:
        """Add the audit table's indexes to a table made before them, one per run while one is being built."""
        table = self._dynamodb.describe_table(TableName=name)["Table"]
        existing = {index["IndexName"]: index.get("IndexStatus") for index in table.get("GlobalSecondaryIndexes", [])}
        for index in _AUDIT_INDEXES:
            if index["IndexName"] in existing:
                continue
            if "CREATING" in existing.values():
                self.log.warning("Index %s of DynamoDB table %s waits for another index to be built; run "
                                 "create_schema again later.", index["IndexName"], name)
                return
            self._dynamodb.update_table(TableName=name, AttributeDefinitions=_key_attributes(*_secondary_keys([index])),
                                        GlobalSecondaryIndexUpdates=[{"Create": index}])
            self.log.info("Adding index %s to DynamoDB table %s", index["IndexName"], name)
            existing[index["IndexName"]] = "CREATING"

    def _enable_ttl(self, name: str, attribute: str) -> None:
        """Let DynamoDB delete the table's items once the epoch seconds in ``attribute`` have passed."""
        try:
            self._dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute})
        except ClientError as exc:
            if _code(exc) != "ValidationException":  # already enabled
                raise

    def _enable_pitr(self, name: str) -> None:
        """Turn point-in-time recovery on; warn and go on where the endpoint cannot."""
        try:
            self._dynamodb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
        except ClientError as exc:
            if _code(exc) not in PITR_UNAVAILABLE:
                raise
            self.log.warning("Point-in-time recovery is not available for table %s (%s);"
                             " run create_schema again to retry.", name, _code(exc))

    def _create_buckets(self) -> None:
        """Create missing buckets and secure them; every bucket, an existing one too, gets the lifecycle rules."""
        names = list(dict.fromkeys([self.datasets_bucket, self.outputs_bucket]))
        created = [name for name in names if self._create_bucket(name)]
        for name in created:
            self._secure_bucket(name)
        for name in names:
            self._keep_lifecycle(name)
        if created:
            self.log.info("Created S3 buckets: %s", ", ".join(created))

    def _create_bucket(self, name: str) -> bool:
        """Create one bucket; False if it is already ours."""
        try:
            self._s3.head_bucket(Bucket=name)
            return False
        except ClientError as exc:
            if _code(exc) not in MISSING_OBJECT:
                raise
        location = ({} if self.region_name == "us-east-1" else
                    {"CreateBucketConfiguration": {"LocationConstraint": self.region_name}})
        try:
            self._s3.create_bucket(Bucket=name, **location)
        except ClientError as exc:
            if _code(exc) == "BucketAlreadyOwnedByYou":
                return False
            raise
        return True

    def _secure_bucket(self, name: str) -> None:
        """Versioned, encrypted and private."""
        self._s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        self._s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
        self._s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={
            setting_name: True for setting_name in PUBLIC_ACCESS_BLOCK})

    def _keep_lifecycle(self, name: str) -> None:
        """Give the bucket the stack's lifecycle actions (``ops/cloudformation``): old versions (a deleted blob's
        too) expire, abandoned multipart uploads are aborted. The operator's rules stay as they are, and an action
        one of them already takes on the whole bucket is theirs; ours go in one rule (``LIFECYCLE_RULE``)."""
        try:
            rules = self._s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
        except ClientError as exc:
            if _code(exc) != "NoSuchLifecycleConfiguration":
                raise
            rules = []
        theirs = [rule for rule in rules if rule.get("ID") != LIFECYCLE_RULE]
        taken = {action for rule in theirs if rule.get("Status") == "Enabled" and _whole_bucket(rule)
                 for action in rule}
        days = NONCURRENT_DAYS_DATASETS if name == self.datasets_bucket else NONCURRENT_DAYS_OUTPUTS
        actions = {action: value for action, value in (
            ("NoncurrentVersionExpiration", {"NoncurrentDays": days}),
            ("AbortIncompleteMultipartUpload", {"DaysAfterInitiation": MULTIPART_DAYS})) if action not in taken}
        ours = [{"ID": LIFECYCLE_RULE, "Status": "Enabled", "Filter": {"Prefix": ""}, **actions}] if actions else []
        if theirs + ours != rules:
            self._s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": theirs + ours})
            self.log.info("Lifecycle rule %s of S3 bucket %s takes: %s", LIFECYCLE_RULE, name,
                          ", ".join(actions) or "nothing (rules of the bucket's own do)")

    # users -------------------------------------------------------------------
    async def create_user(self, user: User) -> None:
        await self._run(self._create_user, user)

    def _create_user(self, user: User) -> None:
        table = self._table("users")
        reasons = self._transact([
            _put_new(table, _user_key(user.id), {**dataclasses.asdict(user), **_user_group(user)}),
            _put_new(table, _email_key(user.email), {"user_id": user.id}),
        ])
        if _failed(reasons, 1):
            raise ConflictError(f"A user with the email {user.email} already exists.")
        if reasons:
            raise ConflictError(f"A user with the id {user.id} already exists.")

    async def get_user(self, user_id: str) -> User | None:
        item = await self._run(self._get, "users", _user_key(user_id))
        return _user(item) if item else None

    async def get_users(self, user_ids: list[str]) -> list[User | None]:
        found = await self._run(self._batch_get_by_key, "users", [_user_key(user_id) for user_id in user_ids])
        return [_user(item) if item else None for item in found]

    async def get_user_by_email(self, email: str) -> User | None:
        item = await self._run(self._get, "users", _email_key(email))
        return await self.get_user(_plain(item)["user_id"]) if item else None

    async def page_users(self, query: ListQuery) -> Page[User]:
        return await self._run(self._newest_in_group, "users", "USERS", query, _user_keyed)

    async def update_user(self, user_id: str, changes: dict[str, Any], revoke_tokens: bool = False) -> User | None:
        return await self._run(self._update_user, user_id, changes, revoke_tokens)

    def _update_user(self, user_id: str, changes: dict[str, Any], revoke_tokens: bool) -> User | None:
        fields = [name for name in USER_FIELDS if name in changes]
        clauses = ["SET " + ", ".join(f"#{name} = :{name}" for name in fields)] if fields else []
        values = {f":{name}": changes[name] for name in fields}
        if revoke_tokens:
            clauses.append("ADD token_generation :one")
            values[":one"] = 1
        if not clauses:
            item = self._get("users", _user_key(user_id))
            return _user(item) if item else None
        names = {"ExpressionAttributeNames": {f"#{name}": name for name in fields}} if fields else {}
        try:
            response = self._dynamodb.update_item(  # names: "name" is a reserved word
                TableName=self._table("users"), Key=_serialize(_user_key(user_id)),
                UpdateExpression=" ".join(clauses), ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues=_serialize(values), ReturnValues="ALL_NEW", **names)
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
            return None
        return _user(response["Attributes"])

    # sign-in sessions and personal tokens ------------------------------------
    async def put_sign_in_session(self, session: SignInSession) -> None:
        fields = {**dataclasses.asdict(session), "expires": epoch_seconds(session.expires_at)}
        await self._run(self._put, "tokens", _session_key(session.id), fields)

    async def get_sign_in_session(self, session_id: str) -> SignInSession | None:
        item = await self._run(self._get, "tokens", _session_key(session_id))
        if item is None:
            return None
        fields = _unexpiring(item)
        fields.pop("rotated_by", None)
        return SignInSession(**fields)

    async def rotate_sign_in_session(self, session_id: str, rotation: int) -> bool:
        return await self._run(self._rotate_sign_in_session, session_id, rotation)

    def _rotate_sign_in_session(self, session_id: str, rotation: int) -> bool:
        """Move the session past ``rotation``, naming this call in it (``rotated_by``): a failed condition after an
        attempt of this call that may have landed is this call's own doing when the session names it."""
        mark, call = _attempts(), uuid.uuid4().hex
        try:
            self._dynamodb.update_item(
                TableName=self._table("tokens"), Key=_serialize(_session_key(session_id)),
                UpdateExpression="SET rotated_by = :call ADD rotation :one", ConditionExpression="rotation = :rotation",
                ExpressionAttributeValues=_serialize({":one": 1, ":rotation": rotation, ":call": call}))
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
            if not _maybe_landed(mark):
                return False
            item = self._get("tokens", _session_key(session_id))
            return item is not None and _plain(item).get("rotated_by") == call and _plain(item)["rotation"] == rotation + 1
        return True

    async def delete_sign_in_session(self, session_id: str) -> None:
        await self._run(self._delete, "tokens", _session_key(session_id))

    # kernel records ----------------------------------------------------------
    async def put_kernel_record(self, record: KernelRecord) -> None:
        """An UpdateItem of every attribute but ``notebooks`` (kept), with the group keys of its user's records."""
        fields = {**dataclasses.asdict(record), "expires": epoch_seconds(record.expires_at),
                  **_group(f"KERNELS#{record.user_id}", record.created_at, record.id)}
        del fields["notebooks"]
        await self._run(lambda: self._dynamodb.update_item(  # names: "connection" and "grant" are reserved words
            TableName=self._table("tokens"), Key=_serialize(_kernel_record_key(record.id)),
            UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in fields),
            ExpressionAttributeNames={f"#{name}": name for name in fields},
            ExpressionAttributeValues=_serialize({f":{name}": value for name, value in fields.items()})))

    async def get_kernel_record(self, record_id: str) -> KernelRecord | None:
        item = await self._run(self._get, "tokens", _kernel_record_key(record_id))
        if item is None:
            return None
        record = KernelRecord(**_unexpiring(item))
        return record if record.expires_at >= utcnow() else None  # TTL deletes it within days, not at once

    async def list_kernel_records(self, user_id: str, kind: str) -> list[KernelRecord]:
        items = await self._run(self._group_items, "tokens", f"KERNELS#{user_id}", True)
        now = utcnow()
        return [record for record in (KernelRecord(**_unexpiring(item)) for item in items)
                if record.kind == kind and record.expires_at >= now]

    async def set_kernel_notebooks(self, record_id: str, notebooks: str) -> bool:
        return await self._run(_condition_held, lambda: self._dynamodb.update_item(
            TableName=self._table("tokens"), Key=_serialize(_kernel_record_key(record_id)),
            UpdateExpression="SET notebooks = :notebooks", ConditionExpression="attribute_exists(pk) AND expires >= :now",
            ExpressionAttributeValues=_serialize({":notebooks": notebooks, ":now": int(time.time())})))

    async def delete_kernel_record(self, record_id: str, holder: str) -> bool:
        return await self._run(self._delete_kernel_record, record_id, holder)

    def _delete_kernel_record(self, record_id: str, holder: str) -> bool:
        return _condition_held(lambda: self._dynamodb.delete_item(
            TableName=self._table("tokens"), Key=_serialize(_kernel_record_key(record_id)),
            ConditionExpression="attribute_not_exists(pk) OR holder = :holder OR expires < :now",
            ExpressionAttributeValues=_serialize({":holder": holder, ":now": int(time.time())})))

    async def put_personal_token(self, token: PersonalToken) -> None:
        fields = {**dataclasses.asdict(token), "expires": epoch_seconds(token.expires_at),
                  **_group(f"USER#{token.user_id}", token.created_at, token.id)}
        await self._run(self._put, "tokens", _personal_token_key(token.id), fields)

    async def get_personal_token(self, token_id: str) -> PersonalToken | None:
        item = await self._run(self._get, "tokens", _personal_token_key(token_id))
        return PersonalToken(**_unexpiring(item)) if item else None

    async def list_personal_tokens(self, user_id: str) -> list[PersonalToken]:
        items = await self._run(self._group_items, "tokens", f"USER#{user_id}", True)
        now = utcnow()  # TTL deletes within days, not at once: leave out what has expired meanwhile
        return [token for token in (PersonalToken(**_unexpiring(item)) for item in items) if token.expires_at > now]

    async def delete_personal_token(self, token_id: str) -> None:
        await self._run(self._delete, "tokens", _personal_token_key(token_id))

    # versioned records (datasets, cards, dashboards) -------------------------
    def _create_versioned(self, kind: Versioned, head: Any, version_fields: dict[str, Any]) -> list[dict[str, Any]]:
        """Put a head, its first version and the items that point at it, at once; the cancellation reasons."""
        table = self._table(kind.table)
        fields = dataclasses.asdict(head)
        return self._listed(kind, head.id, [
            _put_new(table, _meta_key(kind, head.id), fields),
            _put_new(table, _version_key(kind, head.id, version_fields["version"]), version_fields),
            *(_put_new(table, key, {kind.key: head.id}) for key in _index_keys(kind, fields)),
        ])

    def _listed(self, kind: Versioned, record_id: str, actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``_transact(actions)`` for a record whose catalogue entry is written after it: when the answer is
        lost (the outcome unknown), the entry is written from the record as it now is, so that a write that
        landed is listed (and one that did not, not), and again ``late_write_seconds`` later (the write may land
        after that); the error still goes up, to be settled by reading back."""
        try:
            return self._transact(actions)
        except (ClientError, BotoConnectionError, HTTPClientError, StorageUnavailableError) as exc:
            if isinstance(exc, StorageUnavailableError) or _unavailable(exc) is not None:
                with contextlib.suppress(ClientError, BotoConnectionError, HTTPClientError):
                    self._catalog_current(kind, record_id)
                self._relist_soon(kind, record_id)
            raise

    async def _delete_versioned(self, kind: Versioned, record_id: str, *parts: tuple[Callable[..., object], str],
                                head: Card | Dashboard | None = None) -> list[dict[str, Any]]:
        """Delete the head and the items that point at it first, so no version can be added after that; then, at
        once (each in a call of its own), its catalogue entry, its versions and ``parts`` (a method and the record
        id); return the version items. Cut short, it finishes when repeated. ``head``: as the caller read it (the
        fields of the items that point at it never change), else it is read."""
        if head is None:
            await self._run(self._delete_head_of, kind, record_id)
        else:
            await self._run(self._delete_head, kind, record_id, _index_keys(kind, dataclasses.asdict(head)))
        versions, *_ = await asyncio.gather(self._run(self._delete_versions, kind, record_id),
                                            self._run(self._catalogue.delete, kind.noun, record_id),
                                            *(self._run(method, argument) for method, argument in parts))
        return versions

    def _delete_head_of(self, kind: Versioned, record_id: str) -> None:
        item = self._get(kind.table, _meta_key(kind, record_id))
        if item is not None:
            self._delete_head(kind, record_id, _index_keys(kind, _plain(item)))

    def _delete_head(self, kind: Versioned, record_id: str, index_keys: list[dict[str, str]]) -> None:
        """Delete META and its index items together; an index item only while it still points at this record."""
        table = self._table(kind.table)
        reasons = self._transact(gone_is_done=True, actions=[
            {"Delete": {"TableName": table, "Key": _serialize(_meta_key(kind, record_id))}},
            *({"Delete": {"TableName": table, "Key": _serialize(key),
                          "ConditionExpression": f"{kind.key} = :id",
                          "ExpressionAttributeValues": _serialize({":id": record_id})}} for key in index_keys),
        ])
        if any(reason.get("Code") == "TransactionConflict" for reason in reasons):
            raise ConflictError(f"The {kind.noun} is being changed; retry the deletion.")
        # A failed index condition means another call deleted the items already.

    def _add_version(self, kind: Versioned, record_id: str, number: int, created_at: str,
                     expected_current: int, fields: dict[str, Any], entry: Entry | None = None) -> None:
        """Make ``number`` current if the head is at ``expected_current``, and put its item: at once; then its
        catalogue entry (the old one as ``_entry_ahead`` read it). A transaction that met another one on the head
        (two saves at once) is tried again, so that the loser learns the winner's version."""
        kind.check_follows(number, expected_current)
        for attempt in range(CONFLICT_ATTEMPTS):
            if attempt:
                time.sleep(random.uniform(0.02, 0.1 * attempt))
            reasons = self._listed(kind, record_id, [
                {"Update": {
                    "TableName": self._table(kind.table),
                    "Key": _serialize(_meta_key(kind, record_id)),
                    "UpdateExpression": "SET current_version = :new, updated_at = :updated",
                    "ConditionExpression": "current_version = :expected",
                    "ExpressionAttributeValues": _serialize({
                        ":new": number, ":updated": created_at, ":expected": expected_current}),
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }},
                _put_new(self._table(kind.table), _version_key(kind, record_id, number), fields),
            ])
            if not reasons:
                self._catalog_saved(kind, record_id, fields, entry)
                return
            head = reasons[0]
            if "Item" in head:
                raise kind.stale(_plain(head["Item"])["current_version"], expected_current)
            if head.get("Code") == "ConditionalCheckFailed":
                raise kind.gone()
        raise kind.busy()

    def _heads(self, kind: Versioned, owner_id: str | None, index_prefix: str) -> list[dict[str, Any]]:
        """Head items of ``owner_id`` (through the owner's index items under ``index_prefix``), or all."""
        if owner_id is None:
            return list(self._scan_sort_key(kind.table, "META"))
        index = self._query_prefix(kind.table, f"OWNER#{owner_id}", index_prefix)
        return self._batch_get(kind.table, [_meta_key(kind, _plain(item)[kind.key]) for item in index])

    def _page_versions(self, kind: Versioned, record_id: str, query: ListQuery,
                       record: Callable[[dict[str, Any]], T], attributes: tuple[str, ...] = ()) -> Page[T]:
        """A page of a record's versions, newest first: one Query of its partition's version items (of their
        ``attributes`` only, when named)."""
        below = after_number(query)
        newest = f"VERSION#{below - 1 if below is not None else 10 ** VERSION_DIGITS - 1:0{VERSION_DIGITS}d}"
        return self._newest(kind.table, query, "pk = :pk AND sk BETWEEN :low AND :high",
                            {":pk": f"{kind.prefix}#{record_id}", ":low": "VERSION#", ":high": newest},
                            lambda item: (number_key(int(item["sk"]["S"].removeprefix("VERSION#"))), record_id,
                                          record(item)), attributes=attributes)

    def _newest_in_group(self, kind: str, group: str, query: ListQuery,
                         keyed: Callable[[dict[str, Any]], tuple[str, str, T]]) -> Page[T]:
        """A page of one group of the table's group index, newest first (its ``gsk``: ``<time>#<id>``)."""
        condition, values = "gpk = :pk", {":pk": group}
        if query.after is not None:
            condition += " AND gsk < :before"
            values[":before"] = "#".join(query.after)
        return self._newest(kind, query, condition, values, keyed, GROUP_INDEX)

    def _newest(self, kind: str, query: ListQuery, condition: str, values: dict[str, str],
                keyed: Callable[[dict[str, Any]], tuple[str, str, T]], index: str | None = None,
                attributes: tuple[str, ...] = ()) -> Page[T]:
        """The page of ``query`` from a Query of ``condition``, the greatest sort key first: ``limit + 1``
        items in one call (another only past DynamoDB's 1 MB a response); only their ``attributes`` (and keys)
        when named."""
        params: dict[str, Any] = {"TableName": self._table(kind), "KeyConditionExpression": condition,
                                  "ExpressionAttributeValues": _serialize(values), "ScanIndexForward": False,
                                  **({"IndexName": index} if index else {"ConsistentRead": True}),
                                  **(_projection("pk", "sk", *attributes) if attributes else {})}
        found: list[tuple[str, str, T]] = []
        while len(found) <= query.limit:
            response = self._dynamodb.query(**params, Limit=query.limit + 1 - len(found))
            found += [keyed(item) for item in response["Items"]]
            if "LastEvaluatedKey" not in response:
                break
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return take(found, query)

    def _version_items(self, kind: Versioned, record_id: str) -> list[dict[str, Any]]:
        """Version items of a record, oldest first (the zero-padded sort keys sort by number)."""
        return list(self._query_prefix(kind.table, f"{kind.prefix}#{record_id}", "VERSION#"))

    def _delete_versions(self, kind: Versioned, record_id: str) -> list[dict[str, Any]]:
        """Delete a record's version items (once its head is gone) and return them."""
        items = self._version_items(kind, record_id)
        self._batch_delete(kind.table, [{"pk": i["pk"]["S"], "sk": i["sk"]["S"]} for i in items])
        return items

    # datasets ----------------------------------------------------------------
    async def create_dataset(self, dataset: Dataset, version: DatasetVersion) -> None:
        await self._run(self._create_dataset, dataset, version)

    def _create_dataset(self, dataset: Dataset, version: DatasetVersion) -> None:
        reasons = self._create_versioned(DATASETS, dataset, _dataset_version_fields(version))
        if _failed(reasons, 2):
            raise ConflictError(f"You already have a dataset named {dataset.name!r}.")
        if reasons:
            raise ConflictError(f"A dataset with the id {dataset.id} already exists.")
        self._list(DATASETS, dataset.id, lambda: self._catalogue.write(dataset_entry(dataset), dataclasses.asdict(dataset), new=True))

    async def add_dataset_version(self, version: DatasetVersion, expected_current: int) -> None:
        await self._run(self._add_version, DATASETS, version.dataset_id, version.version, version.created_at,
                        expected_current, _dataset_version_fields(version), self._entry_ahead(DATASETS, version.dataset_id))

    async def get_dataset(self, dataset_id: str) -> Dataset | None:
        item = await self._run(self._get, "datasets", _meta_key(DATASETS, dataset_id))
        return _dataset(item) if item else None

    async def get_datasets(self, dataset_ids: list[str]) -> list[Dataset | None]:
        found = await self._run(self._batch_get_by_key, "datasets", [_meta_key(DATASETS, i) for i in dataset_ids])
        return [_dataset(item) if item else None for item in found]

    async def list_datasets(self, owner_id: str | None = None) -> list[Dataset]:
        items = await self._run(self._heads, DATASETS, owner_id, "NAME#")
        return newest_first(_dataset(item) for item in items)

    async def get_dataset_versions(self, keys: list[tuple[str, int]]) -> list[DatasetVersion | None]:
        found = await self._run(self._batch_get_by_key, "datasets", [_version_key(DATASETS, *key) for key in keys])
        return [_dataset_version(item) if item else None for item in found]

    async def get_dataset_version(self, dataset_id: str, version: int) -> DatasetVersion | None:
        item = await self._run(self._get, "datasets", _version_key(DATASETS, dataset_id, version))
        return _dataset_version(item) if item else None

    async def page_dataset_versions(self, dataset_id: str, query: ListQuery) -> Page[DatasetVersion]:
        return await self._run(self._page_versions, DATASETS, dataset_id, query, _dataset_version)

    async def list_dataset_versions(self, dataset_id: str) -> list[DatasetVersion]:
        items = await self._run(self._version_items, DATASETS, dataset_id)
        return [_dataset_version(item) for item in items]

    async def rename_dataset(self, dataset_id: str, name: str, expected_name: str) -> Dataset:
        return await self._run(self._rename_dataset, dataset_id, name, expected_name)

    def _rename_dataset(self, dataset_id: str, name: str, expected_name: str) -> Dataset:
        """META, the old name item and the new one, at once: the name item moves only with the name."""
        item = self._get("datasets", _meta_key(DATASETS, dataset_id))
        if item is None:
            raise DATASETS.gone()
        dataset = _dataset(item)
        if dataset.name != expected_name:
            raise ConflictError(f"The dataset was renamed to {dataset.name!r} meanwhile.", {"name": dataset.name})
        renamed = dataset.renamed(name)
        table = self._table("datasets")
        reasons = self._listed(DATASETS, dataset_id, [
            {"Update": {"TableName": table, "Key": _serialize(_meta_key(DATASETS, dataset_id)),
                        "UpdateExpression": "SET #name = :name, aliases = :aliases",
                        "ConditionExpression": "#name = :expected",
                        "ExpressionAttributeNames": {"#name": "name"},
                        "ExpressionAttributeValues": _serialize({":name": name, ":aliases": list(renamed.aliases),
                                                                 ":expected": expected_name})}},
            {"Delete": {"TableName": table, "Key": _serialize(_name_key(dataset.owner_id, expected_name)),
                        "ConditionExpression": "dataset_id = :id",
                        "ExpressionAttributeValues": _serialize({":id": dataset_id})}},
            _put_new(table, _name_key(dataset.owner_id, name), {"dataset_id": dataset_id}),
        ])
        if _failed(reasons, 2):
            raise ConflictError(f"You already have a dataset named {name!r}.", {"field": "name"},
                                code="dataset_name_taken")
        if _failed(reasons, 0):
            now = self._get("datasets", _meta_key(DATASETS, dataset_id))
            if now is None:
                raise DATASETS.gone()
            raise ConflictError(f"The dataset was renamed to {_dataset(now).name!r} meanwhile.",
                                {"name": _dataset(now).name})
        if reasons:
            raise ConflictError("The dataset is being changed; rename it again.")
        self._catalog_current(DATASETS, dataset_id)
        return renamed

    async def delete_dataset(self, dataset_id: str) -> list[DatasetVersion]:
        """The version list is whole: no version can be added once META is gone."""
        items = await self._delete_versioned(DATASETS, dataset_id)
        return [_dataset_version(item) for item in items]

    # cards -------------------------------------------------------------------
    async def create_card(self, card: Card, version: CardVersion) -> None:
        await self._run(self._create_card, card, version)

    def _create_card(self, card: Card, version: CardVersion) -> None:
        if self._create_versioned(CARDS, card, _card_version_fields(version)):
            raise ConflictError(f"A card with the id {card.id} already exists.")
        self._list(CARDS, card.id, lambda: self._catalogue.write(card_entry(card, version), dataclasses.asdict(card), new=True))

    async def add_card_version(self, version: CardVersion, expected_current: int) -> None:
        await self._run(self._add_version, CARDS, version.card_id, version.version, version.created_at,
                        expected_current, _card_version_fields(version), self._entry_ahead(CARDS, version.card_id))

    async def get_card(self, card_id: str) -> Card | None:
        item = await self._run(self._get, "cards", _meta_key(CARDS, card_id))
        return _card(item) if item else None

    async def list_cards(self, owner_id: str | None = None) -> list[Card]:
        items = await self._run(self._heads, CARDS, owner_id, "CARD#")
        return newest_first(_card(item) for item in items)

    async def get_card_versions(self, keys: list[tuple[str, int]]) -> list[CardVersion | None]:
        found = await self._run(self._batch_get_by_key, "cards", [_version_key(CARDS, *key) for key in keys])
        return [_card_version(item) if item else None for item in found]

    async def get_card_version(self, card_id: str, version: int) -> CardVersion | None:
        item = await self._run(self._get, "cards", _version_key(CARDS, card_id, version))
        return _card_version(item) if item else None

    async def page_card_versions(self, card_id: str, query: ListQuery) -> Page[VersionStamp]:
        return await self._run(self._page_versions, CARDS, card_id, query, _stamp, CARD_STAMP)

    async def list_card_versions(self, card_id: str) -> list[CardVersion]:
        items = await self._run(self._version_items, CARDS, card_id)
        return [_card_version(item) for item in items]

    async def delete_card(self, card_id: str, head: Card | None = None) -> None:
        await self._delete_versioned(CARDS, card_id, head=head)

    # dashboards --------------------------------------------------------------
    async def create_dashboard(self, dashboard: Dashboard, version: DashboardVersion) -> None:
        await self._run(self._create_dashboard, dashboard, version)

    def _create_dashboard(self, dashboard: Dashboard, version: DashboardVersion) -> None:
        self._index_cards(version)
        self._index_refresh(version, dashboard.created_at)
        reasons = self._create_versioned(DASHBOARDS, dashboard, _dashboard_version_fields(version))
        if _failed(reasons, 3):
            raise ConflictError(f"A dashboard with the uid {dashboard.uid!r} already exists.")
        if reasons:
            raise ConflictError(f"A dashboard with the id {dashboard.id} already exists.")
        self._list(DASHBOARDS, dashboard.id, lambda: self._catalogue.write(dashboard_entry(dashboard, version), dataclasses.asdict(dashboard), new=True))

    async def add_dashboard_version(self, version: DashboardVersion, expected_current: int) -> None:
        await self._run(self._add_dashboard_version, version, expected_current,
                        self._entry_ahead(DASHBOARDS, version.dashboard_id))

    def _add_dashboard_version(self, version: DashboardVersion, expected_current: int, entry: Entry | None) -> None:
        self._index_cards(version)
        self._index_refresh(version)
        self._add_version(DASHBOARDS, version.dashboard_id, version.version, version.created_at, expected_current,
                          _dashboard_version_fields(version), entry)
        self._unindex_cards(version.dashboard_id, card_ids(version.document))
        if refresh_seconds(version.document) is None:
            self._delete("dashboards", _refresh_key(version.dashboard_id))

    # which dashboards hold a card: CARD#<card> / DASHBOARD#<dashboard> items, and DASHBOARD#<dashboard> /
    # CARD#<card> beside them in the dashboard's partition (what to delete). Written before a version (a save
    # that then fails leaves items too many, never too few), deleted after it; readers check the current version.
    def _index_cards(self, version: DashboardVersion) -> None:
        requests = [{"PutRequest": {"Item": _serialize({**key, "dashboard_id": version.dashboard_id})}}
                    for card_id in sorted(card_ids(version.document))
                    for key in _card_index_keys(card_id, version.dashboard_id)]
        table = self._table("dashboards")
        for start in range(0, len(requests), BATCH_WRITE_LIMIT):
            self._drain(self._dynamodb.batch_write_item, {table: requests[start:start + BATCH_WRITE_LIMIT]},
                        "UnprocessedItems")

    def _unindex_cards(self, dashboard_id: str, kept: set[str]) -> None:
        """Delete the dashboard's index items of cards not in ``kept``."""
        indexed = {item["sk"]["S"].removeprefix("CARD#")
                   for item in self._query_prefix("dashboards", f"DASHBOARD#{dashboard_id}", "CARD#")}
        self._batch_delete("dashboards", [key for card_id in sorted(indexed - kept)
                                          for key in _card_index_keys(card_id, dashboard_id)])

    async def dashboards_with_card(self, card_id: str) -> list[Dashboard]:
        return await self._run(self._dashboards_with_card, card_id)

    def _dashboards_with_card(self, card_id: str) -> list[Dashboard]:
        ids = [_plain(item)["dashboard_id"] for item in self._query_prefix("dashboards", f"CARD#{card_id}", "DASHBOARD#")]
        heads = self._batch_get("dashboards", [_meta_key(DASHBOARDS, dashboard_id) for dashboard_id in ids])
        return sorted((_dashboard(item) for item in heads), key=lambda dashboard: dashboard.id)

    # which dashboards have a refresh: REFRESH / DASHBOARD#<dashboard> items with the period and the start of the
    # rounds. Written before a version that has one, deleted after one that has none (and with the dashboard).
    def _index_refresh(self, version: DashboardVersion, created_at: str | None = None) -> None:
        every = refresh_seconds(version.document)
        if every is None:
            return
        if created_at is None:
            head = self._get("dashboards", _meta_key(DASHBOARDS, version.dashboard_id))
            if head is None:
                return
            created_at = _dashboard(head).created_at
        self._put("dashboards", _refresh_key(version.dashboard_id), {
            "dashboard_id": version.dashboard_id, "every_seconds": every, "created_at": created_at})

    async def refresh_schedules(self) -> list[RefreshSchedule]:
        items = await self._run(lambda: list(self._query_prefix("dashboards", REFRESH_PK, "DASHBOARD#")))
        return [RefreshSchedule(**_plain(item)) for item in items]

    def _backfill_dashboard_indexes(self) -> None:
        """Index the cards and the refresh of every dashboard made before those indexes (a Scan of the heads, once
        for both)."""
        pending = [done for done in (CARD_INDEX_DONE, REFRESH_INDEX_DONE, SHARE_COPIES_DONE)
                   if self._get("dashboards", done) is None]
        if not pending:
            return
        for item in list(self._scan_sort_key("dashboards", "META")):
            head = _dashboard(item)
            version = self._get("dashboards", _version_key(DASHBOARDS, head.id, head.current_version))
            if version is not None:
                if CARD_INDEX_DONE in pending:
                    self._index_cards(_dashboard_version(version))
                if REFRESH_INDEX_DONE in pending:
                    self._index_refresh(_dashboard_version(version), head.created_at)
            entry = self._catalogue.entry_fields(DASHBOARD, head.id) if SHARE_COPIES_DONE in pending else None
            if entry is not None:
                self._catalogue.copy_to_shares(head.id, shared_copy(entry))
        for done in pending:
            self._put("dashboards", done, {})
        self.log.info("Indexed the cards, refreshes and shares of every dashboard")

    async def get_dashboard(self, dashboard_id: str) -> Dashboard | None:
        item = await self._run(self._get, "dashboards", _meta_key(DASHBOARDS, dashboard_id))
        return _dashboard(item) if item else None

    async def get_dashboard_by_uid(self, uid: str) -> Dashboard | None:
        item = await self._run(self._get, "dashboards", _uid_key(uid))
        return await self.get_dashboard(_plain(item)["dashboard_id"]) if item else None

    async def list_dashboards(self, owner_id: str | None = None) -> list[Dashboard]:
        items = await self._run(self._heads, DASHBOARDS, owner_id, "DASHBOARD#")
        return newest_first(_dashboard(item) for item in items)

    async def get_dashboard_versions(self, keys: list[tuple[str, int]]) -> list[DashboardVersion | None]:
        found = await self._run(self._batch_get_by_key, "dashboards", [_version_key(DASHBOARDS, *key) for key in keys])
        return [_dashboard_version(item) if item else None for item in found]

    async def get_dashboard_version(self, dashboard_id: str, version: int) -> DashboardVersion | None:
        item = await self._run(self._get, "dashboards", _version_key(DASHBOARDS, dashboard_id, version))
        return _dashboard_version(item) if item else None

    async def page_dashboard_versions(self, dashboard_id: str, query: ListQuery) -> Page[VersionStamp]:
        return await self._run(self._page_versions, DASHBOARDS, dashboard_id, query, _stamp, DASHBOARD_STAMP)

    async def list_dashboard_versions(self, dashboard_id: str) -> list[DashboardVersion]:
        items = await self._run(self._version_items, DASHBOARDS, dashboard_id)
        return [_dashboard_version(item) for item in items]

    async def delete_dashboard(self, dashboard_id: str, head: Dashboard | None = None) -> None:
        """Once META is gone no share can be granted (``put_share`` checks it), so the shares found after are all."""
        await self._delete_versioned(DASHBOARDS, dashboard_id, (self._unindex_all_cards, dashboard_id),
                                     (self._delete_shares, dashboard_id), head=head)

    def _unindex_all_cards(self, dashboard_id: str) -> None:
        self._unindex_cards(dashboard_id, set())
        self._delete("dashboards", _refresh_key(dashboard_id))

    def _delete_shares(self, dashboard_id: str) -> None:
        shares = self._share_items(f"DASHBOARD#{dashboard_id}", "USER#")
        self._batch_delete("shares", [key for item in shares
                                      for key in _share_keys(dashboard_id, _plain(item)["user_id"])])

    # shares ------------------------------------------------------------------
    async def put_share(self, share: Share) -> None:
        await self._run(self._put_share, share)

    def _put_share(self, share: Share) -> None:
        """Both items of the share, replacing earlier ones, if the dashboard exists; ``NotFoundError`` if not. The
        item under the grantee carries a copy of the dashboard's catalogue entry (``aws_catalog.py``), on the
        condition that the entry is still the one read (read again after a save that came between)."""
        table, fields = self._table("shares"), dataclasses.asdict(share)
        by_dashboard, by_user = _share_keys(share.dashboard_id, share.user_id)
        for _ in range(CONFLICT_ATTEMPTS):
            entry = self._catalogue.entry_fields(DASHBOARD, share.dashboard_id)
            copy = shared_copy(entry) if entry is not None else {}
            reasons = self._transact([
                {"ConditionCheck": {"TableName": self._table("dashboards"),
                                    "Key": _serialize(_meta_key(DASHBOARDS, share.dashboard_id)),
                                    "ConditionExpression": "attribute_exists(pk)"}},
                {"ConditionCheck": {"TableName": self._table("catalog"),
                                    **self._catalogue.entry_unchanged(DASHBOARD, share.dashboard_id, entry)}},
                {"Put": {"TableName": table, "Item": _serialize({**by_dashboard, **fields, **_share_group(share)})}},
                {"Put": {"TableName": table, "Item": _serialize({**by_user, **fields, **copy})}},
            ])
            if _failed(reasons, 0) and reasons[0].get("Code") == "ConditionalCheckFailed":
                raise DASHBOARDS.gone()
            if not (_failed(reasons, 1) and reasons[1].get("Code") == "ConditionalCheckFailed"):
                break
        if reasons:
            raise ConflictError("The share was changed at the same time; retry.")

    async def delete_share(self, dashboard_id: str, user_id: str) -> bool:
        return await self._run(self._delete_share, dashboard_id, user_id)

    def _delete_share(self, dashboard_id: str, user_id: str) -> bool:
        table = self._table("shares")
        by_dashboard, by_user = _share_keys(dashboard_id, user_id)
        reasons = self._transact(gone_is_done=True, actions=[
            {"Delete": {"TableName": table, "Key": _serialize(by_dashboard),
                        "ConditionExpression": "attribute_exists(pk)"}},
            {"Delete": {"TableName": table, "Key": _serialize(by_user)}},
        ])
        if _failed(reasons, 0) and reasons[0].get("Code") == "ConditionalCheckFailed":
            return False
        if reasons:
            raise ConflictError("The share was changed at the same time; retry.")
        return True

    async def list_shares(self, dashboard_id: str) -> list[Share]:
        items = await self._run(self._share_items, f"DASHBOARD#{dashboard_id}", "USER#")
        return sorted((_share(item) for item in items), key=lambda s: (s.created_at, s.user_id))

    async def page_shares(self, dashboard_id: str, query: ListQuery) -> Page[Share]:
        return await self._run(self._newest_in_group, "shares", f"DASHBOARD#{dashboard_id}", query, _share_keyed)

    async def read_shares_page(self, dashboard_id: str, reader_id: str, query: ListQuery) -> SharesPage:
        """Two calls: the page's Query, then one BatchGetItem of the dashboard, the reader's share and the grantees."""
        return await self._run(self._read_shares_page, dashboard_id, reader_id, query)

    def _read_shares_page(self, dashboard_id: str, reader_id: str, query: ListQuery) -> SharesPage:
        page = self._newest_in_group("shares", f"DASHBOARD#{dashboard_id}", query, _share_keyed)
        found = self._batch_get_tables({"dashboards": [_meta_key(DASHBOARDS, dashboard_id)],
                                        "shares": [_share_keys(dashboard_id, reader_id)[0]],
                                        "users": [_user_key(share.user_id) for share in page.items]})
        users = {user.id: user for user in map(_user, found["users"])}
        return SharesPage(next(map(_dashboard, found["dashboards"]), None), next(map(_share, found["shares"]), None),
                          Page([(share, users.get(share.user_id)) for share in page.items], page.next, page.total))

    async def get_share(self, dashboard_id: str, user_id: str) -> Share | None:
        item = await self._run(self._get, "shares", _share_keys(dashboard_id, user_id)[0])
        return _share(item) if item else None

    async def list_user_shares(self, user_id: str) -> list[Share]:
        items = await self._run(self._share_items, f"USER#{user_id}", "DASHBOARD#")
        return sorted((_share(item) for item in items), key=lambda s: (s.created_at, s.dashboard_id))

    def _share_items(self, pk: str, sk_prefix: str) -> list[dict[str, Any]]:
        return list(self._query_prefix("shares", pk, sk_prefix))

    # pages of the catalogue (storage/aws_catalog.py) ------------------------------
    @property
    def _catalogue(self) -> DynamoCatalog:
        return DynamoCatalog(self._dynamodb, self._table("catalog"), self._table("shares"), self._transact)

    async def page_cards(self, query: ListQuery) -> Page[Listed[Card]]:
        return await self._run(self._page, CARD, query, lambda head, summary, _: Listed(Card(**head), summary))

    async def page_dashboards(self, query: ListQuery) -> Page[Listed[Dashboard]]:
        return await self._run(self._page, DASHBOARD, query,
                               lambda head, summary, shared_as: Listed(Dashboard(**head), summary, shared_as))

    async def page_datasets(self, query: ListQuery) -> Page[Dataset]:
        return await self._run(self._page, DATASET, query, lambda head, *_: _dataset_fields(head))

    def _page(self, kind: str, query: ListQuery, record: ItemMaker[T]) -> Page[T]:
        """One Query per scope of ``query`` (``limit + 1`` items each), merged."""
        keyed = [triple for scope in dict.fromkeys(query.scopes)
                 for triple in self._catalogue.scope(kind, query, scope, record)]
        return take(ordered(keyed, query.sort), query)

    def _backfill_catalog(self) -> None:
        """Write the entry of every record made before the catalogue table (a Scan per table, once)."""
        for kind in (DATASETS, CARDS, DASHBOARDS):
            for item in list(self._scan_sort_key(kind.table, "META")):
                self._catalog_current(kind, _plain(item)["id"])
        self.log.info("Listed every dataset, card and dashboard in the catalogue table")

    def _catalog_current(self, kind: Versioned, record_id: str) -> None:
        """Write the catalogue entry of a record as it is now (after a new version)."""
        self._list(kind, record_id, lambda: self._catalog_from_record(kind, record_id))

    def _catalog_from_record(self, kind: Versioned, record_id: str) -> None:
        item = self._get(kind.table, _meta_key(kind, record_id))
        if item is None:
            return
        if kind is DATASETS:
            self._catalog_write(kind, _plain(item), None)
            return
        version = self._get(kind.table, _version_key(kind, record_id, _plain(item)["current_version"]))
        if version is not None:
            self._catalog_write(kind, _plain(item), version)

    def _entry_ahead(self, kind: Versioned, record_id: str) -> Entry | None:
        """The record's catalogue entry, read on the pool from now: at the same time as the save queued after it
        (the pool is first in, first out: the save never waits for a read that has no thread), for the entry's
        write after the save. None if the store is closed (the save fails)."""
        if self._closed or self._executor is None:
            return None
        return self._executor.submit(contextvars.copy_context().run, self._catalogue.entry, kind.noun, record_id)

    def _catalog_saved(self, kind: Versioned, record_id: str, fields: dict[str, Any], entry: Entry | None) -> None:
        """Write the catalogue entry of a record just given the version of ``fields``: its head as the entry
        last recorded it (as read ahead by ``entry``, else now), at that version; from the record itself if it
        has no entry."""
        try:
            old = entry.result() if entry is not None else self._catalogue.entry(kind.noun, record_id)
        except (ClientError, BotoConnectionError, HTTPClientError):  # the read ahead failed: read it again
            old = self._list(kind, record_id, lambda: self._catalogue.entry(kind.noun, record_id))
        if old is None:
            self._catalog_current(kind, record_id)
            return
        head = {**old[1], "current_version": fields["version"], "updated_at": fields["created_at"]}
        self._list(kind, record_id, lambda: self._catalog_write(kind, head, _serialize(fields), old))

    def _catalog_write(self, kind: Versioned, head: dict[str, Any], version: dict[str, Any] | None,
                       old: tuple[CatalogEntry, dict[str, Any]] | None = None) -> None:
        """Write the entry of the record of ``head`` (its fields) at its current ``version`` (an item; none for
        a dataset)."""
        if kind is DATASETS:
            dataset = Dataset(**head)
            self._catalogue.write(dataset_entry(dataset), dataclasses.asdict(dataset), old=old)
        elif kind is CARDS and version is not None:
            card = Card(**head)
            self._catalogue.write(card_entry(card, _card_version(version)), dataclasses.asdict(card), old=old)
        elif version is not None:
            dashboard = Dashboard(**head)
            self._catalogue.write(dashboard_entry(dashboard, _dashboard_version(version)),
                                  dataclasses.asdict(dashboard), old=old)

    def _list(self, kind: Versioned, record_id: str, write: Callable[[], T]) -> T:
        """Run ``write``, a step of a record's catalogue entry (batches, not a transaction: no token). When it fails,
        or an attempt of it may still land (it timed out, its answer was lost) after the record changed again or
        was deleted, the entry is written again from the record as it is then (or deleted), ``late_write_seconds``
        later (``_relist_soon``); an attempt later still leaves a stale entry for ``bi fsck``."""
        mark = _attempts()
        try:
            done = write()
        except BaseException:
            self._relist_soon(kind, record_id)
            raise
        if _maybe_landed(mark):
            self._relist_soon(kind, record_id)
        return done

    def _relist_soon(self, kind: Versioned, record_id: str) -> None:
        """Write the record's entry again ``late_write_seconds`` from now (from any thread)."""
        if self._loop is not None and not self._closed:
            relist = asyncio.run_coroutine_threadsafe(self._relist_later(kind, record_id), self._loop)
            self._relists.add(relist)
            relist.add_done_callback(self._relists.discard)

    async def _relist_later(self, kind: Versioned, record_id: str) -> None:
        """``_relist_now`` after ``late_write_seconds``, and again as long as the store fails (``RELIST_TRIES``)."""
        for _ in range(RELIST_TRIES):
            await asyncio.sleep(self.late_write_seconds)
            try:
                await self._run(self._relist_now, kind, record_id)
            except StorageUnavailableError:
                continue
            except StoreClosedError:
                return
            log.info("catalogue_relisted", kind=kind.noun, record_id=record_id)
            return
        log.warning("catalogue_relist_failed", kind=kind.noun, record_id=record_id)  # fsck lists it

    def _relist_now(self, kind: Versioned, record_id: str) -> None:
        """The record's entry from the record as it is now; none (its items deleted) if it is gone."""
        if self._get(kind.table, _meta_key(kind, record_id)) is None:
            self._catalogue.delete(kind.noun, record_id)
        else:
            self._catalog_from_record(kind, record_id)

    # result cache ------------------------------------------------------------
    async def get_cached_result(self, key: str) -> CachedResult | None:
        item = await self._run(self._get, "cache", _result_key(key))
        return _cached_result(item) if item else None

    async def put_cached_result(self, result: CachedResult, fence: Lease | None = None) -> None:
        fields = {**dataclasses.asdict(result), "output_ids": list(result.output_ids)}
        group = _group(f"VARIANT#{result.variant}", result.created_at, result.key) if result.variant else {}
        if fence is None:
            await self._run(self._put, "cache", _result_key(result.key), {**fields, **group})
            return
        put = {"Put": {"TableName": self._table("cache"),
                       "Item": _serialize({**_result_key(result.key), **fields, **group})}}
        if await self._run(self._transact, [self._lease_check(fence), put]):
            raise LeaseLostError(f"lease {fence.name} version {fence.version} is no longer held")

    async def list_cached_results(self, variant: str) -> list[CachedResult]:
        items = await self._run(self._group_items, "cache", f"VARIANT#{variant}", False)
        return [_cached_result(item) for item in items]

    async def delete_cached_result(self, key: str) -> None:
        await self._run(self._delete, "cache", _result_key(key))

    # leases ------------------------------------------------------------------
    async def acquire_lease(self, name: str, holder: str, until: float) -> Lease | None:
        return await self._run(self._acquire_lease, name, holder, until)

    def _acquire_lease(self, name: str, holder: str, until: float) -> Lease | None:
        """Take the lease if it is free or expired; a failed condition after an attempt of this call that may have
        landed is this call's own doing when the lease is ``holder``'s until ``until``."""
        mark = _attempts()
        try:
            item = self._dynamodb.update_item(
                TableName=self._table("leases"), Key=_serialize(_lease_key(name)),
                UpdateExpression="SET holder = :holder, expires_ms = :until, done = :no, purge_at = :purge "
                                 "ADD version :one",
                ConditionExpression="attribute_not_exists(pk) OR expires_ms <= :now",
                ExpressionAttributeValues=_serialize({
                    ":holder": holder, ":until": _ms(until), ":no": False, ":one": 1, ":now": _ms(time.time()),
                    ":purge": int(until + LEASE_KEPT_SECONDS)}),
                ReturnValues="ALL_NEW")["Attributes"]
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
            if not _maybe_landed(mark):
                return None
            now = self._get("leases", _lease_key(name))
            if now is None or _plain(now)["holder"] != holder or _plain(now)["expires_ms"] != _ms(until):
                return None
            return _lease(now)
        return _lease(item)

    async def renew_lease(self, lease: Lease, until: float) -> Lease:
        await self._run(self._update_lease, lease, until, False)
        return dataclasses.replace(lease, expires_at=until)

    async def finish_lease(self, lease: Lease, until: float) -> None:
        await self._run(self._update_lease, lease, until, True)

    def _update_lease(self, lease: Lease, until: float, done: bool) -> None:
        check = self._lease_check(lease)["ConditionCheck"]
        values = {**check["ExpressionAttributeValues"],
                  **_serialize({":until": _ms(until), ":done": done, ":purge": int(until + LEASE_KEPT_SECONDS)})}
        try:
            self._dynamodb.update_item(
                TableName=check["TableName"], Key=check["Key"], ConditionExpression=check["ConditionExpression"],
                UpdateExpression="SET expires_ms = :until, done = :done, purge_at = :purge",
                ExpressionAttributeValues=values)
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise LeaseLostError(f"lease {lease.name} version {lease.version} is no longer held") from None
            raise

    def _lease_check(self, lease: Lease) -> dict[str, Any]:
        """A transaction's check that ``lease`` is still held as it was taken."""
        return {"ConditionCheck": {
            "TableName": self._table("leases"), "Key": _serialize(_lease_key(lease.name)),
            "ConditionExpression": "version = :version AND expires_ms > :now AND done = :no",
            "ExpressionAttributeValues": _serialize({":version": lease.version, ":now": _ms(time.time()),
                                                     ":no": False})}}

    async def get_lease(self, name: str) -> Lease | None:
        item = await self._run(self._get, "leases", _lease_key(name))
        return _lease(item) if item else None

    # output tables -----------------------------------------------------------
    async def put_output_table(self, table: OutputTable) -> None:
        group = _group(f"USER#{table.user_id}", table.last_used, table.output_id)
        await self._run(self._put, "cache", _table_key(table.output_id), {**dataclasses.asdict(table), **group})

    async def get_output_table(self, output_id: str) -> OutputTable | None:
        item = await self._run(self._get, "cache", _table_key(output_id))
        return OutputTable(**_plain(item)) if item else None

    async def list_output_tables(self, user_id: str) -> list[OutputTable]:
        items = await self._run(self._group_items, "cache", f"USER#{user_id}", True)
        return [OutputTable(**_plain(item)) for item in items]

    async def update_output_table(self, output_id: str, last_used: str | None = None,
                                  pinned: bool | None = None) -> None:
        values: dict[str, Any] = {}
        if last_used is not None:
            values.update({":last_used": last_used, ":gsk": _group("", last_used, output_id)["gsk"]})
        if pinned is not None:
            values[":pinned"] = pinned
        if values:
            await self._run(self._update_existing, "cache", _table_key(output_id), values)

    def _update_existing(self, kind: str, key: dict[str, str], values: dict[str, Any]) -> None:
        """SET each attribute named by ``values``' keys (``:name``); nothing if the item is gone."""
        assignments = ", ".join(f"{name[1:]} = {name}" for name in values)
        _condition_held(lambda: self._dynamodb.update_item(
            TableName=self._table(kind), Key=_serialize(key), UpdateExpression=f"SET {assignments}",
            ConditionExpression="attribute_exists(pk)", ExpressionAttributeValues=_serialize(values)))

    async def delete_output_table(self, output_id: str) -> None:
        await self._run(self._delete, "cache", _table_key(output_id))

    def _group_items(self, kind: str, gpk: str, ascending: bool) -> list[dict[str, Any]]:
        """The items of one group of a table's group index, by ``gsk`` (eventually consistent)."""
        paginator = self._dynamodb.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._table(kind), IndexName=GROUP_INDEX, KeyConditionExpression="gpk = :gpk",
            ExpressionAttributeValues=_serialize({":gpk": gpk}), ScanIndexForward=ascending,
            PaginationConfig={"PageSize": self.page_size or None})
        return [item for page in pages for item in page["Items"]]

    def _put(self, kind: str, key: dict[str, str], fields: dict[str, Any]) -> None:
        self._dynamodb.put_item(TableName=self._table(kind), Item=_serialize({**key, **fields}))

    def _delete(self, kind: str, key: dict[str, str]) -> None:
        self._dynamodb.delete_item(TableName=self._table(kind), Key=_serialize(key))

    # audit trail -------------------------------------------------------------
    async def put_audit_events(self, events: list[AuditEvent]) -> None:
        """One PutItem for one event, BatchWriteItem (25 a call) for more."""
        items = [_serialize(self._audit_item(event)) for event in events]
        table = self._table("audit")
        if len(items) == 1:
            await self._run(lambda: self._dynamodb.put_item(TableName=table, Item=items[0]))
            return

        def write() -> None:
            for start in range(0, len(items), BATCH_WRITE_LIMIT):
                chunk = [{"PutRequest": {"Item": item}} for item in items[start:start + BATCH_WRITE_LIMIT]]
                self._drain(self._dynamodb.batch_write_item, {table: chunk}, "UnprocessedItems")

        await self._run(write)

    def _audit_item(self, event: AuditEvent) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": f"MONTH#{event.at[:7]}", "sk": event.key, "epk": f"EVENT#{event.event}", "id": event.id,
            "at": event.at, "event": event.event, "fields": json.dumps(event.fields, ensure_ascii=False),
            AUDIT_TTL: self.audit_expiry(event)}
        if event.user_id is not None:
            item.update(upk=f"USER#{event.user_id}", user_id=event.user_id)
        return item

    async def list_audit_events(self, query: AuditQuery) -> list[AuditEvent]:
        return await self._run(self._audit_events, query)

    def _audit_events(self, query: AuditQuery) -> list[AuditEvent]:
        upper = min((bound for bound in (query.until, query.before) if bound is not None), default=None)
        if query.user_id is not None:
            partitions = [("by_user", f"USER#{query.user_id}")]
        elif query.event is not None:
            partitions = [("by_event", f"EVENT#{query.event}")]
        else:
            partitions = [("", f"MONTH#{month}") for month in self._audit_months(query.since, upper)]
        events: list[AuditEvent] = []
        for index, partition in partitions:
            for item in self._audit_partition(index, partition, query, upper):
                events.append(item)
                if len(events) == query.limit:
                    return events
        return events

    def _audit_months(self, since: str | None, upper: str | None) -> list[str]:
        """The months from ``upper`` (or now) back to ``since`` (or the retention), newest first."""
        now = time.time()
        last = upper[:7] if upper else time.strftime("%Y-%m", time.gmtime(now))
        first = since[:7] if since else time.strftime("%Y-%m", time.gmtime(now - self.audit_retention_days * 86400))
        months = []
        year, month = int(last[:4]), int(last[5:7])
        while f"{year:04d}-{month:02d}" >= first:
            months.append(f"{year:04d}-{month:02d}")
            year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        return months

    def _audit_partition(self, index: str, partition: str, query: AuditQuery,
                         upper: str | None) -> Iterator[AuditEvent]:
        """The unexpired events of one month (or of one user or event, through ``index``), newest first."""
        hash_key = AUDIT_INDEXES.get(index, "pk")
        condition, values = f"{hash_key} = :p", {":p": partition, ":now": int(time.time())}
        if query.since is not None and upper is not None:
            condition, values = condition + " AND sk BETWEEN :lo AND :hi", {**values, ":lo": query.since, ":hi": upper}
        elif query.since is not None:
            condition, values = condition + " AND sk >= :lo", {**values, ":lo": query.since}
        elif upper is not None:
            condition, values = condition + " AND sk < :hi", {**values, ":hi": upper}
        where = f"{AUDIT_TTL} > :now"
        if index == "by_user" and query.event is not None:
            where, values = where + " AND event = :event", {**values, ":event": query.event}
        paginator = self._dynamodb.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._table("audit"), **({"IndexName": index} if index else {"ConsistentRead": True}),
            KeyConditionExpression=condition, FilterExpression=where, ExpressionAttributeValues=_serialize(values),
            ScanIndexForward=False, PaginationConfig={"PageSize": self.page_size or max(query.limit, 25)})
        for page in pages:
            for item in page["Items"]:
                found = {name: str(_deserializer.deserialize(value)) for name, value in item.items()}
                if found["sk"] == upper:
                    continue  # the upper bound is exclusive: BETWEEN is not
                yield AuditEvent(found["id"], found["at"], found["event"], found.get("user_id"),
                                 json.loads(found["fields"]))

    # idempotent answers ------------------------------------------------------
    async def put_idempotent_answer(self, answer: IdempotentAnswer) -> None:
        fields = {**dataclasses.asdict(answer), "body": Binary(zlib.compress(answer.body.encode())),
                  EXPIRES: int(_epoch(answer.expires_at))}
        await self._run(self._put, "cache", _answer_key(answer.key), fields)

    async def get_idempotent_answer(self, key: str, now: str) -> IdempotentAnswer | None:
        item = await self._run(self._get, "cache", _answer_key(key))
        if item is None:
            return None
        fields = {name: value for name, value in _plain(item).items() if name != EXPIRES}
        answer = IdempotentAnswer(**{**fields, "body": zlib.decompress(fields["body"].value).decode()})
        return answer if answer.expires_at >= now else None

    # blobs -------------------------------------------------------------------
    def _cache_file(self, key: str) -> Path:
        """Where ``key`` is cached; ``NotFoundError`` for a key that could leave the cache."""
        root = (Path(self.data_dir) / BLOB_CACHE).resolve()
        if any(part in ("", ".", "..") for part in key.split("/")):
            raise NotFoundError(f"No blob {key!r}.")
        path = (root / key).resolve()
        if not path.is_relative_to(root):
            raise NotFoundError(f"No blob {key!r}.")
        return path

    def _bucket(self, key: str) -> str:
        return self.datasets_bucket if key.split("/", 1)[0] == "datasets" else self.outputs_bucket

    async def put_blob(self, key: str, source: Path) -> None:
        await self._run(self._put_blob, key, source)

    def _put_blob(self, key: str, source: Path) -> None:
        self._cache_file(key)  # refuses a key the cache could not hold
        self._s3.upload_file(str(source), self._bucket(key), key)

    async def blob_path(self, key: str) -> Path:
        return await self._run(self._fetch_blob, key)

    def _fetch_blob(self, key: str) -> Path:
        """The cached copy of ``key``, downloaded first if missing; never a partial file."""
        path = self._cache_file(key)
        if path.is_file():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
        os.close(fd)
        try:
            self._s3.download_file(self._bucket(key), key, partial)
            os.chmod(partial, 0o440)
            os.replace(partial, path)
        except ClientError as exc:
            if _code(exc) in MISSING_OBJECT:
                raise NotFoundError(f"No blob {key!r}.") from exc
            raise
        finally:
            Path(partial).unlink(missing_ok=True)
        return path

    async def delete_blob(self, key: str) -> None:
        await self._run(self._delete_blob, key)

    def _delete_blob(self, key: str) -> None:
        path = self._cache_file(key)
        self._s3.delete_object(Bucket=self._bucket(key), Key=key)
        path.unlink(missing_ok=True)

    async def list_blobs(self, prefix: str) -> list[tuple[str, float]]:
        return await self._run(self._list_blobs, blob_prefix(prefix))

    def _list_blobs(self, prefix: str) -> list[tuple[str, float]]:
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._bucket(prefix), Prefix=prefix)
        return sorted((item["Key"], item["LastModified"].timestamp()) for page in pages
                      for item in page.get("Contents", []))

    # repair --------------------------------------------------------------------
    async def list_headless(self) -> list[tuple[str, str]]:
        return await self._run(self._list_headless)

    def _list_headless(self) -> list[tuple[str, str]]:
        """A scan of each versioned table's version items and of the shares, against their heads."""
        found: list[tuple[str, str]] = []
        for kind in (DATASETS, CARDS, DASHBOARDS):
            versions = self._pages("scan", kind.table, FilterExpression="begins_with(sk, :v)",
                                   ExpressionAttributeValues=_serialize({":v": "VERSION#"}), ProjectionExpression="pk")
            found.extend((kind.noun, record_id) for record_id in self._without_head(
                kind, {item["pk"]["S"].split("#", 1)[1] for item in versions}))
        shares = self._pages("scan", "shares", FilterExpression="begins_with(pk, :d)",
                             ExpressionAttributeValues=_serialize({":d": "DASHBOARD#"}), ProjectionExpression="pk")
        found.extend(("share", dashboard_id) for dashboard_id in self._without_head(
            DASHBOARDS, {item["pk"]["S"].split("#", 1)[1] for item in shares}))
        return found

    def _without_head(self, kind: Versioned, record_ids: set[str]) -> list[str]:
        heads = self._batch_get(kind.table, [_meta_key(kind, record_id) for record_id in record_ids])
        return sorted(record_ids - {item["pk"]["S"].split("#", 1)[1] for item in heads})

    async def catalogue_gaps(self) -> list[CatalogueGap]:
        return await self._run(self._catalogue_gaps)

    def _catalogue_gaps(self) -> list[CatalogueGap]:
        """A scan of the catalogue table against the items every record's entry has now (a scan of the heads,
        their current versions batched): missing or out-of-date items, and items no record has."""
        expected: dict[tuple[str, str], tuple[str, str, Any]] = {}  # key -> (noun, id, (head, summary))
        records: set[tuple[str, str]] = set()
        versions: dict[str, int] = {}  # dashboard id -> its current version
        for kind in (DATASETS, CARDS, DASHBOARDS):
            for entry, head in self._entries_now(kind):
                records.add((kind.noun, entry.id))
                if kind is DASHBOARDS:
                    versions[entry.id] = head["current_version"]
                # as the entry keeps them (tuples: lists)
                as_written, summary = json.loads(json.dumps([head, entry.summary], ensure_ascii=False))
                for key in [*list_keys(entry), entry_key(entry.kind, entry.id)]:
                    expected[(key["pk"], key["sk"])] = (kind.noun, entry.id, (as_written, summary))
        actual = {}
        for item in self._pages("scan", "catalog", **_projection("pk", "sk", "head", "summary")):
            fields = _plain(item)
            actual[(item["pk"]["S"], item["sk"]["S"])] = (json.loads(fields["head"]),
                                                          json.loads(fields.get("summary", "{}")))
        unlisted = {(noun, record_id) for key, (noun, record_id, now) in expected.items() if actual.get(key) != now}
        unlisted |= {(DASHBOARDS.noun, dashboard_id) for dashboard_id in self._behind_on_shares(versions)}
        stray: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for pk, sk in set(actual) - set(expected):
            noun, record_id = (pk.split("#")[1], pk.split("#")[2]) if sk == "ENTRY" else (pk.split("#")[0],
                                                                                           sk.rpartition("#")[2])
            stray.setdefault((noun, record_id), []).append((pk, sk))
        return [CatalogueGap("unlisted" if (noun, record_id) in records else "listed_orphan", noun, record_id,
                             tuple(sorted(stray.get((noun, record_id), []))))
                for noun, record_id in sorted(unlisted | set(stray))]

    def _behind_on_shares(self, versions: dict[str, int]) -> set[str]:
        """The dashboards (of ``versions``, their current ones) with a share whose item under its grantee has no copy
        of the dashboard's entry at that version (a scan of the shares)."""
        behind = set()
        for item in self._pages("scan", "shares", FilterExpression="begins_with(pk, :u)",
                                ExpressionAttributeValues=_serialize({":u": "USER#"}),
                                **_projection("dashboard_id", "listed_version")):
            fields = _plain(item)
            if fields["dashboard_id"] in versions and fields.get("listed_version") != versions[fields["dashboard_id"]]:
                behind.add(fields["dashboard_id"])
        return behind

    def _entries_now(self, kind: Versioned) -> Iterator[tuple[CatalogEntry, dict[str, Any]]]:
        """The catalogue entry each record of ``kind`` has now, with its head's fields."""
        heads = list(self._scan_sort_key(kind.table, "META"))
        if kind is DATASETS:
            for item in heads:
                dataset = _dataset(item)
                yield dataset_entry(dataset), dataclasses.asdict(dataset)
            return
        records: list[Any] = [(_card if kind is CARDS else _dashboard)(item) for item in heads]
        versions = {(_plain(item)[kind.key], _plain(item)["version"]): item for item in self._batch_get(
            kind.table, [_version_key(kind, record.id, record.current_version) for record in records])}
        for record in records:
            version = versions.get((record.id, record.current_version))
            if version is None:
                continue  # no entry either (``_catalog_current``)
            entry = (card_entry(record, _card_version(version)) if kind is CARDS
                     else dashboard_entry(record, _dashboard_version(version)))
            yield entry, dataclasses.asdict(record)

    async def relist(self, gap: CatalogueGap) -> None:
        await self._run(self._relist, gap)

    def _relist(self, gap: CatalogueGap) -> None:
        kind = {DATASETS.noun: DATASETS, CARDS.noun: CARDS, DASHBOARDS.noun: DASHBOARDS}[gap.kind]
        self._catalog_current(kind, gap.id)
        self._batch_delete("catalog", [{"pk": pk, "sk": sk} for pk, sk in gap.stray])

    # batches -------------------------------------------------------------------
    async def get_cards(self, card_ids: Collection[str]) -> list[Card]:
        items = await self._run(self._batch_get, CARDS.table, [_meta_key(CARDS, i) for i in dict.fromkeys(card_ids)])
        return [_card(item) for item in items]


# keys ------------------------------------------------------------------------
def _user_key(user_id: str) -> dict[str, str]:
    return {"pk": f"USER#{user_id}", "sk": "PROFILE"}


def _email_key(email: str) -> dict[str, str]:
    return {"pk": f"EMAIL#{email}", "sk": "EMAIL"}


def _meta_key(kind: Versioned, record_id: str) -> dict[str, str]:
    return {"pk": f"{kind.prefix}#{record_id}", "sk": "META"}


def _version_key(kind: Versioned, record_id: str, version: int) -> dict[str, str]:
    return {"pk": f"{kind.prefix}#{record_id}", "sk": f"VERSION#{version:0{VERSION_DIGITS}d}"}


def _name_key(owner_id: str, name: str) -> dict[str, str]:
    return {"pk": f"OWNER#{owner_id}", "sk": f"NAME#{name}"}


def _result_key(key: str) -> dict[str, str]:
    return {"pk": f"RESULT#{key}", "sk": "RESULT"}


def _lease_key(name: str) -> dict[str, str]:
    return {"pk": f"LEASE#{name}", "sk": "LEASE"}


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _lease(item: dict[str, Any]) -> Lease:
    fields = _plain(item)
    return Lease(item["pk"]["S"].removeprefix("LEASE#"), fields["holder"], fields["version"],
                 fields["expires_ms"] / 1000, bool(fields["done"]))


def _table_key(output_id: str) -> dict[str, str]:
    return {"pk": f"TABLE#{output_id}", "sk": "TABLE"}


def _answer_key(key: str) -> dict[str, str]:
    return {"pk": f"ANSWER#{key}", "sk": "ANSWER"}


def _epoch(timestamp: str) -> float:
    """Seconds since the epoch of a ``utcnow()`` timestamp."""
    return datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def _group(gpk: str, when: str, record_id: str) -> dict[str, str]:
    """The cache table index's keys of an item: its group, then by time (ties by id)."""
    return {"gpk": gpk, "gsk": f"{when}#{record_id}"}


def _user_group(user: User) -> dict[str, str]:
    """A user profile's group keys: every user, by creation."""
    return _group("USERS", user.created_at, user.id)


def _share_group(share: Share) -> dict[str, str]:
    """The group keys of a share's item under its dashboard: the dashboard's shares, by grant."""
    return _group(f"DASHBOARD#{share.dashboard_id}", share.created_at, share.user_id)


def _profile_group(item: dict[str, Any]) -> dict[str, str] | None:
    is_profile = item["pk"]["S"].startswith("USER#") and item["sk"]["S"] == "PROFILE"
    return _user_group(_user(item)) if is_profile else None


def _dashboard_share_group(item: dict[str, Any]) -> dict[str, str] | None:
    return _share_group(_share(item)) if item["pk"]["S"].startswith("DASHBOARD#") else None


# The group keys ``bi init-tables`` gives the items of a table that got its group index late (None: in no group).
GROUP_BACKFILLS: dict[str, Callable[[dict[str, Any]], dict[str, str] | None]] = {
    "users": _profile_group, "shares": _dashboard_share_group}


def _key_attributes(*names: str) -> list[dict[str, str]]:
    return [{"AttributeName": name, "AttributeType": "S"} for name in names]


def _key_schema(hash_key: str, range_key: str) -> list[dict[str, str]]:
    return [{"AttributeName": hash_key, "KeyType": "HASH"}, {"AttributeName": range_key, "KeyType": "RANGE"}]


_GROUP_INDEX = {"IndexName": GROUP_INDEX, "KeySchema": _key_schema(*GROUP_KEYS),
                "Projection": {"ProjectionType": "ALL"}}
_AUDIT_INDEXES = [{"IndexName": name, "KeySchema": _key_schema(hash_key, "sk"), "Projection": {"ProjectionType": "ALL"}}
                  for name, hash_key in AUDIT_INDEXES.items()]


def _secondary_keys(indexes: list[dict[str, Any]]) -> list[str]:
    """The key attributes of ``indexes`` that are not the table's own (``pk``, ``sk``)."""
    names = [key["AttributeName"] for index in indexes for key in index["KeySchema"]]
    return [name for name in dict.fromkeys(names) if name not in ("pk", "sk")]


def _owned_key(kind: Versioned, owner_id: str, record_id: str) -> dict[str, str]:
    return {"pk": f"OWNER#{owner_id}", "sk": f"{kind.prefix}#{record_id}"}


def _session_key(session_id: str) -> dict[str, str]:
    return {"pk": f"SESSION#{session_id}", "sk": "SESSION"}


def _kernel_record_key(record_id: str) -> dict[str, str]:
    return {"pk": f"KERNEL#{record_id}", "sk": "KERNEL"}


def _personal_token_key(token_id: str) -> dict[str, str]:
    return {"pk": f"TOKEN#{token_id}", "sk": "TOKEN"}


def _uid_key(uid: str) -> dict[str, str]:
    return {"pk": f"UID#{uid}", "sk": "UID"}


def _index_keys(kind: Versioned, head: dict[str, Any]) -> list[dict[str, str]]:
    """The items that point at a head (``head``: its fields): a dataset's name item; a card's or
    dashboard's owner item, and a dashboard's uid item."""
    if kind is DATASETS:
        return [_name_key(head["owner_id"], head["name"])]
    keys = [_owned_key(kind, head["owner_id"], head["id"])]
    return keys + [_uid_key(head["uid"])] if kind is DASHBOARDS else keys


def _projection(*attributes: str) -> dict[str, Any]:
    """The parameters of a read of only ``attributes`` (by placeholder names: some are reserved words)."""
    return {"ProjectionExpression": ", ".join(f"#{name}" for name in attributes),
            "ExpressionAttributeNames": {f"#{name}": name for name in attributes}}


def _stamp(item: dict[str, Any]) -> VersionStamp:
    return VersionStamp(**_plain(item))


def _refresh_key(dashboard_id: str) -> dict[str, str]:
    return {"pk": REFRESH_PK, "sk": f"DASHBOARD#{dashboard_id}"}


def _card_index_keys(card_id: str, dashboard_id: str) -> list[dict[str, str]]:
    """The two items that say the dashboard holds the card: under the card, and under the dashboard."""
    return [{"pk": f"CARD#{card_id}", "sk": f"DASHBOARD#{dashboard_id}"},
            {"pk": f"DASHBOARD#{dashboard_id}", "sk": f"CARD#{card_id}"}]


def _share(item: dict[str, Any]) -> Share:
    """A share item's share (an item under its grantee also carries a copy of the dashboard's entry)."""
    fields = _plain(item)
    return Share(**{name: fields[name] for name in SHARE_FIELDS})


SHARE_FIELDS = tuple(field.name for field in dataclasses.fields(Share))


def _share_keys(dashboard_id: str, user_id: str) -> list[dict[str, str]]:
    """A share's two items: under its dashboard, and under its grantee."""
    return [{"pk": f"DASHBOARD#{dashboard_id}", "sk": f"USER#{user_id}"},
            {"pk": f"USER#{user_id}", "sk": f"DASHBOARD#{dashboard_id}"}]


# items -----------------------------------------------------------------------
def _serialize(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in values.items()}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    """An item's attributes as Python values, without its keys (index keys too); numbers become ints."""
    values = {name: _deserializer.deserialize(value) for name, value in item.items()
              if name not in ("pk", "sk", *GROUP_KEYS)}
    return {name: int(value) if isinstance(value, Decimal) else value
            for name, value in values.items()}


def _put_new(table: str, key: dict[str, str], fields: dict[str, Any]) -> dict[str, Any]:
    """A transaction Put that fails instead of overwriting."""
    return {"Put": {"TableName": table, "Item": _serialize({**key, **fields}),
                    "ConditionExpression": "attribute_not_exists(pk)"}}


def _dataset_version_fields(version: DatasetVersion) -> dict[str, Any]:
    fields = dataclasses.asdict(version)
    fields["columns"] = [[column.name, column.type] for column in version.columns]
    return fields


def _json(value: Any) -> str:
    """Free-form JSON (card parameters, dashboard documents) goes as one string: DynamoDB would turn
    its numbers into Decimals (and refuse floats), so floats would not round-trip."""
    return json.dumps(value, ensure_ascii=False)


def _card_version_fields(version: CardVersion) -> dict[str, Any]:
    fields = dataclasses.asdict(version)
    fields["datasets"] = list(version.datasets)
    fields["tags"] = list(version.tags)
    fields["parameters"] = _json(list(version.parameters))
    return fields


def _dashboard_version_fields(version: DashboardVersion) -> dict[str, Any]:
    return {**dataclasses.asdict(version), "document": _json(version.document)}


def _user(item: dict[str, Any]) -> User:
    return User(**_plain(item))


def _user_keyed(item: dict[str, Any]) -> tuple[str, str, User]:
    """A user profile item as the users list pages it: (creation time, id, user)."""
    user = _user(item)
    return user.created_at, user.id, user


def _share_keyed(item: dict[str, Any]) -> tuple[str, str, Share]:
    """A share item as a dashboard's shares page it: (grant time, user id, share)."""
    share = _share(item)
    return share.created_at, share.user_id, share


def _attempts() -> int:
    """How many attempts of the SDK's failed so far in this ``_run`` (a mark for ``_maybe_landed``)."""
    failed = _FAILED_ATTEMPTS.get()
    return len(failed) if failed is not None else 0


def _maybe_landed(mark: int) -> bool:
    """Whether an attempt that failed since ``mark`` (``_attempts``) may have been done: it may still land, or
    have landed with its answer lost."""
    failed = _FAILED_ATTEMPTS.get()
    return failed is not None and any(failed[mark:])


def _unexpiring(item: dict[str, Any]) -> dict[str, Any]:
    """An item's fields without its TTL attribute."""
    fields = _plain(item)
    fields.pop("expires", None)
    return fields


def _dataset(item: dict[str, Any]) -> Dataset:
    return _dataset_fields(_plain(item))


def _dataset_fields(fields: dict[str, Any]) -> Dataset:
    """A dataset from its stored fields (``aliases`` a list, absent on those stored before renames)."""
    return Dataset(**{**fields, "aliases": tuple(fields.get("aliases", ()))})


def _dataset_version(item: dict[str, Any]) -> DatasetVersion:
    fields = _plain(item)
    fields["columns"] = tuple(Column(name, type_) for name, type_ in fields["columns"])
    return DatasetVersion(**fields)


def _cached_result(item: dict[str, Any]) -> CachedResult:
    fields = _plain(item)
    return CachedResult(**{**fields, "output_ids": tuple(fields.get("output_ids", ()))})


def _card(item: dict[str, Any]) -> Card:
    return Card(**_plain(item))


def _card_version(item: dict[str, Any]) -> CardVersion:
    fields = _plain(item)
    fields["datasets"] = tuple(fields["datasets"])
    fields["parameters"] = tuple(json.loads(fields["parameters"]))
    fields["tags"] = tuple(fields.get("tags", ()))
    return CardVersion(**fields)


def _dashboard(item: dict[str, Any]) -> Dashboard:
    return Dashboard(**_plain(item))


def _dashboard_version(item: dict[str, Any]) -> DashboardVersion:
    fields = _plain(item)
    return DashboardVersion(**{**fields, "document": json.loads(fields["document"])})


# errors ----------------------------------------------------------------------
def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _condition_held(write: Callable[[], Any]) -> bool:
    """Make the conditional ``write``: True if it was made, False if its condition failed."""
    try:
        write()
    except ClientError as exc:
        if _code(exc) != "ConditionalCheckFailedException":
            raise
        return False
    return True


def _unavailable(exc: Exception) -> str | None:
    """Why a call failed for want of the service (``throttled``, ``unavailable``, ``connection``: timeouts
    too), or None for an error of the call itself."""
    if isinstance(exc, ClientError):
        reasons = {reason.get("Code") for reason in exc.response.get("CancellationReasons", [])}
        if _code(exc) in THROTTLED or reasons & {"ThrottlingError", "ProvisionedThroughputExceeded"}:
            return "throttled"
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return "unavailable" if _code(exc) in UNAVAILABLE or status >= 500 else None
    return "unavailable" if isinstance(exc, S3UploadFailedError) else "connection"


def _whole_bucket(rule: dict[str, Any]) -> bool:
    """Whether a lifecycle rule applies to every object (no prefix, tag or size filter)."""
    return not rule.get("Prefix") and rule.get("Filter", {}) in ({}, {"Prefix": ""})


def _failed(reasons: list[dict[str, Any]], index: int) -> bool:
    """Whether the transaction was cancelled because of its ``index``-th action."""
    return bool(reasons) and reasons[index].get("Code") != "None"
