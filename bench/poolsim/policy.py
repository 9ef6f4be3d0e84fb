"""The executor scaling policy: read from the CloudFormation template, and Application Auto Scaling emulated.

The template gives the executor service's scalable target three things, all read here:
- ``ExecutorScalingPolicy``: target tracking on ``PoolUtilization`` (today's autoscaling);
- ``ExecutorHeadroomPolicy``: target tracking on a metric math expression of the metrics the server
  publishes (``PoolUtilization``, ``ExecutorTasks``) that keeps idle tasks above the busy ones;
- the scalable target's ``ScheduledActions``: minimums for working hours (cron, in their time zone).
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

REPOSITORY = Path(__file__).resolve().parents[2]
TEMPLATE = REPOSITORY / "ops" / "cloudformation" / "bi-platform.yaml"
SCALE_IN_DATAPOINTS = 15
SCALE_IN_SHARE = 0.9
DAY_STARTS = 8 * 3600  # the simulated day starts at 08:00 in the schedule's time zone


@dataclass(frozen=True)
class Scheduled:
    """A scheduled action: from ``at`` (seconds after midnight) the minimum is ``min_tasks``."""

    at: float
    min_tasks: int


@dataclass(frozen=True)
class Tracking:
    """One target tracking policy: its metric, target and cooldowns."""

    target: float
    out_cooldown: float
    in_cooldown: float
    expression: str = "util"  # of ``util`` (PoolUtilization, %) and ``tasks`` (ExecutorTasks)

    def metric(self, util: float, tasks: float) -> float | None:
        """The policy's metric for one period, or None where CloudWatch would have no datapoint."""
        return evaluate(self.expression, {"util": util, "tasks": tasks})


@dataclass(frozen=True)
class Policy:
    target: float = 60.0
    out_cooldown: float = 60.0
    in_cooldown: float = 300.0
    min_tasks: int = 1
    max_tasks: int = 50
    source: str = "built-in defaults"
    headroom: Tracking | None = None
    schedule: tuple[Scheduled, ...] = ()

    def trackings(self) -> list[Tracking]:
        utilisation = Tracking(self.target, self.out_cooldown, self.in_cooldown)
        return [utilisation] + ([self.headroom] if self.headroom else [])

    def today(self) -> Policy:
        """Utilisation target tracking alone, between the fixed minimum and maximum."""
        return replace(self, headroom=None, schedule=())

    def minimum(self, clock: float) -> int:
        """The minimum in force at ``clock`` seconds after midnight (the last action before it, or the
        day before's last)."""
        if not self.schedule:
            return self.min_tasks
        passed = [action for action in self.schedule if action.at <= clock % 86400]
        return (passed or list(self.schedule))[-1].min_tasks


