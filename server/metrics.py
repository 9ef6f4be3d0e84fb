"""Prometheus metrics of one server instance, exposed at ``/metrics``.

Each ``Metrics`` owns its registry, so several servers (tests) never share counters.
Later features add their own collectors to ``registry``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram(
            "bi_http_request_duration_seconds", "HTTP request latency by route.",
            ["method", "endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.responses = Counter(
            "bi_http_responses", "HTTP responses by route and status class.",
            ["method", "endpoint", "status_class"], registry=self.registry)
        self.store_errors = Counter(
            "bi_store_errors", "Store calls that failed after their retries, by reason (throttled, unavailable, "
            "connection).", ["reason"], registry=self.registry)
        self.store_retries = Counter(
            "bi_store_failed_attempts", "Store call attempts that failed the way the AWS SDK retries (every one "
            "but the last of a call that failed), by service.", ["service"], registry=self.registry)

    def observe_request(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        self.request_seconds.labels(method, endpoint).observe(seconds)
        self.responses.labels(method, endpoint, f"{status // 100}xx").inc()

    def store_failed(self, reason: str) -> None:
        self.store_errors.labels(reason).inc()

    def store_attempt_failed(self, service: str) -> None:
        self.store_retries.labels(service).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
