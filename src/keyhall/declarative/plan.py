"""Compare what an apply file declares with the database, and list the changes in the order apply makes them.

The plan is also the contract of an apply: :func:`keyhall.declarative.apply.apply_config` recomputes it inside
its write transaction and refuses to go on if it differs from the plan the operator was shown.

What apply owns: everything stored with ``managed=True``. A declared resource that exists unmanaged is adopted
(an update); a managed resource that is no longer declared is deleted; unmanaged resources are never changed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection

from keyhall.access.durations import format_duration, parse_session_duration
from keyhall.access.models import Account, Assignment, PermissionSet
from keyhall.access.policy_grammar import normalise_policy_document
from keyhall.container import Container
from keyhall.declarative.config import (
    AccountDecl,
    ConfigProblem,
    DesiredState,
    GroupDecl,
    InvalidConfigError,
    PermissionSetDecl,
    Position,
    UserDecl,
)
from keyhall.directory.models import Group, User, name_key
from keyhall.instance import load_instance

__all__ = ["KIND_NAMES", "Action", "Change", "FieldDiff", "Kind", "Plan", "compute_plan", "plan_config"]

Action = Literal["create", "update", "delete"]
Kind = Literal["account", "permission_set", "user", "group", "membership", "assignment"]
KIND_NAMES: dict[Kind, str] = {
    "account": "account",
    "permission_set": "permission set",
    "user": "user",
    "group": "group",
    "membership": "membership",
    "assignment": "assignment",
}
#: creates and updates run in dependency order; deletions afterwards, in the reverse order
ORDER: tuple[Kind, ...] = ("account", "permission_set", "user", "group", "membership", "assignment")


@dataclass(frozen=True)
class FieldDiff:
    """One field of an update, in the file's terms (``session_duration``, ``members`` …)."""

    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Change:
    """One create, update or delete. ``key`` identifies the resource the way apply matches it."""

    action: Action
    kind: Kind
    key: tuple[str, ...]
    label: str
    diffs: tuple[FieldDiff, ...] = ()
    #: an update that takes over a resource made outside apply (sets ``managed``)
    adopt: bool = False

    @property
    def verb(self) -> str:
        return "adopt" if self.adopt else self.action

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "adopt": self.adopt,
            "type": self.kind,
            "key": list(self.key),
            "resource": self.label,
            "changes": [{"field": d.field, "old": d.old, "new": d.new} for d in self.diffs],
        }


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...] = ()

    def count(self, action: Action) -> int:
        return sum(1 for c in self.changes if c.action == action)

    @property
    def summary(self) -> str:
        if not self.changes:
            return "No changes."
        return (
            f"Plan: {self.count('create')} to create, {self.count('update')} to update, "
            f"{self.count('delete')} to delete."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "changes": [c.to_dict() for c in self.changes],
            "summary": {a: self.count(a) for a in ("create", "update", "delete")},
        }


def plan_config(container: Container, state: DesiredState) -> Plan:
    """The plan against the database as it is now (a read transaction; nothing is changed)."""
    with container.db.read() as conn:
        return compute_plan(conn, container, state)


def compute_plan(conn: Connection, container: Container, state: DesiredState) -> Plan:
    """The changes that make the database match ``state``.

    Raises :class:`InvalidConfigError` with every problem of the file: those found reading it and those only
    the database reveals (unknown references, users under a non-built-in directory, blocked deletions).
    """
    planner = _Planner(conn, container, state)
    plan = planner.plan()
    problems = list(state.problems) + planner.problems
    if problems:
        raise InvalidConfigError(problems)
    return plan


# ---- the database as the plan sees it ----------------------------------------------------------------


