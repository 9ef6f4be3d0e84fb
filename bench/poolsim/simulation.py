"""Executor tasks and the event loop: sessions placed by the server's policy, tasks scaled or fixed."""

from __future__ import annotations

import heapq
import itertools
import math
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.execution.placement import AgentLoad, ranked, utilisation
from server.execution.pool import KernelPool

from .arrivals import Session
from .policy import Policy, Scaling

IDLE_TIMEOUT = KernelPool.class_traits()["idle_timeout"].default_value
SESSIONS_PER_USER = KernelPool.class_traits()["sessions_per_user"].default_value
HOUSEKEEPING = min(KernelPool.class_traits()["discovery_interval"].default_value, IDLE_TIMEOUT / 4)  # idle checks
WARM_ACQUIRE = 0.005
FORK = 0.4
PERIOD = 60.0


@dataclass
class Task:
    name: str
    launched: float
    capacity: int
    single_tenant: bool
    serving: bool = False
    warm: int = 0
    forking: bool = False
    kernels: Counter[str] = field(default_factory=Counter)
    removed_at: float | None = None

    def load(self) -> AgentLoad:
        """What this task's agent would report in ``/health``."""
        tenant = next(iter(self.kernels), None) if self.single_tenant else None
        return AgentLoad(sum(self.kernels.values()), self.capacity, self.warm, self.single_tenant, tenant)


@dataclass(frozen=True)
class PoolShape:
    capacity: int = 4
    warm_pool: int = 2
    single_tenant: bool = True
    start_delay: float = 60.0


@dataclass(frozen=True)
class Point:
    at: float
    desired: int
    running: int
    metric: float  # PoolUtilization as the server publishes it


@dataclass
class Result:
    waits: list[float]      # seconds from each open to its ready kernel
    refused: int
    task_seconds: float
    peak: int
    mean: float
    points: list[Point]     # one per metric period


