"""The container tests' images: built once per test run (and machine, through Docker's cache)."""

from __future__ import annotations

import pytest

from .engine import build_base_images, build_images, compose_command


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
