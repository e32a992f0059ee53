"""The demo organisation seeded by `make run` on first start: local accounts, permission sets, groups."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from keyhall.access.models import AccountSpec, PermissionSetSpec
from keyhall.audit.events import Actor
from keyhall.container import Container
from keyhall.directory.models import UserSpec
from keyhall.signin.passwords import generate_password

DEMO_USER = "demo"

READ_ONLY_INLINE = """{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "DenySecrets", "Effect": "Deny", "Action": ["secretsmanager:GetSecretValue"], "Resource": "*"}
  ]
}"""


@dataclass(frozen=True)
class DemoResult:
    user_name: str
    one_time_password: str


def seed_demo(
    container: Container, conn: Connection, actor: Actor, *, admin_user_id: str | None
) -> DemoResult:
    access, directory = container.access, container.directory
    sandbox = access.create_account(
        conn, actor, AccountSpec("Sandbox", "sandbox@example.com", id="111111111111", ou_path="/Root/Sandbox")
    )
    prod = access.create_account(
        conn,
        actor,
        AccountSpec(
            "Production",
            "prod@example.com",
            id="222222222222",
            ou_path="/Root/Workloads",
            tags={"env": "prod"},
        ),
    )
    mgmt = access.create_account(
        conn, actor, AccountSpec("Management", "mgmt@example.com", id="333333333333")
    )
    admin_ps = access.create_permission_set(
        conn,
        actor,
        PermissionSetSpec(
            "AdministratorAccess",
            description="Full access, one hour at a time",
            session_duration="PT1H",
            managed_policy_arns=["arn:aws:iam::aws:policy/AdministratorAccess"],
        ),
    )
    developer = access.create_permission_set(
        conn,
        actor,
        PermissionSetSpec(
            "Developer",
            description="Build and run workloads",
            session_duration="PT4H",
            managed_policy_arns=["arn:aws:iam::aws:policy/PowerUserAccess"],
        ),
    )
    read_only = access.create_permission_set(
        conn,
        actor,
        PermissionSetSpec(
            "ReadOnly",
            description="Look, don't touch",
            session_duration="PT8H",
            managed_policy_arns=["arn:aws:iam::aws:policy/ReadOnlyAccess"],
            inline_policy=READ_ONLY_INLINE,
        ),
    )
    developers = directory.create_group(conn, actor, "Developers", "Engineers building the product")
    admins = directory.create_group(conn, actor, "Administrators", "Platform team")
    password = generate_password()
    demo = directory.create_user(
        conn,
        actor,
        UserSpec(
            DEMO_USER,
            display_name="Demo User",
            given_name="Demo",
            family_name="User",
            email="demo@example.com",
        ),
        password_hash=container.hasher.hash(password),
        must_change_password=True,
    )
    directory.add_member(conn, actor, developers.id, demo.id)
    if admin_user_id:
        directory.add_member(conn, actor, admins.id, admin_user_id)
    access.create_assignment(conn, actor, sandbox.id, developer.id, "GROUP", developers.id)
    access.create_assignment(conn, actor, prod.id, read_only.id, "GROUP", developers.id)
    for account in (sandbox, prod, mgmt):
        access.create_assignment(conn, actor, account.id, admin_ps.id, "GROUP", admins.id)
    return DemoResult(DEMO_USER, password)
