"""The pool scaling simulation of bench/pool_scaling.py, on tiny scenarios."""

from __future__ import annotations

from pathlib import Path

import pytest

import json
from dataclasses import replace

from bench.poolsim import (DAY_STARTS, PERIOD, TEMPLATE, Policy, PoolShape, Result, Scaling, Scheduled, Session,
                           Simulation, TargetTracking, Tracking, arrivals, load_policy, simulate)
from bench.poolsim.policy import evaluate
from server.execution.pool_metrics import EMF_UNITS

POLICY = Policy(target=60, out_cooldown=60, in_cooldown=300, min_tasks=1, max_tasks=12)
SHAPE = PoolShape(capacity=4, warm_pool=2, single_tenant=True, start_delay=60)
HOURS = 2


def burst(users: int = 10, at: float = 1800) -> list[Session]:
    """``users`` users open a session within a minute; each closes it after five minutes."""
    return [Session(f"u{n}", at + 5 * n, active=240, closes_after=60) for n in range(users)]


def observed(trace: list[Session], tasks: int, scaler: Scaling | None = None,
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
        _, result, broken = observed(burst(), 1, Scaling(POLICY))
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
        simulation, result, broken = observed(trace, 1, Scaling(POLICY))
        assert broken == []
        live = [task for task in simulation.tasks.values() if task.removed_at is None]
        assert sorted(user for task in live for user in task.kernels) == ["u1", "u3", "u5", "u7", "u9"]
        assert len(live) < result.peak

    def test_single_tenant_tasks_hold_one_user_at_a_time_over_a_busy_day(self):
        simulation, _, broken = observed(arrivals(30, HOURS, seed=5), 1, Scaling(POLICY))
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
            "Resources:\n  ExecutorScalableTarget:\n    Type: AWS::ApplicationAutoScaling::ScalableTarget\n"
            "    Properties: {MinCapacity: !Ref ExecutorMinTasks, MaxCapacity: !Ref ExecutorMaxTasks}\n"
            "  ExecutorScalingPolicy:\n    Type: AWS::ApplicationAutoScaling::ScalingPolicy\n"
            "    Properties:\n      PolicyName: !Sub ${AWS::StackName}-pool\n      ScalingTargetId: !Ref Target\n"
            "      TargetTrackingScalingPolicyConfiguration:\n"
            "        CustomizedMetricSpecification:\n"
            "          Dimensions: [{Name: ExecutorService, Value: !GetAtt ExecutorService.Name}]\n"
            "        TargetValue: 70\n        ScaleOutCooldown: 90\n        ScaleInCooldown: 600\n")
        policy = load_policy(template)
        assert (policy.target, policy.out_cooldown, policy.in_cooldown, policy.min_tasks, policy.max_tasks) \
            == (70, 90, 600, 2, 9)
        assert "bi-platform.yaml" in policy.source
        assert (policy.headroom, policy.schedule, policy.minimum(9 * 3600)) == (None, (), 2)

    def test_defaults_without_a_template(self, tmp_path: Path):
        policy = load_policy(tmp_path / "missing.yaml")
        assert (policy.target, policy.out_cooldown, policy.in_cooldown, policy.min_tasks, policy.max_tasks) \
            == (60, 60, 300, 1, 50)
        assert policy.source.startswith("built-in defaults")


@pytest.mark.parametrize("flags", [["--quick"], ["--quick", "--fixed", "3", "--start-delay", "90"]])
def test_the_bench_prints_every_policy(flags: list[str], capsys: pytest.CaptureFixture[str]):
    from bench.pool_scaling import main

    main(flags)
    out = capsys.readouterr().out
    assert out.startswith("20 users over 2 h from 08:00, seed 1")
    assert all(name in out for name in ("autoscaled", "headroom", "multi_tenant_ec2", "fixed ("))
    assert "sensitivity to the task start" in out


HEADROOM = replace(POLICY, headroom=Tracking(100, 60, 300, "util + 100 * 3 / tasks"))


