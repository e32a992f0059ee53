"""`keyhall aws plan|apply`: make each real AWS account hold Keyhall's identity provider and one role per
permission set assigned there, like IAM Identity Center's ``ProvisionPermissionSet`` (aws-wire.md 3.2, 3.3).

Plan compares what the database wants (:mod:`~keyhall.federation.iam_desired`) with what IAM holds
(:mod:`~keyhall.federation.iam_actual`), field by field, so drift made by hand shows up. Apply re-reads each
account right before changing it and makes every step idempotent (create falls back to update, detach and
delete tolerate what is already gone), so an interrupted apply is finished by running it again. Each role's
outcome is written to ``provisioning_state`` in its own short transaction, with an audit record per change.

Ownership: Keyhall changes or deletes a role only if it is on ``/keyhall/`` *and* tagged
``keyhall:instance=<this instance>``; a role of the same name without that tag blocks provisioning instead.
The identity provider is the one named in the federation settings; it is deleted only when the account no
longer has any role on ``/keyhall/`` and Keyhall has provisioned there before.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy import Connection, insert, select, update

from keyhall.access import store as access_store
from keyhall.access.models import Account
from keyhall.access.service import AccessService
from keyhall.audit.events import Actor, AuditEvent
from keyhall.container import Container
from keyhall.db.tables import accounts as accounts_table
from keyhall.db.tables import permission_sets as permission_sets_table
from keyhall.db.tables import provisioning_state
from keyhall.errors import KeyhallError, ValidationError
from keyhall.federation import naming
from keyhall.federation.aws_clients import AccountAccess, ClientFactory, error_text
from keyhall.federation.iam_actual import (
    AccountState,
    ActualProvider,
    ActualRole,
    is_not_found,
    read_account,
    read_role,
    same_metadata,
)
from keyhall.federation.iam_desired import (
    INLINE_POLICY_NAME,
    TAG_INSTANCE,
    AccountTarget,
    ProviderSpec,
    RoleSpec,
    desired_targets,
    provider_spec,
    same_policy,
)
from keyhall.federation.settings import FederationSettings, load_federation_settings
from keyhall.instance import require_instance

__all__ = [
    "AccountPlan",
    "ApplyResult",
    "Blocked",
    "FieldChange",
    "MetadataSource",
    "Outcome",
    "Provisioner",
    "ProvisioningError",
    "ProvisioningPlan",
    "ResourceChange",
    "StatusRow",
    "provisioning_status",
]

PROVISIONED = "PROVISIONED"
FAILED = "FAILED"
REMOVED = "REMOVED"
AUDIT_SOURCE = "sso.amazonaws.com"
IAM_SOURCE = "iam.amazonaws.com"
_PRINCIPAL_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0)

Action = Literal["create", "update", "delete"]
ResourceKind = Literal["provider", "role"]


class MetadataSource(Protocol):
    """Where the SAML metadata document for the IAM SAML provider comes from: Keyhall's published signing
    certificates (:class:`keyhall.federation.issuer.FederationMetadata`). Asked once per plan or apply."""

    def saml_metadata(self, conn: Connection) -> str: ...


class ProvisioningError(KeyhallError):
    """Provisioning cannot start at all (no credentials, no instance, settings incomplete)."""

    status = 400
    aws_code = "ValidationException"
    query_type = "Sender"


# ---- the plan ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    """One field of a resource: ``trust_policy``, ``managed_policy`` (attach: old None; detach: new None),
    ``customer_managed_policy``, ``inline_policy``, ``inline_policy:<other name>``, ``permissions_boundary``,
    ``max_session_duration``, ``description``, ``tag:<key>``, ``saml_metadata``, ``client_ids``."""

    field: str
    old: Any
    new: Any

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class ResourceChange:
    action: Action
    kind: ResourceKind
    name: str
    arn: str
    permission_set_id: str | None = None
    permission_set_name: str | None = None
    fields: tuple[FieldChange, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "type": self.kind,
            "name": self.name,
            "arn": self.arn,
            "permission_set_id": self.permission_set_id,
            "permission_set": self.permission_set_name,
            "changes": [f.to_dict() for f in self.fields],
        }


@dataclass(frozen=True)
class Blocked:
    """A role Keyhall wants but will not touch, and why."""

    name: str
    permission_set_id: str
    permission_set_name: str
    reason: str


@dataclass(frozen=True)
class AccountPlan:
    account_id: str
    account_name: str
    changes: tuple[ResourceChange, ...] = ()
    blocked: tuple[Blocked, ...] = ()
    warnings: tuple[str, ...] = ()
    #: the account could not be reached or read
    error: str | None = None
    #: the account was left out on purpose (suspended)
    skipped: str | None = None
    #: desired roles that already match, with their desired hashes (for the provisioning state)
    in_sync: tuple[RoleSpec, ...] = field(default=(), compare=False, repr=False)
    target: AccountTarget | None = field(default=None, compare=False, repr=False)
    actual: AccountState | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "account_name": self.account_name,
            "error": self.error,
            "skipped": self.skipped,
            "warnings": list(self.warnings),
            "blocked": [
                {
                    "role": b.name,
                    "permission_set_id": b.permission_set_id,
                    "permission_set": b.permission_set_name,
                    "reason": b.reason,
                }
                for b in self.blocked
            ],
            "changes": [c.to_dict() for c in self.changes],
        }


@dataclass(frozen=True)
class ProvisioningPlan:
    accounts: tuple[AccountPlan, ...]
    caller_arn: str

    @property
    def changes(self) -> list[ResourceChange]:
        return [c for a in self.accounts for c in a.changes]

    def count(self, action: Action) -> int:
        return sum(1 for c in self.changes if c.action == action)

    @property
    def problems(self) -> int:
        """Accounts that could not be read, plus roles that are blocked."""
        return sum(1 for a in self.accounts if a.error) + sum(len(a.blocked) for a in self.accounts)

    @property
    def summary(self) -> str:
        text = (
            "No changes."
            if not self.changes
            else f"Plan: {self.count('create')} to create, {self.count('update')} to update, "
            f"{self.count('delete')} to delete."
        )
        if self.problems:
            text += f" {self.problems} problem{'' if self.problems == 1 else 's'}."
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "caller": self.caller_arn,
            "accounts": [a.to_dict() for a in self.accounts],
            "summary": {
                "create": self.count("create"),
                "update": self.count("update"),
                "delete": self.count("delete"),
                "problems": self.problems,
            },
        }


@dataclass(frozen=True)
class Outcome:
    """What apply did to one role (or provider) and how it ended."""

    account_id: str
    kind: ResourceKind
    name: str
    action: Action | None
    status: str
    message: str | None = None
    permission_set_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "type": self.kind,
            "name": self.name,
            "action": self.action,
            "status": self.status,
            "message": self.message,
            "permission_set": self.permission_set_name,
        }


@dataclass(frozen=True)
class ApplyResult:
    plan: ProvisioningPlan
    outcomes: tuple[Outcome, ...]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == FAILED]

    @property
    def failures(self) -> int:
        """Failed roles and providers, plus unreachable accounts that had no role to fail."""
        with_outcome = {o.account_id for o in self.failed}
        return len(self.failed) + sum(
            1 for a in self.plan.accounts if a.error and a.account_id not in with_outcome
        )

    @property
    def ok(self) -> bool:
        return self.failures == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.plan.to_dict(),
            "outcomes": [o.to_dict() for o in self.outcomes],
            "failed": self.failures,
        }


# ---- comparing ----------------------------------------------------------------------------------------


def metadata_digest(document: str | None) -> str | None:
    if document is None:
        return None
    return "sha256:" + hashlib.sha256(document.strip().encode()).hexdigest()[:16]


def _policy_field(arn: str) -> str:
    return "managed_policy" if ":iam::aws:policy/" in arn else "customer_managed_policy"


def role_fields(spec: RoleSpec, actual: ActualRole | None) -> list[FieldChange]:
    """Field changes that turn ``actual`` (``None``: a new role) into ``spec``."""
    if actual is None:
        fields = [
            FieldChange("trust_policy", None, spec.trust_policy),
            FieldChange("max_session_duration", None, spec.max_session_duration),
        ]
        if spec.permissions_boundary_arn:
            fields.append(FieldChange("permissions_boundary", None, spec.permissions_boundary_arn))
        if spec.inline_policy is not None:
            fields.append(FieldChange("inline_policy", None, spec.inline_policy))
        fields += [FieldChange(_policy_field(a), None, a) for a in spec.managed_policy_arns]
        return fields
    fields = []
    if not same_policy(actual.trust_policy, spec.trust_policy):
        fields.append(FieldChange("trust_policy", actual.trust_policy, spec.trust_policy))
    if actual.permissions_boundary_arn != spec.permissions_boundary_arn:
        fields.append(
            FieldChange(
                "permissions_boundary", actual.permissions_boundary_arn, spec.permissions_boundary_arn
            )
        )
    fields += [
        FieldChange(_policy_field(a), a, None)
        for a in actual.managed_policy_arns
        if a not in spec.managed_policy_arns
    ]
    for name, document in sorted(actual.inline_policies.items()):
        if name != INLINE_POLICY_NAME:
            fields.append(FieldChange(f"inline_policy:{name}", document, None))
    current = actual.inline_policies.get(INLINE_POLICY_NAME)
    if spec.inline_policy is None and current is not None:
        fields.append(FieldChange("inline_policy", current, None))
    elif spec.inline_policy is not None and (current is None or not same_policy(current, spec.inline_policy)):
        fields.append(FieldChange("inline_policy", current, spec.inline_policy))
    fields += [
        FieldChange(_policy_field(a), None, a)
        for a in spec.managed_policy_arns
        if a not in actual.managed_policy_arns
    ]
    if actual.max_session_duration != spec.max_session_duration:
        fields.append(
            FieldChange("max_session_duration", actual.max_session_duration, spec.max_session_duration)
        )
    if actual.description != spec.description:
        fields.append(FieldChange("description", actual.description, spec.description))
    fields += [
        FieldChange(f"tag:{k}", actual.tags.get(k), v)
        for k, v in sorted(spec.tags.items())
        if actual.tags.get(k) != v
    ]
    return fields


def _deletion_fields(role: ActualRole) -> list[FieldChange]:
    fields = [FieldChange(_policy_field(a), a, None) for a in role.managed_policy_arns]
    fields += [
        FieldChange("inline_policy" if n == INLINE_POLICY_NAME else f"inline_policy:{n}", d, None)
        for n, d in sorted(role.inline_policies.items())
    ]
    if role.permissions_boundary_arn:
        fields.append(FieldChange("permissions_boundary", role.permissions_boundary_arn, None))
    return fields


def _provider_change(
    spec: ProviderSpec, actual: ActualProvider | None, metadata: str | None
) -> ResourceChange | None:
    if spec.method == "saml":
        assert metadata is not None
        if actual is None:
            return ResourceChange(
                "create",
                "provider",
                spec.name,
                spec.arn,
                fields=(FieldChange("saml_metadata", None, metadata_digest(metadata)),),
            )
        if actual.metadata is None or not same_metadata(actual.metadata, metadata):
            field_change = FieldChange(
                "saml_metadata", metadata_digest(actual.metadata), metadata_digest(metadata)
            )
            return ResourceChange("update", "provider", spec.name, spec.arn, fields=(field_change,))
        return None
    if actual is None:
        return ResourceChange(
            "create",
            "provider",
            spec.name,
            spec.arn,
            fields=(FieldChange("client_ids", None, list(spec.client_ids)),),
        )
    if tuple(sorted(actual.client_ids)) != tuple(sorted(spec.client_ids)):
        field_change = FieldChange("client_ids", list(actual.client_ids), list(spec.client_ids))
        return ResourceChange("update", "provider", spec.name, spec.arn, fields=(field_change,))
    return None


def diff_account(
    account: Account,
    target: AccountTarget | None,
    provider: ProviderSpec,
    state: AccountState,
    *,
    metadata: str | None,
    provisioned_before: bool,
) -> AccountPlan:
    """The changes that make the account match ``target`` (``None``: Keyhall wants nothing there)."""
    creates: list[ResourceChange] = []
    deletes: list[ResourceChange] = []
    blocked: list[Blocked] = []
    in_sync: list[RoleSpec] = []
    warnings: list[str] = []
    wanted = {r.name: r for r in target.roles} if target else {}
    missing = set(state.missing_policies)
    for spec in wanted.values():
        actual = state.roles.get(spec.name)
        if actual is not None and not actual.owned:
            blocked.append(
                Blocked(
                    spec.name,
                    spec.permission_set_id,
                    spec.permission_set_name,
                    f"a role named {spec.name} exists on {actual.path} without the tag "
                    f"{TAG_INSTANCE}={spec.tags[TAG_INSTANCE]}; Keyhall leaves it alone",
                )
            )
            continue
        absent = sorted(
            a for a in (*spec.managed_policy_arns, spec.permissions_boundary_arn) if a and a in missing
        )
        if absent:
            blocked.append(
                Blocked(
                    spec.name,
                    spec.permission_set_id,
                    spec.permission_set_name,
                    "customer managed polic"
                    + ("y " if len(absent) == 1 else "ies ")
                    + ", ".join(absent)
                    + " must exist in the account first",
                )
            )
            continue
        fields = role_fields(spec, actual)
        if actual is None:
            creates.append(
                ResourceChange(
                    "create",
                    "role",
                    spec.name,
                    spec.arn,
                    spec.permission_set_id,
                    spec.permission_set_name,
                    tuple(fields),
                )
            )
        elif fields:
            creates.append(
                ResourceChange(
                    "update",
                    "role",
                    spec.name,
                    spec.arn,
                    spec.permission_set_id,
                    spec.permission_set_name,
                    tuple(fields),
                )
            )
        else:
            in_sync.append(spec)
    for name, role in sorted(state.roles.items()):
        if role.owned and name not in wanted:
            deletes.append(
                ResourceChange(
                    "delete",
                    "role",
                    name,
                    role.arn,
                    role.tags.get("keyhall:permission-set"),
                    None,
                    tuple(_deletion_fields(role)),
                )
            )
    changes: list[ResourceChange] = []
    if target is not None:
        provider_change = _provider_change(provider, state.provider, metadata)
        if provider_change is not None:
            changes.append(provider_change)
    changes += creates + deletes
    if target is None and state.provider is not None:
        others = sorted(n for n, r in state.roles.items() if not r.owned)
        if others:
            warnings.append(
                f"the identity provider {provider.name} stays: roles on {naming.ROLE_PATH} that Keyhall "
                f"does not own remain ({', '.join(others)})"
            )
        elif provisioned_before:
            changes.append(ResourceChange("delete", "provider", provider.name, provider.arn))
    return AccountPlan(
        account_id=account.id,
        account_name=account.name,
        changes=tuple(changes),
        blocked=tuple(blocked),
        warnings=tuple(warnings),
        in_sync=tuple(in_sync),
        target=target,
        actual=state,
    )


# ---- the service --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scope:
    settings: FederationSettings
    instance_id: str
    accounts: list[Account]
    targets: dict[str, AccountTarget]
    provisioned_before: set[str]
    live: set[str]
    metadata: str | None


class Provisioner:
    """Plans and applies provisioning with the operator's AWS credentials (``clients``)."""

    def __init__(
        self,
        container: Container,
        *,
        clients: ClientFactory,
        metadata: MetadataSource,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._db = container.db
        self._clock = container.clock
        self._audit = container.audit
        self._access_service = AccessService(container.clock, container.audit)
        self._clients = clients
        self._metadata = metadata
        #: waits between retries while IAM catches up with a provider it has just created
        self.sleep = sleep

    # ---- plan ----

    def plan(
        self,
        *,
        accounts: Sequence[str] | None = None,
        on_account: Callable[[AccountPlan], None] | None = None,
    ) -> ProvisioningPlan:
        """What apply would change, account by account; nothing is changed, nothing is recorded."""
        scope = self._scope(accounts)
        access = self._account_access(scope.settings)
        caller = self._caller(access)
        plans = []
        for account in scope.accounts:
            account_plan = self._plan_account(access, scope, account)
            if on_account is not None:
                on_account(account_plan)
            plans.append(account_plan)
        return ProvisioningPlan(tuple(plans), caller)

    def _scope(self, only: Sequence[str] | None) -> _Scope:
        with self._db.read() as conn:
            instance = require_instance(conn)
            settings = load_federation_settings(conn)
            try:
                targets = desired_targets(conn, settings, instance.id)
            except ValidationError as exc:
                raise ProvisioningError(exc.message) from exc
            rows = conn.execute(select(provisioning_state.c.account_id, provisioning_state.c.status)).all()
            provisioned_before = {r.account_id for r in rows}
            live = {r.account_id for r in rows if r.status != REMOVED}
            if only:
                ids = {self._access_service.resolve_account(conn, a).id for a in only}
            else:
                ids = set(targets) | live
            accounts = [a for a in (access_store.get_account(conn, i) for i in sorted(ids)) if a is not None]
            metadata = None
            if settings.method == "saml" and any(a.id in targets for a in accounts):
                try:
                    metadata = self._metadata.saml_metadata(conn)
                except KeyhallError as exc:
                    raise ProvisioningError(f"No SAML metadata to give AWS: {exc.message}") from exc
        return _Scope(settings, instance.id, accounts, targets, provisioned_before, live, metadata)

    def _account_access(self, settings: FederationSettings) -> AccountAccess:
        return AccountAccess(
            self._clients,
            partition=settings.partition,
            provisioning_role_name=settings.provisioning_role_name,
        )

    @staticmethod
    def _caller(access: AccountAccess) -> str:
        try:
            return access.caller["Arn"]
        except (ClientError, BotoCoreError) as exc:
            raise ProvisioningError(
                f"Cannot use your AWS credentials ({error_text(exc)[1]}); provisioning runs with your own "
                "credentials (environment, --profile or SSO)"
            ) from exc

    def _plan_account(self, access: AccountAccess, scope: _Scope, account: Account) -> AccountPlan:
        if account.status != "ACTIVE":
            return AccountPlan(account.id, account.name, skipped=f"the account is {account.status.lower()}")
        if account.kind != "aws" and account.id not in scope.live:
            return AccountPlan(
                account.id, account.name, skipped="a local account: Keyhall's own STS serves it"
            )
        target = scope.targets.get(account.id)
        provider = provider_spec(scope.settings, account.id)
        check = set()
        if target is not None:
            for role in target.roles:
                check |= {a for a in role.managed_policy_arns if ":iam::aws:policy/" not in a}
                if role.permissions_boundary_arn and ":iam::aws:policy/" not in role.permissions_boundary_arn:
                    check.add(role.permissions_boundary_arn)
        try:
            iam = access.iam(account.id)
            state = read_account(
                iam, instance_id=scope.instance_id, provider=provider, policies_to_check=check
            )
        except (ClientError, BotoCoreError) as exc:
            return AccountPlan(
                account.id, account.name, error=_reach_error(access, account.id, exc), target=target
            )
        return diff_account(
            account,
            target,
            provider,
            state,
            metadata=scope.metadata,
            provisioned_before=account.id in scope.provisioned_before,
        )

    # ---- apply ----

    def apply(
        self,
        actor: Actor,
        *,
        accounts: Sequence[str] | None = None,
        on_account: Callable[[AccountPlan], None] | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> ApplyResult:
        """Plan and apply account by account: each account is read right before it is changed."""
        scope = self._scope(accounts)
        access = self._account_access(scope.settings)
        caller = self._caller(access)
        plans: list[AccountPlan] = []
        outcomes: list[Outcome] = []

        def report(outcome: Outcome) -> None:
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)

        for account in scope.accounts:
            account_plan = self._plan_account(access, scope, account)
            plans.append(account_plan)
            if on_account is not None:
                on_account(account_plan)
            if account_plan.skipped:
                continue
            run = _AccountRun(self, actor, caller, scope, account_plan, report)
            if account_plan.error:
                run.record_unreachable(account_plan.error)
                continue
            run.execute(access.iam(account.id))
        return ApplyResult(ProvisioningPlan(tuple(plans), caller), tuple(outcomes))

    # ---- recording ----

    def record(
        self,
        actor: Actor,
        caller: str,
        *,
        account_id: str,
        role_name: str,
        status: str,
        permission_set_id: str | None,
        role_arn: str | None,
        message: str | None = None,
        desired_hash: str | None = None,
        change: ResourceChange | None = None,
        error_code: str | None = None,
    ) -> None:
        """Write one role's provisioning state (and, for a change made or tried, its audit record)."""
        now = self._clock.timestamp()
        with self._db.write() as conn:
            key = (provisioning_state.c.account_id == account_id) & (
                provisioning_state.c.role_name == role_name
            )
            existing = conn.execute(select(provisioning_state).where(key)).first()
            values: dict[str, Any] = {
                "permission_set_id": permission_set_id
                or (existing.permission_set_id if existing is not None else None),
                "role_arn": role_arn or (existing.role_arn if existing is not None else None),
                "status": status,
                "message": message,
                "last_attempt_at": now,
            }
            if desired_hash is not None or status == REMOVED:
                values["desired_hash"] = desired_hash
            if status == PROVISIONED:
                values["provisioned_at"] = now
            if existing is None:
                conn.execute(
                    insert(provisioning_state).values(account_id=account_id, role_name=role_name, **values)
                )
            else:
                conn.execute(update(provisioning_state).where(key).values(**values))
            if change is not None:
                self._audit.record(
                    conn,
                    actor,
                    AuditEvent(
                        AUDIT_SOURCE,
                        "ProvisionPermissionSet",
                        resource_type="PermissionSet",
                        resource_id=values["permission_set_id"],
                        request_parameters={
                            "TargetType": "AWS_ACCOUNT",
                            "TargetId": account_id,
                            "RoleName": role_name,
                            "Action": change.action,
                            "Changes": sorted({f.field for f in change.fields}),
                        },
                        response_elements={"Status": status, "RoleArn": role_arn},
                        additional_data={"AwsPrincipal": caller, **({"Message": message} if message else {})},
                        error_code=error_code,
                    ),
                )

    def record_provider(
        self, actor: Actor, caller: str, account_id: str, change: ResourceChange, error_code: str | None
    ) -> None:
        kind = "SAMLProvider" if ":saml-provider/" in change.arn else "OpenIDConnectProvider"
        with self._db.write() as conn:
            self._audit.record(
                conn,
                actor,
                AuditEvent(
                    IAM_SOURCE,
                    f"{change.action.capitalize()}{kind}",
                    resource_type=kind,
                    resource_id=change.arn,
                    request_parameters={
                        "TargetId": account_id,
                        "Changes": [f.to_dict() for f in change.fields],
                    },
                    additional_data={"AwsPrincipal": caller},
                    error_code=error_code,
                ),
            )

    def state_rows(self, account_id: str) -> dict[str, Any]:
        with self._db.read() as conn:
            rows = conn.execute(
                select(provisioning_state).where(provisioning_state.c.account_id == account_id)
            )
            return {r.role_name: r for r in rows}


def _reach_error(access: AccountAccess, account_id: str, exc: Exception) -> str:
    code, message = error_text(exc)
    if code in ("AccessDenied", "AccessDeniedException") and account_id != access.caller.get("Account"):
        return f"{message} (is {access.provisioning_role_arn(account_id)} assumable by you?)"
    return message


class _AccountRun:
    """Applies one account's plan in a safe order and records every outcome."""

    def __init__(
        self,
        provisioner: Provisioner,
        actor: Actor,
        caller: str,
        scope: _Scope,
        plan: AccountPlan,
        report: Callable[[Outcome], None],
    ) -> None:
        self._p = provisioner
        self._actor = actor
        self._caller = caller
        self._scope = scope
        self._plan = plan
        self._report = report
        self._account_id = plan.account_id

    def _record(self, **kwargs: Any) -> None:
        self._p.record(self._actor, self._caller, account_id=self._account_id, **kwargs)

    def record_unreachable(self, message: str) -> None:
        """Every role the account should have, or has in the state, failed with the account's error."""
        names: dict[str, tuple[str | None, str | None]] = {}
        if self._plan.target is not None:
            names = {r.name: (r.permission_set_id, r.arn) for r in self._plan.target.roles}
        for name, row in self._p.state_rows(self._account_id).items():
            if row.status != REMOVED:
                names.setdefault(name, (row.permission_set_id, row.role_arn))
        for name, (ps_id, arn) in sorted(names.items()):
            self._record(
                role_name=name, status=FAILED, permission_set_id=ps_id, role_arn=arn, message=message
            )
            self._report(Outcome(self._account_id, "role", name, None, FAILED, message))

    def execute(self, iam: Any) -> None:
        plan = self._plan
        specs = {r.name: r for r in plan.target.roles} if plan.target else {}
        provider_failed: str | None = None
        for change in plan.changes:
            if change.kind == "provider" and change.action != "delete":
                provider_failed = self._provider(iam, change)
        for change in plan.changes:
            if change.kind == "role" and change.action != "delete":
                spec = specs[change.name]
                if provider_failed is not None:
                    message = f"identity provider: {provider_failed}"
                    self._record(
                        role_name=spec.name,
                        status=FAILED,
                        permission_set_id=spec.permission_set_id,
                        role_arn=spec.arn,
                        message=message,
                        desired_hash=spec.desired_hash,
                    )
                    self._report(
                        Outcome(
                            self._account_id,
                            "role",
                            spec.name,
                            change.action,
                            FAILED,
                            message,
                            spec.permission_set_name,
                        )
                    )
                    continue
                self._role(iam, spec, change)
        for blocked in plan.blocked:
            spec = specs[blocked.name]
            self._record(
                role_name=spec.name,
                status=FAILED,
                permission_set_id=spec.permission_set_id,
                role_arn=spec.arn,
                message=blocked.reason,
            )
            self._report(
                Outcome(
                    self._account_id,
                    "role",
                    spec.name,
                    None,
                    FAILED,
                    blocked.reason,
                    spec.permission_set_name,
                )
            )
        rows = self._p.state_rows(self._account_id)
        for spec in plan.in_sync:
            row = rows.get(spec.name)
            if row is None or row.status != PROVISIONED or row.desired_hash != spec.desired_hash:
                # done by an earlier, interrupted apply (or by hand): the state catches up, AWS is untouched
                self._record(
                    role_name=spec.name,
                    status=PROVISIONED,
                    permission_set_id=spec.permission_set_id,
                    role_arn=spec.arn,
                    desired_hash=spec.desired_hash,
                )
        deleted_all = True
        for change in plan.changes:
            if change.kind == "role" and change.action == "delete":
                deleted_all = self._delete_role(iam, change) and deleted_all
        present = set(plan.actual.roles) if plan.actual else set()
        for name, row in rows.items():
            if row.status != REMOVED and name not in specs and name not in present:
                self._record(
                    role_name=name,
                    status=REMOVED,
                    permission_set_id=None,
                    role_arn=None,
                    message="the role no longer exists",
                )
        for change in plan.changes:
            if change.kind == "provider" and change.action == "delete" and deleted_all:
                self._provider(iam, change)

    # ---- the identity provider ----

    def _provider(self, iam: Any, change: ResourceChange) -> str | None:
        """Create, update or delete the provider; the error message if that failed."""
        spec = provider_spec(self._scope.settings, self._account_id)
        tags = [{"Key": TAG_INSTANCE, "Value": self._scope.instance_id}]
        try:
            if change.action == "delete":
                _ignore_missing(
                    iam.delete_saml_provider
                    if spec.method == "saml"
                    else iam.delete_open_id_connect_provider,
                    **(
                        {"SAMLProviderArn": spec.arn}
                        if spec.method == "saml"
                        else {"OpenIDConnectProviderArn": spec.arn}
                    ),
                )
            elif spec.method == "saml":
                metadata = self._scope.metadata
                assert metadata is not None
                try:
                    if change.action == "create":
                        iam.create_saml_provider(Name=spec.name, SAMLMetadataDocument=metadata, Tags=tags)
                    else:
                        iam.update_saml_provider(SAMLProviderArn=spec.arn, SAMLMetadataDocument=metadata)
                except ClientError as exc:
                    if _code(exc) != "EntityAlreadyExists":
                        raise
                    iam.update_saml_provider(SAMLProviderArn=spec.arn, SAMLMetadataDocument=metadata)
            else:
                self._oidc_provider(iam, spec, change, tags)
        except (ClientError, BotoCoreError) as exc:
            code, message = error_text(exc)
            self._p.record_provider(self._actor, self._caller, self._account_id, change, code)
            self._report(Outcome(self._account_id, "provider", spec.name, change.action, FAILED, message))
            return message
        self._p.record_provider(self._actor, self._caller, self._account_id, change, None)
        status = REMOVED if change.action == "delete" else PROVISIONED
        self._report(Outcome(self._account_id, "provider", spec.name, change.action, status))
        return None

    @staticmethod
    def _oidc_provider(
        iam: Any, spec: ProviderSpec, change: ResourceChange, tags: list[dict[str, str]]
    ) -> None:
        if change.action == "create":
            try:
                iam.create_open_id_connect_provider(
                    Url=spec.name, ClientIDList=list(spec.client_ids), Tags=tags
                )
                return
            except ClientError as exc:
                if _code(exc) != "EntityAlreadyExists":
                    raise
        found = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=spec.arn)
        current = set(found.get("ClientIDList", []))
        for client_id in sorted(set(spec.client_ids) - current):
            iam.add_client_id_to_open_id_connect_provider(
                OpenIDConnectProviderArn=spec.arn, ClientID=client_id
            )
        for client_id in sorted(current - set(spec.client_ids)):
            iam.remove_client_id_from_open_id_connect_provider(
                OpenIDConnectProviderArn=spec.arn, ClientID=client_id
            )

    # ---- roles ----

    def _role(self, iam: Any, spec: RoleSpec, change: ResourceChange) -> None:
        try:
            fields = list(change.fields)
            if change.action == "create":
                fields = self._create_role(iam, spec)
            _apply_fields(iam, spec, fields, sleep=self._p.sleep)
        except (ClientError, BotoCoreError, _NotOwnedError) as exc:
            code, message = error_text(exc)
            self._record(
                role_name=spec.name,
                status=FAILED,
                permission_set_id=spec.permission_set_id,
                role_arn=spec.arn,
                message=message,
                desired_hash=spec.desired_hash,
                change=change,
                error_code=code,
            )
            self._report(
                Outcome(
                    self._account_id,
                    "role",
                    spec.name,
                    change.action,
                    FAILED,
                    message,
                    spec.permission_set_name,
                )
            )
            return
        self._record(
            role_name=spec.name,
            status=PROVISIONED,
            permission_set_id=spec.permission_set_id,
            role_arn=spec.arn,
            desired_hash=spec.desired_hash,
            change=change,
        )
        self._report(
            Outcome(
                self._account_id,
                "role",
                spec.name,
                change.action,
                PROVISIONED,
                None,
                spec.permission_set_name,
            )
        )

    def _create_role(self, iam: Any, spec: RoleSpec) -> list[FieldChange]:
        """Create the role with its trust, duration, boundary and tags in one call (so it is Keyhall's from
        the first moment); the policies follow. If it exists (an interrupted apply), converge it instead."""
        arguments: dict[str, Any] = {
            "Path": spec.path,
            "RoleName": spec.name,
            "AssumeRolePolicyDocument": json.dumps(spec.trust_policy),
            "Description": spec.description,
            "MaxSessionDuration": spec.max_session_duration,
            "Tags": [{"Key": k, "Value": v} for k, v in sorted(spec.tags.items())],
        }
        if spec.permissions_boundary_arn:
            arguments["PermissionsBoundary"] = spec.permissions_boundary_arn
        try:
            _retry_new_principal(iam.create_role, self._p.sleep, **arguments)
        except ClientError as exc:
            if _code(exc) != "EntityAlreadyExists":
                raise
            actual = read_role(iam, spec.name, self._scope.instance_id)
            if actual is None or not actual.owned:
                raise _NotOwnedError(f"a role named {spec.name} exists that Keyhall does not own") from exc
            return role_fields(spec, actual)
        created = ActualRole(
            name=spec.name,
            arn=spec.arn,
            path=spec.path,
            tags=dict(spec.tags),
            owned=True,
            trust_policy=spec.trust_policy,
            description=spec.description,
            max_session_duration=spec.max_session_duration,
            permissions_boundary_arn=spec.permissions_boundary_arn,
        )
        return role_fields(spec, created)

    def _delete_role(self, iam: Any, change: ResourceChange) -> bool:
        name = change.name
        try:
            current = read_role(iam, name, self._scope.instance_id)
            if current is not None:
                if not current.owned:
                    raise _NotOwnedError(f"{name} is no longer tagged as Keyhall's; left alone")
                for arn in current.managed_policy_arns:
                    _ignore_missing(iam.detach_role_policy, RoleName=name, PolicyArn=arn)
                for policy_name in current.inline_policies:
                    _ignore_missing(iam.delete_role_policy, RoleName=name, PolicyName=policy_name)
                if current.permissions_boundary_arn:
                    _ignore_missing(iam.delete_role_permissions_boundary, RoleName=name)
                profiles = iam.list_instance_profiles_for_role(RoleName=name).get("InstanceProfiles", [])
                for profile in profiles:
                    _ignore_missing(
                        iam.remove_role_from_instance_profile,
                        InstanceProfileName=profile["InstanceProfileName"],
                        RoleName=name,
                    )
                _ignore_missing(iam.delete_role, RoleName=name)
        except (ClientError, BotoCoreError, _NotOwnedError) as exc:
            code, message = error_text(exc)
            self._record(
                role_name=name,
                status=FAILED,
                permission_set_id=change.permission_set_id,
                role_arn=change.arn,
                message=message,
                change=change,
                error_code=code,
            )
            self._report(Outcome(self._account_id, "role", name, "delete", FAILED, message))
            return False
        self._record(
            role_name=name,
            status=REMOVED,
            permission_set_id=change.permission_set_id,
            role_arn=change.arn,
            message="the last assignment is gone",
            change=change,
        )
        self._report(Outcome(self._account_id, "role", name, "delete", REMOVED))
        return True


