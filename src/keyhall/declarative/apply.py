"""Make the database match an apply file: every change in one transaction, each audited by its service.

The plan is recomputed inside the write transaction. If the caller passes the plan it showed, and the
database has changed since, nothing is applied (:class:`PlanChangedError`), so what runs is exactly what was
shown. Any failure half-way rolls the whole transaction back, audit records included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from keyhall.audit.events import Actor
from keyhall.container import Container
from keyhall.declarative.config import DesiredState, GroupDecl, UserDecl
from keyhall.declarative.plan import Action, Change, Kind, Plan, compute_plan
from keyhall.directory.models import User, name_key
from keyhall.errors import ConflictError

__all__ = ["ApplyResult", "PlanChangedError", "apply_config"]


class PlanChangedError(ConflictError):
    """The database changed between showing the plan and applying it; nothing was applied."""

    def __init__(self) -> None:
        super().__init__(
            "The database changed after the plan was made, so nothing was applied; run keyhall apply again "
            "to see the new plan"
        )


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan

    @property
    def applied(self) -> int:
        return len(self.plan.changes)


def apply_config(
    container: Container, actor: Actor, state: DesiredState, *, expected: Plan | None = None
) -> ApplyResult:
    """Apply ``state``; with ``expected``, only if the plan is still exactly that one.

    Raises :class:`~keyhall.declarative.config.InvalidConfigError` for an invalid file and
    :class:`PlanChangedError` when ``expected`` is stale; the database is then unchanged.
    """
    with container.db.write() as conn:
        plan = compute_plan(conn, container, state)
        if expected is not None and plan.changes != expected.changes:
            raise PlanChangedError
        _Executor(conn, container, actor, state).run(plan)
    return ApplyResult(plan)


class _Executor:
    """Turns each change into one service call; names are resolved to ids as the changes run."""

    def __init__(self, conn: Connection, container: Container, actor: Actor, state: DesiredState) -> None:
        self._conn = conn
        self._directory = container.directory
        self._access = container.access
        self._actor = actor
        self._accounts = {d.id: d for d in state.accounts}
        self._permission_sets = {name_key(d.name): d for d in state.permission_sets}
        self._users = {name_key(d.user_name): d for d in state.users}
        self._groups = {name_key(d.name): d for d in state.groups}
        self._steps: dict[tuple[Kind, Action], Callable[[Change], Any]] = {
            ("account", "create"): self._create_account,
            ("account", "update"): self._update_account,
            ("account", "delete"): self._delete_account,
            ("permission_set", "create"): self._create_permission_set,
            ("permission_set", "update"): self._update_permission_set,
            ("permission_set", "delete"): self._delete_permission_set,
            ("user", "create"): self._create_user,
            ("user", "update"): self._update_user,
            ("user", "delete"): self._delete_user,
            ("group", "create"): self._create_group,
            ("group", "update"): self._update_group,
            ("group", "delete"): self._delete_group,
            ("membership", "create"): self._add_member,
            ("membership", "delete"): self._remove_member,
            ("assignment", "create"): self._create_assignment,
            ("assignment", "delete"): self._delete_assignment,
        }

    def run(self, plan: Plan) -> None:
        for change in plan.changes:
            self._steps[(change.kind, change.action)](change)

    # ---- accounts and permission sets ----------------------------------------------------------------

    def _create_account(self, change: Change) -> None:
        spec = self._accounts[change.key[0]].spec()
        self._access.create_account(self._conn, self._actor, spec, managed=True)

    def _update_account(self, change: Change) -> None:
        spec = self._accounts[change.key[0]].spec()
        self._access.update_account(self._conn, self._actor, change.key[0], spec, managed=True)

    def _delete_account(self, change: Change) -> None:
        self._access.delete_account(self._conn, self._actor, change.key[0])

    def _create_permission_set(self, change: Change) -> None:
        spec = self._permission_sets[change.key[0]].spec()
        self._access.create_permission_set(self._conn, self._actor, spec, managed=True)

    def _update_permission_set(self, change: Change) -> None:
        current = self._access.resolve_permission_set(self._conn, change.key[0])
        spec = self._permission_sets[change.key[0]].spec()
        spec.name = current.name  # a permission set keeps its name (it is the role name in every account)
        self._access.update_permission_set(self._conn, self._actor, current.id, spec, managed=True)

    def _delete_permission_set(self, change: Change) -> None:
        ps = self._access.resolve_permission_set(self._conn, change.key[0])
        self._access.delete_permission_set(self._conn, self._actor, ps.id)

    # ---- users, groups, memberships ----------------------------------------------------------------

    def _user(self, key: str) -> User:
        return self._directory.resolve_user(self._conn, key)

    def _create_user(self, change: Change) -> None:
        # no password (the file holds no secrets); an administrator runs `keyhall users reset-password`
        spec = self._users[change.key[0]].spec()
        self._directory.create_user(self._conn, self._actor, spec, source="builtin", managed=True)

    def _update_user(self, change: Change) -> None:
        d: UserDecl = self._users[change.key[0]]
        user = self._user(change.key[0])
        changed = {diff.field for diff in change.diffs}
        attributes = dict(user.attributes)
        names = bool(changed & {"given_name", "family_name"})
        if names:
            # rebuilt from the file; other parts of the name (a middle name from elsewhere) are kept
            rest = {
                k: v
                for k, v in (attributes.get("Name") or {}).items()
                if k not in ("GivenName", "FamilyName", "Formatted")
            }
            attributes["Name"] = rest or None
        if "email" in changed:
            attributes.pop("Emails", None)
        self._directory.update_user(
            self._conn,
            self._actor,
            user.id,
            user_name=d.user_name,
            display_name=d.display_name,
            given_name=d.given_name if names else None,
            family_name=d.family_name if names else None,
            email=d.email if "email" in changed else None,
            is_admin=d.admin,
            attributes=attributes,
            managed=True,
        )
        if "status" in changed:
            self._directory.set_status(self._conn, self._actor, user.id, d.status)

    def _delete_user(self, change: Change) -> None:
        self._directory.delete_user(self._conn, self._actor, self._user(change.key[0]).id)

    def _create_group(self, change: Change) -> None:
        d: GroupDecl = self._groups[change.key[0]]
        self._directory.create_group(self._conn, self._actor, d.name, d.description, managed=True)

    def _update_group(self, change: Change) -> None:
        d = self._groups[change.key[0]]
        group = self._directory.resolve_group(self._conn, change.key[0])
        self._directory.update_group(
            self._conn,
            self._actor,
            group.id,
            display_name=d.name,
            description=d.description or "",
            managed=True,
        )

    def _delete_group(self, change: Change) -> None:
        group = self._directory.resolve_group(self._conn, change.key[0])
        self._directory.delete_group(self._conn, self._actor, group.id)

    def _add_member(self, change: Change) -> None:
        group = self._directory.resolve_group(self._conn, change.key[0])
        self._directory.add_member(self._conn, self._actor, group.id, self._user(change.key[1]).id)

    def _remove_member(self, change: Change) -> None:
        group = self._directory.resolve_group(self._conn, change.key[0])
        self._directory.remove_member(self._conn, self._actor, group.id, self._user(change.key[1]).id)

    # ---- assignments -------------------------------------------------------------------------------

    def _assignment_ids(self, change: Change) -> tuple[str, str, str, str]:
        account_id, ps_key, principal_type, principal_key = change.key
        ps = self._access.resolve_permission_set(self._conn, ps_key)
        if principal_type == "USER":
            principal_id = self._user(principal_key).id
        else:
            principal_id = self._directory.resolve_group(self._conn, principal_key).id
        return account_id, ps.id, principal_type, principal_id

    def _create_assignment(self, change: Change) -> None:
        self._access.create_assignment(self._conn, self._actor, *self._assignment_ids(change), managed=True)

    def _delete_assignment(self, change: Change) -> None:
        self._access.delete_assignment(self._conn, self._actor, *self._assignment_ids(change))
