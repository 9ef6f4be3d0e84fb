"""Property-based fuzzing of every JSON route and websocket message type against a real server.

Cases are drawn from the documented shapes (the handlers' JSON Schemas, the card schema, the
dashboard format) and from hostile JSON (``fuzz_support``); about half are valid, so they reach the
handlers. Every answer must be below 500 (or a 503 with ``Retry-After``), every error in the one
error shape, every JSON body readable by a strict parser, and a socket must answer a bad frame and
stay open. The ``json-fuzz-ci`` profile (the default; ``HYPOTHESIS_PROFILE=json-fuzz-dev`` for a
quick random run) is derandomised: the same cases on every run. ``bench/fuzz.py`` runs 100,000.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .fuzz_support import LiveServer, Tally, http_case, make_fixtures, routes, ws_case

HTTP_CASES = 8_500
SOCKET_CASES = 1_500
COMMON = settings(database=None, deadline=None, suppress_health_check=list(HealthCheck), print_blob=True)
settings.register_profile("json-fuzz-ci", COMMON, derandomize=True)
settings.register_profile("json-fuzz-dev", COMMON, max_examples=300)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "json-fuzz-ci"))


def cases(count: int) -> settings:
    """``count`` cases in the CI profile, the profile's own number otherwise."""
    return settings(PROFILE, max_examples=count if PROFILE.derandomize else PROFILE.max_examples)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = LiveServer(tmp_path_factory.mktemp("fuzz"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def fixtures(server):
    return make_fixtures(server)


@pytest.mark.timeout(600)
def test_every_json_route(server, fixtures):
    """No 5xx, one error shape and strict JSON out, for valid and hostile bodies on every JSON route."""
    all_routes, tally = routes(fixtures), Tally()

    @cases(HTTP_CASES)
    @given(st.data())
    def one(data):
        http_case(server, fixtures, all_routes, tally, data)

    one()
    assert tally.valid >= 0.3 * tally.cases, tally


@pytest.mark.timeout(600)
def test_every_websocket_message_type(server, fixtures):
    """Card, dashboard and Jupyter sockets answer every bad frame with an error and stay open; a Jupyter
    kernel answers the next request after any frame."""
    sockets, tally = fixtures.sockets, Tally()

    @cases(SOCKET_CASES)
    @given(st.data())
    def one(data):
        ws_case(server, sockets, tally, data)

    one()
    assert tally.valid >= 0.3 * tally.cases, tally