@dataclass
class _World:
    """Everything the plan compares against, indexed the ways the file refers to things."""

    builtin: bool
    accounts: dict[str, Account]
    account_by_name: dict[str, Account]
    permission_sets: dict[str, PermissionSet]
    permission_set_by_id: dict[str, PermissionSet]
    users: dict[str, User]
    user_by_id: dict[str, User]
    groups: dict[str, Group]
    group_by_id: dict[str, Group]
    assignments: list[Assignment]

    @classmethod
    def load(cls, conn: Connection, container: Container) -> _World:
        instance = load_instance(conn)
        accounts = container.access.all_accounts(conn)
        permission_sets = container.access.all_permission_sets(conn)
        users = container.directory.all_users(conn)
        groups = container.directory.all_groups(conn)
        return cls(
            builtin=instance is None or instance.directory_source == "builtin",
            accounts={a.id: a for a in accounts},
            account_by_name={name_key(a.name): a for a in accounts},
            permission_sets={name_key(p.name): p for p in permission_sets},
            permission_set_by_id={p.id: p for p in permission_sets},
            users={name_key(u.user_name): u for u in users},
            user_by_id={u.id: u for u in users},
            groups={name_key(g.display_name): g for g in groups},
            group_by_id={g.id: g for g in groups},
            assignments=container.access.list_assignments(conn),
        )


@dataclass(frozen=True)
class _Target:
    """An assignment in names: what the file says and what the database holds are compared in this form."""

    account_id: str
    account_name: str
    permission_set: str
    principal_type: str
    principal: str

    @property
    def key(self) -> tuple[str, ...]:
        return (self.account_id, name_key(self.permission_set), self.principal_type, name_key(self.principal))

    @property
    def label(self) -> str:
        return (
            f"{self.permission_set} on {self.account_id} ({self.account_name}) "
            f"for {self.principal_type.lower()} {self.principal}"
        )


@dataclass
class _Steps:
    creates: dict[Kind, list[Change]] = field(default_factory=lambda: defaultdict(list))
    updates: dict[Kind, list[Change]] = field(default_factory=lambda: defaultdict(list))
    deletes: dict[Kind, list[Change]] = field(default_factory=lambda: defaultdict(list))

    def ordered(self) -> tuple[Change, ...]:
        # within a kind updates run before creates: a name freed by a rename can then go to a new resource
        forward = [c for kind in ORDER for c in self.updates[kind] + self.creates[kind]]
        backward = [c for kind in reversed(ORDER) for c in sorted(self.deletes[kind], key=lambda c: c.label)]
        return tuple(forward + backward)


