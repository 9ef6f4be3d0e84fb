"""The day's sessions: Poisson arrivals with a morning and a post-lunch peak, plus meeting bursts."""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Session:
    user: str
    opens_at: float
    active: float                # from its ready kernel to the end of its last execution
    closes_after: float | None   # think time before the user closes it; None: it idles out


def day_shape(share: float) -> float:
    """Relative arrival rate at ``share`` of the day: a morning peak and a smaller post-lunch one."""
    return (0.35 + math.exp(-((share - 0.15) / 0.07) ** 2)
            + 0.8 * math.exp(-((share - 0.58) / 0.07) ** 2))


def work_session(rng: random.Random, user: str, at: float) -> Session:
    executions = 1 + int(rng.expovariate(1 / 5))
    active = sum(rng.uniform(1, 6) for _ in range(executions))
    active += sum(rng.expovariate(1 / 60) for _ in range(executions - 1))
    return Session(user, at, active, rng.expovariate(1 / 60) if rng.random() < 0.5 else None)


def dashboard_session(rng: random.Random, user: str, at: float) -> Session:
    """A dashboard opened in a meeting: its cards run back to back, then it mostly idles out."""
    active = sum(rng.uniform(1, 3) for _ in range(rng.randint(3, 8)))
    return Session(user, at, active, rng.expovariate(1 / 120) if rng.random() < 0.3 else None)


def arrivals(users: int, hours: float, seed: int, sessions_per_user: float = 4) -> list[Session]:
    """The day's sessions in opening order: Poisson arrivals thinned to ``day_shape``, plus bursts."""
    rng = random.Random(seed)
    day = hours * 3600
    grid = [day_shape(i / 1000) for i in range(1000)]
    peak_rate = users * sessions_per_user / day * max(grid) / statistics.fmean(grid)
    sessions, at = [], rng.expovariate(peak_rate)
    while at < day:
        if rng.random() < day_shape(at / day) / max(grid):
            sessions.append(work_session(rng, f"u{rng.randrange(users)}", at))
        at += rng.expovariate(peak_rate)
    for _ in range(max(1, round(hours * 0.3))):
        starts = rng.uniform(0.1, 0.9) * day
        for user in rng.sample(range(users), round(users * rng.uniform(0.3, 0.6))):
            sessions.append(dashboard_session(rng, f"u{user}", starts + rng.uniform(0, 60)))
    return sorted(sessions, key=lambda s: s.opens_at)

