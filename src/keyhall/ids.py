"""Identifiers in AWS formats, so users map 1:1 onto IAM Identity Center concepts."""

from __future__ import annotations

import re
import secrets
import uuid

ACCOUNT_ID_RE = re.compile(r"^\d{12}$")
INSTANCE_ID_RE = re.compile(r"^ssoins-[0-9a-f]{16}$")
PERMISSION_SET_ID_RE = re.compile(r"^ps-[0-9a-f]{16}$")
UUID_RE = re.compile(r"^([0-9a-f]{10}-)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def new_instance_id() -> str:
    return f"ssoins-{secrets.token_hex(8)}"


def new_identity_store_id() -> str:
    return f"d-{secrets.token_hex(5)}"


def new_permission_set_id() -> str:
    return f"ps-{secrets.token_hex(8)}"


def new_uuid() -> str:
    return str(uuid.uuid4())


def new_account_id() -> str:
    """A random 12-digit account id for `local` accounts that were not given one."""
    return f"{secrets.randbelow(9 * 10**11) + 10**11:012d}"


def instance_arn(instance_id: str, partition: str = "aws") -> str:
    return f"arn:{partition}:sso:::instance/{instance_id}"


def permission_set_arn(instance_id: str, permission_set_id: str, partition: str = "aws") -> str:
    return f"arn:{partition}:sso:::permissionSet/{instance_id}/{permission_set_id}"


def is_account_id(value: str) -> bool:
    return bool(ACCOUNT_ID_RE.match(value))


def is_principal_id(value: str) -> bool:
    return bool(UUID_RE.match(value))
