"""Which executor agents exist: a fixed list, or the running tasks of an ECS service.

``StaticExecutors`` serves ``BI_EXECUTOR_URLS`` and the embedded server's own agent.
``EcsExecutors`` asks the ECS API for the executor service's running tasks (``ListTasks`` +
``DescribeTasks``), reaches each at its private address, and keeps tasks that hold kernels
protected from scale-in (``UpdateTaskProtection``), so the service only ever stops idle tasks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..logs import get_logger

log = get_logger("bi.execution.discovery")

DESCRIBE_BATCH = 100      # DescribeTasks takes at most 100 tasks
PROTECT_BATCH = 10        # UpdateTaskProtection takes at most 10 tasks
PROTECTION_MINUTES = 60   # protection lapses by itself if every server stops renewing it
RENEW_SECONDS = 30 * 60


class DiscoveryError(RuntimeError):
    """The executor agents could not be listed now; the previous list stands."""


class StaticExecutors:
    """A fixed set of agents; ``urls`` may be changed in place (one list per process).

    ``name`` is the metrics' ``ExecutorService`` dimension.
    """

    def __init__(self, urls: Iterable[str], name: str = "static"):
        self.urls = [url.rstrip("/") for url in urls]
        self.name = name

    async def discover(self) -> dict[str, str]:
        """Agent base URL -> an id of the agent's host (here the URL itself)."""
        return {url: url for url in self.urls}

    async def protect(self, busy: dict[str, bool]) -> None:
        """Nothing scales a fixed set in."""


class EcsExecutors:
    """The running tasks of an ECS service, each an agent at ``http://<private ip>:<port>``."""

    def __init__(self, cluster: str, service: str, port: int = 8080, region: str | None = None,
                 client: Any = None):
        self.cluster = cluster
        self.name = service
        self.port = port
        self.ecs = client or boto3.client("ecs", region_name=region,
                                          config=Config(retries={"mode": "standard", "total_max_attempts": 3}))
        self._protected: dict[str, float] = {}  # task ARN -> when protection was last set

    async def discover(self) -> dict[str, str]:
        """Agent base URL -> task ARN of every task of the service that is running now."""
        try:
            return await asyncio.to_thread(self._running_tasks)
        except (BotoCoreError, ClientError) as exc:
            raise DiscoveryError(f"ECS did not list the tasks of {self.name}: {exc}") from exc

    def _running_tasks(self) -> dict[str, str]:
        arns: list[str] = []
        for page in self.ecs.get_paginator("list_tasks").paginate(
                cluster=self.cluster, serviceName=self.name, desiredStatus="RUNNING"):
            arns.extend(page["taskArns"])
        found: dict[str, str] = {}
        for start in range(0, len(arns), DESCRIBE_BATCH):
            described = self.ecs.describe_tasks(cluster=self.cluster, tasks=arns[start:start + DESCRIBE_BATCH])
            for task in described["tasks"]:
                address = _private_address(task)
                if (task.get("group") == f"service:{self.name}" and task.get("lastStatus") == "RUNNING"
                        and task.get("desiredStatus") == "RUNNING" and address):
                    found[f"http://{address}:{self.port}"] = task["taskArn"]
        return found

    async def protect(self, busy: dict[str, bool]) -> None:
        """Protect the tasks (by ARN) that hold kernels from scale-in, release the idle ones.

        Only changes are sent, and a held protection is renewed before it lapses. Every server
        decides from the agents' own counts, so several servers agree.
        """
        now = time.monotonic()
        enable = [arn for arn, held in busy.items()
                  if held and now - self._protected.get(arn, -RENEW_SECONDS) >= RENEW_SECONDS]
        release = [arn for arn, held in busy.items() if not held and arn in self._protected]
        for arn in set(self._protected) - set(busy):
            del self._protected[arn]  # the task is gone
        for arns, enabled in ((enable, True), (release, False)):
            for start in range(0, len(arns), PROTECT_BATCH):
                batch = arns[start:start + PROTECT_BATCH]
                if await self._set_protection(batch, enabled):
                    for arn in batch:
                        if enabled:
                            self._protected[arn] = now
                        else:
                            self._protected.pop(arn, None)

    async def _set_protection(self, arns: list[str], enabled: bool) -> bool:
        extra = {"expiresInMinutes": PROTECTION_MINUTES} if enabled else {}
        try:
            await asyncio.to_thread(self.ecs.update_task_protection, cluster=self.cluster, tasks=arns,
                                    protectionEnabled=enabled, **extra)
        except (BotoCoreError, ClientError) as exc:
            log.warning("task_protection_failed", tasks=arns, protection=enabled, error=str(exc))
            return False
        log.info("task_protection_set", tasks=arns, protection=enabled)
        return True


def _private_address(task: dict[str, Any]) -> str | None:
    """The private IPv4 address of an awsvpc task's network interface."""
    for attachment in task.get("attachments", []):
        if attachment.get("type") == "ElasticNetworkInterface":
            for detail in attachment.get("details", []):
                if detail.get("name") == "privateIPv4Address":
                    return detail["value"]
    return None
