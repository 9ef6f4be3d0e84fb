"""The API fixtures of tests/server, for the attacks here."""

from ..server.conftest import api, start_server  # noqa: F401 - fixtures
from ..server.test_sessions import root, start_cards  # noqa: F401 - fixtures
