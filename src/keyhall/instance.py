"""The instance: one Keyhall deployment's identity center (ids, directory source, instance settings)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, insert, select, update

from keyhall.audit.events import Actor, AuditEvent
from keyhall.audit.writer import AuditWriter
from keyhall.clock import Clock
from keyhall.db.tables import instance as instance_table
from keyhall.errors import ConflictError, NotFoundError, ValidationError
from keyhall.ids import instance_arn, new_identity_store_id, new_instance_id

MfaPolicy = Literal["required", "optional", "off"]
MIN_PORTAL_SESSION_MINUTES = 15
MAX_PORTAL_SESSION_MINUTES = 90 * 24 * 60


@dataclass(frozen=True)
class Instance:
    id: str
    identity_store_id: str
    name: str
    directory_source: str
    portal_session_minutes: int
    mfa_policy: MfaPolicy
    device_grant_enabled: bool
    created_at: float

    @property
    def arn(self) -> str:
        return instance_arn(self.id)


def load_instance(conn: Connection) -> Instance | None:
    row = conn.execute(select(instance_table)).first()
    if row is None:
        return None
    m = row._mapping
    return Instance(
        id=m["id"],
        identity_store_id=m["identity_store_id"],
        name=m["name"],
        directory_source=m["directory_source"],
        portal_session_minutes=m["portal_session_minutes"],
        mfa_policy=m["mfa_policy"],
        device_grant_enabled=bool(m["device_grant_enabled"]),
        created_at=m["created_at"],
    )


def require_instance(conn: Connection) -> Instance:
    found = load_instance(conn)
    if found is None:
        raise NotFoundError("INSTANCE", "-", "Keyhall is not initialised here; run `keyhall init` first")
    return found


def create_instance(conn: Connection, actor: Actor, audit: AuditWriter, clock: Clock, name: str) -> Instance:
    if load_instance(conn) is not None:
        raise ConflictError("This database already holds a Keyhall instance")
    values = {
        "id": new_instance_id(),
        "identity_store_id": new_identity_store_id(),
        "name": name,
        "directory_source": "builtin",
        "portal_session_minutes": 480,
        "mfa_policy": "required",
        "device_grant_enabled": True,
        "created_at": clock.timestamp(),
    }
    conn.execute(insert(instance_table).values(**values))
    audit.record(
        conn,
        actor,
        AuditEvent(
            "sso.amazonaws.com", "CreateInstance", resource_type="Instance", resource_id=str(values["id"])
        ),
    )
    return require_instance(conn)


def update_instance_settings(
    conn: Connection,
    actor: Actor,
    audit: AuditWriter,
    *,
    portal_session_minutes: int | None = None,
    mfa_policy: str | None = None,
    device_grant_enabled: bool | None = None,
    name: str | None = None,
) -> Instance:
    current = require_instance(conn)
    values: dict[str, Any] = {}
    if portal_session_minutes is not None:
        if not MIN_PORTAL_SESSION_MINUTES <= portal_session_minutes <= MAX_PORTAL_SESSION_MINUTES:
            raise ValidationError("The portal session must last from 15 minutes to 90 days (129600 minutes)")
        values["portal_session_minutes"] = portal_session_minutes
    if mfa_policy is not None:
        if mfa_policy not in ("required", "optional", "off"):
            raise ValidationError(f'MFA policy must be "required", "optional" or "off", got {mfa_policy!r}')
        values["mfa_policy"] = mfa_policy
    if device_grant_enabled is not None:
        values["device_grant_enabled"] = device_grant_enabled
    if name is not None:
        values["name"] = name
    changed = {k: v for k, v in values.items() if getattr(current, k) != v}
    if not changed:
        return current
    conn.execute(update(instance_table).where(instance_table.c.id == current.id).values(**changed))
    audit.record(
        conn,
        actor,
        AuditEvent(
            "sso.amazonaws.com",
            "UpdateInstanceSettings",
            resource_type="Instance",
            resource_id=current.id,
            request_parameters=changed,
        ),
    )
    return require_instance(conn)
