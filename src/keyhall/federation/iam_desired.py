"""What Keyhall wants in each real AWS account, computed from the database alone.

An ``aws`` account with at least one assignment gets Keyhall's identity provider (SAML or OIDC, per
`keyhall aws configure`) and one role per distinct permission set assigned there, in the style of IAM
Identity Center's reserved roles (aws-wire.md 3.3): ``/keyhall/KeyhallReserved_<PermissionSet>_<16 hex>``,
trusting only that provider, carrying the permission set's policies, and tagged so Keyhall only ever
changes roles it made.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import Connection

from keyhall.access import store
from keyhall.access.models import Account, PermissionSet
from keyhall.errors import ValidationError
from keyhall.federation import naming
from keyhall.federation.settings import FederationSettings

#: the one inline policy a permission set's inline policy becomes (IdC calls its own "AwsSSOInlinePolicy")
INLINE_POLICY_NAME = "KeyhallInlinePolicy"
TAG_INSTANCE = "keyhall:instance"
TAG_PERMISSION_SET = "keyhall:permission-set"
#: Every role's MaxSessionDuration: 12 h, IAM's maximum, as IAM Identity Center does (aws-wire.md 3.1). The
#: session duration is enforced where credentials are issued: Keyhall asks STS for exactly the permission
#: set's duration on each call. A role bound equal to that duration would add little (only Keyhall's provider
#: is trusted, and it signs nothing longer) but would make every lengthening of a permission set fail at STS
#: until the next `keyhall aws apply`; with 12 h a change applies at once, without re-provisioning.
ROLE_MAX_SESSION_DURATION = 43200
SAML_ACTIONS = ["sts:AssumeRoleWithSAML", "sts:SetSourceIdentity", "sts:TagSession"]
OIDC_ACTIONS = ["sts:AssumeRoleWithWebIdentity", "sts:SetSourceIdentity", "sts:TagSession"]

Method = Literal["saml", "oidc"]


@dataclass(frozen=True)
class ProviderSpec:
    """The IAM identity provider every Keyhall role in an account trusts."""

    method: Method
    arn: str
    #: the SAML provider's name, or the OIDC issuer URL
    name: str
    #: OIDC audiences (``ClientIDList``); empty for SAML
    client_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoleSpec:
    """One permission set as a role in one account."""

    account_id: str
    permission_set_id: str
    permission_set_name: str
    name: str
    arn: str
    description: str
    trust_policy: dict[str, Any]
    max_session_duration: int
    #: AWS managed policy ARNs (partition swapped in) and customer managed ones, sorted
    managed_policy_arns: tuple[str, ...]
    inline_policy: dict[str, Any] | None
    permissions_boundary_arn: str | None
    tags: dict[str, str] = field(default_factory=dict)
    path: str = naming.ROLE_PATH

    @property
    def desired_hash(self) -> str:
        """A digest of everything apply sets on the role; stored with its provisioning state."""
        body = {
            "name": self.name,
            "path": self.path,
            "description": self.description,
            "trust": canonical_policy(self.trust_policy),
            "max_session_duration": self.max_session_duration,
            "managed": sorted(self.managed_policy_arns),
            "inline": canonical_policy(self.inline_policy) if self.inline_policy is not None else None,
            "boundary": self.permissions_boundary_arn,
            "tags": self.tags,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class AccountTarget:
    """Everything Keyhall wants in one account."""

    account: Account
    provider: ProviderSpec
    roles: tuple[RoleSpec, ...]

    @property
    def account_id(self) -> str:
        return self.account.id


def provider_spec(settings: FederationSettings, account_id: str) -> ProviderSpec:
    """The provider in ``account_id``; an OIDC method without an issuer URL is a configuration error."""
    if settings.method == "oidc":
        if not settings.oidc_issuer_url:
            raise ValidationError(
                "The OIDC method needs the issuer URL AWS fetches keys from: run "
                "`keyhall aws configure --oidc-issuer-url https://…`"
            )
        url = settings.oidc_issuer_url.rstrip("/")
        return ProviderSpec(
            "oidc",
            naming.oidc_provider_arn(settings.partition, account_id, url),
            url,
            (settings.oidc_audience,),
        )
    return ProviderSpec(
        "saml",
        naming.saml_provider_arn(settings.partition, account_id, settings.saml_provider_name),
        settings.saml_provider_name,
    )


def trust_policy(settings: FederationSettings, provider: ProviderSpec) -> dict[str, Any]:
    """Trust for Keyhall's provider only, and only for tokens meant for AWS (the audience condition)."""
    if provider.method == "saml":
        actions = SAML_ACTIONS
        condition = {"SAML:aud": naming.saml_audience(settings.partition)}
    else:
        parts = urlsplit(provider.name)
        actions = OIDC_ACTIONS
        condition = {f"{parts.netloc}{parts.path.rstrip('/')}:aud": settings.oidc_audience}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider.arn},
                "Action": list(actions),
                "Condition": {"StringEquals": condition},
            }
        ],
    }


