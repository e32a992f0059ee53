"""Audit records in CloudTrail's shape (eventSource, eventName, userIdentity, sourceIPAddress, …).

A record never holds a secret: callers pass only ids and non-secret parameters, and ``redact`` strips any
key that looks secret as a second line of defence.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass, field
from typing import Any

SECRET_KEY_PARTS = ("password", "secret", "token", "code", "verifier", "assertion", "key")
#: keys that contain a secret-looking word but hold no secret
NOT_SECRET_KEYS = frozenset({"accessKeyId", "AccessKeyId", "userCode", "keyId", "kid", "tagKey"})


@dataclass(frozen=True)
class Actor:
    """Who is acting: an operator at the server's shell, a signed-in user, or an anonymous client."""

    type: str
    id: str | None = None
    name: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None

    @classmethod
    def local_operator(cls) -> Actor:
        """The person running admin commands on the server host (they hold the database directly)."""
        try:
            login = getpass.getuser()
        except (KeyError, OSError):
            login = "unknown"
        return cls(type="LocalOperator", id=f"{login}@{socket.gethostname()}", name=login, source_ip="local")

    @property
    def label(self) -> str:
        return self.name or self.id or self.type


@dataclass
class AuditEvent:
    event_source: str
    event_name: str
    resource_type: str | None = None
    resource_id: str | None = None
    request_parameters: dict[str, Any] | None = None
    response_elements: dict[str, Any] | None = None
    additional_data: dict[str, Any] | None = None
    error_code: str | None = None
    read_only: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _is_secret_key(key: str) -> bool:
    if key in NOT_SECRET_KEYS:
        return False
    lowered = key.lower()
    return any(part in lowered for part in SECRET_KEY_PARTS)


def redact(value: Any) -> Any:
    """Replace the value of every secret-looking key with ``"HIDDEN"``, recursively."""
    if isinstance(value, dict):
        return {k: ("HIDDEN" if _is_secret_key(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def mask_user_name(user_name: str) -> str:
    """What a failed sign-in records of the name typed.

    AWS logs HIDDEN_DUE_TO_SECURITY_REASONS; we keep a hint an administrator can recognise."""
    if len(user_name) <= 2:
        return "*" * len(user_name)
    return user_name[0] + "*" * (len(user_name) - 2) + user_name[-1]
