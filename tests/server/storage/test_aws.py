"""What only the AWS store has: tables, buckets, item layout, pagination, batches and the blob cache."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from server.errors import ConflictError, NotFoundError, StorageUnavailableError, StoreClosedError
from server.models import CachedResult, OutputTable, Share, utcnow
from server.storage.aws import REFRESH_PK, TABLES, AWSStore
from tests.conftest import aws_store_config
from tests.server.storage.test_contract import (make_card, make_dashboard, make_dashboard_version, make_dataset,
                                                make_user, make_version)

pytestmark = pytest.mark.aws

ENVIRONMENT = {
    "AWS_REGION": "eu-west-1",
    "AWS_ENDPOINT_URL_DYNAMODB": "http://dynamodb.local:8000",
    "AWS_ENDPOINT_URL_S3": "http://minio.local:9000",
    "BI_TABLE_PREFIX": "prod_",
    "BI_DATASETS_BUCKET": "acme-datasets",
    "BI_OUTPUTS_BUCKET": "acme-outputs",
}


@pytest.fixture
def new_store(moto_endpoint, tmp_path):
    """Builds unopened stores on fresh tables and buckets; extra traits override the config."""
    def build(**traits: Any) -> AWSStore:
        config = {**aws_store_config(moto_endpoint), **traits}
        return AWSStore(data_dir=str(tmp_path / "data"), **config)
    return build


@pytest.fixture
async def aws_store(new_store):
    """An open AWS store with its schema created."""
    instance = new_store()
    await instance.create_schema()
    yield instance
    await instance.close()


@pytest.fixture
def dynamodb(moto_endpoint):
    """A plain DynamoDB client on the moto server, to look behind the store."""
    return boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_endpoint)


@pytest.fixture
def s3(moto_endpoint):
    """A plain S3 client on the moto server, to look behind the store."""
    return boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)


def client_error(code: str, operation: str, **extra: Any) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}, **extra}, operation)


def count_calls(store: AWSStore, operation: str) -> list[None]:
    """A list that grows by one for every DynamoDB ``operation`` call the store makes."""
    calls: list[None] = []
    store._dynamodb.meta.events.register(
        f"before-call.dynamodb.{operation}", lambda **_: calls.append(None))
    return calls


def table_items(dynamodb, store: AWSStore, kind: str) -> list[dict[str, Any]]:
    return dynamodb.scan(TableName=store.table_prefix + kind)["Items"]


class TestConfiguration:
    def test_defaults_come_from_the_environment(self, monkeypatch):
        """Each trait defaults to its documented environment variable."""
        for name, value in ENVIRONMENT.items():
            monkeypatch.setenv(name, value)
        store = AWSStore()
        assert (store.region_name, store.dynamodb_endpoint_url, store.s3_endpoint_url,
                store.table_prefix, store.datasets_bucket, store.outputs_bucket) == tuple(ENVIRONMENT.values())

    def test_defaults_without_environment(self, monkeypatch):
        """Without the variables the store targets AWS itself with the bi_ names."""
        for name in ENVIRONMENT:
            monkeypatch.delenv(name, raising=False)
        store = AWSStore()
        assert (store.region_name, store.dynamodb_endpoint_url, store.s3_endpoint_url,
                store.table_prefix, store.datasets_bucket, store.outputs_bucket) == (
            "us-east-1", "", "", "bi_", "bi-datasets", "bi-outputs")

    async def test_clients_use_botocore_standard_retries(self, new_store):
        """Both clients retry in botocore's standard mode with the configured attempts; DynamoDB has its own
        short timeouts, S3 the long ones."""
        store = new_store(max_attempts=3, connect_timeout=2.0, read_timeout=7.0, dynamodb_connect_timeout=1.0,
                          dynamodb_read_timeout=3.0)
        await store.open()
        try:
            for client, timeouts in ((store._dynamodb, (1.0, 3.0)), (store._s3, (2.0, 7.0))):
                config = client.meta.config
                assert config.retries == {"mode": "standard", "total_max_attempts": 3}
                assert (config.connect_timeout, config.read_timeout) == timeouts
        finally:
            await store.close()

    async def test_closed_store_refuses_everything(self, aws_store, tmp_path):
        """After close, schema, blob and reopen calls raise StoreClosedError."""
        await aws_store.close()
        source = tmp_path / "x.bin"
        source.write_bytes(b"x")
        calls = (aws_store.create_schema, aws_store.open, lambda: aws_store.put_blob("outputs/x", source),
                 lambda: aws_store.blob_path("outputs/x"), lambda: aws_store.delete_blob("outputs/x"))
        for call in calls:
            with pytest.raises(StoreClosedError):
                await call()


class TestSchema:
    async def test_creates_seven_tables_keyed_by_pk_and_sk(self, aws_store, dynamodb):
        """Every table exists, is ACTIVE, on demand, and keyed by pk (hash) and sk (range)."""
        for kind in TABLES:
            table = dynamodb.describe_table(TableName=aws_store.table_prefix + kind)["Table"]
            assert table["TableStatus"] == "ACTIVE"
            assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
            assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"},
                                          {"AttributeName": "sk", "KeyType": "RANGE"}]

    async def test_point_in_time_recovery_is_on(self, aws_store, dynamodb):
        """moto supports PITR, so every table reports it enabled."""
        for kind in TABLES:
            backups = dynamodb.describe_continuous_backups(TableName=aws_store.table_prefix + kind)
            status = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
            assert status["PointInTimeRecoveryStatus"] == "ENABLED"

    async def test_buckets_are_versioned_encrypted_and_private(self, aws_store, s3):
        """Both buckets get versioning, SSE-S3 by default and a full public access block."""
        for bucket in (aws_store.datasets_bucket, aws_store.outputs_bucket):
            assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
            rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
            assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
            block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
            assert block == dict.fromkeys(
                ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"], True)

    async def test_lifecycle_rules_join_the_rules_of_existing_buckets(self, new_store, s3):
        """Buckets made before ``bi init-tables`` get the stack's lifecycle actions beside the operator's rules; an
        action one of those takes on the whole bucket stays theirs; a new bucket gets ours; a second run changes
        nothing."""
        store = new_store()
        logs = {"ID": "expire-logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 30}}
        year = {"ID": "keep-a-year", "Status": "Enabled", "Filter": {"Prefix": ""},
                "NoncurrentVersionExpiration": {"NoncurrentDays": 365}}
        for bucket, rule in ((store.datasets_bucket, logs), (store.outputs_bucket, year)):
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [rule]})
        await store.create_schema()
        puts: list[None] = []
        store._s3.meta.events.register("before-call.s3.PutBucketLifecycleConfiguration", lambda **_: puts.append(None))
        await store.create_schema()
        fresh = new_store(datasets_bucket=f"{store.datasets_bucket}-new")
        await fresh.create_schema()
        await fresh.close()
        await store.close()

        def rules(bucket: str) -> dict[str, dict[str, Any]]:
            found = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
            return {rule["ID"]: {k: v for k, v in rule.items() if k in (*logs, *year, "AbortIncompleteMultipartUpload")}
                    for rule in found}

        ours = {"ID": "expire-old-versions", "Status": "Enabled", "Filter": {"Prefix": ""},
                "NoncurrentVersionExpiration": {"NoncurrentDays": 90},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}
        assert rules(store.datasets_bucket) == {"expire-logs": logs, "expire-old-versions": ours}
        assert rules(store.outputs_bucket) == {"keep-a-year": year, "expire-old-versions": {
            "ID": "expire-old-versions", "Status": "Enabled", "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}}
        assert rules(fresh.datasets_bucket) == {"expire-old-versions": ours}
        assert puts == [], "a second run leaves the rules as they are"

    async def test_second_run_creates_nothing(self, new_store, dynamodb, caplog):
        """The first run logs the tables and buckets it created; a second run logs no creation."""
        caplog.set_level(logging.INFO)
        store = new_store()
        await store.create_schema()
        first = " ".join(r.getMessage() for r in caplog.records)
        assert "Created DynamoDB tables" in first and "Created S3 buckets" in first
        assert all(store.table_prefix + kind in first for kind in TABLES)
        caplog.clear()
        await store.create_schema()
        await store.close()
        assert not [r for r in caplog.records if "Created" in r.getMessage()]
        names = [name for page in dynamodb.get_paginator("list_tables").paginate() for name in page["TableNames"]]
        assert sum(name.startswith(store.table_prefix) for name in names) == len(TABLES)

    async def test_cache_table_made_before_its_index_gets_it(self, new_store, dynamodb):
        """A cache table from before the lifetime index gets it from the next ``bi init-tables``."""
        store = new_store()
        name = store.table_prefix + "cache"
        dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                              AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in ("pk", "sk")],
                              KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                         {"AttributeName": "sk", "KeyType": "RANGE"}])
        await store.create_schema()
        await store.create_schema()
        await store.close()
        indexes = dynamodb.describe_table(TableName=name)["Table"]["GlobalSecondaryIndexes"]
        assert [(i["IndexName"], [k["AttributeName"] for k in i["KeySchema"]]) for i in indexes] == \
            [("by_group", ["gpk", "gsk"])]

    async def test_audit_table_made_before_its_indexes_gets_them_and_ttl(self, new_store, dynamodb):
        """An audit table from before its indexes gets them, and TTL on expires_at, from ``bi init-tables``
        (one index per run while DynamoDB builds another)."""
        store = new_store()
        name = store.table_prefix + "audit"
        dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                              AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in ("pk", "sk")],
                              KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                         {"AttributeName": "sk", "KeyType": "RANGE"}])
        for _ in range(3):
            await store.create_schema()
        await store.close()
        indexes = dynamodb.describe_table(TableName=name)["Table"]["GlobalSecondaryIndexes"]
        assert sorted((i["IndexName"], [k["AttributeName"] for k in i["KeySchema"]]) for i in indexes) == \
            [("by_event", ["epk", "sk"]), ("by_user", ["upk", "sk"])]
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        assert ttl["TimeToLiveStatus"] == "ENABLED" and ttl["AttributeName"] == "expires_at"

    async def test_pitr_unsupported_warns_and_goes_on(self, new_store, monkeypatch, caplog):
        """An endpoint without PITR (DynamoDB Local) gets one warning per table, not a failure."""
        store = new_store()
        await store.open()

        def unsupported(**_: Any) -> None:
            raise client_error("UnknownOperationException", "UpdateContinuousBackups")

        monkeypatch.setattr(store._dynamodb, "update_continuous_backups", unsupported)
        await store.create_schema()
        await store.close()
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == len(TABLES)
        assert all("Point-in-time recovery" in r.getMessage() for r in warnings)

    async def test_other_schema_errors_propagate(self, new_store, monkeypatch):
        """An AWS error the store does not expect reaches the caller."""
        store = new_store()
        await store.open()

        def denied(**_: Any) -> None:
            raise client_error("AccessDeniedException", "UpdateContinuousBackups")

        monkeypatch.setattr(store._dynamodb, "update_continuous_backups", denied)
        with pytest.raises(ClientError):
            await store.create_schema()
        await store.close()


class TestItems:
    async def test_item_layout(self, aws_store, dynamodb):
        """Users, emails, datasets, versions and names are stored under the documented keys."""
        owner = make_user()
        await aws_store.create_user(owner)
        dataset, version = make_dataset(owner)
        await aws_store.create_dataset(dataset, version)
        users = {(i["pk"]["S"], i["sk"]["S"]): i for i in table_items(dynamodb, aws_store, "users")}
        assert users[(f"EMAIL#{owner.email}", "EMAIL")]["user_id"] == {"S": owner.id}
        assert users[(f"USER#{owner.id}", "PROFILE")]["email"] == {"S": owner.email}
        items = {(i["pk"]["S"], i["sk"]["S"]): i for i in table_items(dynamodb, aws_store, "datasets")}
        assert items[(f"OWNER#{owner.id}", "NAME#売上")]["dataset_id"] == {"S": dataset.id}
        assert items[(f"DATASET#{dataset.id}", "META")]["current_version"] == {"N": "1"}
        columns = items[(f"DATASET#{dataset.id}", "VERSION#000001")]["columns"]
        assert columns == {"L": [{"L": [{"S": "店舗"}, {"S": "string"}]},
                                 {"L": [{"S": "amount"}, {"S": "int64"}]}]}

    async def test_card_item_layout(self, aws_store, dynamodb):
        """A card is a META item, zero-padded VERSION items and the owner's index item."""
        owner = make_user()
        card, version = make_card(owner)
        await aws_store.create_card(card, version)
        items = {(i["pk"]["S"], i["sk"]["S"]): i for i in table_items(dynamodb, aws_store, "cards")}
        assert set(items) == {(f"CARD#{card.id}", "META"), (f"CARD#{card.id}", "VERSION#000001"),
                              (f"OWNER#{owner.id}", f"CARD#{card.id}")}
        assert items[(f"OWNER#{owner.id}", f"CARD#{card.id}")]["card_id"] == {"S": card.id}
        assert items[(f"CARD#{card.id}", "VERSION#000001")]["title"] == {"S": version.title}

    async def test_dashboard_item_layout(self, aws_store, dynamodb):
        """A dashboard is a META item, VERSION items with the document as one JSON string, the owner's
        index item, the uid item, the two items of each card it holds and, as it has a refresh, its item in
        the refresh schedule."""
        owner = make_user()
        dashboard, version = make_dashboard(owner)
        await aws_store.create_dashboard(dashboard, version)
        items = {(i["pk"]["S"], i["sk"]["S"]): i for i in table_items(dynamodb, aws_store, "dashboards")}
        card_id = version.document["cards"][0]["card"]
        assert set(items) == {(f"DASHBOARD#{dashboard.id}", "META"), (f"DASHBOARD#{dashboard.id}", "VERSION#000001"),
                              (f"OWNER#{owner.id}", f"DASHBOARD#{dashboard.id}"), ("UID#sales-overview", "UID"),
                              (f"CARD#{card_id}", f"DASHBOARD#{dashboard.id}"),
                              (f"DASHBOARD#{dashboard.id}", f"CARD#{card_id}"),
                              (REFRESH_PK, f"DASHBOARD#{dashboard.id}")}
        assert items[("UID#sales-overview", "UID")]["dashboard_id"] == {"S": dashboard.id}
        assert items[(f"OWNER#{owner.id}", f"DASHBOARD#{dashboard.id}")]["dashboard_id"] == {"S": dashboard.id}
        assert json.loads(items[(f"DASHBOARD#{dashboard.id}", "VERSION#000001")]["document"]["S"]) == version.document

    async def test_share_is_two_items_and_listings_are_queries(self, aws_store, dynamodb):
        """A share is stored under its dashboard and under its grantee; both listings Query, never Scan."""
        owner, guest = make_user(), make_user("guest@example.com")
        dashboard, version = make_dashboard(owner)
        await aws_store.create_dashboard(dashboard, version)
        share = Share(dashboard.id, guest.id, "view", utcnow(), owner.id)
        await aws_store.put_share(share)
        items = {(i["pk"]["S"], i["sk"]["S"]) for i in table_items(dynamodb, aws_store, "shares")}
        assert items == {(f"DASHBOARD#{dashboard.id}", f"USER#{guest.id}"),
                         (f"USER#{guest.id}", f"DASHBOARD#{dashboard.id}")}
        queries, scans = count_calls(aws_store, "Query"), count_calls(aws_store, "Scan")
        assert await aws_store.list_user_shares(guest.id) == [share]
        assert await aws_store.list_shares(dashboard.id) == [share]
        assert (len(queries), len(scans)) == (2, 0)

    async def test_lifetime_listings_are_index_queries(self, aws_store):
        """A user's tables and a variant's results are read from the index by Query, never Scan."""
        table = OutputTable("o" * 32, "tables/o.arrow", "ana", None, utcnow(), bytes=10, last_used=utcnow())
        result = CachedResult("k" * 64, "results/k.json", "card1", "ok", 1, utcnow(), "v1", (table.output_id,))
        await aws_store.put_output_table(table)
        await aws_store.put_cached_result(result)
        queries, scans = count_calls(aws_store, "Query"), count_calls(aws_store, "Scan")
        assert await aws_store.list_output_tables("ana") == [table]
        assert await aws_store.list_cached_results("v1") == [result]
        assert (len(queries), len(scans)) == (2, 0)

    async def test_share_of_missing_dashboard_is_not_found(self, aws_store, dynamodb):
        """Granting on a dashboard that does not exist (or was just deleted) writes nothing."""
        with pytest.raises(NotFoundError):
            await aws_store.put_share(Share("ghost", "u1", "view", utcnow(), "u0"))
        assert table_items(dynamodb, aws_store, "shares") == []

    async def test_delete_dashboard_leaves_no_items(self, aws_store, dynamodb):
        """Deleting a dashboard removes its META, versions, owner and uid items and both items of each share."""
        owner, ana, bo = make_user(), make_user("ana@example.com"), make_user("bo@example.com")
        dashboard, first = make_dashboard(owner)
        await aws_store.create_dashboard(dashboard, first)
        await aws_store.add_dashboard_version(make_dashboard_version(dashboard.id, 2, owner), 1)
        for user in (ana, bo):
            await aws_store.put_share(Share(dashboard.id, user.id, "edit", utcnow(), owner.id))
        await aws_store.delete_dashboard(dashboard.id)
        assert table_items(dynamodb, aws_store, "dashboards") == []
        assert table_items(dynamodb, aws_store, "shares") == []

    async def test_stale_delete_keeps_a_uid_taken_since(self, aws_store, monkeypatch):
        """A deletion that read the dashboard before another call deleted it, and another dashboard
        took its uid, leaves the new dashboard's uid item alone."""
        owner = make_user()
        old, version = make_dashboard(owner)
        await aws_store.create_dashboard(old, version)
        stale = aws_store._get("dashboards", {"pk": f"DASHBOARD#{old.id}", "sk": "META"})
        await aws_store.delete_dashboard(old.id)
        new, version = make_dashboard(owner)
        await aws_store.create_dashboard(new, version)
        monkeypatch.setattr(aws_store, "_get", lambda *_: stale)
        await aws_store.delete_dashboard(old.id)
        monkeypatch.undo()
        assert await aws_store.get_dashboard_by_uid("sales-overview") == new

    async def test_password_update_of_missing_user_writes_nothing(self, aws_store, dynamodb):
        """Updating the hash of an unknown user leaves the table empty instead of a partial item."""
        await aws_store.update_password_hash("ghost", "$argon2id$x")
        assert table_items(dynamodb, aws_store, "users") == []

    async def test_conflicting_transaction_is_a_conflict(self, aws_store, monkeypatch):
        """A version write cancelled by a concurrent transaction raises ConflictError."""
        owner = make_user()
        await aws_store.create_user(owner)
        dataset, first = make_dataset(owner)
        await aws_store.create_dataset(dataset, first)

        def conflict(**_: Any) -> None:
            raise client_error("TransactionCanceledException", "TransactWriteItems",
                               CancellationReasons=[{"Code": "TransactionConflict"}, {"Code": "None"}])

        monkeypatch.setattr(aws_store._dynamodb, "transact_write_items", conflict)
        with pytest.raises(ConflictError):
            await aws_store.add_dataset_version(make_version(dataset.id, 2, owner), 1)

    async def test_unexpected_cancellation_propagates(self, aws_store, monkeypatch):
        """A transaction cancelled for another reason (throttling) is not turned into a conflict: the store
        is unavailable."""
        def throttled(**_: Any) -> None:
            raise client_error("TransactionCanceledException", "TransactWriteItems",
                               CancellationReasons=[{"Code": "ThrottlingError"}, {"Code": "None"}])

        monkeypatch.setattr(aws_store._dynamodb, "transact_write_items", throttled)
        with pytest.raises(StorageUnavailableError):
            await aws_store.create_user(make_user())


