"""What an AWS account holds now: Keyhall's identity provider and the roles on Keyhall's path, read from IAM.

Every role on ``/keyhall/`` is listed, but only those tagged with this instance are read in full: the others
are someone else's and are never changed (their names are still needed to refuse a clash).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from keyhall.federation import naming
from keyhall.federation.iam_desired import TAG_INSTANCE, ProviderSpec

NOT_FOUND = "NoSuchEntity"


@dataclass(frozen=True)
class ActualRole:
    name: str
    arn: str
    path: str
    tags: dict[str, str]
    #: tagged with this instance: Keyhall made it and may change or delete it
    owned: bool
    trust_policy: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    max_session_duration: int = 3600
    managed_policy_arns: tuple[str, ...] = ()
    inline_policies: dict[str, Any] = field(default_factory=dict)
    permissions_boundary_arn: str | None = None


@dataclass(frozen=True)
class ActualProvider:
    arn: str
    #: the SAML metadata document (SAML) or ``None`` (OIDC)
    metadata: str | None = None
    client_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class AccountState:
    roles: dict[str, ActualRole]
    provider: ActualProvider | None
    #: customer managed policies the desired roles refer to that do not exist in the account
    missing_policies: tuple[str, ...] = ()


def is_not_found(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == NOT_FOUND)


def read_account(
    iam: Any, *, instance_id: str, provider: ProviderSpec | None, policies_to_check: Iterable[str] = ()
) -> AccountState:
    """The account as IAM reports it; ``provider`` is the one to look for (``None``: none configured)."""
    roles: dict[str, ActualRole] = {}
    for page in iam.get_paginator("list_roles").paginate(PathPrefix=naming.ROLE_PATH):
        for listed in page.get("Roles", []):
            if listed["Path"] != naming.ROLE_PATH:
                continue  # a deeper path is not Keyhall's
            role = _read_role(iam, listed["RoleName"], instance_id)
            if role is not None:
                roles[role.name] = role
    missing = tuple(sorted(arn for arn in set(policies_to_check) if not _policy_exists(iam, arn)))
    return AccountState(roles, _read_provider(iam, provider) if provider else None, missing)


def read_role(iam: Any, name: str, instance_id: str) -> ActualRole | None:
    """One role by name (any path), or ``None`` when it does not exist."""
    return _read_role(iam, name, instance_id)


def _read_role(iam: Any, name: str, instance_id: str) -> ActualRole | None:
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except ClientError as exc:
        if is_not_found(exc):
            return None  # deleted since it was listed
        raise
    tags = {t["Key"]: t["Value"] for t in role.get("Tags", [])}
    owned = tags.get(TAG_INSTANCE) == instance_id and role["Path"] == naming.ROLE_PATH
    if not owned:
        return ActualRole(name=name, arn=role["Arn"], path=role["Path"], tags=tags, owned=False)
    attached: list[str] = []
    for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name):
        attached += [p["PolicyArn"] for p in page.get("AttachedPolicies", [])]
    inline: dict[str, Any] = {}
    for page in iam.get_paginator("list_role_policies").paginate(RoleName=name):
        for policy_name in page.get("PolicyNames", []):
            try:
                document = iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
            except ClientError as exc:
                if is_not_found(exc):
                    continue
                raise
            inline[policy_name] = document
    boundary = role.get("PermissionsBoundary") or {}
    return ActualRole(
        name=name,
        arn=role["Arn"],
        path=role["Path"],
        tags=tags,
        owned=True,
        trust_policy=_document(role.get("AssumeRolePolicyDocument")),
        description=role.get("Description") or "",
        max_session_duration=int(role.get("MaxSessionDuration") or 3600),
        managed_policy_arns=tuple(sorted(attached)),
        inline_policies={k: _document(v) for k, v in inline.items()},
        permissions_boundary_arn=boundary.get("PermissionsBoundaryArn"),
    )


def _document(value: Any) -> Any:
    """boto3 decodes IAM's URL-encoded policy documents; a plain string is decoded here just in case."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return json.loads(unquote(value))
    return value or {}


def _read_provider(iam: Any, provider: ProviderSpec) -> ActualProvider | None:
    try:
        if provider.method == "saml":
            found = iam.get_saml_provider(SAMLProviderArn=provider.arn)
            return ActualProvider(provider.arn, metadata=found.get("SAMLMetadataDocument") or "")
        found = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=provider.arn)
        return ActualProvider(provider.arn, client_ids=tuple(sorted(found.get("ClientIDList", []))))
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise


def _policy_exists(iam: Any, arn: str) -> bool:
    try:
        iam.get_policy(PolicyArn=arn)
    except ClientError as exc:
        if is_not_found(exc):
            return False
        raise
    return True


_BETWEEN_TAGS = re.compile(r">\s+<")


def same_metadata(a: str, b: str) -> bool:
    """SAML metadata documents compared without the whitespace between elements."""
    return _BETWEEN_TAGS.sub("><", a.strip()) == _BETWEEN_TAGS.sub("><", b.strip())
