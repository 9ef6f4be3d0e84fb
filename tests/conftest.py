"""Fixtures shared by every suite: a moto server on loopback, a store of each backend, an executor agent."""

from __future__ import annotations

import asyncio
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


@pytest.fixture(scope="session")
def shared_agent(tmp_path_factory) -> Iterator[tuple[str, str] | None]:
    """One executor agent (one warm kernel) for the servers of every test that needs no agent of its own,
    as a remote agent: starting one (its template imports the data stack) costs seconds. Its URL and the
    PEM of the key that signs calls to it; None when not root."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from server.execution.local_agent import PUBLIC_KEY_FILE, LocalAgent

    if os.geteuid() != 0:
        yield None
        return
    key = Ed25519PrivateKey.generate()
    folder = tmp_path_factory.mktemp("shared-agent")
    (folder / PUBLIC_KEY_FILE).write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    agent = LocalAgent(folder, pool_size=1, allow_weaker_sandbox=False)
    client = asyncio.run(agent.start(key))
    client.close()
    yield client.base_url, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode()
    asyncio.run(agent.stop())
