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
shares      ``DASHBOARD#<id>``      ``USER#<user_id>``  the share's fields (the dashboard's shares)
shares      ``USER#<user_id>``      ``DASHBOARD#<id>``  the same fields again (the user's shares)
cache       ``RESULT#<key>``        ``RESULT``          a cached card result (outputs: a blob)
cache       ``TABLE#<output_id>``   ``TABLE``           who may page a DataFrame output (rows: a blob)
==========  ======================  ==================  ===============================

The cache table has one global secondary index, ``by_group`` (keys ``gpk`` and ``gsk``, all
attributes projected), so that what lifetimes need is a Query, never a Scan: a table item has
``gpk`` ``USER#<user_id>`` and ``gsk`` ``<last_used>#<output_id>`` (a user's tables, least
recently used first), a result item ``gpk`` ``VARIANT#<variant>`` and ``gsk``
``<created_at>#<key>`` (a card's results for some parameter values, newest last).

Writes that must be unique or that can race are transactions with condition
expressions: the items that point at a head (name, owner and uid items) are written
and deleted in the head's transactions; a share's two items are written in one
transaction that also checks that the dashboard exists, and deleting a dashboard
deletes its head first, then its versions and shares.

Blobs go to the datasets bucket (keys under ``datasets/``) or the
outputs bucket (everything else) and are read through a local cache under
``data_dir/blob-cache``; keys are never overwritten, so a cached file stays valid.

All boto3 calls run on a thread pool; the clients are thread-safe and retry
with botocore's standard mode.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import os
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from collections.abc import Callable, Iterator

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError
from traitlets import Float, Int, Unicode, default

from ..environment import setting
from ..errors import ConflictError, NotFoundError, StoreClosedError
from ..models import (CachedResult, Card, CardVersion, Column, Dashboard, DashboardVersion, Dataset, DatasetVersion,
                      OutputTable, Share, User)
from ..paging import ListQuery, Page, ordered, take
from .aws_catalog import DynamoCatalog
from .base import PROFILE_FIELDS, Store
from .catalog import CARD, DASHBOARD, DATASET, card_entry, dashboard_entry, dataset_entry
from .versioned import CARDS, DASHBOARDS, DATASETS, Versioned, newest_first

T = TypeVar("T")

