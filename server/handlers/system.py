"""Health, readiness and metrics: public, for load balancers, compose, alarms and Prometheus."""

from __future__ import annotations

from ..services.readiness import ReadinessService
from .base import APIHandler


class HealthHandler(APIHandler):
    """Liveness: the process answers. What the load balancer and ECS replace a task on."""

    auth_required = False

    def get(self) -> None:
        self.write_json({"status": "ok"})


class ReadyHandler(APIHandler):
    """Readiness: the store answers and an executor can take a kernel; 503 with the reasons otherwise."""

    auth_required = False

    async def get(self) -> None:
        readiness: ReadinessService = self.settings["readiness"]
        checks = await readiness.check()
        if all(check["ok"] for check in checks.values()):
            self.write_json({"status": "ready", "checks": checks})
        else:
            self.set_header("Retry-After", f"{readiness.retry_after:g}")
            self.write_json({"status": "not_ready", "checks": checks}, 503)


class MetricsHandler(APIHandler):
    auth_required = False

    def get(self) -> None:
        metrics = self.settings["metrics"]
        self.set_header("Content-Type", metrics.content_type)
        self.finish(metrics.exposition())
