"""Accounts, permission sets, assignments and effective access: validate, change, audit.

Like the directory service, every method runs on the caller's transaction.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from sqlalchemy import Connection

from keyhall.access import store
from keyhall.access.durations import format_duration, parse_session_duration
from keyhall.access.models import (
    PERMISSION_SET_NAME_RE,
    Account,
    AccountAccess,
    AccountSpec,
    Assignment,
    Entitlement,
    PermissionSet,
    PermissionSetSpec,
)
from keyhall.access.policy_grammar import (
    is_valid_managed_policy_arn,
    normalise_policy_document,
    validate_customer_managed_policy_reference,
    validate_policy_document,
)
from keyhall.audit.events import Actor, AuditEvent
from keyhall.audit.writer import AuditWriter
from keyhall.clock import Clock
from keyhall.directory import store as directory_store
from keyhall.directory.models import name_key
from keyhall.errors import ConflictError, NotFoundError, Problem, ValidationError
from keyhall.ids import is_account_id, is_principal_id, new_account_id, new_permission_set_id, new_uuid
from keyhall.pagination import Page, keyset_page

SOURCE = "sso.amazonaws.com"
ORG_SOURCE = "organizations.amazonaws.com"
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
OU_PATH_RE = re.compile(r"^(/[^/]{1,128})+/?$")
MAX_POLICIES = 20


def check_account_spec(spec: AccountSpec) -> list[Problem]:
    problems: list[Problem] = []
    if spec.id is not None and not is_account_id(spec.id):
        problems.append(Problem("id", f"account id must be 12 digits, got {spec.id!r}"))
    if not 1 <= len(spec.name) <= 128 or not spec.name.strip():
        problems.append(Problem("name", "must be 1 to 128 characters"))
    if not EMAIL_RE.match(spec.email) or len(spec.email) > 254:
        problems.append(Problem("email", f"{spec.email!r} is not an email address"))
    if spec.kind not in ("local", "aws"):
        problems.append(Problem("kind", f'must be "local" or "aws", got {spec.kind!r}'))
    if spec.status not in ("ACTIVE", "SUSPENDED"):
        problems.append(Problem("status", f'must be "ACTIVE" or "SUSPENDED", got {spec.status!r}'))
    if spec.ou_path is not None and not OU_PATH_RE.match(spec.ou_path):
        problems.append(Problem("ou", f"OU path must look like /Root/Workloads/Prod, got {spec.ou_path!r}"))
    problems.extend(check_tags(spec.tags))
    return problems


def check_tags(tags: dict[str, str], location: str = "tags") -> list[Problem]:
    problems = []
    if len(tags) > 50:
        problems.append(Problem(location, "at most 50 tags"))
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or key.lower().startswith("aws:"):
            problems.append(
                Problem(f"{location}.{key}", "tag keys are 1 to 128 characters and may not start with aws:")
            )
        if not isinstance(value, str) or len(value) > 256:
            problems.append(Problem(f"{location}.{key}", "tag values are strings of at most 256 characters"))
    return problems


def check_permission_set_spec(spec: PermissionSetSpec) -> tuple[list[Problem], int | None, str | None]:
    """Problems, plus the parsed session seconds and normalised inline policy when valid."""
    problems: list[Problem] = []
    seconds: int | None = None
    inline: str | None = None
    if not PERMISSION_SET_NAME_RE.match(spec.name):
        problems.append(Problem("name", "must be 1 to 32 characters of letters, digits and +=,.@_-"))
    if spec.description is not None and not 1 <= len(spec.description) <= 700:
        problems.append(Problem("description", "must be 1 to 700 characters"))
    try:
        seconds = parse_session_duration(spec.session_duration)
    except ValueError as exc:
        problems.append(Problem("session_duration", str(exc)))
    if spec.relay_state is not None and not (
        1 <= len(spec.relay_state) <= 240 and spec.relay_state.startswith("https://")
    ):
        problems.append(Problem("relay_state", "must be an https:// URL of at most 240 characters"))
    for i, arn in enumerate(spec.managed_policy_arns):
        if not is_valid_managed_policy_arn(arn):
            problems.append(
                Problem(
                    f"managed_policies[{i}]",
                    f"{arn!r} is not an AWS managed policy ARN (arn:aws:iam::aws:policy/…)",
                )
            )
    if len(set(spec.managed_policy_arns)) != len(spec.managed_policy_arns):
        problems.append(Problem("managed_policies", "lists a policy twice"))
    for i, ref in enumerate(spec.customer_managed_policies):
        for message in validate_customer_managed_policy_reference(ref.get("Name", ""), ref.get("Path")):
            problems.append(Problem(f"customer_managed_policies[{i}]", message))
    if len(spec.managed_policy_arns) + len(spec.customer_managed_policies) > MAX_POLICIES:
        problems.append(
            Problem("managed_policies", f"at most {MAX_POLICIES} managed and customer managed policies")
        )
    if spec.inline_policy is not None:
        policy_problems = validate_policy_document(spec.inline_policy)
        for p in policy_problems:
            problems.append(Problem(f"inline_policy{'.' + p.path if p.path else ''}", p.message))
        if not policy_problems:
            inline = normalise_policy_document(spec.inline_policy)
    if spec.permissions_boundary is not None:
        problems.extend(check_permissions_boundary(spec.permissions_boundary))
    problems.extend(check_tags(spec.tags))
    return problems, seconds, inline


def check_permissions_boundary(boundary: dict[str, Any]) -> list[Problem]:
    arn = boundary.get("ManagedPolicyArn")
    ref = boundary.get("CustomerManagedPolicyReference")
    if (arn is None) == (ref is None):
        return [
            Problem(
                "permissions_boundary", "give exactly one of managed_policy_arn or customer_managed_policy"
            )
        ]
    if arn is not None and not is_valid_managed_policy_arn(str(arn)):
        return [
            Problem("permissions_boundary.managed_policy_arn", f"{arn!r} is not an AWS managed policy ARN")
        ]
    if ref is not None:
        if not isinstance(ref, dict):
            return [
                Problem("permissions_boundary.customer_managed_policy", "must have a name and optional path")
            ]
        return [
            Problem("permissions_boundary.customer_managed_policy", m)
            for m in validate_customer_managed_policy_reference(str(ref.get("Name", "")), ref.get("Path"))
        ]
    return []


class AccessService:
    def __init__(self, clock: Clock, audit: AuditWriter) -> None:
        self._clock = clock
        self._audit = audit

    # ---- accounts ------------------------------------------------------------------------------

    def create_account(
        self, conn: Connection, actor: Actor, spec: AccountSpec, *, managed: bool = False
    ) -> Account:
        problems = check_account_spec(spec)
        if problems:
            raise ValidationError.from_problems(problems)
        account_id = spec.id or new_account_id()
        if store.get_account(conn, account_id):
            raise ConflictError(f"Account {account_id} already exists")
        if store.get_account_by_name_key(conn, name_key(spec.name)):
            raise ConflictError(f"An account named {spec.name!r} already exists")
        now = self._clock.timestamp()
        store.insert_account(
            conn,
            {
                "id": account_id,
                "name": spec.name,
                "name_key": name_key(spec.name),
                "email": spec.email,
                "status": spec.status,
                "kind": spec.kind,
                "ou_path": spec.ou_path,
                "tags": dict(spec.tags),
                "managed": managed,
                "created_at": now,
                "updated_at": now,
            },
        )
        self._audit.record(
            conn,
            actor,
            AuditEvent(
                ORG_SOURCE,
                "CreateAccount",
                resource_type="Account",
                resource_id=account_id,
                request_parameters={"Name": spec.name, "Email": spec.email, "Kind": spec.kind},
            ),
        )
        return self.get_account(conn, account_id)

    def get_account(self, conn: Connection, account_id: str) -> Account:
        account = store.get_account(conn, account_id) if is_account_id(account_id) else None
        if account is None:
            raise NotFoundError("ACCOUNT", account_id)
        return account

    def resolve_account(self, conn: Connection, id_or_name: str) -> Account:
        account = store.get_account(conn, id_or_name) if is_account_id(id_or_name) else None
        account = account or store.get_account_by_name_key(conn, name_key(id_or_name))
        if account is None:
            raise NotFoundError("ACCOUNT", id_or_name)
        return account

    def list_accounts(
        self, conn: Connection, *, limit: int | None = None, next_token: str | None = None
    ) -> Page[Account]:
        return keyset_page(
            lambda after, n: store.list_accounts(conn, after_id=after, limit=n),
            lambda account: account.id,
            limit=limit,
            next_token=next_token,
            maximum=1000,
        )

    def all_accounts(self, conn: Connection) -> list[Account]:
        return store.list_accounts(conn, after_id=None, limit=1_000_000)

    def update_account(
        self,
        conn: Connection,
        actor: Actor,
        account_id: str,
        spec: AccountSpec,
        *,
        managed: bool | None = None,
    ) -> Account:
        account = self.get_account(conn, account_id)
        spec.id = account.id
        problems = check_account_spec(spec)
        if problems:
            raise ValidationError.from_problems(problems)
        other = store.get_account_by_name_key(conn, name_key(spec.name))
        if other and other.id != account.id:
            raise ConflictError(f"An account named {spec.name!r} already exists")
        values: dict[str, Any] = {
            "name": spec.name,
            "name_key": name_key(spec.name),
            "email": spec.email,
            "status": spec.status,
            "kind": spec.kind,
            "ou_path": spec.ou_path,
            "tags": dict(spec.tags),
        }
        if managed is not None:
            values["managed"] = managed
        changed = sorted(k for k, v in values.items() if k != "name_key" and getattr(account, k) != v)
        if not changed:
            return account
        values["updated_at"] = self._clock.timestamp()
        store.update_account(conn, account.id, values)
        self._audit.record(
            conn,
            actor,
            AuditEvent(
                ORG_SOURCE,
                "UpdateAccount",
                resource_type="Account",
                resource_id=account.id,
                request_parameters={"Changed": changed},
            ),
        )
        return self.get_account(conn, account.id)

    def delete_account(self, conn: Connection, actor: Actor, account_id: str) -> Account:
        account = self.get_account(conn, account_id)
        removed = len(store.list_assignments(conn, account_id=account.id))
        store.delete_account(conn, account.id)
        self._audit.record(
            conn,
            actor,
            AuditEvent(
                ORG_SOURCE,
                "RemoveAccount",
                resource_type="Account",
                resource_id=account.id,
                request_parameters={"Name": account.name},
                response_elements={"AssignmentsRemoved": removed},
            ),
        )
        return account

    # ---- permission sets -----------------------------------------------------------------------

    def create_permission_set(
        self, conn: Connection, actor: Actor, spec: PermissionSetSpec, *, managed: bool = False
    ) -> PermissionSet:
        problems, seconds, inline = check_permission_set_spec(spec)
        if problems:
            raise ValidationError.from_problems(problems)
        assert seconds is not None
        if store.get_permission_set_by_name_key(conn, name_key(spec.name)):
            raise ConflictError(f"A permission set named {spec.name!r} already exists")
        now = self._clock.timestamp()
        ps_id = new_permission_set_id()
        store.insert_permission_set(
            conn,
            {
                "id": ps_id,
                "name": spec.name,
                "name_key": name_key(spec.name),
                "managed": managed,
                "created_at": now,
                "updated_at": now,
                **self._ps_values(spec, seconds, inline),
            },
        )
        self._audit.record(
            conn,
            actor,
            AuditEvent(
                SOURCE,
                "CreatePermissionSet",
                resource_type="PermissionSet",
                resource_id=ps_id,
                request_parameters={"Name": spec.name, "SessionDuration": format_duration(seconds)},
            ),
        )
        return self.get_permission_set(conn, ps_id)

    @staticmethod
    def _ps_values(spec: PermissionSetSpec, seconds: int, inline: str | None) -> dict[str, Any]:
        return {
            "description": spec.description,
            "session_duration": format_duration(seconds),
            "session_seconds": seconds,
            "relay_state": spec.relay_state,
            "managed_policy_arns": list(spec.managed_policy_arns),
            "customer_managed_policies": [
                {"Name": r["Name"], "Path": r.get("Path") or "/"} for r in spec.customer_managed_policies
            ],
            "inline_policy": inline,
            "permissions_boundary": spec.permissions_boundary,
            "tags": dict(spec.tags),
        }

    def get_permission_set(self, conn: Connection, ps_id: str) -> PermissionSet:
        ps = store.get_permission_set(conn, ps_id)
        if ps is None:
            raise NotFoundError("PERMISSION_SET", ps_id)
        return ps

    def resolve_permission_set(self, conn: Connection, id_or_name: str) -> PermissionSet:
        ps_id = id_or_name.rsplit("/", 1)[-1]  # accept a permission set ARN too
        ps = store.get_permission_set(conn, ps_id) if ps_id.startswith("ps-") else None
        ps = ps or store.get_permission_set_by_name_key(conn, name_key(id_or_name))
        if ps is None:
            raise NotFoundError("PERMISSION_SET", id_or_name)
        return ps

    def list_permission_sets(
        self, conn: Connection, *, limit: int | None = None, next_token: str | None = None
    ) -> Page[PermissionSet]:
        return keyset_page(
            lambda after, n: store.list_permission_sets(conn, after_key=after, limit=n),
            lambda ps: name_key(ps.name),
            limit=limit,
            next_token=next_token,
            maximum=1000,
        )

    def all_permission_sets(self, conn: Connection) -> list[PermissionSet]:
        return store.list_permission_sets(conn, after_key=None, limit=1_000_000)

    def update_permission_set(
        self,
        conn: Connection,
        actor: Actor,
        ps_id: str,
        spec: PermissionSetSpec,
        *,
        managed: bool | None = None,
    ) -> PermissionSet:
        ps = self.get_permission_set(conn, ps_id)
        if name_key(spec.name) != name_key(ps.name):
            raise ValidationError(
                "A permission set cannot be renamed (its name is its role name in every account)"
            )
        problems, seconds, inline = check_permission_set_spec(spec)
        if problems:
            raise ValidationError.from_problems(problems)
        assert seconds is not None
        values = self._ps_values(spec, seconds, inline)
        if managed is not None:
            values["managed"] = managed
        changed = sorted(k for k, v in values.items() if getattr(ps, k) != v)
        if not changed:
            return ps
        values["updated_at"] = self._clock.timestamp()
        store.update_permission_set(conn, ps.id, values)
        self._audit.record(
            conn,
            actor,
            AuditEvent(
                SOURCE,
                "UpdatePermissionSet",
                resource_type="PermissionSet",
                resource_id=ps.id,
                request_parameters={"Name": ps.name, "Changed": changed},
            ),
        )
        return self.get_permission_set(conn, ps.id)

    def delete_permission_set(self, conn: Connection, actor: Actor, ps_id: str) -> PermissionSet:
        ps = self.get_permission_set(conn, ps_id)
        in_use = store.count_assignments_of_permission_set(conn, ps.id)
        if in_use:
            raise ConflictError(
                f"Permission set {ps.name!r} is used by {in_use} account assignment(s); remove them first"
            )
        store.delete_permission_set(conn, ps.id)
        self._audit.record(
            conn,
            actor,
            AuditEvent(
                SOURCE,
                "DeletePermissionSet",
                resource_type="PermissionSet",
                resource_id=ps.id,
                request_parameters={"Name": ps.name},
            ),
        )
        return ps

    # ---- assignments ---------------------------------------------------------------------------

    def _check_principal(self, conn: Connection, principal_type: str, principal_id: str) -> None:
        if principal_type == "USER":
            found = is_principal_id(principal_id) and directory_store.get_user(conn, principal_id) is not None
        elif principal_type == "GROUP":
            found = (
                is_principal_id(principal_id) and directory_store.get_group(conn, principal_id) is not None
            )
        else:
            raise ValidationError(f'PrincipalType must be "USER" or "GROUP", got {principal_type!r}')
        if not found:
            raise NotFoundError(principal_type, principal_id)

    def create_assignment(
        self,
        conn: Connection,
        actor: Actor,
        account_id: str,
        ps_id: str,
        principal_type: str,
        principal_id: str,
        *,
        managed: bool = False,
    ) -> Assignment:
        account = self.get_account(conn, account_id)
        ps = self.get_permission_set(conn, ps_id)
        self._check_principal(conn, principal_type, principal_id)
        if store.find_assignment(conn, account.id, ps.id, principal_type, principal_id):
            raise ConflictError("That account assignment already exists")
        assignment_id = new_uuid()
        store.insert_assignment(
            conn,
            {
                "id": assignment_id,
                "account_id": account.id,
                "permission_set_id": ps.id,
                "principal_type": principal_type,
                "principal_id": principal_id,
                "managed": managed,
                "created_at": self._clock.timestamp(),
                "created_by": actor.label,
            },
        )
        self._audit.record(
            conn,
            actor,
            AuditEvent(
                SOURCE,
                "CreateAccountAssignment",
                resource_type="AccountAssignment",
                resource_id=assignment_id,
                request_parameters={
                    "TargetId": account.id,
                    "PermissionSet": ps.name,
                    "PrincipalType": principal_type,
                    "PrincipalId": principal_id,
                },
            ),
        )
        found = store.find_assignment(conn, account.id, ps.id, principal_type, principal_id)
        assert found is not None
        return found

    def delete_assignment(
        self,
        conn: Connection,
        actor: Actor,
        account_id: str,
        ps_id: str,
        principal_type: str,
        principal_id: str,
    ) -> Assignment:
        found = store.find_assignment(conn, account_id, ps_id, principal_type, principal_id)
        if found is None:
            raise NotFoundError("ACCOUNT_ASSIGNMENT", f"{account_id}/{ps_id}/{principal_type}/{principal_id}")
        store.delete_assignment(conn, found.id)
        self._audit.record(
            conn,
            actor,
            AuditEvent(
                SOURCE,
                "DeleteAccountAssignment",
                resource_type="AccountAssignment",
                resource_id=found.id,
                request_parameters={
                    "TargetId": account_id,
                    "PermissionSetId": ps_id,
                    "PrincipalType": principal_type,
                    "PrincipalId": principal_id,
                },
            ),
        )
        return found

    def list_assignments(
        self,
        conn: Connection,
        *,
        account_id: str | None = None,
        ps_id: str | None = None,
        principal_type: str | None = None,
        principal_id: str | None = None,
    ) -> list[Assignment]:
        return store.list_assignments(
            conn, account_id=account_id, ps_id=ps_id, principal_type=principal_type, principal_id=principal_id
        )

    # ---- effective access ----------------------------------------------------------------------

    def entitled_permission_set(
        self, conn: Connection, user_id: str, account_id: str, permission_set_name: str
    ) -> PermissionSet | None:
        """The permission set named ``permission_set_name`` if the user may use it in the account, now."""
        return store.entitled_permission_set(conn, user_id, account_id, name_key(permission_set_name))

    def user_entitlements(self, conn: Connection, user_id: str) -> list[Entitlement]:
        """Where a user can go: (account, permission set) pairs, direct or through groups."""
        reach: dict[tuple[str, str], tuple[bool, set[str]]] = {}
        for row in store.user_assignment_rows(conn, user_id):
            key = (row.account_id, row.permission_set_id)
            direct, via = reach.get(key, (False, set()))
            if row.principal_type == "USER":
                direct = True
            elif row.group_name:
                via.add(row.group_name)
            reach[key] = (direct, via)
        accounts = {a: self.get_account(conn, a) for a, _ in reach}
        sets = {p: self.get_permission_set(conn, p) for _, p in reach}
        result = [
            Entitlement(accounts[a], sets[p], direct, tuple(sorted(via)))
            for (a, p), (direct, via) in reach.items()
        ]
        result.sort(key=lambda e: (e.account.name.casefold(), e.permission_set.name.casefold()))
        return result

    def account_access(self, conn: Connection, account_id: str) -> list[AccountAccess]:
        """Who reaches an account, with which permission set, and through which group."""
        account = self.get_account(conn, account_id)
        reach: dict[tuple[str, str], tuple[str, bool, set[str]]] = defaultdict(lambda: ("", False, set()))
        for row in store.account_access_rows(conn, account.id):
            key = (row.user_id, row.permission_set_id)
            _, direct, via = reach[key]
            if row.group_name is None:
                direct = True
            else:
                via.add(row.group_name)
            reach[key] = (row.user_name, direct, via)
        sets = {p: self.get_permission_set(conn, p) for _, p in reach}
        result = [
            AccountAccess(user_id, user_name, sets[p], direct, tuple(sorted(via)))
            for (user_id, p), (user_name, direct, via) in reach.items()
        ]
        result.sort(key=lambda a: (a.user_name.casefold(), a.permission_set.name.casefold()))
        return result