TABLES = ("users", "datasets", "cards", "dashboards", "shares", "cache", "audit", "catalog")
BLOB_CACHE = "blob-cache"
BATCH_GET_LIMIT = 100
BATCH_WRITE_LIMIT = 25
# What DynamoDB Local says (UnknownOperationException), and what AWS says for a
# table whose backups are still being set up: both mean "no PITR for now".
PITR_UNAVAILABLE = {"UnknownOperationException", "ContinuousBackupsUnavailableException"}
# Cancellation reasons a caller maps to a domain error; any other reason propagates.
EXPECTED_CANCELLATIONS = {"None", "ConditionalCheckFailed", "TransactionConflict"}
MISSING_OBJECT = {"404", "NoSuchKey", "NotFound"}
PUBLIC_ACCESS_BLOCK = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
GROUP_INDEX = "by_group"  # the cache table's index of tables by user and results by variant
GROUP_KEYS = ("gpk", "gsk")

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class AWSStore(Store):
    """DynamoDB + S3. ``create_schema()`` (``bi init-tables``) creates the tables and buckets."""

    region_name = Unicode(help="AWS region of the tables and buckets.").tag(config=True)
    dynamodb_endpoint_url = Unicode(help="DynamoDB endpoint; empty for AWS's own.").tag(config=True)
    s3_endpoint_url = Unicode(help="S3 endpoint; empty for AWS's own.").tag(config=True)
    table_prefix = Unicode(help="Prefix of every DynamoDB table name.").tag(config=True)
    datasets_bucket = Unicode(help="S3 bucket for dataset Parquet files.").tag(config=True)
    outputs_bucket = Unicode(help="S3 bucket for large card outputs.").tag(config=True)
    max_attempts = Int(5, help="Attempts per AWS call, the first included (botocore standard retries).").tag(config=True)
    connect_timeout = Float(5.0, help="Seconds to wait for an AWS connection.").tag(config=True)
    read_timeout = Float(30.0, help="Seconds to wait for an AWS response.").tag(config=True)
    max_workers = Int(32, help="Threads (and pooled connections) for AWS calls.").tag(config=True)
    page_size = Int(0, help="Items per DynamoDB Scan/Query page; 0 lets DynamoDB decide.").tag(config=True)

    @default("region_name")
    def _default_region_name(self) -> str:
        return setting("AWS_REGION", "us-east-1")

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

    # plumbing ----------------------------------------------------------------
    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed or self._executor is None:
            raise StoreClosedError("The store is closed.")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

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
            "dynamodb", endpoint_url=self.dynamodb_endpoint_url or None, config=config)
        if self.s3_endpoint_url:
            # MinIO and moto serve buckets by path, not by virtual host name.
            config = config.merge(Config(s3={"addressing_style": "path"}))
        self._s3 = session.client("s3", endpoint_url=self.s3_endpoint_url or None, config=config)

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
                time.sleep(min(0.05 * 2 ** attempt, 2.0))
            responses.append(call(RequestItems=requests))
            requests = responses[-1].get(leftover) or {}
            if not requests:
                return responses
        raise RuntimeError(f"DynamoDB left requests unprocessed after {self.max_attempts} rounds.")

    def _batch_get(self, kind: str, keys: list[dict[str, str]]) -> list[dict[str, Any]]:
        table = self._table(kind)
        items = []
        for start in range(0, len(keys), BATCH_GET_LIMIT):
            chunk = [_serialize(key) for key in keys[start:start + BATCH_GET_LIMIT]]
            requests = {table: {"Keys": chunk, "ConsistentRead": True}}
            for response in self._drain(self._dynamodb.batch_get_item, requests, "UnprocessedKeys"):
                items.extend(response["Responses"].get(table, []))
        return items

    def _batch_delete(self, kind: str, keys: list[dict[str, str]]) -> None:
        table = self._table(kind)
        for start in range(0, len(keys), BATCH_WRITE_LIMIT):
            chunk = [{"DeleteRequest": {"Key": _serialize(key)}}
                     for key in keys[start:start + BATCH_WRITE_LIMIT]]
            self._drain(self._dynamodb.batch_write_item, {table: chunk}, "UnprocessedItems")

    def _transact(self, actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run a write transaction: ``[]`` when it commits, else the cancellation reasons.

        Reasons other than a failed condition or a conflicting transaction propagate.
        """
        try:
            self._dynamodb.transact_write_items(TransactItems=actions)
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons", [])
            if _code(exc) != "TransactionCanceledException" or not reasons or any(
                    reason.get("Code") not in EXPECTED_CANCELLATIONS for reason in reasons):
                raise
            return reasons
        return []

    # lifecycle ---------------------------------------------------------------
    async def open(self) -> None:
        if self._closed:
            raise StoreClosedError("The store is closed.")
        if self._executor is not None:
            return
        self._executor = concurrent.futures.ThreadPoolExecutor(
            self.max_workers, thread_name_prefix="aws-store")
        await self._run(self._connect)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
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
        if self._table("cache") not in created:
            self._add_group_index(self._table("cache"))
        if self._table("catalog") in created and len(created) < len(names):  # added to tables holding records
            self._backfill_catalog()
        for name in names:
            self._enable_pitr(name)
        if created:
            self.log.info("Created DynamoDB tables: %s", ", ".join(created))

    def _create_table(self, name: str) -> bool:
        """Create one table (the cache table with its index); False if it already exists."""
        index = ({"GlobalSecondaryIndexes": [_GROUP_INDEX]} if name == self._table("cache") else {})
        try:
            self._dynamodb.create_table(
                TableName=name,
                AttributeDefinitions=_key_attributes("pk", "sk", *(GROUP_KEYS if index else ())),
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
        """Add the cache table's index to a table made before it; it serves once DynamoDB has built it."""
        table = self._dynamodb.describe_table(TableName=name)["Table"]
        if any(index["IndexName"] == GROUP_INDEX for index in table.get("GlobalSecondaryIndexes", [])):
            return
        self._dynamodb.update_table(TableName=name, AttributeDefinitions=_key_attributes(*GROUP_KEYS),
                                    GlobalSecondaryIndexUpdates=[{"Create": _GROUP_INDEX}])
        self.log.info("Adding index %s to DynamoDB table %s", GROUP_INDEX, name)

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
        """Create missing buckets and secure them; existing buckets are left as they are."""
        names = list(dict.fromkeys([self.datasets_bucket, self.outputs_bucket]))
        created = [name for name in names if self._create_bucket(name)]
        for name in created:
            self._secure_bucket(name)
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
        self._s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        self._s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
        self._s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={
            setting_name: True for setting_name in PUBLIC_ACCESS_BLOCK})

    # users -------------------------------------------------------------------
    async def create_user(self, user: User) -> None:
        await self._run(self._create_user, user)

    def _create_user(self, user: User) -> None:
        table = self._table("users")
        reasons = self._transact([
            _put_new(table, _user_key(user.id), dataclasses.asdict(user)),
            _put_new(table, _email_key(user.email), {"user_id": user.id}),
        ])
        if _failed(reasons, 1):
            raise ConflictError(f"A user with the email {user.email} already exists.")
        if reasons:
            raise ConflictError(f"A user with the id {user.id} already exists.")

    async def get_user(self, user_id: str) -> User | None:
        item = await self._run(self._get, "users", _user_key(user_id))
        return _user(item) if item else None

    async def get_user_by_email(self, email: str) -> User | None:
        item = await self._run(self._get, "users", _email_key(email))
        return await self.get_user(_plain(item)["user_id"]) if item else None

    async def list_users(self) -> list[User]:
        items = await self._run(lambda: list(self._scan_sort_key("users", "PROFILE")))
        return sorted((_user(item) for item in items), key=lambda u: (u.created_at, u.id))

    async def update_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._run(self._update_password_hash, user_id, password_hash)

    def _update_password_hash(self, user_id: str, password_hash: str) -> None:
        """Set the hash; like the SQLite store, a missing user is left missing."""
        try:
            self._dynamodb.update_item(
                TableName=self._table("users"), Key=_serialize(_user_key(user_id)),
                UpdateExpression="SET password_hash = :hash",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues=_serialize({":hash": password_hash}))
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise

    async def update_profile(self, user_id: str, changes: dict[str, str]) -> None:
        await self._run(self._update_profile, user_id, changes)

    def _update_profile(self, user_id: str, changes: dict[str, str]) -> None:
        fields = [name for name in PROFILE_FIELDS if name in changes]
        if not fields:
            return
        try:
            self._dynamodb.update_item(
                TableName=self._table("users"), Key=_serialize(_user_key(user_id)),
                UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in fields),
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={f"#{name}": name for name in fields},  # "name" is a reserved word
                ExpressionAttributeValues=_serialize({f":{name}": changes[name] for name in fields}))
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise

    # versioned records (datasets, cards, dashboards) -------------------------
    def _create_versioned(self, kind: Versioned, head: Any, version_fields: dict[str, Any]) -> list[dict[str, Any]]:
        """Put a head, its first version and the items that point at it, at once; the cancellation reasons."""
        table = self._table(kind.table)
        fields = dataclasses.asdict(head)
        return self._transact([
            _put_new(table, _meta_key(kind, head.id), fields),
            _put_new(table, _version_key(kind, head.id, version_fields["version"]), version_fields),
            *(_put_new(table, key, {kind.key: head.id}) for key in _index_keys(kind, fields)),
        ])

    def _delete_versioned(self, kind: Versioned, record_id: str) -> list[dict[str, Any]]:
        """Delete the head and the items that point at it first, so no version can be added after
        that, then the versions; return the version items."""
        item = self._get(kind.table, _meta_key(kind, record_id))
        if item is not None:
            self._delete_head(kind, record_id, _index_keys(kind, _plain(item)))
        self._catalogue.delete(kind.noun, record_id)
        return self._delete_versions(kind, record_id)

    def _delete_head(self, kind: Versioned, record_id: str, index_keys: list[dict[str, str]]) -> None:
        """Delete META and its index items together; an index item only while it still points at this record."""
        table = self._table(kind.table)
        reasons = self._transact([
            {"Delete": {"TableName": table, "Key": _serialize(_meta_key(kind, record_id))}},
            *({"Delete": {"TableName": table, "Key": _serialize(key),
                          "ConditionExpression": f"{kind.key} = :id",
                          "ExpressionAttributeValues": _serialize({":id": record_id})}} for key in index_keys),
        ])
        if any(reason.get("Code") == "TransactionConflict" for reason in reasons):
            raise ConflictError(f"The {kind.noun} is being changed; retry the deletion.")
        # A failed index condition means another call deleted the items already.

    def _add_version(self, kind: Versioned, record_id: str, number: int, created_at: str,
                     expected_current: int, fields: dict[str, Any]) -> None:
        """Make ``number`` current if the head is at ``expected_current``, and put its item: at once."""
        kind.check_follows(number, expected_current)
        reasons = self._transact([
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
            self._catalog_current(kind, record_id)
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
        self._catalogue.write(dataset_entry(dataset), dataclasses.asdict(dataset))

    async def add_dataset_version(self, version: DatasetVersion, expected_current: int) -> None:
        await self._run(self._add_version, DATASETS, version.dataset_id, version.version,
                        version.created_at, expected_current, _dataset_version_fields(version))

    async def get_dataset(self, dataset_id: str) -> Dataset | None:
        item = await self._run(self._get, "datasets", _meta_key(DATASETS, dataset_id))
        return _dataset(item) if item else None

    async def list_datasets(self, owner_id: str | None = None) -> list[Dataset]:
        items = await self._run(self._heads, DATASETS, owner_id, "NAME#")
        return newest_first(_dataset(item) for item in items)

    async def get_dataset_version(self, dataset_id: str, version: int) -> DatasetVersion | None:
        item = await self._run(self._get, "datasets", _version_key(DATASETS, dataset_id, version))
        return _dataset_version(item) if item else None

    async def list_dataset_versions(self, dataset_id: str) -> list[DatasetVersion]:
        items = await self._run(self._version_items, DATASETS, dataset_id)
        return [_dataset_version(item) for item in items]

    async def delete_dataset(self, dataset_id: str) -> list[DatasetVersion]:
        """The version list is whole: no version can be added once META is gone."""
        items = await self._run(self._delete_versioned, DATASETS, dataset_id)
        return [_dataset_version(item) for item in items]

    # cards -------------------------------------------------------------------
    async def create_card(self, card: Card, version: CardVersion) -> None:
        await self._run(self._create_card, card, version)

    def _create_card(self, card: Card, version: CardVersion) -> None:
        if self._create_versioned(CARDS, card, _card_version_fields(version)):
            raise ConflictError(f"A card with the id {card.id} already exists.")
        self._catalogue.write(card_entry(card, version), dataclasses.asdict(card))

    async def add_card_version(self, version: CardVersion, expected_current: int) -> None:
        await self._run(self._add_version, CARDS, version.card_id, version.version,
                        version.created_at, expected_current, _card_version_fields(version))

    async def get_card(self, card_id: str) -> Card | None:
        item = await self._run(self._get, "cards", _meta_key(CARDS, card_id))
        return _card(item) if item else None

    async def list_cards(self, owner_id: str | None = None) -> list[Card]:
        items = await self._run(self._heads, CARDS, owner_id, "CARD#")
        return newest_first(_card(item) for item in items)

    async def get_card_version(self, card_id: str, version: int) -> CardVersion | None:
        item = await self._run(self._get, "cards", _version_key(CARDS, card_id, version))
        return _card_version(item) if item else None

    async def list_card_versions(self, card_id: str) -> list[CardVersion]:
        items = await self._run(self._version_items, CARDS, card_id)
        return [_card_version(item) for item in items]

    async def delete_card(self, card_id: str) -> None:
        await self._run(self._delete_versioned, CARDS, card_id)

    # dashboards --------------------------------------------------------------
    async def create_dashboard(self, dashboard: Dashboard, version: DashboardVersion) -> None:
        await self._run(self._create_dashboard, dashboard, version)

    def _create_dashboard(self, dashboard: Dashboard, version: DashboardVersion) -> None:
        reasons = self._create_versioned(DASHBOARDS, dashboard, _dashboard_version_fields(version))
        if _failed(reasons, 3):
            raise ConflictError(f"A dashboard with the uid {dashboard.uid!r} already exists.")
        if reasons:
            raise ConflictError(f"A dashboard with the id {dashboard.id} already exists.")
        self._catalogue.write(dashboard_entry(dashboard, version), dataclasses.asdict(dashboard))

    async def add_dashboard_version(self, version: DashboardVersion, expected_current: int) -> None:
        await self._run(self._add_version, DASHBOARDS, version.dashboard_id, version.version,
                        version.created_at, expected_current, _dashboard_version_fields(version))

    async def get_dashboard(self, dashboard_id: str) -> Dashboard | None:
        item = await self._run(self._get, "dashboards", _meta_key(DASHBOARDS, dashboard_id))
        return _dashboard(item) if item else None

    async def get_dashboard_by_uid(self, uid: str) -> Dashboard | None:
        item = await self._run(self._get, "dashboards", _uid_key(uid))
        return await self.get_dashboard(_plain(item)["dashboard_id"]) if item else None

    async def list_dashboards(self, owner_id: str | None = None) -> list[Dashboard]:
        items = await self._run(self._heads, DASHBOARDS, owner_id, "DASHBOARD#")
        return newest_first(_dashboard(item) for item in items)

    async def get_dashboard_version(self, dashboard_id: str, version: int) -> DashboardVersion | None:
        item = await self._run(self._get, "dashboards", _version_key(DASHBOARDS, dashboard_id, version))
        return _dashboard_version(item) if item else None

    async def list_dashboard_versions(self, dashboard_id: str) -> list[DashboardVersion]:
        items = await self._run(self._version_items, DASHBOARDS, dashboard_id)
        return [_dashboard_version(item) for item in items]

    async def delete_dashboard(self, dashboard_id: str) -> None:
        await self._run(self._delete_dashboard, dashboard_id)

    def _delete_dashboard(self, dashboard_id: str) -> None:
        """Once META is gone no share can be granted (``put_share`` checks it), so the shares found after are all."""
        self._delete_versioned(DASHBOARDS, dashboard_id)
        shares = self._share_items(f"DASHBOARD#{dashboard_id}", "USER#")
        self._batch_delete("shares", [key for item in shares
                                      for key in _share_keys(dashboard_id, _plain(item)["user_id"])])

    # shares ------------------------------------------------------------------
    async def put_share(self, share: Share) -> None:
        await self._run(self._put_share, share)

    def _put_share(self, share: Share) -> None:
        """Both items of the share, replacing earlier ones, if the dashboard exists; ``NotFoundError`` if not."""
        table, fields = self._table("shares"), dataclasses.asdict(share)
        reasons = self._transact([
            {"ConditionCheck": {"TableName": self._table("dashboards"),
                                "Key": _serialize(_meta_key(DASHBOARDS, share.dashboard_id)),
                                "ConditionExpression": "attribute_exists(pk)"}},
            *({"Put": {"TableName": table, "Item": _serialize({**key, **fields})}}
              for key in _share_keys(share.dashboard_id, share.user_id)),
        ])
        if _failed(reasons, 0) and reasons[0].get("Code") == "ConditionalCheckFailed":
            raise DASHBOARDS.gone()
        if reasons:
            raise ConflictError("The share was changed at the same time; retry.")

    async def delete_share(self, dashboard_id: str, user_id: str) -> bool:
        return await self._run(self._delete_share, dashboard_id, user_id)

    def _delete_share(self, dashboard_id: str, user_id: str) -> bool:
        table = self._table("shares")
        by_dashboard, by_user = _share_keys(dashboard_id, user_id)
        reasons = self._transact([
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
        return sorted((Share(**_plain(item)) for item in items), key=lambda s: (s.created_at, s.user_id))

    async def list_user_shares(self, user_id: str) -> list[Share]:
        items = await self._run(self._share_items, f"USER#{user_id}", "DASHBOARD#")
        return sorted((Share(**_plain(item)) for item in items), key=lambda s: (s.created_at, s.dashboard_id))

    def _share_items(self, pk: str, sk_prefix: str) -> list[dict[str, Any]]:
        return list(self._query_prefix("shares", pk, sk_prefix))

    # pages of the catalogue (storage/aws_catalog.py) ------------------------------
    @property
    def _catalogue(self) -> DynamoCatalog:
        return DynamoCatalog(self._dynamodb, self._table("catalog"), self._table("shares"))

    async def page_cards(self, query: ListQuery) -> Page[Card]:
        return await self._run(self._page, CARD, query, Card)

    async def page_dashboards(self, query: ListQuery) -> Page[Dashboard]:
        return await self._run(self._page, DASHBOARD, query, Dashboard)

    async def page_datasets(self, query: ListQuery) -> Page[Dataset]:
        return await self._run(self._page, DATASET, query, Dataset)

    def _page(self, kind: str, query: ListQuery, record: Callable[..., T]) -> Page[T]:
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
        item = self._get(kind.table, _meta_key(kind, record_id))
        if item is None:
            return
        if kind is DATASETS:
            dataset = _dataset(item)
            self._catalogue.write(dataset_entry(dataset), dataclasses.asdict(dataset))
            return
        head = _card(item) if kind is CARDS else _dashboard(item)
        version = self._get(kind.table, _version_key(kind, record_id, head.current_version))
        if version is None:
            return
        if isinstance(head, Card):
            self._catalogue.write(card_entry(head, _card_version(version)), dataclasses.asdict(head))
        else:
            self._catalogue.write(dashboard_entry(head, _dashboard_version(version)), dataclasses.asdict(head))

    # result cache ------------------------------------------------------------
    async def get_cached_result(self, key: str) -> CachedResult | None:
        item = await self._run(self._get, "cache", _result_key(key))
        return _cached_result(item) if item else None

    async def put_cached_result(self, result: CachedResult) -> None:
        fields = {**dataclasses.asdict(result), "output_ids": list(result.output_ids)}
        group = _group(f"VARIANT#{result.variant}", result.created_at, result.key) if result.variant else {}
        await self._run(self._put, "cache", _result_key(result.key), {**fields, **group})

    async def list_cached_results(self, variant: str) -> list[CachedResult]:
        items = await self._run(self._group_items, f"VARIANT#{variant}", False)
        return [_cached_result(item) for item in items]

    async def delete_cached_result(self, key: str) -> None:
        await self._run(self._delete, "cache", _result_key(key))

    # output tables -----------------------------------------------------------
    async def put_output_table(self, table: OutputTable) -> None:
        group = _group(f"USER#{table.user_id}", table.last_used, table.output_id)
        await self._run(self._put, "cache", _table_key(table.output_id), {**dataclasses.asdict(table), **group})

    async def get_output_table(self, output_id: str) -> OutputTable | None:
        item = await self._run(self._get, "cache", _table_key(output_id))
        return OutputTable(**_plain(item)) if item else None

    async def list_output_tables(self, user_id: str) -> list[OutputTable]:
        items = await self._run(self._group_items, f"USER#{user_id}", True)
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
        try:
            self._dynamodb.update_item(TableName=self._table(kind), Key=_serialize(key),
                                       UpdateExpression=f"SET {assignments}",
                                       ConditionExpression="attribute_exists(pk)",
                                       ExpressionAttributeValues=_serialize(values))
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise

    async def delete_output_table(self, output_id: str) -> None:
        await self._run(self._delete, "cache", _table_key(output_id))

    def _group_items(self, gpk: str, ascending: bool) -> list[dict[str, Any]]:
        """The items of one group of the cache table's index, by ``gsk`` (eventually consistent)."""
        paginator = self._dynamodb.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._table("cache"), IndexName=GROUP_INDEX, KeyConditionExpression="gpk = :gpk",
            ExpressionAttributeValues=_serialize({":gpk": gpk}), ScanIndexForward=ascending,
            PaginationConfig={"PageSize": self.page_size or None})
        return [item for page in pages for item in page["Items"]]

    def _put(self, kind: str, key: dict[str, str], fields: dict[str, Any]) -> None:
        self._dynamodb.put_item(TableName=self._table(kind), Item=_serialize({**key, **fields}))

    def _delete(self, kind: str, key: dict[str, str]) -> None:
        self._dynamodb.delete_item(TableName=self._table(kind), Key=_serialize(key))

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


# keys ------------------------------------------------------------------------
def _user_key(user_id: str) -> dict[str, str]:
    return {"pk": f"USER#{user_id}", "sk": "PROFILE"}


def _email_key(email: str) -> dict[str, str]:
    return {"pk": f"EMAIL#{email}", "sk": "EMAIL"}


def _meta_key(kind: Versioned, record_id: str) -> dict[str, str]:
    return {"pk": f"{kind.prefix}#{record_id}", "sk": "META"}


def _version_key(kind: Versioned, record_id: str, version: int) -> dict[str, str]:
    return {"pk": f"{kind.prefix}#{record_id}", "sk": f"VERSION#{version:06d}"}


def _name_key(owner_id: str, name: str) -> dict[str, str]:
    return {"pk": f"OWNER#{owner_id}", "sk": f"NAME#{name}"}


def _result_key(key: str) -> dict[str, str]:
    return {"pk": f"RESULT#{key}", "sk": "RESULT"}


def _table_key(output_id: str) -> dict[str, str]:
    return {"pk": f"TABLE#{output_id}", "sk": "TABLE"}


def _group(gpk: str, when: str, record_id: str) -> dict[str, str]:
    """The cache table index's keys of an item: its group, then by time (ties by id)."""
    return {"gpk": gpk, "gsk": f"{when}#{record_id}"}


def _key_attributes(*names: str) -> list[dict[str, str]]:
    return [{"AttributeName": name, "AttributeType": "S"} for name in names]


def _key_schema(hash_key: str, range_key: str) -> list[dict[str, str]]:
    return [{"AttributeName": hash_key, "KeyType": "HASH"}, {"AttributeName": range_key, "KeyType": "RANGE"}]


_GROUP_INDEX = {"IndexName": GROUP_INDEX, "KeySchema": _key_schema(*GROUP_KEYS),
                "Projection": {"ProjectionType": "ALL"}}


def _owned_key(kind: Versioned, owner_id: str, record_id: str) -> dict[str, str]:
    return {"pk": f"OWNER#{owner_id}", "sk": f"{kind.prefix}#{record_id}"}


def _uid_key(uid: str) -> dict[str, str]:
    return {"pk": f"UID#{uid}", "sk": "UID"}


def _index_keys(kind: Versioned, head: dict[str, Any]) -> list[dict[str, str]]:
    """The items that point at a head (``head``: its fields): a dataset's name item; a card's or
    dashboard's owner item, and a dashboard's uid item."""
    if kind is DATASETS:
        return [_name_key(head["owner_id"], head["name"])]
    keys = [_owned_key(kind, head["owner_id"], head["id"])]
    return keys + [_uid_key(head["uid"])] if kind is DASHBOARDS else keys


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


def _dataset(item: dict[str, Any]) -> Dataset:
    return Dataset(**_plain(item))


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


def _failed(reasons: list[dict[str, Any]], index: int) -> bool:
    """Whether the transaction was cancelled because of its ``index``-th action."""
    return bool(reasons) and reasons[index].get("Code") != "None"
