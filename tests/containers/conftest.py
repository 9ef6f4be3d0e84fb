"""The container tests' images: built once per test run (and machine, through Docker's cache).

They run in CI (``CI=true``: .ci/run installs and starts Docker, and a missing engine or compose tool fails them)
and where ``BI_CONTAINER_TESTS=1``; elsewhere they skip, as they build images for minutes.
"""

from __future__ import annotations

import os

import pytest

from .engine import build_base_images, build_images, compose_command


@pytest.fixture(scope="session", autouse=True)
def wanted() -> None:
    """Skip unless in CI or ``BI_CONTAINER_TESTS=1``."""
    if os.environ.get("CI") != "true" and os.environ.get("BI_CONTAINER_TESTS") != "1":
        pytest.skip("container tests run in CI (CI=true) or with BI_CONTAINER_TESTS=1; they need Docker's engine "
                    "running, docker-compose and debootstrap, and build images for minutes")


@pytest.fixture(scope="session")
def base_images() -> list[str]:
    """The stand-in base images (skips or, in CI, fails without an engine); the compose tool."""
    command = compose_command()
    build_base_images()
    return command


@pytest.fixture(scope="session")
def compose(base_images) -> list[str]:
    """The compose tool, with every image of the stack built."""
    build_images(base_images)
    return base_images
