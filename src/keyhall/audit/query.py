"""Reading the audit log back, newest first; shared by `keyhall audit` and the admin console."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, or_, select

from keyhall.db.tables import audit_events
from keyhall.errors import ValidationError

MAX_LIMIT = 10_000
_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class AuditRecord:
    """One audit_events row, in CloudTrail's vocabulary (times are UTC epoch seconds)."""

    seq: int
    event_id: str
    event_time: float
    event_source: str
    event_name: str
    actor_type: str
    actor_id: str | None
    actor_name: str | None
    source_ip: str | None
    user_agent: str | None
    request_id: str | None
    resource_type: str | None
    resource_id: str | None
    request_parameters: dict[str, Any] | None
    response_elements: dict[str, Any] | None
    additional_data: dict[str, Any] | None
    error_code: str | None
    read_only: bool

    @classmethod
    def from_row(cls, row: Row[Any]) -> AuditRecord:
        m = row._mapping
        return cls(
            seq=int(m["seq"]),
            event_id=m["event_id"],
            event_time=float(m["event_time"]),
            event_source=m["event_source"],
            event_name=m["event_name"],
            actor_type=m["actor_type"],
            actor_id=m["actor_id"],
            actor_name=m["actor_name"],
            source_ip=m["source_ip"],
            user_agent=m["user_agent"],
            request_id=m["request_id"],
            resource_type=m["resource_type"],
            resource_id=m["resource_id"],
            request_parameters=m["request_parameters"],
            response_elements=m["response_elements"],
            additional_data=m["additional_data"],
            error_code=m["error_code"],
            read_only=bool(m["read_only"]),
        )


def parse_since(value: str, *, now: float) -> float:
    """A start time in epoch seconds: relative (``30m``, ``2d``, ``1w``) or ISO-8601 (UTC if no zone)."""
    text = value.strip()
    relative = _RELATIVE.match(text.lower())
    if relative:
        return now - int(relative.group(1)) * _UNIT_SECONDS[relative.group(2)]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"since: {value!r} is neither a relative time (30m, 1h, 2d, 1w) nor an ISO-8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def query_events(
    conn: Connection,
    *,
    limit: int,
    event_name: str | None = None,
    actor: str | None = None,
    since: float | None = None,
) -> list[AuditRecord]:
    """The newest ``limit`` records, optionally of one event name, by one actor (id or name), since a time."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    query = (
        select(audit_events)
        .order_by(audit_events.c.seq.desc())  # seq is commit order, and indexed with name and actor
        .limit(limit)
    )
    if event_name is not None:
        query = query.where(audit_events.c.event_name == event_name)
    if actor is not None:
        query = query.where(or_(audit_events.c.actor_id == actor, audit_events.c.actor_name == actor))
    if since is not None:
        query = query.where(audit_events.c.event_time >= since)
    return [AuditRecord.from_row(row) for row in conn.execute(query)]