class _NotOwnedError(Exception):
    """A role turned out not to be Keyhall's while apply was about to change it."""


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _ignore_missing(call: Callable[..., Any], **kwargs: Any) -> None:
    """Run an IAM call whose goal is already reached when the thing is gone (NoSuchEntity)."""
    try:
        call(**kwargs)
    except ClientError as exc:
        if not is_not_found(exc):
            raise


def _retry_new_principal(call: Callable[..., Any], sleep: Callable[[float], None], **kwargs: Any) -> Any:
    """IAM is eventually consistent: a provider created a moment ago can be refused as a trust policy's
    principal ("Invalid principal in policy") for some seconds. Such a refusal is retried for about half a
    minute; every other error is raised at once."""
    for delay in (*_PRINCIPAL_RETRY_DELAYS, None):
        try:
            return call(**kwargs)
        except ClientError as exc:
            if (
                delay is None
                or _code(exc) != "MalformedPolicyDocument"
                or "principal" not in str(exc).lower()
            ):
                raise
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _apply_fields(
    iam: Any, spec: RoleSpec, fields: Sequence[FieldChange], *, sleep: Callable[[float], None]
) -> None:
    """Make field changes in the order that never widens access on the way: trust and a new boundary first,
    removals before additions, and a boundary is only lifted last."""
    by_name: dict[str, list[FieldChange]] = {}
    for f in fields:
        by_name.setdefault(
            f.field.split(":", 1)[0] if f.field.startswith("inline_policy:") else f.field, []
        ).append(f)
    name = spec.name
    if "trust_policy" in by_name:
        _retry_new_principal(
            iam.update_assume_role_policy, sleep, RoleName=name, PolicyDocument=json.dumps(spec.trust_policy)
        )
    if spec.permissions_boundary_arn and "permissions_boundary" in by_name:
        iam.put_role_permissions_boundary(RoleName=name, PermissionsBoundary=spec.permissions_boundary_arn)
    for f in by_name.get("managed_policy", []) + by_name.get("customer_managed_policy", []):
        if f.new is None:
            _ignore_missing(iam.detach_role_policy, RoleName=name, PolicyArn=f.old)
    for f in fields:
        if f.field.startswith("inline_policy:"):
            _ignore_missing(iam.delete_role_policy, RoleName=name, PolicyName=f.field.split(":", 1)[1])
    if "inline_policy" in by_name:
        if spec.inline_policy is None:
            _ignore_missing(iam.delete_role_policy, RoleName=name, PolicyName=INLINE_POLICY_NAME)
        else:
            iam.put_role_policy(
                RoleName=name, PolicyName=INLINE_POLICY_NAME, PolicyDocument=json.dumps(spec.inline_policy)
            )
    for f in by_name.get("managed_policy", []) + by_name.get("customer_managed_policy", []):
        if f.old is None:
            iam.attach_role_policy(RoleName=name, PolicyArn=f.new)
    if "max_session_duration" in by_name or "description" in by_name:
        iam.update_role(
            RoleName=name, MaxSessionDuration=spec.max_session_duration, Description=spec.description
        )
    tags = [f for f in fields if f.field.startswith("tag:")]
    if tags:
        iam.tag_role(RoleName=name, Tags=[{"Key": f.field[4:], "Value": f.new} for f in tags])
    if spec.permissions_boundary_arn is None and "permissions_boundary" in by_name:
        _ignore_missing(iam.delete_role_permissions_boundary, RoleName=name)


