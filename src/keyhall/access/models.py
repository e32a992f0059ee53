"""Accounts, permission sets and assignments (AWS names and id formats)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

AccountKind = Literal["local", "aws"]
PrincipalType = Literal["USER", "GROUP"]
PERMISSION_SET_NAME_RE = re.compile(r"^[\w+=,.@-]{1,32}$")
TAG_KEY_RE = re.compile(r"^[\w\s.:/=+@-]{1,128}$")


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    email: str
    status: str
    kind: AccountKind
    ou_path: str | None
    tags: dict[str, str]
    managed: bool
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class PermissionSet:
    id: str
    name: str
    description: str | None
    session_duration: str
    session_seconds: int
    relay_state: str | None
    managed_policy_arns: list[str]
    customer_managed_policies: list[dict[str, str]]
    inline_policy: str | None
    permissions_boundary: dict[str, Any] | None
    tags: dict[str, str]
    managed: bool
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class Assignment:
    id: str
    account_id: str
    permission_set_id: str
    principal_type: PrincipalType
    principal_id: str
    managed: bool
    created_at: float


@dataclass
class AccountSpec:
    name: str
    email: str
    id: str | None = None
    kind: AccountKind = "local"
    status: str = "ACTIVE"
    ou_path: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class PermissionSetSpec:
    name: str
    description: str | None = None
    session_duration: str = "PT1H"
    relay_state: str | None = None
    managed_policy_arns: list[str] = field(default_factory=list)
    customer_managed_policies: list[dict[str, str]] = field(default_factory=list)
    inline_policy: str | None = None
    permissions_boundary: dict[str, Any] | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Entitlement:
    """One (account, permission set) a user reaches, and how: directly and/or through which groups."""

    account: Account
    permission_set: PermissionSet
    direct: bool
    via_groups: tuple[str, ...]

    @property
    def via(self) -> str:
        parts = (["direct"] if self.direct else []) + [f"group:{g}" for g in self.via_groups]
        return ", ".join(parts)


@dataclass(frozen=True)
class AccountAccess:
    """Who reaches an account with which permission set, and how."""

    user_id: str
    user_name: str
    permission_set: PermissionSet
    direct: bool
    via_groups: tuple[str, ...]
