"""The executor scaling policy: read from the CloudFormation template, and target tracking emulated."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPOSITORY = Path(__file__).resolve().parents[2]
TEMPLATE = REPOSITORY / "ops" / "cloudformation" / "bi-platform.yaml"
SCALE_IN_DATAPOINTS = 15
SCALE_IN_SHARE = 0.9


@dataclass(frozen=True)
class Policy:
    target: float = 60.0
    out_cooldown: float = 60.0
    in_cooldown: float = 300.0
    min_tasks: int = 1
    max_tasks: int = 50
    source: str = "built-in defaults"


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


def load_policy(path: Path = TEMPLATE) -> Policy:
    """The executor scaling policy of the CloudFormation template, or the defaults without one."""
    if not path.exists():
        return Policy(source=f"built-in defaults (no {path.name})")
    template = yaml.load(path.read_text(), Loader=CfnLoader)
    parameters = template.get("Parameters", {})

    def value(raw: Any) -> float:
        return float(parameters[raw["Ref"]]["Default"] if isinstance(raw, dict) else raw)

    config = template["Resources"]["ExecutorScalingPolicy"]["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    return Policy(value(config["TargetValue"]), value(config.get("ScaleOutCooldown", 300)),
                  value(config.get("ScaleInCooldown", 300)), int(value({"Ref": "ExecutorMinTasks"})),
                  int(value({"Ref": "ExecutorMaxTasks"})),
                  str(path.resolve().relative_to(REPOSITORY)) if path.resolve().is_relative_to(REPOSITORY) else str(path))


class TargetTracking:
    """Application Auto Scaling target tracking, fed one datapoint per period (see the module docstring)."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.low = 0  # consecutive datapoints below the scale-in threshold
        self.last_out = self.last_in = -math.inf

    def desired(self, now: float, metric: float, current: int) -> int:
        policy = self.policy
        wanted = math.ceil(current * metric / policy.target)
        self.low = self.low + 1 if metric < SCALE_IN_SHARE * policy.target else 0
        if metric > policy.target and now - self.last_out >= policy.out_cooldown:
            if (new := min(policy.max_tasks, wanted)) > current:
                self.last_out = now
                return new
        if self.low >= SCALE_IN_DATAPOINTS and now - self.last_in >= policy.in_cooldown:
            if (new := max(policy.min_tasks, wanted)) < current:
                self.last_in = now
                return new
        return current