class TestHeadroom:
    def test_the_template_keeps_headroom_on_metrics_the_server_publishes_and_a_working_day_minimum(self):
        """What the bench reads is the template's: metric math of PoolUtilization and ExecutorTasks, and
        a higher minimum from before 08:00 to after the simulated day."""
        policy = load_policy(TEMPLATE)
        assert policy.headroom is not None and {"PoolUtilization", "ExecutorTasks"} <= set(EMF_UNITS)
        assert policy.headroom.expression.replace(" ", "").startswith("util+100*")
        assert policy.headroom.metric(util=50, tasks=10) > 50
        day = [policy.minimum(DAY_STARTS + hour * 3600) for hour in range(10)]
        assert len(set(day)) == 1 and day[0] > policy.min_tasks
        assert policy.minimum(2 * 3600) == policy.minimum(22 * 3600) == policy.min_tasks

    def test_idle_tasks_stay_above_the_busy_ones(self):
        """Users who keep a session all day hold a task each; three more stay idle for whoever comes next
        (or one more, where the utilisation policy, at 56 % with 9 tasks, does not let the pool shrink)."""
        trace = [Session(f"u{n}", 600 * n, HOURS * 3600, None) for n in range(5)]
        simulation, result, broken = observed(trace, 1, Scaling(HEADROOM))
        assert broken == []
        settled = [p for p in result.points if p.at > 3600]
        assert settled and {p.running for p in settled} <= {5 + 3, 5 + 4}
        alone = [Session("u0", 0, HOURS * 3600, None)]
        assert observed(alone, 1, Scaling(HEADROOM))[1].points[-1].running == 1 + 3
        assert observed(alone, 1, Scaling(POLICY))[1].points[-1].running == 2  # 50 % of 2 tasks: on target

    def test_headroom_serves_a_burst_at_once_only_where_tasks_hold_several_users(self):
        """Ten users in a minute: three idle multi-tenant tasks have their twelve kernels; three
        single-tenant ones serve three users, the rest wait for tasks to start."""
        trace = burst(10)
        multi = simulate(trace, replace(SHAPE, single_tenant=False), HOURS, HEADROOM)
        single = simulate(trace, SHAPE, HOURS, HEADROOM)
        assert max(multi.waits) < 1
        assert sorted(single.waits)[3] > SHAPE.start_delay / 2  # the next scaling, then a task's start
        assert max(single.waits) > max(simulate(trace, SHAPE, HOURS, replace(HEADROOM, headroom=Tracking(
            100, 60, 300, "util + 100 * 9 / tasks"))).waits)

    def test_a_scheduled_minimum_raises_the_pool_at_once_and_lets_it_shrink_after(self):
        policy = replace(POLICY, schedule=(Scheduled(DAY_STARTS - 900, 6), Scheduled(DAY_STARTS + 3600, 1)))
        result = simulate([], SHAPE, HOURS, policy)
        assert result.points[0].running == 6 and min(p.running for p in result.points if p.at < 3600) == 6
        assert result.points[-1].running == 1

    def test_two_policies_scale_out_when_either_asks_and_in_only_as_far_as_both_allow(self):
        scaling = Scaling(HEADROOM)
        assert scaling.desired(PERIOD, util=25, tasks=4, current=4) == 4    # one busy + 3 idle: both content
        assert scaling.desired(2 * PERIOD, util=50, tasks=4, current=4) == 5  # two busy: headroom asks for one
        assert scaling.desired(3 * PERIOD, util=100, tasks=5, current=5) == 9  # utilisation asks for more
        # Idle all along: utilisation would go to its minimum, the headroom keeps 3 idle tasks.
        desired = 9
        for minute in range(4, 40):
            desired = scaling.desired(minute * PERIOD, util=0, tasks=desired, current=desired)
        assert desired == 3

    def test_metric_math(self):
        assert evaluate("util + 100 * 4 / tasks", {"util": 30, "tasks": 8}) == 80
        assert evaluate("util + 100 * 4 / tasks", {"util": 30, "tasks": 0}) is None
        with pytest.raises(ValueError, match="does not model"):
            evaluate("MAX(util)", {"util": 1})


def test_the_bench_ends_with_each_policys_figures(capsys: pytest.CaptureFixture[str]):
    from bench.pool_scaling import main

    main(["--quick"])
    out = capsys.readouterr().out.splitlines()
    figures = json.loads(out[-1])
    assert sorted(figures) == ["autoscaled", "fixed", "headroom", "multi_tenant_ec2"]
    assert all(sorted(f) == ["p95_wait_s", "task_hours"] for f in figures.values())
    assert [line.split()[0] for line in out if line.strip().endswith(("*", " "))
            and line.strip().split()[0] in {"45s", "60s", "120s"}] == ["45s", "60s", "120s"]
