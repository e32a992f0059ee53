"""The portal API service on both databases, and the raw hot path agreeing with the Core queries."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select

from keyhall.access import hot_path, store
from keyhall.access.models import AccountSpec, PermissionSetSpec
from keyhall.access.portal import ForbiddenError
from keyhall.audit.events import Actor
from keyhall.clock import FrozenClock
from keyhall.container import Container
from keyhall.db.tables import audit_events
from keyhall.directory.models import UserSpec
from keyhall.errors import UnauthorizedError
from keyhall.instance import create_instance
from keyhall.oauth.tokens import issue_tokens, resolve_access_token
from minting import cli_access_token

CALLER = Actor(type="Anonymous", source_ip="192.0.2.1", user_agent="botocore/1.43", request_id="r-1")


@pytest.fixture
def world(container: Container, actor: Actor) -> dict[str, str]:
    c = container
    with c.db.write() as conn:
        create_instance(conn, actor, c.audit, c.clock, "Test")
        dev = c.access.create_account(conn, actor, AccountSpec("Dev", "dev@example.com", id="111111111111"))
        prod = c.access.create_account(
            conn, actor, AccountSpec("Prod", "prod@example.com", id="222222222222")
        )
        c.access.create_account(conn, actor, AccountSpec("Other", "other@example.com", id="333333333333"))
        ro = c.access.create_permission_set(
            conn, actor, PermissionSetSpec("ReadOnly", session_duration="PT8H")
        )
        admin = c.access.create_permission_set(
            conn, actor, PermissionSetSpec("Admin", session_duration="PT1H")
        )
        alice = c.directory.create_user(conn, actor, UserSpec("alice"))
        devs = c.directory.create_group(conn, actor, "Developers")
        c.directory.add_member(conn, actor, devs.id, alice.id)
        c.access.create_assignment(conn, actor, dev.id, admin.id, "GROUP", devs.id)
        c.access.create_assignment(conn, actor, prod.id, ro.id, "USER", alice.id)
        session, _ = c.sessions.create(conn, user_id=alice.id, kind="cli", lifetime_seconds=8 * 3600)
        tokens = issue_tokens(
            conn,
            c.clock,
            session_id=session.id,
            user_id=alice.id,
            client_id="c",
            scopes=[],
            session_expires_at=session.expires_at,
        )
    return {"token": tokens.access_token, "alice": alice.id, "session": session.id, "devs": devs.id}


def test_lists_only_what_the_user_can_reach(container: Container, world: dict[str, str]) -> None:
    portal = container.portal
    accounts = portal.list_accounts(world["token"], limit=None, next_token=None)
    assert [a.id for a in accounts.items] == ["111111111111", "222222222222"]
    first = portal.list_accounts(world["token"], limit=1, next_token=None)
    second = portal.list_accounts(world["token"], limit=1, next_token=first.next_token)
    assert [a.id for a in first.items + second.items] == ["111111111111", "222222222222"]
    assert second.next_token is None
    assert portal.list_account_roles(world["token"], "222222222222", limit=None, next_token=None).items == [
        "ReadOnly"
    ]
    assert portal.list_account_roles(world["token"], "333333333333", limit=None, next_token=None).items == []


def test_role_credentials_last_the_session_duration_and_are_audited(
    container: Container, world: dict[str, str], clock: FrozenClock
) -> None:
    creds = container.portal.get_role_credentials(CALLER, world["token"], "222222222222", "readonly")
    assert creds.expiration == clock.timestamp() + 8 * 3600
    assert creds.access_key_id.startswith("ASIA")
    with container.db.read() as conn:
        row = conn.execute(
            select(audit_events).where(audit_events.c.event_name == "GetRoleCredentials")
        ).one()
    assert row.actor_id == world["alice"] and row.actor_name == "alice" and row.source_ip == "192.0.2.1"
    assert row.request_parameters == {"accountId": "222222222222", "roleName": "ReadOnly"}
    assert row.response_elements["accessKeyId"] == creds.access_key_id
    assert creds.secret_access_key not in str(tuple(row)) and creds.session_token not in str(tuple(row))


def test_refusals(container: Container, world: dict[str, str], actor: Actor) -> None:
    portal = container.portal
    with pytest.raises(ForbiddenError):
        portal.get_role_credentials(CALLER, world["token"], "222222222222", "Admin")
    with pytest.raises(UnauthorizedError):
        portal.get_role_credentials(CALLER, "kh_at_forged", "222222222222", "ReadOnly")
    with container.db.write() as conn:  # removing the membership stops the group's access at once
        container.directory.remove_member(conn, actor, world["devs"], world["alice"])
    with pytest.raises(ForbiddenError):
        portal.get_role_credentials(CALLER, world["token"], "111111111111", "Admin")
    portal.logout(CALLER, world["token"])
    with pytest.raises(UnauthorizedError):
        portal.get_role_credentials(CALLER, world["token"], "222222222222", "ReadOnly")


def test_hot_path_agrees_with_the_core_queries(
    container: Container, world: dict[str, str], actor: Actor, clock: FrozenClock
) -> None:
    c = container
    with c.db.write() as conn:  # a second user with nothing, and a suspended account with an assignment
        bob = c.directory.create_user(conn, actor, UserSpec("bob"))
        other = c.access.get_account(conn, "333333333333")
        ro = c.access.resolve_permission_set(conn, "ReadOnly")
        c.access.create_assignment(conn, actor, other.id, ro.id, "USER", bob.id)
        c.access.update_account(
            conn, actor, other.id, AccountSpec(other.name, other.email, status="SUSPENDED")
        )
    users = [world["alice"], bob.id]
    accounts = ["111111111111", "222222222222", "333333333333", "444444444444"]
    names = ["readonly", "admin", "missing"]
    fast = c.db.fast
    for user_id, account_id, name in itertools.product(users, accounts, names):
        with c.db.read() as conn:
            core = store.entitled_permission_set(conn, user_id, account_id, name)
        with fast.write() as cursor:
            raw = hot_path.entitlement(cursor, fast.is_sqlite, user_id, account_id, name)
        assert (core.id if core else None) == (raw.permission_set_id if raw else None), (
            user_id,
            account_id,
            name,
        )
    with fast.write() as cursor:
        owner = hot_path.token_owner(cursor, fast.is_sqlite, world["token"], clock.timestamp())
    assert owner is not None and (owner.user_id, owner.session_id, owner.user_name) == (
        world["alice"],
        world["session"],
        "alice",
    )


def test_hot_token_lookup_agrees_with_the_core_one_on_every_refusal(
    container: Container, world: dict[str, str], actor: Actor, clock: FrozenClock
) -> None:
    """``hot_path.token_owner`` restates ``oauth.tokens.resolve_access_token`` for speed: both must accept
    and refuse the same tokens, whatever ended them."""
    c = container
    fast = c.db.fast

    def both(token: str) -> tuple[tuple[str, str, str] | None, tuple[str, str, str] | None]:
        with c.db.read() as conn:
            core = resolve_access_token(conn, clock, token)
        with fast.read() as cursor:
            raw = hot_path.token_owner(cursor, fast.is_sqlite, token, clock.timestamp())
        return (
            (core.user_id, core.session_id, core.user_name) if core else None,
            (raw.user_id, raw.session_id, raw.user_name) if raw else None,
        )

    def new_token(user_id: str, lifetime: float = 8 * 3600) -> tuple[str, str]:
        with c.db.write() as conn:
            return cli_access_token(c, conn, user_id, lifetime=lifetime)

    alive = world["token"]
    core, raw = both(alive)
    assert core == raw == (world["alice"], world["session"], "alice")
    for forged in ("", "kh_at_", "kh_at_" + "A" * 43, "nope", "kh_at_" + "x" * 200, alive[:-1]):
        assert both(forged) == (None, None), forged

    logged_out, session_id = new_token(world["alice"])
    with c.db.write() as conn:
        c.sessions.revoke(conn, actor, session_id, reason="test")
    assert both(logged_out) == (None, None)

    short, _ = new_token(world["alice"], lifetime=60)  # the session ends before its 1-hour access token
    assert both(short)[0] is not None and both(short)[0] == both(short)[1]
    clock.advance(61)
    assert both(short) == (None, None)
    assert both(alive)[0] == both(alive)[1] is not None
    clock.advance(3600)  # the access token itself has expired, its 8-hour session has not
    assert both(alive) == (None, None)

    later, _ = new_token(world["alice"])
    with c.db.write() as conn:
        c.directory.set_status(conn, actor, world["alice"], "DISABLED")
    assert both(later) == (None, None)
    with c.db.write() as conn:
        c.directory.set_status(conn, actor, world["alice"], "ENABLED")
    assert both(later) == (None, None)  # disabling ended her sessions: enabling does not bring them back
    fresh, _ = new_token(world["alice"])
    assert both(fresh)[0] == both(fresh)[1] is not None
