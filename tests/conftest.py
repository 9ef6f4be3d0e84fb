"""Fixtures shared by every suite: a moto server on loopback and a store of each backend."""

from __future__ import annotations

import itertools
import os
import uuid
from typing import AsyncIterator, Iterator

import pytest

AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real moto server (DynamoDB + S3 over HTTP) on a free 127.0.0.1 port."""
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in AWS_TEST_ENV}
    os.environ.update(AWS_TEST_ENV)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


_names = itertools.count()


def aws_store_config(moto_endpoint: str) -> dict[str, str]:
    """AWSStore settings with table and bucket names no other test uses."""
    unique = f"t{next(_names)}{uuid.uuid4().hex[:8]}"
    return {
        "region_name": "us-east-1",
        "dynamodb_endpoint_url": moto_endpoint,
        "s3_endpoint_url": moto_endpoint,
        "table_prefix": f"{unique}_",
        "datasets_bucket": f"{unique}-datasets",
        "outputs_bucket": f"{unique}-outputs",
    }


@pytest.fixture(params=["embedded", "aws"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """Each backend in turn; tests that take it run against both."""
    return request.param


@pytest.fixture
async def store(store_kind: str, tmp_path, request: pytest.FixtureRequest) -> AsyncIterator:
    """An open, empty store of ``store_kind`` with its schema created."""
    if store_kind == "embedded":
        from server.storage.sqlite import SQLiteStore

        instance = SQLiteStore(data_dir=str(tmp_path / "data"))
    else:
        from server.storage.aws import AWSStore

        endpoint = request.getfixturevalue("moto_endpoint")
        instance = AWSStore(data_dir=str(tmp_path / "data"), **aws_store_config(endpoint))
    await instance.create_schema()
    await instance.open()
    yield instance
    await instance.close()
