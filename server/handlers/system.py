"""Health and metrics: ``/api/health`` is public, for load balancers; ``/metrics`` is for Prometheus.

On the API port ``/metrics`` answers only ``Authorization: Bearer <metrics_token>`` (403 while no
token is set); the metrics listener (``ServeApp.metrics_port``) serves it to anyone who reaches it.
"""

from __future__ import annotations

import hmac

from ..errors import AuthenticationError, PermissionDeniedError
from .base import APIHandler


class HealthHandler(APIHandler):
    auth_required = False

    def get(self) -> None:
        self.write_json({"status": "ok"})


class MetricsHandler(APIHandler):
    auth_required = False

    def get(self) -> None:
        if not self.settings.get("metrics_open"):
            self._check_scrape_token(self.settings.get("metrics_token", ""))
        metrics = self.settings["metrics"]
        self.set_header("Content-Type", metrics.content_type)
        self.finish(metrics.exposition())

    def _check_scrape_token(self, expected: str) -> None:
        if not expected:
            raise PermissionDeniedError("/metrics is closed on this port: set BI_METRICS_TOKEN and send it as "
                                        "'Authorization: Bearer <token>', or scrape the BI_METRICS_PORT listener.")
        scheme, _, sent = self.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), expected.encode()):
            raise AuthenticationError("Send the scrape token: 'Authorization: Bearer <BI_METRICS_TOKEN>'.")