_OPERATORS: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def evaluate(expression: str, values: Mapping[str, float]) -> float | None:
    """A CloudWatch metric math expression of + - * /, numbers and query ids; None on division by zero."""
    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.Name) and node.id in values:
            return values[node.id]
        raise ValueError(f"metric math the bench does not model: {ast.unparse(node)!r} in {expression!r}")

    try:
        return walk(ast.parse(expression, mode="eval"))
    except ZeroDivisionError:
        return None


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags: ``!Ref X`` loads as ``{"Ref": "X"}``, and so on."""


def _short_tag(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        return {name: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {name: loader.construct_sequence(node, deep=True)}
    return {name: loader.construct_mapping(node, deep=True)}


CfnLoader.add_multi_constructor("!", _short_tag)


def cron_seconds(expression: str) -> float:
    """Seconds after midnight of ``cron(M H ...)`` (the bench's day is a weekday)."""
    match = re.fullmatch(r"cron\((\d+) (\d+) .*\)", expression)
    if not match:
        raise ValueError(f"schedule the bench does not model: {expression!r}")
    return int(match[2]) * 3600 + int(match[1]) * 60


def load_policy(path: Path = TEMPLATE) -> Policy:
    """The executor scaling policy of the CloudFormation template, or the defaults without one."""
    if not path.exists():
        return Policy(source=f"built-in defaults (no {path.name})")
    template = yaml.load(path.read_text(), Loader=CfnLoader)
    parameters = template.get("Parameters", {})
    resources = template["Resources"]

    def value(raw: Any) -> Any:
        if isinstance(raw, dict) and "Ref" in raw:
            return parameters[raw["Ref"]]["Default"]
        if isinstance(raw, dict) and "Fn::Sub" in raw:
            return re.sub(r"\$\{(\w+)\}", lambda m: str(parameters[m[1]]["Default"]), raw["Fn::Sub"])
        return raw

    def tracking(name: str) -> Tracking | None:
        if name not in resources:
            return None
        config = resources[name]["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        queries = config["CustomizedMetricSpecification"].get("Metrics", [])
        names = {q["Id"]: q["MetricStat"]["Metric"]["MetricName"] for q in queries if "MetricStat" in q}
        (returned,) = [q for q in queries if q.get("ReturnData", True)] or [{"Expression": "util"}]
        # Query ids stand for the published metrics by name: util is PoolUtilization, tasks ExecutorTasks.
        expression = re.sub(r"\b(\w+)\b", lambda m: {"PoolUtilization": "util", "ExecutorTasks": "tasks"}.get(
            names.get(m[1], ""), m[1]), str(value(returned["Expression"])))
        return Tracking(float(value(config["TargetValue"])), float(value(config.get("ScaleOutCooldown", 300))),
                        float(value(config.get("ScaleInCooldown", 300))), expression)

    utilisation = tracking("ExecutorScalingPolicy")
    assert utilisation is not None, f"{path} has no ExecutorScalingPolicy"
    target = resources["ExecutorScalableTarget"]["Properties"]
    schedule = tuple(sorted((Scheduled(cron_seconds(action["Schedule"]),
                                       int(value(action["ScalableTargetAction"]["MinCapacity"])))
                             for action in target.get("ScheduledActions", [])), key=lambda a: a.at))
    source = str(path.resolve().relative_to(REPOSITORY)) if path.resolve().is_relative_to(REPOSITORY) else str(path)
    return Policy(utilisation.target, utilisation.out_cooldown, utilisation.in_cooldown,
                  int(value(target["MinCapacity"])), int(value(target["MaxCapacity"])), source,
                  tracking("ExecutorHeadroomPolicy"), schedule)


class TargetTracking:
    """Application Auto Scaling target tracking, fed one datapoint per period (see the bench's docstring)."""

    def __init__(self, policy: Policy | Tracking, min_tasks: int = 1, max_tasks: int = 50):
        if isinstance(policy, Policy):
            min_tasks, max_tasks = policy.min_tasks, policy.max_tasks
            policy = Tracking(policy.target, policy.out_cooldown, policy.in_cooldown)
        self.tracking, self.min_tasks, self.max_tasks = policy, min_tasks, max_tasks
        self.low = 0  # consecutive datapoints below the scale-in threshold
        self.last_out = self.last_in = -math.inf

    def desired(self, now: float, metric: float, current: int) -> int:
        """The desired count after this datapoint, when this policy scales alone."""
        new = self.propose(now, metric, current)
        self.scaled(now, current, new)
        return new

    def propose(self, now: float, metric: float, current: int) -> int:
        """What this policy asks for after this datapoint (its cooldowns since its last scaling allowing)."""
        tracking = self.tracking
        wanted = math.ceil(current * metric / tracking.target)
        self.low = self.low + 1 if metric < SCALE_IN_SHARE * tracking.target else 0
        if metric > tracking.target and now - self.last_out >= tracking.out_cooldown:
            return max(current, min(self.max_tasks, wanted))
        if self.low >= SCALE_IN_DATAPOINTS and now - self.last_in >= tracking.in_cooldown:
            return min(current, max(self.min_tasks, wanted))
        return current

    def scaled(self, now: float, current: int, new: int) -> None:
        """The scalable target went from ``current`` to ``new``: the cooldowns start."""
        if new > current:
            self.last_out = now
        elif new < current:
            self.last_in = now


class Scaling:
    """Every policy of the scalable target together, as Application Auto Scaling combines them: out when
    any policy asks for more, in only as far as the one that wants most; never under the minimum in
    force (a scheduled action that raises it raises the desired count at once) or over the maximum."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.trackers = [(t, TargetTracking(t, policy.min_tasks, policy.max_tasks)) for t in policy.trackings()]

    def minimum(self, now: float) -> int:
        return self.policy.minimum(DAY_STARTS + now)

    def desired(self, now: float, util: float, tasks: float, current: int) -> int:
        proposals = {tracker: tracker.propose(now, metric, current) for tracking, tracker in self.trackers
                     if (metric := tracking.metric(util, tasks)) is not None}
        wanted = max(proposals.values(), default=current)
        for tracker, proposal in proposals.items():  # the policies that caused the activity
            if (proposal > current and wanted > current) or wanted < current:
                tracker.scaled(now, current, wanted)
        return min(self.policy.max_tasks, max(self.minimum(now), wanted))
