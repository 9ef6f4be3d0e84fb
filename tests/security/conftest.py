"""Fixtures the attack tests share: servers with real kernels (``tests/server``)."""

from tests.server.conftest import start_server  # noqa: F401 - fixtures
from tests.server.test_sessions import root, start_cards  # noqa: F401 - fixtures