# ---- status -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusRow:
    """One (account, role): its last recorded outcome, and whether apply has work left for it."""

    account_id: str
    account_name: str | None
    permission_set_id: str | None
    permission_set_name: str | None
    role_name: str
    role_arn: str | None
    #: PROVISIONED | FAILED | REMOVED, or None if never provisioned
    status: str | None
    message: str | None
    last_attempt_at: float | None
    provisioned_at: float | None
    #: "create" | "update" | "retry" | "delete" when the database wants something apply has not done yet
    pending: str | None


def provisioning_status(conn: Connection, *, include_removed: bool = False) -> list[StatusRow]:
    """The provisioning state next to what the database wants now, without asking AWS."""
    instance = require_instance(conn)
    settings = load_federation_settings(conn)
    try:
        targets = desired_targets(conn, settings, instance.id)
    except ValidationError:
        targets = {}
    wanted = {(r.account_id, r.name): r for t in targets.values() for r in t.roles}
    query = (
        select(
            provisioning_state,
            accounts_table.c.name.label("account_name"),
            permission_sets_table.c.name.label("ps_name"),
        )
        .join(accounts_table, accounts_table.c.id == provisioning_state.c.account_id)
        .outerjoin(
            permission_sets_table, permission_sets_table.c.id == provisioning_state.c.permission_set_id
        )
    )
    rows: list[StatusRow] = []
    seen: set[tuple[str, str]] = set()
    for row in conn.execute(query):
        key = (row.account_id, row.role_name)
        seen.add(key)
        spec = wanted.get(key)
        if spec is not None:
            if row.status == PROVISIONED:
                pending = None if row.desired_hash == spec.desired_hash else "update"
            else:
                pending = "retry" if row.status == FAILED else "create"
        else:
            pending = None if row.status == REMOVED else "delete"
        if row.status == REMOVED and pending is None and not include_removed:
            continue
        rows.append(
            StatusRow(
                row.account_id,
                row.account_name,
                row.permission_set_id,
                row.ps_name,
                row.role_name,
                row.role_arn,
                row.status,
                row.message,
                row.last_attempt_at,
                row.provisioned_at,
                pending,
            )
        )
    for (account_id, name), spec in wanted.items():
        if (account_id, name) not in seen:
            rows.append(
                StatusRow(
                    account_id,
                    targets[account_id].account.name,
                    spec.permission_set_id,
                    spec.permission_set_name,
                    name,
                    spec.arn,
                    None,
                    None,
                    None,
                    None,
                    "create",
                )
            )
    rows.sort(key=lambda r: ((r.account_name or r.account_id).casefold(), r.role_name))
    return rows
