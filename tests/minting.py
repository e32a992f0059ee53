"""A signed-in CLI session and its access token, minted by the real code (for service tests)."""

from __future__ import annotations

from sqlalchemy import Connection

from keyhall.container import Container


def cli_access_token(
    container: Container, conn: Connection, user_id: str, *, lifetime: float = 8 * 3600
) -> tuple[str, str]:
    """(access token, session id) of a new CLI session of ``user_id``, as CreateToken would issue them."""
    from keyhall.oauth.tokens import issue_tokens

    session, _ = container.sessions.create(conn, user_id=user_id, kind="cli", lifetime_seconds=lifetime)
    issued = issue_tokens(
        conn,
        container.clock,
        session_id=session.id,
        user_id=user_id,
        client_id="c",
        scopes=[],
        session_expires_at=session.expires_at,
    )
    return issued.access_token, session.id
