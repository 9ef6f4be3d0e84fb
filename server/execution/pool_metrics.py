"""Metrics of the kernel pool: Prometheus ones in the server's registry, and CloudWatch EMF records."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

EMF_NAMESPACE = "BI/KernelPool"
EMF_DIMENSION = "ExecutorService"
EMF_UNITS = {"PoolUtilization": "Percent", "ExecutorTasks": "Count", "KernelsInUse": "Count",
             "Executions": "Count", "ExecutionTimeouts": "Count"}

SPAWN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
EXECUTION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15)


class PoolMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self._reported = {"Executions": 0.0, "ExecutionTimeouts": 0.0}
        self.ready = Gauge("bi_kernels_ready", "Ready kernels in the executor agents' warm pools.",
                           ["agent"], registry=registry)
        self.bound = Gauge("bi_kernels_bound", "Kernels held by user sessions.", registry=registry)
        self.busy = Gauge("bi_kernels_busy", "Kernels running card code now.", registry=registry)
        self.spawn_seconds = Histogram(
            "bi_kernel_acquire_seconds", "Time to get a ready kernel (agent call, datasets, first reply).",
            buckets=SPAWN_BUCKETS, registry=registry)
        self.execution_seconds = Histogram("bi_execution_duration_seconds", "Card code executions.",
                                           buckets=EXECUTION_BUCKETS, registry=registry)
        self.timeouts = Counter("bi_execution_timeouts", "Executions stopped at the wall-clock limit.",
                                registry=registry)
        self.datasets_placed = Counter(
            "bi_datasets_placed", "Datasets placed for kernels, by mechanism: hard_link (the stored file itself), "
            "copy (by the agent, from its disk) or sent (over the network).", ["mechanism"], registry=registry)
        self.dataset_bytes_copied = Counter(
            "bi_dataset_bytes_copied", "Bytes of datasets copied by agents or sent to them, by mechanism.",
            ["mechanism"], registry=registry)
        self.handed_out = Counter(
            "bi_kernels_handed_out", "Kernels handed out to sessions, by source: spare (connected ahead of need, "
            "execution/spares.py) or fresh.", ["source"], registry=registry)
        self.deaths = Counter("bi_kernel_deaths", "Kernels that ended by themselves, by reason.",
                              ["reason"], registry=registry)

    def emf(self, service: str, gauges: dict[str, float]) -> dict[str, Any]:
        """Log fields that make one CloudWatch embedded-metric-format record of ``gauges`` plus the
        executions and timeouts since the previous record, under ``EMF_NAMESPACE`` by service."""
        totals = {"Executions": self.registry.get_sample_value("bi_execution_duration_seconds_count") or 0.0,
                  "ExecutionTimeouts": self.registry.get_sample_value("bi_execution_timeouts_total") or 0.0}
        counts = {name: total - self._reported[name] for name, total in totals.items()}
        self._reported = totals
        values = {**gauges, **counts}
        return {"_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [{
                    "Namespace": EMF_NAMESPACE, "Dimensions": [[EMF_DIMENSION]],
                    "Metrics": [{"Name": name, "Unit": EMF_UNITS[name]} for name in values]}]},
                EMF_DIMENSION: service, **values}
