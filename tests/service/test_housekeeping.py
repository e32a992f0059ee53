"""Purging what has expired, on both databases: what goes when, and what must stay."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from sqlalchemy import Table, func, select

from keyhall.audit.events import Actor
from keyhall.clock import FrozenClock
from keyhall.container import Container
from keyhall.db import housekeeping
from keyhall.db.tables import (
    access_tokens,
    audit_events,
    authorization_codes,
    device_authorizations,
    oauth_clients,
    portal_sessions,
    rate_limits,
    refresh_tokens,
)
from keyhall.directory.models import UserSpec
from keyhall.instance import create_instance
from keyhall.oauth import codes
from keyhall.oauth.pkce import s256
from keyhall.signin.sessions import credential_session_alive
from minting import cli_access_token

HOUR = 3600.0
DEVICE = Actor(type="Anonymous", source_ip="198.51.100.4", user_agent="aws-cli/2.9.19")


@dataclass
class World:
    user_id: str
    short_session: str  # a CLI session of 1 hour
    long_session: str  # a CLI session of 8 hours
    client_id: str


@pytest.fixture
def world(container: Container, actor: Actor) -> World:
    c = container
    with c.db.write() as conn:
        create_instance(conn, actor, c.audit, c.clock, "Test")
    registration = c.oidc.register_client(
        DEVICE,
        name="botocore-client",
        client_type="public",
        scopes=None,
        grant_types=None,
        redirect_uris=None,
        issuer_url=None,
    )
    with c.db.write() as conn:
        alice = c.directory.create_user(conn, actor, UserSpec("alice"))
        _, short = cli_access_token(c, conn, alice.id, lifetime=HOUR)
        _, long = cli_access_token(c, conn, alice.id, lifetime=8 * HOUR)
        codes.create_code(
            conn,
            c.clock,
            client_id=registration.client.id,
            redirect_uri="http://127.0.0.1:4321/oauth/callback",
            code_challenge=s256("v" * 43),
            scopes=["sso:account:access"],
            user_id=alice.id,
            browser_session_id=short,
        )
        c.signin.record_failed_device_lookup(conn, "198.51.100.4")
    c.oidc.start_device_authorization(
        DEVICE,
        client_id=registration.client.id,
        client_secret=registration.client_secret,
        start_url="http://127.0.0.1:8080/start",
    )
    return World(alice.id, short, long, registration.client.id)


def count(container: Container, table: Table) -> int:
    with container.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def session_ids(container: Container) -> set[str]:
    with container.db.read() as conn:
        return set(conn.execute(select(portal_sessions.c.id)).scalars())


def test_expired_rows_go_and_live_ones_stay(container: Container, world: World, clock: FrozenClock) -> None:
    c = container
    assert housekeeping.purge_expired(c.db, clock.timestamp()) == dict.fromkeys(
        (
            "access_tokens",
            "refresh_tokens",
            "authorization_codes",
            "device_authorizations",
            "portal_sessions",
            "oauth_clients",
            "rate_limits",
        ),
        0,
    )
    audit_before = count(c, audit_events)

    clock.advance(2 * HOUR)  # both access tokens (1 h) and the short session's refresh token have expired
    deleted = housekeeping.purge_expired(c.db, clock.timestamp())
    assert deleted["access_tokens"] == 2 and deleted["refresh_tokens"] == 1
    assert count(c, refresh_tokens) == 1  # the long session's, still usable
    assert session_ids(c) == {world.short_session, world.long_session}  # ended sessions are kept a day
    with c.db.read() as conn:  # role credentials outlive their session's natural end: STS still finds it
        assert credential_session_alive(conn, world.short_session, world.user_id)
    assert count(c, device_authorizations) == count(c, authorization_codes) == count(c, rate_limits) == 1

    clock.advance(24 * HOUR)  # a day after the short session, the code, the device request, the counter
    deleted = housekeeping.purge_expired(c.db, clock.timestamp())
    assert deleted["portal_sessions"] == 1 and deleted["authorization_codes"] == 1
    assert deleted["device_authorizations"] == 1 and deleted["rate_limits"] == 1
    assert deleted["refresh_tokens"] == 1  # the long session ended at 8 h: its refresh token is no use
    assert session_ids(c) == {world.long_session}

    clock.advance(7 * HOUR)  # a day after the long session ended
    deleted = housekeeping.purge_expired(c.db, clock.timestamp())
    assert deleted["portal_sessions"] == 1
    assert count(c, portal_sessions) == count(c, access_tokens) == count(c, refresh_tokens) == 0

    assert count(c, oauth_clients) == 1  # registered for 90 days
    clock.advance(91 * 24 * HOUR)
    assert housekeeping.purge_expired(c.db, clock.timestamp())["oauth_clients"] == 1
    assert count(c, audit_events) == audit_before  # the audit log is never purged


def test_a_logout_is_remembered_for_a_day(
    container: Container, world: World, clock: FrozenClock, actor: Actor
) -> None:
    c = container
    with c.db.write() as conn:
        c.sessions.revoke(conn, actor, world.long_session, reason="Logout")
    clock.advance(23 * HOUR)
    housekeeping.purge_expired(c.db, clock.timestamp())
    assert world.long_session in session_ids(c)
    clock.advance(2 * HOUR)
    housekeeping.purge_expired(c.db, clock.timestamp())
    assert world.long_session not in session_ids(c)
    with c.db.read() as conn:  # gone or revoked, its credentials are refused either way
        assert not credential_session_alive(conn, world.long_session, world.user_id)


def test_a_backlog_goes_in_batches(
    container: Container, world: World, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = container
    with c.db.write() as conn:
        for _ in range(7):
            cli_access_token(c, conn, world.user_id, lifetime=HOUR)
    monkeypatch.setattr(housekeeping, "BATCH", 3)
    clock.advance(2 * HOUR)
    deleted = housekeeping.purge_expired(c.db, clock.timestamp())
    assert deleted["access_tokens"] == 9 and deleted["refresh_tokens"] == 8
    assert count(c, access_tokens) == 0 and count(c, refresh_tokens) == 1


def test_the_housekeeper_thread_purges_and_stops(
    container: Container, world: World, clock: FrozenClock
) -> None:
    c = container
    clock.advance(2 * HOUR)
    keeper = housekeeping.Housekeeper(c.db, clock, interval=0.01)
    keeper.start()
    try:
        for _ in range(500):
            if count(c, access_tokens) == 0:
                break
            time.sleep(0.01)
    finally:
        keeper.stop()
    assert count(c, access_tokens) == 0
