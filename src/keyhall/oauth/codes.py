"""Authorization codes with PKCE (RFC 7636), single use, 60 seconds, bound to client, redirect URI and
challenge (ASVS 10.4.2/10.4.3, RFC 9700 §2.1.1). Redeeming a code twice revokes what the first
redemption issued."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from keyhall.clock import Clock
from keyhall.crypto import token_hash
from keyhall.db.tables import authorization_codes, portal_sessions
from keyhall.oauth.pkce import verifier_matches

CODE_SECONDS = 60


def create_code(
    conn: Connection,
    clock: Clock,
    *,
    client_id: str,
    redirect_uri: str,
    code_challenge: str,
    scopes: list[str],
    user_id: str,
    browser_session_id: str,
) -> str:
    now = clock.timestamp()
    code = secrets.token_urlsafe(32)
    conn.execute(
        insert(authorization_codes).values(
            code_hash=token_hash(code),
            client_id=client_id,
            redirect_uri=redirect_uri,
            code_challenge=code_challenge,
            scopes=scopes,
            user_id=user_id,
            browser_session_id=browser_session_id,
            issued_session_id=None,
            created_at=now,
            expires_at=now + CODE_SECONDS,
            used_at=None,
        )
    )
    return code


@dataclass(frozen=True)
class RedeemedCode:
    user_id: str
    browser_session_id: str
    scopes: list[str]
    code_hash: bytes


@dataclass(frozen=True)
class CodeRefusal:
    reason: str
    expired: bool = False


def redeem(
    conn: Connection,
    clock: Clock,
    *,
    client_id: str,
    code: str,
    redirect_uri: str | None,
    code_verifier: str | None,
) -> RedeemedCode | CodeRefusal:
    """Check and consume a code. A refusal after a replay has already revoked the first session."""
    now = clock.timestamp()
    digest = token_hash(code)
    row = conn.execute(
        select(authorization_codes).where(authorization_codes.c.code_hash == digest).with_for_update()
    ).first()
    if row is None or row.client_id != client_id:
        return CodeRefusal("Unknown authorization code")
    if row.used_at is not None:
        if row.issued_session_id:
            conn.execute(
                update(portal_sessions)
                .where(portal_sessions.c.id == row.issued_session_id, portal_sessions.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return CodeRefusal("The authorization code was already used; the tokens it gave are revoked")
    claimed = conn.execute(
        update(authorization_codes)
        .where(authorization_codes.c.code_hash == digest, authorization_codes.c.used_at.is_(None))
        .values(used_at=now)
    )
    if claimed.rowcount != 1:
        return CodeRefusal("The authorization code was already used")
    if row.expires_at <= now:
        return CodeRefusal("The authorization code has expired", expired=True)
    # the token request repeats the exact redirect URI of the authorization request (RFC 6749 §4.1.3)
    if not redirect_uri or redirect_uri != row.redirect_uri:
        return CodeRefusal("redirectUri does not match the authorization request")
    # PKCE is mandatory: a missing verifier is a refusal, never a skipped check (authentik CVE-2023-48228)
    if not code_verifier or not verifier_matches(code_verifier, row.code_challenge):
        return CodeRefusal("codeVerifier does not match the code challenge")
    return RedeemedCode(row.user_id, row.browser_session_id, list(row.scopes), digest)


def record_issued_session(conn: Connection, code_hash: bytes, session_id: str) -> None:
    conn.execute(
        update(authorization_codes)
        .where(authorization_codes.c.code_hash == code_hash)
        .values(issued_session_id=session_id)
    )
