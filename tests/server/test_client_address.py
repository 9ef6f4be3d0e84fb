"""The client address: the connection's, or the rightmost X-Forwarded-For hop no trusted proxy wrote."""

from __future__ import annotations

import pytest

from server.client_address import TrustedProxies

BALANCERS = TrustedProxies(["10.0.0.0/16", "fd00::/8"])


def test_without_trusted_proxies_the_header_is_ignored():
    assert TrustedProxies().client_address("198.51.100.7", ["203.0.113.1"]) == "198.51.100.7"


def test_an_untrusted_peer_cannot_speak_for_anyone():
    assert BALANCERS.client_address("198.51.100.7", ["203.0.113.1"]) == "198.51.100.7"


def test_the_rightmost_untrusted_hop_is_the_client():
    assert BALANCERS.client_address("10.0.3.4", ["6.6.6.6, 203.0.113.1, 10.0.1.9"]) == "203.0.113.1"


def test_repeated_headers_read_as_one_list():
    assert BALANCERS.client_address("10.0.3.4", ["6.6.6.6", "203.0.113.1"]) == "203.0.113.1"


def test_a_trusted_peer_without_the_header_is_the_client():
    assert BALANCERS.client_address("10.0.3.4", []) == "10.0.3.4"


def test_garbage_stops_at_the_last_hop_a_proxy_wrote():
    assert BALANCERS.client_address("10.0.3.4", ["203.0.113.1, not-an-ip, 10.0.1.9"]) == "10.0.1.9"


def test_ipv6_and_mapped_ipv4():
    assert BALANCERS.client_address("fd00::1", ["2001:db8::5"]) == "2001:db8::5"
    assert BALANCERS.trusts("::ffff:10.0.0.1")


def test_a_bad_cidr_is_refused_with_its_name():
    with pytest.raises(ValueError, match="'10.0.0/33'"):
        TrustedProxies(["10.0.0/33"])


def test_https_is_the_connection_s_or_what_our_proxy_wrote():
    """A direct HTTPS connection is HTTPS; X-Forwarded-Proto counts only from a trusted proxy, and
    only its last hop (the one our proxy wrote)."""
    assert BALANCERS.is_https("198.51.100.7", "https")
    assert not BALANCERS.is_https("198.51.100.7", "http", ["https"])
    assert BALANCERS.is_https("10.0.3.4", "http", ["https"])
    assert not BALANCERS.is_https("10.0.3.4", "http", ["https, http"])
    assert not BALANCERS.is_https("10.0.3.4", "http", [])