class TestBatchesAndPages:
    async def test_list_users_reads_every_page(self, new_store, monkeypatch):
        """With two users a page, all five still list, newest first, over several Queries of the index."""
        monkeypatch.setattr("server.storage.base.PAGE_SIZE_MAX", 2)
        store = new_store()
        await store.create_schema()
        users = [make_user(f"u{i}@example.com") for i in range(5)]
        for user in users:
            await store.create_user(user)
        queries = count_calls(store, "Query")
        scans = count_calls(store, "Scan")
        listed = await store.list_users()
        await store.close()
        assert listed == sorted(users, key=lambda u: (u.created_at, u.id), reverse=True)
        assert len(queries) == 3 and not scans

    async def test_list_datasets_reads_every_page(self, new_store):
        """With two items per page, an owner's and everyone's datasets list whole and newest first."""
        store = new_store(page_size=2)
        await store.create_schema()
        ana, bo = make_user("ana@example.com"), make_user("bo@example.com")
        datasets = [make_dataset(ana, f"d{i}") for i in range(5)] + [make_dataset(bo, "other")]
        for dataset, version in datasets:
            await store.create_dataset(dataset, version)
        queries, scans = count_calls(store, "Query"), count_calls(store, "Scan")
        owned = await store.list_datasets(ana.id)
        everyone = await store.list_datasets()
        await store.close()
        by_id = sorted((d for d, _ in datasets if d.owner_id == ana.id), key=lambda d: d.id)
        assert owned == sorted(by_id, key=lambda d: d.created_at, reverse=True)
        assert {d.id for d in everyone} == {d.id for d, _ in datasets}
        assert len(queries) >= 3 and len(scans) >= 3

    async def test_owner_listing_beyond_one_batch(self, aws_store):
        """An owner with more than 100 datasets gets all of them (BatchGetItem takes 100 keys)."""
        owner = make_user()
        for i in range(101):
            await aws_store.create_dataset(*make_dataset(owner, f"d{i:03d}"))
        assert len(await aws_store.list_datasets(owner.id)) == 101

    async def test_unprocessed_keys_are_fetched_again(self, aws_store, monkeypatch):
        """Keys that BatchGetItem leaves unprocessed are asked for again."""
        owner = make_user()
        for name in ("a", "b", "c"):
            await aws_store.create_dataset(*make_dataset(owner, name))
        real = aws_store._dynamodb.batch_get_item
        calls = []

        def hold_back_last(RequestItems: dict[str, Any]) -> dict[str, Any]:
            calls.append(RequestItems)
            if len(calls) > 1:
                return real(RequestItems=RequestItems)
            (table, request), = RequestItems.items()
            response = real(RequestItems={table: {**request, "Keys": request["Keys"][:-1]}})
            response["UnprocessedKeys"] = {table: {**request, "Keys": request["Keys"][-1:]}}
            return response

        monkeypatch.setattr(aws_store._dynamodb, "batch_get_item", hold_back_last)
        assert sorted(d.name for d in await aws_store.list_datasets(owner.id)) == ["a", "b", "c"]
        assert len(calls) == 2

    async def test_unprocessed_deletes_are_sent_again(self, aws_store, monkeypatch, dynamodb):
        """Deletes that BatchWriteItem leaves unprocessed are sent again, so no version item remains."""
        owner = make_user()
        dataset, first = make_dataset(owner)
        await aws_store.create_dataset(dataset, first)
        for number in (2, 3):
            await aws_store.add_dataset_version(make_version(dataset.id, number, owner), number - 1)
        real = aws_store._dynamodb.batch_write_item
        calls = []

        def hold_back_last(RequestItems: dict[str, Any]) -> dict[str, Any]:
            (table, requests), = RequestItems.items()
            if table != aws_store._table("datasets"):  # the catalogue's items
                return real(RequestItems=RequestItems)
            calls.append(RequestItems)
            if len(calls) > 1:
                return real(RequestItems=RequestItems)
            response = real(RequestItems={table: requests[:-1]})
            response["UnprocessedItems"] = {table: requests[-1:]}
            return response

        monkeypatch.setattr(aws_store._dynamodb, "batch_write_item", hold_back_last)
        assert [v.version for v in await aws_store.delete_dataset(dataset.id)] == [1, 2, 3]
        assert table_items(dynamodb, aws_store, "datasets") == []
        assert len(calls) == 2


