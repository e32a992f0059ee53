"""The statements behind GetRoleCredentials, on the raw driver path (keyhall.db.fast).

They must mean exactly what ``keyhall.oauth.tokens.resolve_access_token``,
``keyhall.access.store.entitled_permission_set`` and ``keyhall.audit.writer.AuditWriter`` mean; a
service test runs both paths against the same data.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from keyhall.audit.events import Actor, AuditEvent
from keyhall.crypto import token_hash
from keyhall.db.fast import Cursor, Statement
from keyhall.ids import new_time_ordered_uuid
from keyhall.oauth.tokens import ACCESS_PREFIX

TOKEN = Statement(
    "SELECT t.user_id, t.session_id, u.user_name FROM access_tokens t"
    " JOIN portal_sessions s ON s.id = t.session_id JOIN users u ON u.id = t.user_id"
    " WHERE t.token_hash = ? AND t.expires_at > ? AND s.revoked_at IS NULL AND s.expires_at > ?"
    " AND u.status = 'ENABLED'"
)
ENTITLED = Statement(
    "SELECT p.id, p.name, p.session_seconds, a.kind FROM permission_sets p"
    " JOIN account_assignments aa ON aa.permission_set_id = p.id"
    " JOIN accounts a ON a.id = aa.account_id"
    " WHERE p.name_key = ? AND aa.account_id = ? AND a.status = 'ACTIVE' AND ("
    "(aa.principal_type = 'USER' AND aa.principal_id = ?)"
    " OR (aa.principal_type = 'GROUP' AND aa.principal_id IN"
    " (SELECT m.group_id FROM group_memberships m WHERE m.user_id = ?))) LIMIT 1"
)
AUDIT = Statement(
    "INSERT INTO audit_events (event_id, event_time, event_source, event_name, actor_type, actor_id,"
    " actor_name, source_ip, user_agent, request_id, resource_type, resource_id, request_parameters,"
    " response_elements,"
    " additional_data, error_code, read_only) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?j, ?j, ?j, ?, ?)"
)


@dataclass(frozen=True)
class TokenOwner:
    user_id: str
    session_id: str
    user_name: str


@dataclass(frozen=True)
class Entitlement:
    permission_set_id: str
    permission_set_name: str
    session_seconds: int
    account_kind: str


def token_owner(cursor: Cursor, is_sqlite: bool, token: str, now: float) -> TokenOwner | None:
    if not token.startswith(ACCESS_PREFIX) or len(token) > 128:
        return None
    cursor.execute(TOKEN.text(is_sqlite), (token_hash(token), now, now))
    row = cursor.fetchone()
    return TokenOwner(row[0], row[1], row[2]) if row else None


def entitlement(
    cursor: Cursor, is_sqlite: bool, user_id: str, account_id: str, ps_name_key: str
) -> Entitlement | None:
    cursor.execute(ENTITLED.text(is_sqlite), (ps_name_key, account_id, user_id, user_id))
    row = cursor.fetchone()
    return Entitlement(row[0], row[1], int(row[2]), row[3]) if row else None


def _json(value: object) -> str | None:
    # the hot path's records carry ids only (account, role, access key id, session), never a secret, so
    # the general writer's redaction pass (~40 µs a record) is skipped; tests scan the records for secrets
    return None if value is None else orjson.dumps(value).decode()


AuditRecord = tuple[object, ...]


def audit_record(actor: Actor, event: AuditEvent, now: float) -> AuditRecord:
    """The AUDIT statement's parameters for one record (driver-neutral: the JSON columns as text)."""
    return (
        new_time_ordered_uuid(),
        now,
        event.event_source,
        event.event_name,
        actor.type,
        actor.id,
        actor.name,
        actor.source_ip,
        (actor.user_agent or "")[:512] or None,
        actor.request_id,
        event.resource_type,
        event.resource_id,
        _json(event.request_parameters),
        _json(event.response_elements),
        _json(event.additional_data),
        event.error_code,
        event.read_only,
    )


def insert_audit(cursor: Cursor, is_sqlite: bool, records: list[AuditRecord]) -> None:
    cursor.executemany(AUDIT.text(is_sqlite), records)


def record_audit(cursor: Cursor, is_sqlite: bool, actor: Actor, event: AuditEvent, now: float) -> None:
    cursor.execute(AUDIT.text(is_sqlite), audit_record(actor, event, now))
