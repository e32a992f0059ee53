"""Accounts, permission sets, assignments and effective access, on both databases."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from keyhall.access.models import AccountSpec, PermissionSetSpec
from keyhall.audit.events import Actor
from keyhall.container import Container
from keyhall.db.tables import audit_events
from keyhall.directory.models import UserSpec
from keyhall.errors import ConflictError, NotFoundError, ValidationError

ADMIN_ARN = "arn:aws:iam::aws:policy/AdministratorAccess"
READ_ONLY_ARN = "arn:aws:iam::aws:policy/ReadOnlyAccess"


@pytest.fixture
def org(container: Container, actor: Actor) -> dict[str, str]:
    """Two accounts, two permission sets, a group with alice, and bob on his own."""
    with container.db.write() as conn:
        prod = container.access.create_account(
            conn, actor, AccountSpec("Production", "prod@example.com", id="222222222222")
        )
        dev = container.access.create_account(
            conn, actor, AccountSpec("Dev", "dev@example.com", id="111111111111")
        )
        ro = container.access.create_permission_set(
            conn,
            actor,
            PermissionSetSpec("ReadOnly", session_duration="PT8H", managed_policy_arns=[READ_ONLY_ARN]),
        )
        admin = container.access.create_permission_set(
            conn, actor, PermissionSetSpec("Admin", session_duration="PT1H", managed_policy_arns=[ADMIN_ARN])
        )
        alice = container.directory.create_user(conn, actor, UserSpec("alice"))
        bob = container.directory.create_user(conn, actor, UserSpec("bob"))
        devs = container.directory.create_group(conn, actor, "Developers")
        container.directory.add_member(conn, actor, devs.id, alice.id)
        container.access.create_assignment(conn, actor, prod.id, ro.id, "GROUP", devs.id)
        container.access.create_assignment(conn, actor, dev.id, admin.id, "GROUP", devs.id)
        container.access.create_assignment(conn, actor, prod.id, ro.id, "USER", alice.id)
        container.access.create_assignment(conn, actor, prod.id, admin.id, "USER", bob.id)
    return {
        "prod": prod.id,
        "dev": dev.id,
        "ro": ro.id,
        "admin": admin.id,
        "alice": alice.id,
        "bob": bob.id,
        "devs": devs.id,
    }


def test_session_duration_bounds(container: Container, actor: Actor) -> None:
    for bad in ("PT13H", "PT30M", "P1D", "1h", "PT"):
        with pytest.raises(ValidationError) as caught, container.db.write() as conn:
            container.access.create_permission_set(conn, actor, PermissionSetSpec("X", session_duration=bad))
        assert caught.value.problems[0].location == "session_duration"
    with container.db.write() as conn:
        ps = container.access.create_permission_set(
            conn, actor, PermissionSetSpec("Y", session_duration="pt90m")
        )
    assert (ps.session_duration, ps.session_seconds) == ("PT1H30M", 5400)


def test_inline_policy_errors_point_at_the_statement(container: Container, actor: Actor) -> None:
    policy = json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "allow", "Action": "s3:Get*", "Resource": "*"}]}
    )
    with pytest.raises(ValidationError) as caught, container.db.write() as conn:
        container.access.create_permission_set(conn, actor, PermissionSetSpec("Bad", inline_policy=policy))
    assert [p.location for p in caught.value.problems] == ["inline_policy.Statement[0].Effect"]
    assert "Allow" in caught.value.problems[0].message


def test_managed_policy_arns_must_be_aws_managed(container: Container, actor: Actor) -> None:
    with pytest.raises(ValidationError) as caught, container.db.write() as conn:
        container.access.create_permission_set(
            conn, actor, PermissionSetSpec("Z", managed_policy_arns=["arn:aws:iam::123456789012:policy/Mine"])
        )
    assert caught.value.problems[0].location == "managed_policies[0]"


def test_account_validation_reports_every_field(container: Container, actor: Actor) -> None:
    with pytest.raises(ValidationError) as caught, container.db.write() as conn:
        container.access.create_account(
            conn,
            actor,
            AccountSpec("", "not-an-email", id="12345", kind="gcp", ou_path="Root"),  # type: ignore[arg-type]
        )
    assert {p.location for p in caught.value.problems} == {"id", "name", "email", "kind", "ou"}


def test_effective_access_direct_and_through_groups(container: Container, org: dict[str, str]) -> None:
    with container.db.read() as conn:
        alice = container.access.user_entitlements(conn, org["alice"])
        bob = container.access.user_entitlements(conn, org["bob"])
        prod = container.access.account_access(conn, org["prod"])
    assert [(e.account.name, e.permission_set.name, e.direct, e.via_groups) for e in alice] == [
        ("Dev", "Admin", False, ("Developers",)),
        ("Production", "ReadOnly", True, ("Developers",)),
    ]
    assert [(e.account.name, e.permission_set.name, e.via) for e in bob] == [
        ("Production", "Admin", "direct")
    ]
    assert [(a.user_name, a.permission_set.name, a.direct, a.via_groups) for a in prod] == [
        ("alice", "ReadOnly", True, ("Developers",)),
        ("bob", "Admin", True, ()),
    ]


def test_entitlement_check_follows_current_data(
    container: Container, actor: Actor, org: dict[str, str]
) -> None:
    def entitled(user: str, account: str, ps: str) -> bool:
        with container.db.read() as conn:
            return container.access.entitled_permission_set(conn, org[user], org[account], ps) is not None

    assert entitled("alice", "dev", "admin")  # through Developers; names are case-insensitive
    assert not entitled("bob", "dev", "Admin")
    assert not entitled("alice", "prod", "Admin")
    with container.db.write() as conn:
        container.directory.remove_member(conn, actor, org["devs"], org["alice"])
    assert not entitled("alice", "dev", "Admin")
    assert entitled("alice", "prod", "ReadOnly")  # the direct assignment remains
    with container.db.write() as conn:
        account = container.access.get_account(conn, org["prod"])
        container.access.update_account(
            conn, actor, account.id, AccountSpec(account.name, account.email, status="SUSPENDED")
        )
    assert not entitled("alice", "prod", "ReadOnly")


def test_permission_set_in_use_cannot_be_deleted(
    container: Container, actor: Actor, org: dict[str, str]
) -> None:
    with pytest.raises(ConflictError, match="2 account assignment"), container.db.write() as conn:
        container.access.delete_permission_set(conn, actor, org["ro"])
    with container.db.write() as conn:
        container.access.delete_assignment(conn, actor, org["prod"], org["ro"], "GROUP", org["devs"])
        container.access.delete_assignment(conn, actor, org["prod"], org["ro"], "USER", org["alice"])
        container.access.delete_permission_set(conn, actor, org["ro"])
    with pytest.raises(NotFoundError), container.db.read() as conn:
        container.access.get_permission_set(conn, org["ro"])


def test_deleting_a_principal_removes_its_assignments(
    container: Container, actor: Actor, org: dict[str, str]
) -> None:
    with container.db.write() as conn:
        container.directory.delete_group(conn, actor, org["devs"])
        container.directory.delete_user(conn, actor, org["bob"])
    with container.db.read() as conn:
        remaining = container.access.list_assignments(conn)
    assert [(a.principal_type, a.principal_id) for a in remaining] == [("USER", org["alice"])]


def test_assignment_to_unknown_principal_is_refused(
    container: Container, actor: Actor, org: dict[str, str]
) -> None:
    with pytest.raises(NotFoundError), container.db.write() as conn:
        container.access.create_assignment(
            conn, actor, org["prod"], org["ro"], "USER", "00000000-0000-4000-8000-000000000000"
        )
    with pytest.raises(ConflictError), container.db.write() as conn:
        container.access.create_assignment(conn, actor, org["prod"], org["ro"], "USER", org["alice"])


def test_every_change_is_audited_without_secrets(container: Container, org: dict[str, str]) -> None:
    with container.db.read() as conn:
        rows = conn.execute(select(audit_events).order_by(audit_events.c.seq)).all()
    names = [r.event_name for r in rows]
    assert names.count("CreateAccountAssignment") == 4
    assert {
        "CreateAccount",
        "CreatePermissionSet",
        "CreateUser",
        "CreateGroup",
        "CreateGroupMembership",
    } <= set(names)
    assert all(r.actor_type == "LocalOperator" and r.actor_id == "tester@host" for r in rows)
    assert all(r.event_time > 0 for r in rows)


def test_resolve_by_name_id_or_arn(container: Container, org: dict[str, str]) -> None:
    with container.db.read() as conn:
        assert container.access.resolve_account(conn, "production").id == org["prod"]
        assert container.access.resolve_account(conn, org["prod"]).name == "Production"
        ps = container.access.resolve_permission_set(conn, "readonly")
        assert (
            container.access.resolve_permission_set(conn, f"arn:aws:sso:::permissionSet/ssoins-1/{ps.id}").id
            == ps.id
        )
