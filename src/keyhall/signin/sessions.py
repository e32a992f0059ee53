"""Portal sessions: a signed-in person, in a browser (cookie) or on the CLI (an OAuth token family).

A session's end is the end of everything issued from it: its tokens stop working at once, and Keyhall's
own STS refuses role credentials minted for it (``credential_session_alive``).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, select, update

from keyhall.audit.events import Actor, AuditEvent
from keyhall.audit.writer import AuditWriter
from keyhall.clock import Clock
from keyhall.crypto import token_hash
from keyhall.db.tables import portal_sessions, users

SessionKind = Literal["browser", "cli"]


@dataclass(frozen=True)
class PortalSession:
    id: str
    user_id: str
    kind: SessionKind
    parent_id: str | None
    client_id: str | None
    auth_time: float
    mfa_method: str | None
    created_at: float
    expires_at: float
    last_seen_at: float
    revoked_at: float | None
    source_ip: str | None
    user_agent: str | None

    def active(self, now: float) -> bool:
        return self.revoked_at is None and now < self.expires_at


def _from_row(m: Any) -> PortalSession:
    return PortalSession(
        id=m["id"],
        user_id=m["user_id"],
        kind=m["kind"],
        parent_id=m["parent_id"],
        client_id=m["client_id"],
        auth_time=m["auth_time"],
        mfa_method=m["mfa_method"],
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        last_seen_at=m["last_seen_at"],
        revoked_at=m["revoked_at"],
        source_ip=m["source_ip"],
        user_agent=m["user_agent"],
    )


class SessionService:
    def __init__(self, clock: Clock, audit: AuditWriter) -> None:
        self._clock = clock
        self._audit = audit

    def create(
        self,
        conn: Connection,
        *,
        user_id: str,
        kind: SessionKind,
        lifetime_seconds: float,
        auth_time: float | None = None,
        mfa_method: str | None = None,
        parent_id: str | None = None,
        client_id: str | None = None,
        source_ip: str | None = None,
        user_agent: str | None = None,
        expires_at: float | None = None,
    ) -> tuple[PortalSession, str | None]:
        """A new session; for a browser session also the cookie value (returned once, stored as a hash)."""
        now = self._clock.timestamp()
        cookie = secrets.token_urlsafe(32) if kind == "browser" else None
        session_id = str(uuid.uuid4())
        conn.execute(
            portal_sessions.insert().values(
                id=session_id,
                user_id=user_id,
                kind=kind,
                token_hash=token_hash(cookie) if cookie else None,
                parent_id=parent_id,
                client_id=client_id,
                auth_time=auth_time if auth_time is not None else now,
                mfa_method=mfa_method,
                created_at=now,
                expires_at=expires_at if expires_at is not None else now + lifetime_seconds,
                last_seen_at=now,
                revoked_at=None,
                source_ip=source_ip,
                user_agent=(user_agent or "")[:512] or None,
            )
        )
        found = self.get(conn, session_id)
        assert found is not None
        return found, cookie

    def get(self, conn: Connection, session_id: str) -> PortalSession | None:
        row = conn.execute(select(portal_sessions).where(portal_sessions.c.id == session_id)).first()
        return _from_row(row._mapping) if row else None

    def from_cookie(self, conn: Connection, cookie: str) -> PortalSession | None:
        """The active browser session a cookie names, if its user is still enabled."""
        row = conn.execute(
            select(portal_sessions)
            .join(users, users.c.id == portal_sessions.c.user_id)
            .where(portal_sessions.c.token_hash == token_hash(cookie), users.c.status == "ENABLED")
        ).first()
        if row is None:
            return None
        session = _from_row(row._mapping)
        return session if session.active(self._clock.timestamp()) else None

    def list_for_user(
        self, conn: Connection, user_id: str, *, active_only: bool = True
    ) -> list[PortalSession]:
        query = select(portal_sessions).where(portal_sessions.c.user_id == user_id)
        if active_only:
            query = query.where(
                portal_sessions.c.revoked_at.is_(None), portal_sessions.c.expires_at > self._clock.timestamp()
            )
        rows = conn.execute(query.order_by(portal_sessions.c.created_at.desc())).all()
        return [_from_row(r._mapping) for r in rows]

    def revoke(self, conn: Connection, actor: Actor, session_id: str, *, reason: str) -> bool:
        """End a session and the CLI sessions it approved. True if anything was active."""
        now = self._clock.timestamp()
        ids = [
            session_id,
            *conn.execute(
                select(portal_sessions.c.id).where(portal_sessions.c.parent_id == session_id)
            ).scalars(),
        ]
        result = conn.execute(
            update(portal_sessions)
            .where(portal_sessions.c.id.in_(ids), portal_sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        if result.rowcount:
            self._audit.record(
                conn,
                actor,
                AuditEvent(
                    "signin.amazonaws.com",
                    "RevokeSession",
                    resource_type="Session",
                    resource_id=session_id,
                    additional_data={"Reason": reason, "SessionsEnded": result.rowcount},
                ),
            )
        return bool(result.rowcount)

    def revoke_all_for_user(self, conn: Connection, actor: Actor, user_id: str, *, reason: str) -> int:
        now = self._clock.timestamp()
        result = conn.execute(
            update(portal_sessions)
            .where(portal_sessions.c.user_id == user_id, portal_sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        if result.rowcount:
            self._audit.record(
                conn,
                actor,
                AuditEvent(
                    "signin.amazonaws.com",
                    "RevokeUserSessions",
                    resource_type="User",
                    resource_id=user_id,
                    additional_data={"Reason": reason, "SessionsEnded": result.rowcount},
                ),
            )
        return int(result.rowcount)

    def touch(self, conn: Connection, session_id: str) -> None:
        conn.execute(
            update(portal_sessions)
            .where(portal_sessions.c.id == session_id)
            .values(last_seen_at=self._clock.timestamp())
        )


def credential_session_alive(conn: Connection, session_id: str, user_id: str) -> bool:
    """The cheap revocation check behind Keyhall's STS: one primary-key read.

    Role credentials outlive the portal session's natural end (as in AWS), but not a logout, a revocation
    or the user being disabled.
    """
    row = conn.execute(
        select(portal_sessions.c.revoked_at, users.c.status)
        .join(users, users.c.id == portal_sessions.c.user_id)
        .where(portal_sessions.c.id == session_id, portal_sessions.c.user_id == user_id)
    ).first()
    return row is not None and row.revoked_at is None and row.status == "ENABLED"
