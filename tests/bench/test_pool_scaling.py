"""The pool scaling simulation of bench/pool_scaling.py, on tiny scenarios."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.poolsim import (PERIOD, Policy, PoolShape, Result, Session, Simulation, TargetTracking, arrivals,
                           load_policy, simulate)

POLICY = Policy(target=60, out_cooldown=60, in_cooldown=300, min_tasks=1, max_tasks=12)
SHAPE = PoolShape(capacity=4, warm_pool=2, single_tenant=True, start_delay=60)
HOURS = 2


def burst(users: int = 10, at: float = 1800) -> list[Session]:
    """``users`` users open a session within a minute; each closes it after five minutes."""
    return [Session(f"u{n}", at + 5 * n, active=240, closes_after=60) for n in range(users)]


def observed(trace: list[Session], tasks: int, scaler: TargetTracking | None = None,
             shape: PoolShape = SHAPE) -> tuple[Simulation, Result, list[str]]:
    """A run, its figures, and every broken invariant seen after any event."""
    broken: list[str] = []

    def check(sim: Simulation) -> None:
        for task in sim.tasks.values():
            if task.removed_at is not None and task.kernels:
                broken.append(f"{task.name} stopped at {task.removed_at} holding {dict(task.kernels)}")
            if shape.single_tenant and len(task.kernels) > 1:
                broken.append(f"{task.name} holds {sorted(task.kernels)} at {sim.now}")

    simulation = Simulation(trace, shape, tasks, HOURS, scaler, check)
    result = simulation.run()
    return simulation, result, broken


class TestArrivals:
    def test_the_same_seed_gives_the_same_trace_and_figures(self):
        assert arrivals(20, HOURS, seed=7) == arrivals(20, HOURS, seed=7)
        assert arrivals(20, HOURS, seed=7) != arrivals(20, HOURS, seed=8)
        runs = [simulate(arrivals(20, HOURS, seed=7), SHAPE, HOURS, POLICY) for _ in range(2)]
        assert runs[0] == runs[1]

    def test_a_day_has_its_bursts(self):
        """At least one minute in which a third of the users open a session."""
        opens = [s.opens_at for s in arrivals(30, HOURS, seed=3)]
        assert max(sum(start <= at < start + 60 for at in opens) for start in opens) >= 10


class TestScaling:
    def test_a_burst_grows_the_pool_and_it_shrinks_back_afterwards(self):
        _, result, broken = observed(burst(), 1, TargetTracking(POLICY))
        points = result.points
        before = [p.running for p in points if p.at < 1800]
        during = [p.running for p in points if 1800 <= p.at < 2400]
        after = [p.running for p in points if p.at > 1800 + 3600]
        assert max(before) == 1
        assert max(during) >= 10
        assert after and max(after) == POLICY.min_tasks
        assert broken == []

    def test_tasks_holding_kernels_are_never_stopped(self):
        """Half of a burst's users keep their sessions all day while the pool scales in around them."""
        trace = [Session(s.user, s.opens_at, HOURS * 3600, None) if int(s.user[1:]) % 2 else s for s in burst()]
        simulation, result, broken = observed(trace, 1, TargetTracking(POLICY))
        assert broken == []
        live = [task for task in simulation.tasks.values() if task.removed_at is None]
        assert sorted(user for task in live for user in task.kernels) == ["u1", "u3", "u5", "u7", "u9"]
        assert len(live) < result.peak

    def test_single_tenant_tasks_hold_one_user_at_a_time_over_a_busy_day(self):
        simulation, _, broken = observed(arrivals(30, HOURS, seed=5), 1, TargetTracking(POLICY))
        assert broken == []
        assert len(simulation.tasks) > 1

    def test_the_fixed_pool_at_the_peak_never_has_fewer_tasks(self):
        trace = arrivals(30, HOURS, seed=5)
        auto = simulate(trace, SHAPE, HOURS, POLICY)
        fixed = simulate(trace, SHAPE, HOURS, fixed=auto.peak)
        assert auto.peak > POLICY.min_tasks
        assert all(f.running >= a.running for a, f in zip(auto.points, fixed.points, strict=True))
        assert fixed.task_seconds > auto.task_seconds

    def test_a_large_enough_fixed_pool_has_no_queue(self):
        """One task per session: every open gets a kernel at once (warm, or a fork at worst)."""
        trace = burst(10) + arrivals(10, HOURS, seed=2)
        result = simulate(trace, SHAPE, HOURS, fixed=len(trace))
        assert len(result.waits) == len(trace)
        assert max(result.waits) <= 0.4

    def test_a_full_pool_makes_opens_wait_and_scales_out_on_the_metric(self):
        tracking = TargetTracking(POLICY)
        assert tracking.desired(PERIOD, 100.0, 3) == 5      # ceil(3 * 100 / 60)
        assert tracking.desired(2 * PERIOD - 1, 100.0, 5) == 5  # within the scale-out cooldown
        assert tracking.desired(2 * PERIOD, 100.0, 5) == 9
        result = simulate(burst(10), PoolShape(start_delay=60), HOURS, fixed=1)
        assert max(result.waits) > 60

    def test_scale_in_waits_for_fifteen_low_datapoints(self):
        tracking = TargetTracking(POLICY)
        assert [tracking.desired(PERIOD * n, 10.0, 6) for n in range(1, 16)] == [6] * 14 + [1]


class TestPolicy:
    def test_read_from_a_template_with_short_tags(self, tmp_path: Path):
        template = tmp_path / "bi-platform.yaml"
        template.write_text(
            "Parameters:\n  ExecutorMinTasks: {Type: Number, Default: 2}\n"
            "  ExecutorMaxTasks: {Type: Number, Default: 9}\n"
            "Resources:\n  ExecutorScalingPolicy:\n    Type: AWS::ApplicationAutoScaling::ScalingPolicy\n"
            "    Properties:\n      PolicyName: !Sub ${AWS::StackName}-pool\n      ScalingTargetId: !Ref Target\n"
            "      TargetTrackingScalingPolicyConfiguration:\n"
            "        CustomizedMetricSpecification:\n"
            "          Dimensions: [{Name: ExecutorService, Value: !GetAtt ExecutorService.Name}]\n"
            "        TargetValue: 70\n        ScaleOutCooldown: 90\n        ScaleInCooldown: 600\n")
        policy = load_policy(template)
        assert (policy.target, policy.out_cooldown, policy.in_cooldown, policy.min_tasks, policy.max_tasks) \
            == (70, 90, 600, 2, 9)
        assert "bi-platform.yaml" in policy.source

    def test_defaults_without_a_template(self, tmp_path: Path):
        policy = load_policy(tmp_path / "missing.yaml")
        assert (policy.target, policy.out_cooldown, policy.in_cooldown, policy.min_tasks, policy.max_tasks) \
            == (60, 60, 300, 1, 50)
        assert policy.source.startswith("built-in defaults")


@pytest.mark.parametrize("flags", [["--quick"], ["--quick", "--multi-tenant", "--fixed", "3"]])
def test_the_bench_prints_both_pools(flags: list[str], capsys: pytest.CaptureFixture[str]):
    from bench.pool_scaling import main

    main(flags)
    out = capsys.readouterr().out
    assert out.startswith("20 users over 2 h, seed 1")
    assert "autoscaled" in out and "fixed (" in out and "task-hours saved" in out