class _Planner:
    def __init__(self, conn: Connection, container: Container, state: DesiredState) -> None:
        self._conn = conn
        self._container = container
        self.state = state
        self.world = _World.load(conn, container)
        self.problems: list[ConfigProblem] = []
        self.steps = _Steps()
        self.accounts = {d.id: d for d in state.accounts}
        self.account_names = {name_key(d.name): d for d in state.accounts}
        self.permission_sets = {name_key(d.name): d for d in state.permission_sets}
        self.users = {name_key(d.user_name): d for d in state.users} if self.world.builtin else {}
        self.groups = {name_key(d.name): d for d in state.groups}

    def report(self, at: Position, message: str) -> None:
        self.problems.append(self.state.problem(at, message))

    def plan(self) -> Plan:
        if not self.world.builtin and self.state.users:
            self.report(
                self.state.section_at("users"),
                "users: can only be declared with the built-in directory; this instance's users come from "
                f"{self._directory_source()}",
            )
        for account in self.state.accounts:
            self._account(account)
        for permission_set in self.state.permission_sets:
            self._permission_set(permission_set)
        for user in self.users.values():
            self._user(user)
        for group in self.state.groups:
            self._group(group)
        self._assignments()
        self._deletions()
        return Plan(self.steps.ordered())

    def _directory_source(self) -> str:
        instance = load_instance(self._conn)
        return instance.directory_source if instance else "builtin"

    def _put(
        self, kind: Kind, key: tuple[str, ...], label: str, diffs: list[FieldDiff], managed: bool
    ) -> None:
        if diffs or not managed:
            self.steps.updates[kind].append(
                Change("update", kind, key, label, tuple(diffs), adopt=not managed)
            )

    def _create(self, kind: Kind, key: tuple[str, ...], label: str) -> None:
        self.steps.creates[kind].append(Change("create", kind, key, label))

    def _delete(self, kind: Kind, key: tuple[str, ...], label: str) -> None:
        self.steps.deletes[kind].append(Change("delete", kind, key, label))

    # ---- declared resources ------------------------------------------------------------------------

    def _account(self, d: AccountDecl) -> None:
        key, label = (d.id,), f"{d.id} ({d.name})"
        holder = self.world.account_by_name.get(name_key(d.name))
        if holder is not None and holder.id != d.id:
            renamed = holder.id in self.accounts and name_key(self.accounts[holder.id].name) != name_key(
                d.name
            )
            if not renamed:
                why = (
                    "which apply would delete only after making this one; delete that in an apply of its own"
                    if holder.managed
                    else "which apply does not manage; rename one of them"
                )
                self.report(
                    d.where("name"), f"{d.path}.name: {d.name!r} is the name of account {holder.id}, {why}"
                )
        current = self.world.accounts.get(d.id)
        if current is None:
            self._create("account", key, label)
            return
        self._put("account", key, label, _account_diffs(current, d), current.managed)

    def _permission_set(self, d: PermissionSetDecl) -> None:
        key = (name_key(d.name),)
        current = self.world.permission_sets.get(key[0])
        if current is None:
            self._create("permission_set", key, d.name)
            return
        self._put("permission_set", key, current.name, _permission_set_diffs(current, d), current.managed)

    def _user(self, d: UserDecl) -> None:
        key = (name_key(d.user_name),)
        current = self.world.users.get(key[0])
        if current is None:
            self._create("user", key, d.user_name)
            return
        self._put("user", key, d.user_name, _user_diffs(current, d), current.managed)

    def _group(self, d: GroupDecl) -> None:
        key = (name_key(d.name),)
        current = self.world.groups.get(key[0])
        if current is None:
            self._create("group", key, d.name)
        else:
            diffs = _diffs(
                ("name", current.display_name, d.name),
                ("description", current.description or None, d.description or None),
            )
            self._put("group", key, d.name, diffs, current.managed)
        if d.members is None:
            return
        wanted: dict[str, str] = {}
        for i, member in enumerate(d.members):
            user_name = self._user_ref(member, d.where(f"members[{i}]"), f"{d.path}.members[{i}]")
            if user_name is not None:
                wanted[name_key(user_name)] = user_name
        have: dict[str, str] = {}
        if current is not None:
            have = {
                name_key(u.user_name): u.user_name
                for u in self._container.directory.members(self._conn, current.id)
            }
        for user_key, user_name in wanted.items():
            if user_key not in have:
                self._create("membership", (key[0], user_key), f"{user_name} in {d.name}")
        for user_key, user_name in sorted(have.items()):
            if user_key not in wanted:
                self._delete("membership", (key[0], user_key), f"{user_name} in {d.name}")

    def _assignments(self) -> None:
        wanted: dict[tuple[str, ...], _Target] = {}
        first: dict[tuple[str, ...], Position] = {}
        for d in self.state.assignments:
            account = self._account_ref(d.account, d.where("account"), f"{d.path}.account")
            permission_set = self._permission_set_ref(
                d.permission_set, d.where("permission_set"), f"{d.path}.permission_set"
            )
            principals: list[tuple[str, str | None, Position, str]] = []
            for i, group in enumerate(d.groups):
                where, path = d.where(f"groups[{i}]"), f"{d.path}.groups[{i}]"
                principals.append(("GROUP", self._group_ref(group, where, path), where, path))
            for i, user in enumerate(d.users):
                where, path = d.where(f"users[{i}]"), f"{d.path}.users[{i}]"
                principals.append(("USER", self._user_ref(user, where, path), where, path))
            if account is None or permission_set is None:
                continue
            for principal_type, principal, where, path in principals:
                if principal is None:
                    continue
                target = _Target(account[0], account[1], permission_set, principal_type, principal)
                if target.key in first:
                    self.report(
                        where,
                        f"{path}: this assignment is declared twice (first at line {first[target.key].line})",
                    )
                    continue
                first[target.key] = where
                wanted[target.key] = target
        existing = {self._existing_target(a).key: a for a in self.world.assignments}
        for key, target in wanted.items():
            if key not in existing:
                self._create("assignment", key, target.label)
        for a in self.world.assignments:
            target = self._existing_target(a)
            if a.managed and target.key not in wanted:
                self._delete("assignment", target.key, target.label)

    def _existing_target(self, a: Assignment) -> _Target:
        account = self.world.accounts.get(a.account_id)
        ps = self.world.permission_set_by_id.get(a.permission_set_id)
        principal: User | Group | None = (
            self.world.user_by_id.get(a.principal_id)
            if a.principal_type == "USER"
            else self.world.group_by_id.get(a.principal_id)
        )
        principal_name = (
            principal.user_name
            if isinstance(principal, User)
            else principal.display_name
            if principal
            else a.principal_id
        )
        return _Target(
            a.account_id,
            account.name if account else "?",
            ps.name if ps else a.permission_set_id,
            a.principal_type,
            principal_name,
        )

    # ---- references ------------------------------------------------------------------------------------

    def _account_ref(self, ref: str, where: Position, path: str) -> tuple[str, str] | None:
        """(id, name) of the account ``ref`` (an id or a name) names, if the file or the database has it."""
        declared = self.accounts.get(ref) or self.account_names.get(name_key(ref))
        if declared is not None:
            return declared.id, declared.name
        found = self.world.accounts.get(ref) or self.world.account_by_name.get(name_key(ref))
        if found is not None and found.id in self.accounts:
            self.report(where, f"{path}: account {ref!r} is renamed by this file; use its id or its new name")
            return None
        if found is not None and not found.managed:
            return found.id, found.name
        self._unknown("account", ref, managed=found is not None, where=where, path=path, section="accounts")
        return None

    def _permission_set_ref(self, ref: str, where: Position, path: str) -> str | None:
        declared = self.permission_sets.get(name_key(ref))
        if declared is not None:
            return declared.name
        found = self.world.permission_sets.get(name_key(ref))
        if found is not None and not found.managed:
            return found.name
        self._unknown(
            "permission set",
            ref,
            managed=found is not None,
            where=where,
            path=path,
            section="permission_sets",
        )
        return None

    def _group_ref(self, ref: str, where: Position, path: str) -> str | None:
        declared = self.groups.get(name_key(ref))
        if declared is not None:
            return declared.name
        found = self.world.groups.get(name_key(ref))
        if found is not None and not found.managed:
            return found.display_name
        self._unknown("group", ref, managed=found is not None, where=where, path=path, section="groups")
        return None

    def _user_ref(self, ref: str, where: Position, path: str) -> str | None:
        declared = self.users.get(name_key(ref))
        if declared is not None:
            return declared.user_name
        found = self.world.users.get(name_key(ref))
        # with an external directory apply manages no user, so every existing user may be referred to
        if found is not None and (not found.managed or not self.world.builtin):
            return found.user_name
        if not self.world.builtin:
            self.report(
                where,
                f"{path}: unknown user {ref!r}: the {self._directory_source()} directory has no such user",
            )
            return None
        self._unknown("user", ref, managed=found is not None, where=where, path=path, section="users")
        return None

    def _unknown(
        self, what: str, ref: str, *, managed: bool, where: Position, path: str, section: str
    ) -> None:
        if managed:
            message = (
                f"{what} {ref!r} was created by keyhall apply and is no longer declared, so apply would "
                f"delete it; declare it under {section}: again"
            )
        else:
            message = f"unknown {what} {ref!r}: declare it under {section}: or create it first"
        self.report(where, f"{path}: {message}")

    # ---- deletions ---------------------------------------------------------------------------------

    def _deletions(self) -> None:
        """Managed resources no longer declared; refused while unmanaged assignments still use them."""
        gone_accounts = {
            a.id: a for a in self.world.accounts.values() if a.managed and a.id not in self.accounts
        }
        gone_sets = {
            p.id: p
            for k, p in self.world.permission_sets.items()
            if p.managed and k not in self.permission_sets
        }
        gone_groups = {g.id: g for k, g in self.world.groups.items() if g.managed and k not in self.groups}
        gone_users = (
            {u.id: u for k, u in self.world.users.items() if u.managed and k not in self.users}
            if self.world.builtin
            else {}
        )
        for g in gone_groups.values():
            self._delete("group", (name_key(g.display_name),), g.display_name)
        for u in gone_users.values():
            self._delete("user", (name_key(u.user_name),), u.user_name)
        for p in gone_sets.values():
            self._delete("permission_set", (name_key(p.name),), p.name)
        for account in gone_accounts.values():
            self._delete("account", (account.id,), f"{account.id} ({account.name})")
        blockers: dict[tuple[str, str, str], int] = defaultdict(int)
        for a in self.world.assignments:
            if a.managed:
                continue
            if a.account_id in gone_accounts:
                account = gone_accounts[a.account_id]
                blockers[("account", f"{account.id} ({account.name})", "accounts")] += 1
            if a.permission_set_id in gone_sets:
                blockers[("permission set", gone_sets[a.permission_set_id].name, "permission_sets")] += 1
            if a.principal_type == "GROUP" and a.principal_id in gone_groups:
                blockers[("group", gone_groups[a.principal_id].display_name, "groups")] += 1
            if a.principal_type == "USER" and a.principal_id in gone_users:
                blockers[("user", gone_users[a.principal_id].user_name, "users")] += 1
        for (what, label, section), count in sorted(blockers.items()):
            self.report(
                self.state.section_at(section),
                f"{what} {label} is no longer declared, so apply would delete it, but {count} account "
                f"assignment(s) made outside apply still use it; declare it again or remove those first",
            )


