"""Prometheus metrics of the kernel pool, registered in the server's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

SPAWN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
EXECUTION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15)


class PoolMetrics:
    def __init__(self, registry: CollectorRegistry):
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
        self.deaths = Counter("bi_kernel_deaths", "Kernels that ended by themselves, by reason.",
                              ["reason"], registry=registry)
