"""Health and metrics: public, for load balancers and Prometheus."""

from __future__ import annotations

from .base import APIHandler


class HealthHandler(APIHandler):
    auth_required = False

    def get(self) -> None:
        self.write_json({"status": "ok"})


class MetricsHandler(APIHandler):
    auth_required = False

    def get(self) -> None:
        metrics = self.settings["metrics"]
        self.set_header("Content-Type", metrics.content_type)
        self.finish(metrics.exposition())
