"""Directory service on both databases: users, groups, memberships, and their audit records."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from keyhall.audit.events import Actor
from keyhall.container import Container
from keyhall.db.tables import audit_events
from keyhall.directory.models import UserSpec
from keyhall.errors import ConflictError, NotFoundError, ValidationError


def audit_names(container: Container) -> list[str]:
    with container.db.read() as conn:
        return list(conn.execute(select(audit_events.c.event_name).order_by(audit_events.c.seq)).scalars())


def test_create_user_is_audited_and_user_name_unique_case_insensitively(
    container: Container, actor: Actor
) -> None:
    with container.db.write() as conn:
        user = container.directory.create_user(
            conn,
            actor,
            UserSpec("Alice", display_name="Alice L", email="alice@example.com", given_name="Alice"),
        )
    assert user.user_name == "Alice"
    assert user.primary_email == "alice@example.com"
    assert user.given_name == "Alice"
    assert audit_names(container) == ["CreateUser"]
    with pytest.raises(ConflictError), container.db.write() as conn:
        container.directory.create_user(conn, actor, UserSpec("alice"))
    with container.db.read() as conn:
        assert container.directory.resolve_user(conn, "ALICE").id == user.id
    assert audit_names(container) == ["CreateUser"]


def test_invalid_user_reports_every_problem(container: Container, actor: Actor) -> None:
    with pytest.raises(ValidationError) as caught, container.db.write() as conn:
        container.directory.create_user(conn, actor, UserSpec("bad name", email="nope", status="ON"))  # type: ignore[arg-type]
    locations = {p.location for p in caught.value.problems}
    assert locations == {"UserName", "Emails", "UserStatus"}


def test_reserved_user_name_refused(container: Container, actor: Actor) -> None:
    with pytest.raises(ValidationError, match="reserved"), container.db.write() as conn:
        container.directory.create_user(conn, actor, UserSpec("Administrator"))


def test_failed_audit_write_rolls_the_change_back(container: Container, actor: Actor) -> None:
    class BrokenAudit:
        def record(self, *_args: object, **_kwargs: object) -> str:
            raise RuntimeError("audit store unavailable")

    container.directory._audit = BrokenAudit()  # type: ignore[assignment]
    with pytest.raises(RuntimeError), container.db.write() as conn:
        container.directory.create_user(conn, actor, UserSpec("bob"))
    with container.db.read() as conn:
        assert container.directory.find_user(conn, "bob") is None


def test_groups_and_memberships(container: Container, actor: Actor) -> None:
    with container.db.write() as conn:
        alice = container.directory.create_user(conn, actor, UserSpec("alice"))
        bob = container.directory.create_user(conn, actor, UserSpec("bob"))
        devs = container.directory.create_group(conn, actor, "Developers", "People who build")
        container.directory.add_member(conn, actor, devs.id, alice.id)
        container.directory.add_member(conn, actor, devs.id, bob.id)
    with container.db.read() as conn:
        assert [u.user_name for u in container.directory.members(conn, devs.id)] == ["alice", "bob"]
        assert [g.display_name for g in container.directory.groups_of(conn, alice.id)] == ["Developers"]
        listed = container.directory.list_groups(conn).items
        assert listed[0].member_count == 2
    with pytest.raises(ConflictError), container.db.write() as conn:
        container.directory.add_member(conn, actor, devs.id, alice.id)
    with container.db.write() as conn:
        container.directory.remove_member(conn, actor, devs.id, alice.id)
        container.directory.delete_user(conn, actor, bob.id)
    with container.db.read() as conn:
        assert container.directory.members(conn, devs.id) == []
    with pytest.raises(NotFoundError), container.db.write() as conn:
        container.directory.remove_member(conn, actor, devs.id, alice.id)


def test_user_pagination(container: Container, actor: Actor) -> None:
    with container.db.write() as conn:
        for i in range(7):
            container.directory.create_user(conn, actor, UserSpec(f"user{i}"))
    seen: list[str] = []
    token = None
    with container.db.read() as conn:
        while True:
            page = container.directory.list_users(conn, limit=3, next_token=token)
            seen.extend(u.user_name for u in page.items)
            token = page.next_token
            if token is None:
                break
        total = conn.execute(select(func.count()).select_from(audit_events)).scalar_one()
    assert seen == [f"user{i}" for i in range(7)]
    assert total == 7


def test_disable_and_enable(container: Container, actor: Actor) -> None:
    with container.db.write() as conn:
        user = container.directory.create_user(conn, actor, UserSpec("carol"))
        disabled = container.directory.set_status(conn, actor, user.id, "DISABLED")
    assert not disabled.enabled
    assert audit_names(container) == ["CreateUser", "DisableUser"]
