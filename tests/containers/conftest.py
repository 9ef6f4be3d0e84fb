"""The container tests' images: built once per test run (and machine, through Docker's cache).

They run where ``BI_CONTAINER_TESTS=1`` (there, in CI, a missing engine or compose tool fails them); elsewhere
they skip, as they build images for minutes. CI does not set it yet: run beside the rest of the suite on two
cores, their image builds starved the timing of the interrupt tests (three failed in two clean runs).
"""

from __future__ import annotations

import os

import pytest

from .engine import build_base_images, build_images, compose_command


@pytest.fixture(scope="session", autouse=True)
def wanted() -> None:
    """Skip unless ``BI_CONTAINER_TESTS=1``."""
    if os.environ.get("BI_CONTAINER_TESTS") != "1":
        pytest.skip("container tests run with BI_CONTAINER_TESTS=1 (Docker, docker-compose and debootstrap)")


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
