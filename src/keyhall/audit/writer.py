"""Writes audit records on the caller's connection, so they commit or roll back with the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert

from keyhall.audit.events import Actor, AuditEvent, redact
from keyhall.clock import Clock
from keyhall.db.tables import audit_events
from keyhall.ids import new_time_ordered_uuid


class AuditWriter:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def record(self, conn: Connection, actor: Actor, event: AuditEvent) -> str:
        """Insert one record; any failure propagates and so fails (rolls back) the whole request."""
        event_id = new_time_ordered_uuid()
        conn.execute(insert(audit_events).values(**self.row(actor, event, event_id)))
        return event_id

    def row(self, actor: Actor, event: AuditEvent, event_id: str) -> dict[str, Any]:
        return {
            "event_id": event_id,
            "event_time": self._clock.timestamp(),
            "event_source": event.event_source,
            "event_name": event.event_name,
            "actor_type": actor.type,
            "actor_id": actor.id,
            "actor_name": actor.name,
            "source_ip": actor.source_ip,
            "user_agent": (actor.user_agent or "")[:512] or None,
            "request_id": actor.request_id,
            "resource_type": event.resource_type,
            "resource_id": event.resource_id,
            "request_parameters": redact(event.request_parameters),
            "response_elements": redact(event.response_elements),
            "additional_data": redact(event.additional_data),
            "error_code": event.error_code,
            "read_only": event.read_only,
        }
