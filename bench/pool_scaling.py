"""Executor pool scaling over a working day: today's autoscaling, warm headroom with working-hours minimums,
the EC2 multi-tenant option, and a fixed pool.

A discrete-event simulation in virtual time (no sleeping; a default run takes seconds). What it models:
- analysts who open card sessions through the day: a non-homogeneous Poisson process with a morning
  and a post-lunch peak, plus a few meeting-style bursts in which a share of the users open a
  dashboard within one minute. A session needs a kernel, runs executions of a few seconds separated
  by think time (exponential, mean 60 s), then is closed or idles out ``KernelPool.idle_timeout``
  after its last execution (found by the pool's housekeeping pass, as in ``server/execution/pool.py``);
  a user holds at most ``KernelPool.sessions_per_user`` sessions, further opens are refused;
- executor tasks of ``--capacity`` kernels, each with a warm pool that refills one fork at a time: a
  warm kernel is ready in 5 ms, a cold one takes the 0.4 s fork. Single-tenant (one user's kernels at
  a time: the non-root container on Fargate), or multi-tenant (several users' kernels: the ECS on EC2
  option of executor-only instances whose Docker profile lets the agent build per-kernel namespaces),
  the same size, so that task-hours compare. Placement and the pool's utilisation are
  ``server.execution.placement`` (``ranked``, ``utilisation``), the server's own code. An open that
  no task accepts waits in a queue until one does; the wait is counted;
- the scalable target of ``ops/cloudformation/bi-platform.yaml`` as Application Auto Scaling runs it,
  every part read from the template (``bench/poolsim/policy.py``): target tracking on PoolUtilization
  (``ExecutorScalingPolicy``), target tracking on the metric math of ``ExecutorHeadroomPolicy`` (busy
  tasks plus ``ExecutorWarmHeadroom`` idle ones), and the scheduled working-hours minimum; the
  day starts at 08:00 in the schedule's time zone. Each minute the policies get what the server
  publishes (``KernelPool.publish_utilisation``): the utilisation then, or 100 % if an open waited
  since the last minute, and the serving tasks. New tasks serve after the task start (``--start-delay``)
  and then fill their warm pool. Scale-in stops only tasks that hold no kernels (the server protects
  tasks with kernels); ECS stops the rest of the excess as they empty.

The policies compared: ``autoscaled`` (today: utilisation target tracking alone, single-tenant),
``headroom`` (the template's whole policy, single-tenant Fargate), ``multi_tenant_ec2`` (the same
policy, multi-tenant tasks) and ``fixed`` (single-tenant, as many tasks as the autoscaled peak all day).
The target: p95 wait to a ready kernel under 2 s at no more than 1.5 times today's task-hours.

What it does not model: AWS's exact target tracking internals. They are approximated as follows:
scale out when a period's metric exceeds the target, to ``ceil(desired * metric / target)`` (the
service's desired count is the scalable target's current capacity), at most once per
ScaleOutCooldown; scale in when the last 15 one-minute datapoints were all below 90 % of the target,
to the same formula, at most once per ScaleInCooldown; with two policies, out when either asks, in
only as far as both allow. CloudWatch's metric delay, alarm evaluation jitter and the scaling
activity's own latency are left out, as are EC2 instance launches (multi-tenant tasks start like
Fargate ones: ``--start-delay``), kernel deaths, agent restarts, the CPU a kernel uses, the nights and
anyone but analysts opening sessions.

    .venv/bin/python bench/pool_scaling.py [--users 60] [--hours 10] [--seed 1] [--capacity 4]
                                           [--warm-pool 2] [--start-delay 60] [--fixed N] [--quick]

The last line is one JSON object: each policy's ``{"p95_wait_s", "task_hours"}`` at ``--start-delay``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

# Run as a script, this folder leads the path and its kernels.py would shadow the kernels package
# the server imports: import the simulation as ``bench.poolsim`` from the repository root instead.
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from bench.poolsim import (DAY_STARTS, TEMPLATE, Policy, PoolShape, Result, Session,  # noqa: E402
                           arrivals, load_policy, simulate)

SENSITIVITY = (45.0, 60.0, 120.0)  # task start, seconds
TARGET_P95 = 2.0
TARGET_HOURS = 1.5  # times today's


def quantile_ms(waits: list[float], share: float) -> float:
    ordered = sorted(waits)
    return 1000 * ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else 0.0


def sparkline(values: Sequence[float], top: float) -> str:
    bars = "▁▂▃▄▅▆▇█"
    return "".join(bars[min(len(bars) - 1, int(len(bars) * value / max(top, 1)))] for value in values)


def clock(seconds: float) -> str:
    return f"{int(seconds // 3600) % 24:02d}:{round(seconds % 3600 / 60):02d}"


def figures(result: Result) -> dict[str, float]:
    return {"p95_wait_s": round(quantile_ms(result.waits, 0.95) / 1000, 3),
            "task_hours": round(result.task_seconds / 3600, 1)}


def policies(policy: Policy, shape: PoolShape) -> dict[str, tuple[Policy, PoolShape]]:
    """The autoscaled policies compared, by name: a policy and the tasks it scales."""
    single, multi = replace(shape, single_tenant=True), replace(shape, single_tenant=False)
    return {"autoscaled": (policy.today(), single), "headroom": (policy, single), "multi_tenant_ec2": (policy, multi)}


def describe(policy: Policy) -> list[str]:
    lines = [f"  utilisation target tracking: target {policy.target:g} %, out/in cooldown "
             f"{policy.out_cooldown:g}/{policy.in_cooldown:g} s, {policy.min_tasks}..{policy.max_tasks} tasks"]
    if policy.headroom:
        lines.append(f"  headroom target tracking: {policy.headroom.expression} at {policy.headroom.target:g}, "
                     f"out/in cooldown {policy.headroom.out_cooldown:g}/{policy.headroom.in_cooldown:g} s")
    if policy.schedule:
        lines.append("  scheduled minimum: " + ", ".join(f"{a.min_tasks} from {clock(a.at)}" for a in policy.schedule))
    return lines


def report(results: dict[str, Result]) -> list[str]:
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
    lines = [f"{'':40}" + "".join(f"{name:>18}" for name in results)]
    lines += [f"{label:40}" + "".join(f"{cell(r):>18}" for r in results.values()) for label, cell in rows]
    lines.append("")
    lines.append("running tasks over the day, every 30 min")
    lines.append(f"  {'':6}" + "".join(f"{name:>18}" for name in results))
    for index in range(29, min(len(r.points) for r in results.values()), 30):
        lines.append(f"  {clock(DAY_STARTS + results['autoscaled'].points[index].at):6}"
                     + "".join(f"{r.points[index].running:>18}" for r in results.values()))
    for name, result in results.items():
        buckets = [max(p.running for p in result.points[i:i + 15]) for i in range(0, len(result.points), 15)]
        lines.append(f"  {name:>16}, max per 15 min (top {max(buckets, default=0):2}): "
                     f"{sparkline(buckets, max(buckets, default=1))}")
    return lines


def sensitivity(trace: list[Session], runs: dict[str, tuple[Policy, PoolShape]], hours: float,
                delays: list[float]) -> tuple[list[str], dict[float, dict[str, dict[str, float]]]]:
    """p95 wait and task-hours of each policy for each task start, and whether each meets the target."""
    table = {delay: {name: figures(simulate(trace, replace(shape, start_delay=delay), hours, policy))
                     for name, (policy, shape) in runs.items()} for delay in delays}
    lines = ["sensitivity to the task start: p95 wait (s) / task-hours; * meets the target against today's "
             f"task-hours at the same start (p95 < {TARGET_P95:g} s, <= {TARGET_HOURS:g}x)"]
    lines.append(f"  {'start':>6}" + "".join(f"{name:>22}" for name in runs))
    for delay, row in table.items():
        budget = TARGET_HOURS * row["autoscaled"]["task_hours"]
        cells = [f"{f['p95_wait_s']:,.1f} / {f['task_hours']:.0f}"
                 + ("*" if f["p95_wait_s"] < TARGET_P95 and f["task_hours"] <= budget else " ") for f in row.values()]
        lines.append(f"  {delay:>5g}s" + "".join(f"{cell:>22}" for cell in cells))
    return lines, table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=60, help="analysts (default 60)")
    parser.add_argument("--hours", type=float, default=10, help="length of the working day from 08:00 (default 10)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the arrival trace (default 1)")
    parser.add_argument("--capacity", type=int, default=4, help="kernels per task (default 4)")
    parser.add_argument("--warm-pool", type=int, default=2, help="warm kernels per task (default 2)")
    parser.add_argument("--start-delay", type=float, default=60, help="task start, seconds (default 60)")
    parser.add_argument("--fixed", type=int, help="size of the fixed pool (default: the autoscaled peak)")
    parser.add_argument("--template", type=Path, default=TEMPLATE, help="CloudFormation template with the policy")
    parser.add_argument("--quick", action="store_true", help="a short run: 20 users over 2 hours")
    args = parser.parse_args(argv)
    if args.quick:
        args.users, args.hours = 20, 2
    policy = load_policy(args.template)
    shape = PoolShape(args.capacity, args.warm_pool, True, args.start_delay)
    trace = arrivals(args.users, args.hours, args.seed)
    runs = policies(policy, shape)
    results = {name: simulate(trace, task_shape, args.hours, run_policy) for name, (run_policy, task_shape) in runs.items()}
    size = args.fixed or results["autoscaled"].peak
    results[f"fixed ({size})"] = simulate(trace, shape, args.hours, fixed=size)
    print(f"{args.users} users over {args.hours:g} h from {clock(DAY_STARTS)}, seed {args.seed}; tasks of "
          f"{args.capacity} kernels (warm {args.warm_pool}, start {args.start_delay:g} s); policy from {policy.source}:")
    print("\n".join(describe(policy)))
    print("autoscaled: utilisation tracking alone (today); headroom: the whole policy, single-tenant Fargate tasks; "
          "multi_tenant_ec2: the whole policy, multi-tenant tasks on EC2")
    print("\n".join(report(results)))
    lines, _ = sensitivity(trace, runs, args.hours, sorted({*SENSITIVITY, args.start_delay}))
    print("\n".join(lines))
    summary = {name.split(" ")[0]: figures(result) for name, result in results.items()}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
