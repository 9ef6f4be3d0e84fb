"""The simulation behind ``bench/pool_scaling.py`` (its docstring says what it models)."""

from .arrivals import Session, arrivals
from .policy import TEMPLATE, Policy, TargetTracking, load_policy
from .simulation import PERIOD, PoolShape, Result, Simulation, simulate

__all__ = ["PERIOD", "TEMPLATE", "Policy", "PoolShape", "Result", "Session", "Simulation", "TargetTracking",
           "arrivals", "load_policy", "simulate"]