# run ---------------------------------------------------------------------------------------
class Simulation:
    """One day of ``trace`` through a pool of ``tasks`` tasks, scaled by ``scaler`` if one is given.

    Each period the scaler gets what the server publishes (``KernelPool.publish_utilisation``): the
    pool's utilisation at that moment, or 100 % if an open had to wait since the last period, and the
    number of serving tasks. ``observer(simulation)`` is called after every event (tests check
    invariants with it).
    """

    def __init__(self, trace: list[Session], shape: PoolShape, tasks: int, hours: float,
                 scaler: Scaling | None = None, observer: Callable[[Simulation], None] | None = None):
        self.trace, self.shape, self.scaler, self.observer = trace, shape, scaler, observer
        self.end = hours * 3600
        self.now = 0.0
        self.desired = tasks
        self.tasks: dict[str, Task] = {}
        self.queue: deque[tuple[Session, float]] = deque()
        self.open_by_user: Counter[str] = Counter()
        self.events: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self.seq = itertools.count()
        self.waits: list[float] = []
        self.refused = 0
        self.running_area = 0.0
        self.short = False  # an open waited since the last period
        self.points: list[Point] = []
        self.peak = 0
        for _ in range(tasks):
            task = self.launch(-shape.start_delay)
            task.serving, task.warm = True, shape.warm_pool

    def at(self, when: float, action: Callable[..., None], *args: Any) -> None:
        heapq.heappush(self.events, (when, next(self.seq), action, args))

    def running(self) -> list[Task]:
        return [task for task in self.tasks.values() if task.removed_at is None]

    def loads(self) -> dict[str, AgentLoad]:
        return {task.name: task.load() for task in self.running() if task.serving}

    def run(self) -> Result:
        for session in self.trace:
            self.at(session.opens_at, self.open, session)
        self.at(PERIOD, self.tick)
        while self.events and self.events[0][0] <= self.end:
            when, _, action, args = heapq.heappop(self.events)
            self.advance(when)
            action(*args)
            if self.observer:
                self.observer(self)
        self.advance(self.end)
        task_seconds = sum(min(task.removed_at if task.removed_at is not None else self.end, self.end)
                           - task.launched for task in self.tasks.values())
        return Result(self.waits, self.refused, task_seconds, self.peak, self.running_area / self.end, self.points)

    def advance(self, when: float) -> None:
        self.running_area += len(self.running()) * (when - self.now)
        self.now = when

    # sessions
    def open(self, session: Session) -> None:
        if self.open_by_user[session.user] >= SESSIONS_PER_USER:
            self.refused += 1
            return
        self.open_by_user[session.user] += 1
        if not self.place(session, self.now):
            self.queue.append((session, self.now))
            self.short = True

    def place(self, session: Session, asked_at: float) -> bool:
        order = ranked(self.loads(), session.user)
        if not order:
            return False
        task = self.tasks[order[0]]
        ready = self.now + (WARM_ACQUIRE if task.warm else FORK)
        task.warm = max(task.warm - 1, 0)
        task.kernels[session.user] += 1
        self.refill(task)
        self.waits.append(ready - asked_at)
        done = ready + session.active
        if session.closes_after is not None:
            self.at(done + session.closes_after, self.release, task, session.user)
        else:  # the first housekeeping pass past the idle timeout
            self.at(math.ceil((done + IDLE_TIMEOUT) / HOUSEKEEPING) * HOUSEKEEPING, self.release, task, session.user)
        return True

    def release(self, task: Task, user: str) -> None:
        task.kernels[user] -= 1
        if not task.kernels[user]:
            del task.kernels[user]
        self.open_by_user[user] -= 1
        self.serve_queue()
        self.reconcile()

    def serve_queue(self) -> None:
        waiting, self.queue = self.queue, deque()
        for session, asked_at in waiting:
            if not self.place(session, asked_at):
                self.queue.append((session, asked_at))

    # tasks
    def launch(self, when: float) -> Task:
        task = Task(f"task-{len(self.tasks) + 1}", when, self.shape.capacity, self.shape.single_tenant)
        self.tasks[task.name] = task
        self.at(when + self.shape.start_delay, self.task_ready, task)
        self.peak = max(self.peak, len(self.running()))
        return task

    def task_ready(self, task: Task) -> None:
        if task.removed_at is None and not task.serving:
            task.serving = True
            self.refill(task)
            self.serve_queue()

    def refill(self, task: Task) -> None:
        if task.serving and not task.forking and task.warm < self.shape.warm_pool and task.removed_at is None:
            task.forking = True
            self.at(self.now + FORK, self.forked, task)

    def forked(self, task: Task) -> None:
        task.forking = False
        task.warm += 1
        self.refill(task)

    def reconcile(self) -> None:
        """ECS stops the excess over the desired count, among tasks without scale-in protection."""
        excess = len(self.running()) - self.desired
        unprotected = sorted((task for task in self.running() if not task.kernels),
                             key=lambda task: (task.serving, -task.launched))
        for task in unprotected[:max(excess, 0)]:
            task.removed_at = self.now

    # scaling
    def tick(self) -> None:
        loads = self.loads()
        metric = 100.0 if self.short or self.queue else utilisation(loads)
        self.short = False
        if self.scaler:
            self.desired = self.scaler.desired(self.now, metric, len(loads), self.desired)
            while len(self.running()) < self.desired:
                self.launch(self.now)
            self.reconcile()
        self.points.append(Point(self.now, self.desired, len(self.running()), metric))
        self.at(self.now + PERIOD, self.tick)


def simulate(trace: list[Session], shape: PoolShape, hours: float, policy: Policy | None = None,
             fixed: int | None = None) -> Result:
    """The autoscaled day under ``policy``, or a day on ``fixed`` tasks."""
    if fixed is not None:
        return Simulation(trace, shape, fixed, hours).run()
    assert policy is not None
    scaling = Scaling(policy)
    return Simulation(trace, shape, scaling.minimum(0), hours, scaling).run()

