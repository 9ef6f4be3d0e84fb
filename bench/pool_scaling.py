"""Executor pool scaling over a working day: autoscaled tasks against a fixed pool of the same peak size.

A discrete-event simulation in virtual time (no sleeping; a default run takes seconds). What it models:
- analysts who open card sessions through the day: a non-homogeneous Poisson process with a morning
  and a post-lunch peak, plus a few meeting-style bursts in which a share of the users open a
  dashboard within one minute. A session needs a kernel, runs executions of a few seconds separated
  by think time (exponential, mean 60 s), then is closed or idles out ``KernelPool.idle_timeout``
  after its last execution (found by the pool's housekeeping pass, as in ``server/execution/pool.py``);
  a user holds at most ``KernelPool.sessions_per_user`` sessions, further opens are refused;
- executor tasks of ``--capacity`` kernels, single-tenant (one user's kernels at a time, the
  non-root container) unless ``--multi-tenant``, each with a warm pool that refills one fork at a
  time: a warm kernel is ready in 5 ms, a cold one takes the 0.4 s fork. Placement and the pool's
  utilisation are ``server.execution.placement`` (``ranked``, ``utilisation``), the server's own
  code. An open that no task accepts waits in a queue until one does; the wait is counted;
- Application Auto Scaling target tracking on the utilisation averaged over each 60 s period, with
  TargetValue, cooldowns and min/max read from ``ops/cloudformation/bi-platform.yaml`` when it is
  there (else 60 %, 60 s, 300 s, 1..20). New tasks serve after ``--start-delay`` (Fargate) and then
  fill their warm pool. Scale-in stops only tasks that hold no kernels (the server protects tasks
  with kernels); ECS stops the rest of the excess as they empty;
- a baseline: the same arrival trace through a fixed pool as large as the autoscaled peak.
The simulation is ``bench/poolsim/`` (arrivals, policy, simulation); this file runs it and prints.

What it does not model: AWS's exact target tracking internals. They are approximated as follows:
scale out when a period's metric exceeds the target, to ``ceil(desired * metric / target)`` (the
service's desired count is the scalable target's current capacity), at most once per
ScaleOutCooldown; scale in when the last 15 one-minute datapoints were all below 90 % of the target,
to the same formula, at most once per ScaleInCooldown. CloudWatch's metric delay, alarm evaluation
jitter and the scaling activity's own latency are left out, as are kernel deaths, agent restarts,
the CPU a kernel uses, and anyone but analysts opening sessions.

    .venv/bin/python bench/pool_scaling.py [--users 60] [--hours 10] [--seed 1] [--multi-tenant]
                                           [--capacity 4] [--start-delay 60] [--fixed N] [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Run as a script, this folder leads the path and its kernels.py would shadow the kernels package
# the server imports: import the simulation as ``bench.poolsim`` from the repository root instead.
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from bench.poolsim import TEMPLATE, PoolShape, Result, arrivals, load_policy, simulate

DAY_STARTS = 8 * 3600  # only for the clock times printed


def quantile_ms(waits: list[float], share: float) -> float:
    ordered = sorted(waits)
    return 1000 * ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else 0.0


def sparkline(values: list[float], top: float) -> str:
    bars = "▁▂▃▄▅▆▇█"
    return "".join(bars[min(len(bars) - 1, int(len(bars) * value / max(top, 1)))] for value in values)


def report(auto: Result, fixed: Result, fixed_size: int) -> list[str]:
    columns = [("autoscaled", auto), (f"fixed ({fixed_size} tasks)", fixed)]
    saving = 100 * (1 - auto.task_seconds / fixed.task_seconds) if fixed.task_seconds else 0.0
    rows = [
        ("opens (kernels placed)", lambda r: f"{len(r.waits)}"),
        ("wait to a ready kernel p50 (ms)", lambda r: f"{quantile_ms(r.waits, 0.5):,.0f}"),
        ("                       p95 (ms)", lambda r: f"{quantile_ms(r.waits, 0.95):,.0f}"),
        ("                       max (ms)", lambda r: f"{quantile_ms(r.waits, 1.0):,.0f}"),
        ("opens that waited > 1 s", lambda r: f"{100 * sum(w > 1 for w in r.waits) / max(len(r.waits), 1):.1f} %"),
        ("opens refused (user at session limit)", lambda r: f"{r.refused}"),
        ("task-hours (incl. start delay)", lambda r: f"{r.task_seconds / 3600:.1f}"),
        ("peak / mean pool size", lambda r: f"{r.peak} / {r.mean:.1f}"),
    ]
    lines = [f"{'':40}{columns[0][0]:>14}{columns[1][0]:>20}"]
    lines += [f"{label:40}{cell(auto):>14}{cell(fixed):>20}" for label, cell in rows]
    lines.append(f"{'task-hours saved by autoscaling':40}{saving:>13.0f}%")
    lines.append("")
    lines.append("pool over the day, every 30 min: autoscaled desired/running tasks and utilisation; fixed utilisation")
    for a, f in list(zip(auto.points, fixed.points))[29::30]:
        clock = (DAY_STARTS + a.at) / 3600
        lines.append(f"  {int(clock):02d}:{round(clock % 1 * 60):02d}   {a.desired:3d} / {a.running:<3d} "
                     f"{a.metric:5.0f} %        fixed {f.running:3d} {f.metric:5.0f} %")
    buckets = [max(p.running for p in auto.points[i:i + 15]) for i in range(0, len(auto.points), 15)]
    lines.append(f"  running tasks, max per 15 min (top = {max(buckets, default=0)}): "
                 f"{sparkline(buckets, max(buckets, default=1))}")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=60, help="analysts (default 60)")
    parser.add_argument("--hours", type=float, default=10, help="length of the working day (default 10)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the arrival trace (default 1)")
    parser.add_argument("--multi-tenant", action="store_true", help="tasks hold several users' kernels")
    parser.add_argument("--capacity", type=int, default=4, help="kernels per task (default 4)")
    parser.add_argument("--warm-pool", type=int, default=2, help="warm kernels per task (default 2)")
    parser.add_argument("--start-delay", type=float, default=60, help="Fargate task start, seconds (default 60)")
    parser.add_argument("--fixed", type=int, help="size of the fixed pool (default: the autoscaled peak)")
    parser.add_argument("--template", type=Path, default=TEMPLATE, help="CloudFormation template with the policy")
    parser.add_argument("--quick", action="store_true", help="a short run: 20 users over 2 hours")
    args = parser.parse_args(argv)
    if args.quick:
        args.users, args.hours = 20, 2
    policy = load_policy(args.template)
    shape = PoolShape(args.capacity, args.warm_pool, not args.multi_tenant, args.start_delay)
    trace = arrivals(args.users, args.hours, args.seed)
    auto = simulate(trace, shape, args.hours, policy)
    size = args.fixed or auto.peak
    fixed = simulate(trace, shape, args.hours, fixed=size)
    tenancy = "multi-tenant" if args.multi_tenant else "single-tenant"
    print(f"{args.users} users over {args.hours:g} h, seed {args.seed}, {tenancy} tasks of {args.capacity} kernels "
          f"(warm {args.warm_pool}, start {args.start_delay:g} s); policy from {policy.source}: target "
          f"{policy.target:g} %, out/in cooldown {policy.out_cooldown:g}/{policy.in_cooldown:g} s, "
          f"{policy.min_tasks}..{policy.max_tasks} tasks")
    print("\n".join(report(auto, fixed, size)))


if __name__ == "__main__":
    sys.exit(main())
