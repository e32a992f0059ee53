"""Deleting what has expired: access and refresh tokens, authorization codes, device requests, client
registrations, ended sessions and old rate-limit counters. Without it they would pile up forever.

What is kept, and why:
- Ended sessions stay a day (``RETENTION_SECONDS``): role credentials outlive their portal session's
  natural end by up to 12 hours (a permission set's longest session), and Keyhall's STS still reads the
  session row to refuse them after a logout (``signin.sessions.credential_session_alive``). Their tokens
  go with them (foreign keys cascade).
- Expired codes, device requests and client registrations stay a day too, so what happened to them can be
  looked up while it is fresh; the audit log keeps the story for good. Audit records are never purged here.
- Access and refresh tokens go as soon as they expire: nothing consults an expired token (a refresh
  token's expiry is its session family's, so a rotated one stays for reuse detection as long as the family
  could still be used).
- A rate-limit counter goes once its window and any block have passed a day ago.

Each table is purged in batches of ``BATCH`` rows, one short transaction each, so a large backlog never
holds SQLite's write lock for long. Every server process runs ``Housekeeper``; several at once only
repeat each other's deletes.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

from sqlalchemy import ColumnElement, Table, and_, delete, or_, select

from keyhall.clock import Clock
from keyhall.db.background import BackgroundThread
from keyhall.db.database import Database
from keyhall.db.tables import (
    access_tokens,
    authorization_codes,
    device_authorizations,
    oauth_clients,
    portal_sessions,
    rate_limits,
    refresh_tokens,
)

log = logging.getLogger("keyhall.housekeeping")

#: how long ended sessions and expired codes, device requests and registrations are kept (> 12 h: above)
RETENTION_SECONDS = 24 * 3600
BATCH = 2000
INTERVAL_SECONDS = 600.0

Rule = tuple[str, Table, Callable[[float], ColumnElement[bool]]]


def _rules() -> list[Rule]:
    def kept_since(now: float) -> float:
        return now - RETENTION_SECONDS

    return [
        ("access_tokens", access_tokens, lambda now: access_tokens.c.expires_at < now),
        ("refresh_tokens", refresh_tokens, lambda now: refresh_tokens.c.expires_at < now),
        (
            "authorization_codes",
            authorization_codes,
            lambda now: authorization_codes.c.expires_at < kept_since(now),
        ),
        (
            "device_authorizations",
            device_authorizations,
            lambda now: device_authorizations.c.expires_at < kept_since(now),
        ),
        (
            "portal_sessions",
            portal_sessions,
            lambda now: or_(
                portal_sessions.c.revoked_at < kept_since(now), portal_sessions.c.expires_at < kept_since(now)
            ),
        ),
        ("oauth_clients", oauth_clients, lambda now: oauth_clients.c.expires_at < kept_since(now)),
        (
            "rate_limits",
            rate_limits,
            lambda now: and_(
                rate_limits.c.window_start < kept_since(now),
                or_(rate_limits.c.blocked_until.is_(None), rate_limits.c.blocked_until < kept_since(now)),
            ),
        ),
    ]


def purge_expired(db: Database, now: float) -> dict[str, int]:
    """Delete what the rules above let go as of ``now``; the rows deleted per table."""
    deleted: dict[str, int] = {}
    for name, table, expired in _rules():
        key = next(iter(table.primary_key.columns))
        total = 0
        while True:
            with db.write() as conn:
                batch = select(key).where(expired(now)).limit(BATCH)
                count = conn.execute(delete(table).where(key.in_(batch))).rowcount
            total += count
            if count < BATCH:
                break
        deleted[name] = total
    return deleted


class Housekeeper(BackgroundThread):
    """Runs ``purge_expired`` on a thread of its own, every ``INTERVAL_SECONDS`` (the first run a random
    minute or so after start, so the workers of one host do not all start together)."""

    def __init__(self, db: Database, clock: Clock, *, interval: float = INTERVAL_SECONDS) -> None:
        super().__init__("keyhall-housekeeping", self._run)
        self._db = db
        self._clock = clock
        self._interval = interval

    def _run(self, stop: threading.Event) -> None:
        wait = min(self._interval, 30 + random.uniform(0, 60))  # noqa: S311 (start-up jitter, not a secret)
        while not stop.wait(wait):
            wait = self._interval
            try:
                deleted = purge_expired(self._db, self._clock.timestamp())
            except Exception as exc:  # noqa: BLE001 (logged; the next turn tries again)
                log.warning("housekeeping failed: %s", exc)
                continue
            if any(deleted.values()):
                log.info("expired rows deleted", extra={"deleted": deleted})
