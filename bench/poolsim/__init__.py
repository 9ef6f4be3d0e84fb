"""The simulation behind ``bench/pool_scaling.py`` (its docstring says what it models)."""

from .arrivals import Session, arrivals
from .policy import DAY_STARTS, TEMPLATE, Policy, Scaling, Scheduled, TargetTracking, Tracking, load_policy
from .simulation import PERIOD, PoolShape, Result, Simulation, simulate

__all__ = ["DAY_STARTS", "PERIOD", "TEMPLATE", "Policy", "PoolShape", "Result", "Scaling", "Scheduled", "Session",
           "Simulation", "TargetTracking", "Tracking", "arrivals", "load_policy", "simulate"]
