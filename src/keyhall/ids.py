"""Identifiers in AWS formats, so users map 1:1 onto IAM Identity Center concepts."""

from __future__ import annotations

import os
import re
import secrets
import time
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


def new_time_ordered_uuid() -> str:
    """A UUIDv7 (RFC 9562 §5.7): 48 bits of Unix milliseconds, then 74 random bits.

    For rows written in time order and looked up by id (audit events): new ids land at the end of the
    index instead of on a random page, which halved the pages each audit commit wrote to SQLite's WAL."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 9562 variant
    return str(uuid.UUID(int=value))


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
