"""Access and refresh tokens of CLI sessions (sso-oidc CreateToken, the portal's bearer token).

Tokens are opaque random strings (256 bits) stored only as SHA-256 digests. A CLI session (a
``portal_sessions`` row of kind ``cli``) is the token family: refresh tokens rotate on every use, and
presenting a rotated one again revokes the whole family (RFC 9700 §4.14.2, ASVS 10.4.5).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from keyhall.clock import Clock
from keyhall.crypto import token_hash
from keyhall.db.tables import access_tokens, portal_sessions, refresh_tokens, users

ACCESS_TOKEN_SECONDS = 3600
ACCESS_PREFIX = "kh_at_"
REFRESH_PREFIX = "kh_rt_"


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class TokenContext:
    """Who a valid access token speaks for: what every portal call needs, from one indexed read."""

    user_id: str
    user_name: str
    session_id: str
    client_id: str
    expires_at: float


def issue_tokens(
    conn: Connection,
    clock: Clock,
    *,
    session_id: str,
    user_id: str,
    client_id: str,
    scopes: list[str],
    session_expires_at: float,
) -> IssuedTokens:
    """One access token (1 h, never beyond the session) and one refresh token (until the session ends)."""
    now = clock.timestamp()
    access = ACCESS_PREFIX + secrets.token_urlsafe(32)
    refresh = REFRESH_PREFIX + secrets.token_urlsafe(32)
    access_expires = min(now + ACCESS_TOKEN_SECONDS, session_expires_at)
    conn.execute(
        insert(access_tokens).values(
            token_hash=token_hash(access),
            session_id=session_id,
            client_id=client_id,
            user_id=user_id,
            scopes=scopes,
            created_at=now,
            expires_at=access_expires,
        )
    )
    conn.execute(
        insert(refresh_tokens).values(
            token_hash=token_hash(refresh),
            session_id=session_id,
            client_id=client_id,
            created_at=now,
            expires_at=session_expires_at,
            used_at=None,
        )
    )
    return IssuedTokens(access, refresh, max(1, int(access_expires - now)))


def resolve_access_token(conn: Connection, clock: Clock, token: str) -> TokenContext | None:
    """The hot read: token → user and session, refusing expired tokens, ended sessions, disabled users."""
    if not token.startswith(ACCESS_PREFIX) or len(token) > 128:
        return None
    now = clock.timestamp()
    row = conn.execute(
        select(
            access_tokens.c.user_id,
            access_tokens.c.session_id,
            access_tokens.c.client_id,
            access_tokens.c.expires_at,
            users.c.user_name,
        )
        .join(portal_sessions, portal_sessions.c.id == access_tokens.c.session_id)
        .join(users, users.c.id == access_tokens.c.user_id)
        .where(
            access_tokens.c.token_hash == token_hash(token),
            access_tokens.c.expires_at > now,
            portal_sessions.c.revoked_at.is_(None),
            portal_sessions.c.expires_at > now,
            users.c.status == "ENABLED",
        )
    ).first()
    if row is None:
        return None
    return TokenContext(row.user_id, row.user_name, row.session_id, row.client_id, row.expires_at)


@dataclass(frozen=True)
class RefreshOutcome:
    """Either new tokens, or the reason the refresh was refused (after any revocation was written)."""

    tokens: IssuedTokens | None
    session_id: str | None
    user_id: str | None
    refused: str | None = None
    reuse_detected: bool = False


def rotate_refresh_token(
    conn: Connection, clock: Clock, *, client_id: str, refresh_token: str
) -> RefreshOutcome:
    now = clock.timestamp()
    digest = token_hash(refresh_token)
    row = conn.execute(
        select(
            refresh_tokens,
            portal_sessions.c.id.label("sid"),
            portal_sessions.c.user_id,
            portal_sessions.c.revoked_at,
            portal_sessions.c.expires_at.label("session_expires_at"),
            users.c.status,
        )
        .join(portal_sessions, portal_sessions.c.id == refresh_tokens.c.session_id)
        .join(users, users.c.id == portal_sessions.c.user_id)
        .where(refresh_tokens.c.token_hash == digest)
        .with_for_update(of=refresh_tokens)
    ).first()
    if row is None or row.client_id != client_id:
        return RefreshOutcome(None, None, None, "The refresh token is not valid for this client")
    if row.used_at is not None:
        # a rotated token presented again: someone holds a copy; end the whole family (RFC 9700 §4.14.2)
        conn.execute(
            update(portal_sessions)
            .where(portal_sessions.c.id == row.sid, portal_sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return RefreshOutcome(
            None, row.sid, row.user_id, "The refresh token was already used; the session is revoked", True
        )
    if row.revoked_at is not None or row.session_expires_at <= now or row.expires_at <= now:
        return RefreshOutcome(None, row.sid, row.user_id, "The session has ended; sign in again")
    if row.status != "ENABLED":
        return RefreshOutcome(None, row.sid, row.user_id, "The user is disabled")
    claimed = conn.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.token_hash == digest, refresh_tokens.c.used_at.is_(None))
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # lost a race with a concurrent refresh of the same token: treat as reuse
        conn.execute(update(portal_sessions).where(portal_sessions.c.id == row.sid).values(revoked_at=now))
        return RefreshOutcome(
            None, row.sid, row.user_id, "The refresh token was already used; the session is revoked", True
        )
    scopes_row = conn.execute(
        select(access_tokens.c.scopes).where(access_tokens.c.session_id == row.sid).limit(1)
    ).first()
    tokens = issue_tokens(
        conn,
        clock,
        session_id=row.sid,
        user_id=row.user_id,
        client_id=client_id,
        scopes=list(scopes_row.scopes) if scopes_row else ["sso:account:access"],
        session_expires_at=row.session_expires_at,
    )
    return RefreshOutcome(tokens, row.sid, row.user_id)