# ---- field diffs -------------------------------------------------------------------------------------


def _diffs(*pairs: tuple[str, Any, Any]) -> list[FieldDiff]:
    return [FieldDiff(name, old, new) for name, old, new in pairs if old != new]


def _account_diffs(current: Account, d: AccountDecl) -> list[FieldDiff]:
    return _diffs(
        ("name", current.name, d.name),
        ("email", current.email, d.email),
        ("kind", current.kind, d.kind),
        ("status", current.status, d.status),
        ("ou", current.ou_path, d.ou_path),
        ("tags", current.tags, d.tags),
    )


def _permission_set_diffs(current: PermissionSet, d: PermissionSetDecl) -> list[FieldDiff]:
    """Compared in the stored (canonical) form, shown in the file's form."""
    inline = normalise_policy_document(d.inline_policy) if d.inline_policy is not None else None
    pairs: Iterable[tuple[str, Any, Any]] = (
        ("description", current.description, d.description),
        (
            "session_duration",
            current.session_duration,
            format_duration(parse_session_duration(d.session_duration)),
        ),
        ("relay_state", current.relay_state, d.relay_state),
        ("managed_policies", current.managed_policy_arns, d.managed_policy_arns),
        ("customer_managed_policies", current.customer_managed_policies, d.customer_managed_policies),
        ("inline_policy", current.inline_policy, inline),
        ("permissions_boundary", current.permissions_boundary, d.permissions_boundary),
        ("tags", current.tags, d.tags),
    )
    return [
        FieldDiff(name, _file_form(name, old), _file_form(name, new))
        for name, old, new in pairs
        if old != new
    ]


def _file_form(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == "inline_policy":
        return json.loads(value)
    if name == "customer_managed_policies":
        return [_reference_file_form(r) for r in value]
    if name == "permissions_boundary":
        if "ManagedPolicyArn" in value:
            return {"managed_policy_arn": value["ManagedPolicyArn"]}
        return {
            "customer_managed_policy": _reference_file_form(value.get("CustomerManagedPolicyReference") or {})
        }
    return value


def _reference_file_form(ref: dict[str, Any]) -> dict[str, Any]:
    return {"name": ref.get("Name"), "path": ref.get("Path") or "/"}


def _user_diffs(current: User, d: UserDecl) -> list[FieldDiff]:
    # the directory cannot clear a display name, so an omitted one is left as it is
    display = (
        "display_name",
        current.display_name,
        d.display_name if d.display_name is not None else current.display_name,
    )
    return _diffs(
        ("user_name", current.user_name, d.user_name),
        display,
        ("given_name", current.given_name, d.given_name),
        ("family_name", current.family_name, d.family_name),
        ("email", current.primary_email, d.email),
        ("status", current.status, d.status),
        ("admin", current.is_admin, d.admin),
    )