class TestBlobs:
    async def test_keys_go_to_their_bucket(self, aws_store, s3, tmp_path):
        """datasets/ keys land in the datasets bucket, every other key in the outputs bucket."""
        source = tmp_path / "x.bin"
        source.write_bytes(b"x")
        await aws_store.put_blob("datasets/d1/v1.parquet", source)
        await aws_store.put_blob("outputs/o1", source)
        s3.head_object(Bucket=aws_store.datasets_bucket, Key="datasets/d1/v1.parquet")
        s3.head_object(Bucket=aws_store.outputs_bucket, Key="outputs/o1")
        with pytest.raises(ClientError):
            s3.head_object(Bucket=aws_store.outputs_bucket, Key="datasets/d1/v1.parquet")

    async def test_cached_blob_needs_no_download(self, aws_store, s3, tmp_path):
        """Once fetched, a blob is served from data_dir/blob-cache even if S3 no longer answers."""
        source = tmp_path / "x.bin"
        source.write_bytes("売上".encode())
        await aws_store.put_blob("outputs/o1", source)
        path = await aws_store.blob_path("outputs/o1")
        s3.delete_object(Bucket=aws_store.outputs_bucket, Key="outputs/o1")
        assert await aws_store.blob_path("outputs/o1") == path
        assert path == Path(aws_store.data_dir).resolve() / "blob-cache" / "outputs" / "o1"
        assert path.read_bytes() == source.read_bytes()

    async def test_failed_download_leaves_no_file(self, aws_store, monkeypatch, tmp_path):
        """A download that breaks half way leaves nothing in the cache, and a retry succeeds."""
        source = tmp_path / "x.bin"
        source.write_bytes(b"complete")
        await aws_store.put_blob("outputs/o1", source)
        real = aws_store._s3.download_file

        def break_half_way(bucket: str, key: str, filename: str) -> None:
            Path(filename).write_bytes(b"comp")
            raise client_error("InternalError", "GetObject")

        monkeypatch.setattr(aws_store._s3, "download_file", break_half_way)
        with pytest.raises(StorageUnavailableError):
            await aws_store.blob_path("outputs/o1")
        cache = Path(aws_store.data_dir) / "blob-cache"
        assert [p for p in cache.rglob("*") if p.is_file()] == []
        monkeypatch.setattr(aws_store._s3, "download_file", real)
        assert (await aws_store.blob_path("outputs/o1")).read_bytes() == b"complete"

    @pytest.mark.parametrize("key", [
        "../x", "/etc/passwd", "datasets/../../x", "datasets/..", "datasets//x", "datasets/./x", "",
    ])
    async def test_key_never_leaves_the_cache(self, aws_store, tmp_path, key):
        """Keys with empty, . or .. segments or a leading / are refused by every blob call."""
        source = tmp_path / "x.bin"
        source.write_bytes(b"x")
        calls = (lambda: aws_store.blob_path(key), lambda: aws_store.put_blob(key, source),
                 lambda: aws_store.delete_blob(key))
        for call in calls:
            with pytest.raises(NotFoundError):
                await call()

    async def test_symlink_out_of_the_cache_is_refused(self, aws_store, tmp_path):
        """A symlink inside the cache that points outside it does not lead a download out."""
        source = tmp_path / "x.bin"
        source.write_bytes(b"x")
        await aws_store.put_blob("outputs/o1", source)
        outside = tmp_path / "outside"
        outside.mkdir()
        cache = Path(aws_store.data_dir) / "blob-cache"
        cache.mkdir(parents=True)
        (cache / "outputs").symlink_to(outside)
        with pytest.raises(NotFoundError):
            await aws_store.blob_path("outputs/o1")
        assert list(outside.iterdir()) == []

    async def test_delete_drops_the_cached_copy(self, aws_store, tmp_path):
        """Deleting a blob removes its cached file as well as the object."""
        source = tmp_path / "x.bin"
        source.write_bytes(b"x")
        await aws_store.put_blob("outputs/o1", source)
        path = await aws_store.blob_path("outputs/o1")
        await aws_store.delete_blob("outputs/o1")
        assert not path.exists()
        with pytest.raises(NotFoundError):
            await aws_store.blob_path("outputs/o1")