def in_partition(arn: str, partition: str) -> str:
    """``arn:aws:iam::aws:policy/X`` as it is named in ``partition`` (permission sets store ``aws``)."""
    parts = arn.split(":", 2)
    if len(parts) == 3 and parts[0] == "arn":
        return f"arn:{partition}:{parts[2]}"
    return arn


def customer_policy_arn(partition: str, account_id: str, ref: dict[str, Any]) -> str:
    path = ref.get("Path") or "/"
    return f"arn:{partition}:iam::{account_id}:policy{path}{ref['Name']}"


def role_spec(
    settings: FederationSettings,
    instance_id: str,
    account_id: str,
    permission_set: PermissionSet,
    provider: ProviderSpec,
) -> RoleSpec:
    partition = settings.partition
    name = naming.role_name(permission_set.name, instance_id, account_id, permission_set.id)
    managed = [in_partition(arn, partition) for arn in permission_set.managed_policy_arns]
    managed += [
        customer_policy_arn(partition, account_id, r) for r in permission_set.customer_managed_policies
    ]
    boundary = permission_set.permissions_boundary or {}
    boundary_arn: str | None = None
    if boundary.get("ManagedPolicyArn"):
        boundary_arn = in_partition(str(boundary["ManagedPolicyArn"]), partition)
    elif isinstance(boundary.get("CustomerManagedPolicyReference"), dict):
        boundary_arn = customer_policy_arn(partition, account_id, boundary["CustomerManagedPolicyReference"])
    inline = json.loads(permission_set.inline_policy) if permission_set.inline_policy else None
    return RoleSpec(
        account_id=account_id,
        permission_set_id=permission_set.id,
        permission_set_name=permission_set.name,
        name=name,
        arn=naming.role_arn(partition, account_id, name),
        description=_iam_text(
            f"Keyhall permission set {permission_set.name} ({permission_set.id}); managed by Keyhall"
        ),
        trust_policy=trust_policy(settings, provider),
        max_session_duration=ROLE_MAX_SESSION_DURATION,
        managed_policy_arns=tuple(sorted(set(managed))),
        inline_policy=inline,
        permissions_boundary_arn=boundary_arn,
        tags={TAG_INSTANCE: instance_id, TAG_PERMISSION_SET: permission_set.id},
    )


def _iam_text(text: str) -> str:
    """IAM descriptions allow Latin-1 only; a permission set name may hold other letters."""
    return text.encode("latin-1", "replace").decode("latin-1")


def desired_targets(
    conn: Connection, settings: FederationSettings, instance_id: str
) -> dict[str, AccountTarget]:
    """Every ``aws`` account with at least one assignment, with its provider and roles."""
    pairs: dict[str, set[str]] = defaultdict(set)
    for assignment in store.list_assignments(conn):
        pairs[assignment.account_id].add(assignment.permission_set_id)
    targets: dict[str, AccountTarget] = {}
    permission_sets: dict[str, PermissionSet] = {}
    for account_id in sorted(pairs):
        account = store.get_account(conn, account_id)
        if account is None or account.kind != "aws":
            continue
        provider = provider_spec(settings, account_id)
        roles = []
        for ps_id in sorted(pairs[account_id]):
            if ps_id not in permission_sets:
                found = store.get_permission_set(conn, ps_id)
                assert found is not None  # assignments reference permission sets (RESTRICT)
                permission_sets[ps_id] = found
            roles.append(role_spec(settings, instance_id, account_id, permission_sets[ps_id], provider))
        roles.sort(key=lambda r: r.name)
        targets[account_id] = AccountTarget(account, provider, tuple(roles))
    return targets


# ---- comparing policies ------------------------------------------------------------------------------


def canonical_policy(document: Any) -> Any:
    """A policy in a form where equal meaning compares equal.

    IAM accepts a one-element list and its element alike (``"Action": "s3:*"`` and ``["s3:*"]``), and list
    order carries no meaning, so lists become sorted and one-element lists become the element.
    """
    if isinstance(document, dict):
        return {str(k): canonical_policy(v) for k, v in sorted(document.items())}
    if isinstance(document, list):
        items = sorted((canonical_policy(v) for v in document), key=lambda v: json.dumps(v, sort_keys=True))
        unique = [v for i, v in enumerate(items) if i == 0 or v != items[i - 1]]
        return unique[0] if len(unique) == 1 else unique
    return document


def same_policy(a: Any, b: Any) -> bool:
    return bool(canonical_policy(a) == canonical_policy(b))
