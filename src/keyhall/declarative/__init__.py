"""Declarative configuration: one YAML file describes accounts, permission sets, groups, users and
assignments, and ``keyhall apply`` makes the database match it (docs/apply.md).

``config`` reads and checks the file, ``plan`` compares it with the database, ``apply`` makes the changes in
one transaction.
"""

from __future__ import annotations

from keyhall.declarative.apply import ApplyResult, PlanChangedError, apply_config
from keyhall.declarative.config import (
    ConfigProblem,
    DesiredState,
    InvalidConfigError,
    load_config,
    parse_config,
)
from keyhall.declarative.plan import Change, FieldDiff, Plan, compute_plan, plan_config

__all__ = [
    "ApplyResult",
    "Change",
    "ConfigProblem",
    "DesiredState",
    "FieldDiff",
    "InvalidConfigError",
    "Plan",
    "PlanChangedError",
    "apply_config",
    "compute_plan",
    "load_config",
    "parse_config",
    "plan_config",
]
