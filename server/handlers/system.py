"""Health, readiness and metrics: ``/api/health`` (liveness) and ``/api/ready`` are public, for load
balancers, compose and alarms; ``/metrics`` is for Prometheus.

On the API port ``/metrics`` answers only ``Authorization: Bearer <metrics_token>`` (403 while no
token is set); the metrics listener (``ServeApp.metrics_port``) serves it to anyone who reaches it.
"""

from __future__ import annotations

import hmac

from ..errors import AuthenticationError, PermissionDeniedError
from ..services.readiness import ReadinessService
from .base import APIHandler


class HealthHandler(APIHandler):
    """Liveness: the process answers. What the load balancer and ECS replace a task on."""

    auth_required = False

    def get(self) -> None:
        self.write_json({"status": "ok"})


class ReadyHandler(APIHandler):
    """Readiness: the store answers and an executor can take a kernel (``degraded`` if one of them or the bus
    is); 503 with the reasons otherwise."""

    auth_required = False

    async def get(self) -> None:
        readiness: ReadinessService = self.settings["readiness"]
        checks = await readiness.check()
        if all(check["ok"] for check in checks.values()):
            degraded = any(check.get("degraded") for check in checks.values())
            self.write_json({"status": "degraded" if degraded else "ready", "checks": checks})
        else:
            self.set_header("Retry-After", f"{readiness.retry_after:g}")
            self.write_json({"status": "not_ready", "checks": checks}, 503)


class MetricsHandler(APIHandler):
    auth_required = False

    async def get(self) -> None:
        if not self.settings.get("metrics_open"):
            await self._check_scrape_token(self.settings.get("metrics_token", ""))
        metrics = self.settings["metrics"]
        self.set_header("Content-Type", metrics.content_type)
        self.finish(metrics.exposition())

    async def _check_scrape_token(self, expected: str) -> None:
        """403 without a configured token; 401 without a bearer token or for a wrong one (counted by the sign-in
        throttle per address: ``secret_checks.py``)."""
        if not expected:
            raise PermissionDeniedError("/metrics is closed on this port: set BI_METRICS_TOKEN and send it as "
                                        "'Authorization: Bearer <token>', or scrape the BI_METRICS_PORT listener.")
        scheme, _, sent = self.request.headers.get("Authorization", "").partition(" ")

        async def right() -> bool:
            return hmac.compare_digest(sent.strip().encode(), expected.encode())

        if scheme.lower() != "bearer" or not await self.auth.secret_checks.check("metrics-token", self.client_ip, right):
            raise AuthenticationError("Send the scrape token: 'Authorization: Bearer <BI_METRICS_TOKEN>'.")
