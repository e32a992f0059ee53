"""`keyhall apply` at the service level, on SQLite and PostgreSQL: plan, apply, idempotency, ownership,
refusal of invalid files, and all-or-nothing application."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from keyhall.access.models import AccountSpec, PermissionSetSpec
from keyhall.audit.events import Actor
from keyhall.container import Container
from keyhall.db.tables import (
    account_assignments,
    accounts,
    audit_events,
    group_memberships,
    groups,
    permission_sets,
    users,
)
from keyhall.db.tables import instance as instance_table
from keyhall.declarative import (
    InvalidConfigError,
    Plan,
    PlanChangedError,
    apply_config,
    parse_config,
    plan_config,
)
from keyhall.declarative.plan import ORDER, FieldDiff
from keyhall.directory.models import UserSpec
from keyhall.instance import create_instance

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "keyhall.example.yaml"
#: what the example declares: 4 accounts, 3 permission sets, 6 users, 3 groups, 5 memberships, 9 assignments
EXAMPLE_CREATES = 4 + 3 + 6 + 3 + 5 + 9


def example() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} should occur once in the example"
    return text.replace(old, new)


def plan_of(container: Container, text: str) -> Plan:
    return plan_config(container, parse_config(text, source="org.yaml"))


def apply_text(container: Container, actor: Actor, text: str, *, expected: Plan | None = None) -> Plan:
    return apply_config(container, actor, parse_config(text, source="org.yaml"), expected=expected).plan


def summary(plan: Plan) -> set[tuple[str, str, tuple[str, ...], tuple[FieldDiff, ...]]]:
    return {(c.action, c.kind, c.key, c.diffs) for c in plan.changes}


def snapshot(container: Container) -> dict[str, list[Any]]:
    """Every row apply could touch, and the audit log, to prove that nothing changed."""
    tables = {
        "accounts": accounts,
        "permission_sets": permission_sets,
        "users": users,
        "groups": groups,
        "memberships": group_memberships,
        "assignments": account_assignments,
        "audit": audit_events,
    }
    with container.db.read() as conn:
        return {
            name: sorted(
                (
                    tuple(sorted(dict(r._mapping).items(), key=lambda kv: kv[0]))
                    for r in conn.execute(select(t))
                ),
                key=repr,
            )
            for name, t in tables.items()
        }


def audit_names(container: Container) -> list[str]:
    with container.db.read() as conn:
        return list(conn.execute(select(audit_events.c.event_name).order_by(audit_events.c.seq)).scalars())


# ---- the example, twice --------------------------------------------------------------------------------


def test_example_file_creates_everything_in_dependency_order(container: Container, actor: Actor) -> None:
    plan = plan_of(container, example())
    assert plan.count("create") == EXAMPLE_CREATES
    assert plan.count("update") == plan.count("delete") == 0
    assert [c.kind for c in plan.changes] == sorted((c.kind for c in plan.changes), key=ORDER.index)
    assert snapshot(container)["audit"] == []  # planning changes nothing

    applied = apply_text(container, actor, example())
    assert applied.changes == plan.changes

    with container.db.read() as conn:
        prod = container.access.get_account(conn, "111122223333")
        management = container.access.resolve_account(conn, "Management")
        developer = container.access.resolve_permission_set(conn, "Developer")
        read_only = container.access.resolve_permission_set(conn, "ReadOnly")
        alice = container.directory.resolve_user(conn, "alice")
        mallory = container.directory.resolve_user(conn, "mallory")
        bob = container.directory.resolve_user(conn, "bob")
        developers = container.directory.resolve_group(conn, "Developers")
        members = [u.user_name for u in container.directory.members(conn, developers.id)]
        bob_access = {
            (e.account.name, e.permission_set.name) for e in container.access.user_entitlements(conn, bob.id)
        }
        management_access = {
            (a.user_name, a.permission_set.name) for a in container.access.account_access(conn, management.id)
        }
    assert prod.name == "Production" and prod.ou_path == "/Root/Workloads/Prod" and prod.kind == "aws"
    assert management.tags == {"owner": "platform-team", "cost-center": "1000", "environment": "management"}
    assert developer.session_duration == "PT8H"
    assert developer.permissions_boundary == {
        "CustomerManagedPolicyReference": {"Name": "DeveloperBoundary", "Path": "/boundaries/"}
    }
    assert developer.customer_managed_policies == [{"Name": "DeveloperExtras", "Path": "/keyhall/"}]
    assert developer.inline_policy is not None and developer.inline_policy.startswith(
        '{"Version":"2012-10-17"'
    )
    assert read_only.inline_policy is not None and " " not in read_only.inline_policy.replace(
        "Look, don't", ""
    )
    assert all(x.managed for x in (prod, management, developer, read_only, alice, developers))
    assert alice.is_admin and alice.given_name == "Alice" and alice.primary_email == "alice@example.com"
    assert not alice.has_password  # the file holds no secrets
    assert mallory.status == "DISABLED"
    assert members == ["bob", "carol", "dave"]
    # production is view-only for developers; management is for administrators only
    assert bob_access == {("Production", "ReadOnly"), ("Staging", "Developer"), ("Sandbox", "Developer")}
    assert management_access == {("alice", "Administrator")}

    # every change was audited by the service that made it
    names = audit_names(container)
    assert len(names) == EXAMPLE_CREATES
    assert names.count("CreateAccount") == 4 and names.count("CreateAccountAssignment") == 9
    assert names.count("CreateGroupMembership") == 5


def test_second_apply_plans_nothing_and_changes_nothing(container: Container, actor: Actor) -> None:
    apply_text(container, actor, example())
    before = snapshot(container)
    assert plan_of(container, example()).changes == ()
    assert apply_text(container, actor, example()).changes == ()
    assert snapshot(container) == before


def test_edits_plan_exactly_those_changes_and_apply_makes_them(container: Container, actor: Actor) -> None:
    apply_text(container, actor, example())
    text = example()
    text = edit(text, "session_duration: PT2H", "session_duration: PT4H")  # ReadOnly
    text = edit(text, "      - carol\n      - dave\n", "      - carol\n")  # dave leaves Developers
    text = edit(  # auditors may look at the management account
        text,
        "  - account: Management\n    permission_set: Administrator\n",
        "  - account: Management\n    permission_set: ReadOnly\n    groups: [Auditors]\n"
        "  - account: Management\n    permission_set: Administrator\n",
    )
    text = edit(  # mallory is removed
        text,
        "  - user_name: mallory\n    display_name: Mallory (left the company)\n"
        "    email: mallory@example.com\n"
        "    status: DISABLED              # kept for the audit trail, cannot sign in\n",
        "",
    )
    plan = plan_of(container, text)
    assert summary(plan) == {
        ("update", "permission_set", ("readonly",), (FieldDiff("session_duration", "PT2H", "PT4H"),)),
        ("create", "assignment", ("123456789012", "readonly", "GROUP", "auditors"), ()),
        ("delete", "membership", ("developers", "dave"), ()),
        ("delete", "user", ("mallory",), ()),
    }
    assert [c.action for c in plan.changes] == ["update", "create", "delete", "delete"]
    assert plan.summary == "Plan: 1 to create, 1 to update, 2 to delete."
    assert [c.label for c in plan.changes][1:] == [
        "ReadOnly on 123456789012 (Management) for group Auditors",
        "dave in Developers",
        "mallory",
    ]

    apply_text(container, actor, text, expected=plan)
    with container.db.read() as conn:
        assert container.access.resolve_permission_set(conn, "ReadOnly").session_duration == "PT4H"
        developers = container.directory.resolve_group(conn, "Developers")
        assert [u.user_name for u in container.directory.members(conn, developers.id)] == ["bob", "carol"]
        assert container.directory.find_user(conn, "mallory") is None
        assert container.directory.find_user(conn, "dave") is not None
        erin = container.directory.resolve_user(conn, "erin")
        erin_access = {
            (e.account.name, e.permission_set.name) for e in container.access.user_entitlements(conn, erin.id)
        }
    assert ("Management", "ReadOnly") in erin_access
    assert audit_names(container)[-4:] == [
        "UpdatePermissionSet",
        "CreateAccountAssignment",
        "DeleteGroupMembership",
        "DeleteUser",
    ]
    assert plan_of(container, text).changes == ()


def test_field_level_diffs_for_accounts_users_and_policies(container: Container, actor: Actor) -> None:
    apply_text(container, actor, example())
    text = example()
    text = edit(text, "    ou: /Root/Sandbox\n", "    ou: /Root/Sandbox/Teams\n")
    text = edit(text, "      environment: sandbox\n", "      environment: sandbox\n      owner: bob\n")
    text = edit(
        text, "    email: bob@example.com\n", "    email: bob@builders.example.com\n    admin: true\n"
    )
    text = edit(text, "            - support:*\n", "")
    plan = plan_of(container, text)
    changes = {c.key: c for c in plan.changes}
    assert set(changes) == {("777788889999",), ("bob",), ("developer",)}
    assert changes[("777788889999",)].diffs == (
        FieldDiff("ou", "/Root/Sandbox", "/Root/Sandbox/Teams"),
        FieldDiff("tags", {"environment": "sandbox"}, {"environment": "sandbox", "owner": "bob"}),
    )
    assert changes[("bob",)].diffs == (
        FieldDiff("email", "bob@example.com", "bob@builders.example.com"),
        FieldDiff("admin", False, True),
    )
    (policy,) = changes[("developer",)].diffs
    assert policy.field == "inline_policy"
    assert policy.old["Statement"][0]["NotAction"] == ["iam:*", "sts:*", "support:*"]
    assert policy.new["Statement"][0]["NotAction"] == ["iam:*", "sts:*"]
    apply_text(container, actor, text)
    with container.db.read() as conn:
        bob = container.directory.resolve_user(conn, "bob")
    assert bob.primary_email == "bob@builders.example.com" and bob.is_admin and bob.given_name == "Bob"
    assert plan_of(container, text).changes == ()


def test_inline_policy_as_json_string_or_yaml_mapping_is_stored_the_same(
    container: Container, actor: Actor
) -> None:
    as_yaml = """\
permission_sets:
  - name: Reader
    inline_policy:
      Version: "2012-10-17"
      Statement:
        - Effect: Allow
          Action: [s3:GetObject]
          Resource: "*"
"""
    as_json = """\
permission_sets:
  - name: Reader
    inline_policy: '{ "Version": "2012-10-17",
      "Statement": [ { "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*" } ] }'
"""
    apply_text(container, actor, as_yaml)
    assert plan_of(container, as_json).changes == ()
    with container.db.read() as conn:
        stored = container.access.resolve_permission_set(conn, "Reader").inline_policy
    assert stored == (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":"*"}]}'
    )


# ---- ownership -----------------------------------------------------------------------------------------


def test_unmanaged_resources_are_never_touched_and_declared_ones_are_adopted(
    container: Container, actor: Actor
) -> None:
    with container.db.write() as conn:
        legacy = container.access.create_account(
            conn, actor, AccountSpec("Legacy", "legacy@example.com", id="999999999999")
        )
        glass = container.access.create_permission_set(conn, actor, PermissionSetSpec("BreakGlass"))
        zoe = container.directory.create_user(conn, actor, UserSpec("zoe"))
        contractors = container.directory.create_group(conn, actor, "Contractors")
        container.directory.add_member(conn, actor, contractors.id, zoe.id)
        container.access.create_assignment(conn, actor, legacy.id, glass.id, "USER", zoe.id)
        # declared in the file too: adopted, not duplicated
        container.directory.create_user(conn, actor, UserSpec("Alice", display_name="Old Alice"))
        container.access.create_account(
            conn,
            actor,
            AccountSpec(
                "Sandbox",
                "aws-sandbox@example.com",
                id="777788889999",
                ou_path="/Root/Sandbox",
                tags={"environment": "sandbox"},
            ),
        )

    def hand_made(container: Container) -> dict[str, list[Any]]:
        rows = snapshot(container)
        return {
            "accounts": [r for r in rows["accounts"] if ("id", "999999999999") in r],
            "permission_sets": [r for r in rows["permission_sets"] if ("name", "BreakGlass") in r],
            "users": [r for r in rows["users"] if ("user_name", "zoe") in r],
            "groups": [r for r in rows["groups"] if ("display_name", "Contractors") in r],
            "memberships": [r for r in rows["memberships"] if ("user_id", zoe.id) in r],
            "assignments": [r for r in rows["assignments"] if ("principal_id", zoe.id) in r],
        }

    before = hand_made(container)
    plan = plan_of(container, example())
    adopted = {c.key: c for c in plan.changes if c.adopt}
    assert set(adopted) == {("alice",), ("777788889999",)}
    assert adopted[("alice",)].action == "update"
    assert [d.field for d in adopted[("alice",)].diffs] == [
        "user_name",
        "display_name",
        "given_name",
        "family_name",
        "email",
        "admin",
    ]
    assert adopted[("777788889999",)].diffs == ()  # identical: only the ownership changes
    assert plan.count("create") == EXAMPLE_CREATES - 2
    apply_text(container, actor, example())
    assert hand_made(container) == before
    with container.db.read() as conn:
        alice = container.directory.resolve_user(conn, "alice")
        sandbox = container.access.get_account(conn, "777788889999")
    assert alice.managed and alice.user_name == "alice" and alice.display_name == "Alice Liddell"
    assert sandbox.managed

    # an empty file removes everything apply manages, and still nothing made by hand
    plan = plan_of(container, "")
    assert plan.count("create") == plan.count("update") == 0
    assert plan.count("delete") == EXAMPLE_CREATES - 5  # the 5 memberships go with their groups
    apply_text(container, actor, "")
    assert hand_made(container) == before
    rows = snapshot(container)
    assert len(rows["accounts"]) == 1 and len(rows["users"]) == 1 and len(rows["assignments"]) == 1


def test_declared_group_members_are_authoritative_unless_members_is_left_out(
    container: Container, actor: Actor
) -> None:
    apply_text(container, actor, example())
    with container.db.write() as conn:
        zoe = container.directory.create_user(conn, actor, UserSpec("zoe"))
        developers = container.directory.resolve_group(conn, "Developers")
        auditors = container.directory.resolve_group(conn, "Auditors")
        container.directory.add_member(conn, actor, developers.id, zoe.id)
        container.directory.add_member(conn, actor, auditors.id, zoe.id)
    text = edit(example(), "    members: [erin]\n", "")  # Auditors' members are no longer managed
    assert summary(plan_of(container, text)) == {("delete", "membership", ("developers", "zoe"), ())}
    apply_text(container, actor, text)
    with container.db.read() as conn:
        assert [u.user_name for u in container.directory.members(conn, auditors.id)] == ["erin", "zoe"]


def test_deleting_a_managed_resource_that_unmanaged_assignments_use_is_refused(
    container: Container, actor: Actor
) -> None:
    apply_text(container, actor, example())
    with container.db.write() as conn:
        bob = container.directory.resolve_user(conn, "bob")
        auditor = container.directory.resolve_group(conn, "Auditors")
        container.access.create_assignment(
            conn,
            actor,
            "111122223333",
            container.access.resolve_permission_set(conn, "Administrator").id,
            "USER",
            bob.id,
        )
        container.access.create_assignment(
            conn,
            actor,
            "777788889999",
            container.access.resolve_permission_set(conn, "ReadOnly").id,
            "GROUP",
            auditor.id,
        )
    before = snapshot(container)
    text = example()
    text = edit(
        text,
        "  - name: Auditors\n"
        "    description: Read-only access everywhere except the management account.\n"
        "    members: [erin]\n",
        "",
    )
    text = edit(text, "    groups: [Developers, Auditors]\n", "    groups: [Developers]\n")
    text = edit(text, "  - account: Staging\n    permission_set: ReadOnly\n    groups: [Auditors]\n", "")
    with pytest.raises(InvalidConfigError) as caught:
        apply_text(container, actor, text)
    (problem,) = caught.value.config_problems
    assert problem.line == text.splitlines().index("groups:") + 1
    assert "group Auditors is no longer declared" in problem.message
    assert "1 account assignment(s) made outside apply" in problem.message
    assert snapshot(container) == before


# ---- refusals ------------------------------------------------------------------------------------------


INVALID = """\
accounts:
  - id: "111122223333"
    name: Production
    email: not-an-email
permission_sets:
  - name: ReadOnly
    session_duration: PT13H
groups:
  - name: Developers
    members: [alice, nobody]
users:
  - user_name: alice
    colour: blue
assignments:
  - account: Production
    permission_set: Missing
    groups: [Developers]
  - account: "999999999999"
    permission_set: ReadOnly
    users: [alice]
"""


def test_invalid_file_changes_nothing_and_reports_every_problem_at_its_line(
    container: Container, actor: Actor
) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        apply_text(container, actor, INVALID)
    found = [(p.line, p.column, p.message) for p in caught.value.config_problems]
    assert [(line, column) for line, column, _ in found] == [
        (4, 12),
        (7, 23),
        (10, 22),
        (13, 5),
        (16, 21),
        (18, 14),
    ]
    messages = [m for _, _, m in found]
    assert messages[0] == "accounts[0].email: 'not-an-email' is not an email address"
    assert "between PT1H and PT12H" in messages[1]
    assert (
        messages[2]
        == "groups[0].members[1]: unknown user 'nobody': declare it under users: or create it first"
    )
    assert messages[3].startswith("users[0]: unknown key 'colour'")
    assert "unknown permission set 'Missing'" in messages[4]
    assert "unknown account '999999999999'" in messages[5]
    assert all(str(p).startswith("org.yaml:") for p in caught.value.config_problems)
    assert snapshot(container) == {k: [] for k in snapshot(container)}


def test_users_are_refused_when_the_directory_is_not_builtin(container: Container, actor: Actor) -> None:
    with container.db.write() as conn:
        create_instance(conn, actor, container.audit, container.clock, "test")
        conn.execute(update(instance_table).values(directory_source="scim"))
    with pytest.raises(InvalidConfigError) as caught:
        plan_of(container, example())
    problems = caught.value.config_problems
    users_line = (
        example()
        .splitlines()
        .index("users:                            # built-in directory only; apply never sets passwords")
        + 1
    )
    assert (problems[0].line, problems[0].column) == (users_line, 1)
    assert "built-in directory" in problems[0].message and "scim" in problems[0].message
    # the directory holds none of the people the groups name, so each reference is reported too
    assert {p.message.split(": ", 1)[1] for p in problems[1:]} == {
        f"unknown user {name!r}: the scim directory has no such user"
        for name in ("alice", "bob", "carol", "dave", "erin")
    }


def test_with_an_external_directory_apply_neither_creates_nor_deletes_users(
    container: Container, actor: Actor
) -> None:
    apply_text(container, actor, example())  # made while the directory was the built-in one
    with container.db.write() as conn:
        create_instance(conn, actor, container.audit, container.clock, "test")
        conn.execute(update(instance_table).values(directory_source="scim"))
    lines = example().splitlines(keepends=True)
    start, end = (
        lines.index(
            "users:                            # built-in directory only; apply never sets passwords\n"
        ),
        lines.index("groups:\n"),
    )
    text = "".join(lines[:start] + lines[end:])
    assert plan_of(container, text).changes == ()  # users stay, and groups still find their members


def test_an_assignment_cannot_name_a_managed_resource_the_file_no_longer_declares(
    container: Container, actor: Actor
) -> None:
    apply_text(container, actor, example())
    text = edit(
        example(), "  - user_name: erin\n    display_name: Erin Audit\n    email: erin@example.com\n", ""
    )
    with pytest.raises(InvalidConfigError) as caught:
        plan_of(container, text)
    (problem,) = caught.value.config_problems
    assert "user 'erin' was created by keyhall apply and is no longer declared" in problem.message
    assert problem.line == text.splitlines().index("    members: [erin]") + 1


# ---- all or nothing ------------------------------------------------------------------------------------


def test_a_failure_half_way_leaves_the_database_unchanged(
    container: Container, actor: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply_text(container, actor, example())
    before = snapshot(container)
    text = edit(example(), "session_duration: PT2H", "session_duration: PT4H")
    text = edit(text, "    members: [erin]\n", "    members: [erin, dave]\n")
    text = edit(text, "    users: [alice]\n", "    users: [alice, bob]\n")

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(container.access, "create_assignment", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        apply_text(container, actor, text)
    assert snapshot(container) == before

    monkeypatch.undo()
    assert len(apply_text(container, actor, text).changes) == 3


def test_a_failure_on_an_empty_database_creates_nothing(
    container: Container, actor: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(container.directory, "add_member", broken)
    with pytest.raises(RuntimeError):
        apply_text(container, actor, example())
    assert snapshot(container) == {k: [] for k in snapshot(container)}


def test_a_plan_made_stale_by_a_concurrent_change_is_not_applied(container: Container, actor: Actor) -> None:
    apply_text(container, actor, example())
    text = edit(example(), "session_duration: PT2H", "session_duration: PT4H")
    shown = plan_of(container, text)
    with container.db.write() as conn:  # someone else changes the same permission set meanwhile
        read_only = container.access.resolve_permission_set(conn, "ReadOnly")
        spec = PermissionSetSpec(
            "ReadOnly",
            description=read_only.description,
            session_duration="PT3H",
            managed_policy_arns=read_only.managed_policy_arns,
            inline_policy=read_only.inline_policy,
        )
        container.access.update_permission_set(conn, actor, read_only.id, spec)
    before = snapshot(container)
    with pytest.raises(PlanChangedError):
        apply_text(container, actor, text, expected=shown)
    assert snapshot(container) == before
    assert summary(plan_of(container, text)) == {
        ("update", "permission_set", ("readonly",), (FieldDiff("session_duration", "PT3H", "PT4H"),))
    }


def test_renaming_an_account_is_an_update_and_names_stay_unique(container: Container, actor: Actor) -> None:
    apply_text(container, actor, example())
    text = edit(example(), "    name: Sandbox\n", "    name: Playground\n")
    text = text.replace("account: Sandbox", "account: Playground")
    plan = plan_of(container, text)
    assert summary(plan) == {
        ("update", "account", ("777788889999",), (FieldDiff("name", "Sandbox", "Playground"),))
    }
    apply_text(container, actor, text)
    clash = edit(text, "    name: Playground\n", "    name: Staging\n").replace(
        "account: Playground", "account: Staging"
    )
    with pytest.raises(InvalidConfigError, match="account name declared twice"):
        plan_of(container, clash)


def test_names_match_ignoring_case_so_a_case_change_is_an_update(container: Container, actor: Actor) -> None:
    apply_text(container, actor, example())
    text = edit(example(), "  - user_name: bob\n", "  - user_name: Bob\n")
    text = edit(text, "  - name: Auditors\n", "  - name: auditors\n")
    plan = plan_of(container, text)
    assert summary(plan) == {
        ("update", "user", ("bob",), (FieldDiff("user_name", "bob", "Bob"),)),
        ("update", "group", ("auditors",), (FieldDiff("name", "Auditors", "auditors"),)),
    }
    apply_text(container, actor, text)
    assert plan_of(container, text).changes == ()


def test_a_renamed_permission_set_is_replaced_and_its_assignments_move(
    container: Container, actor: Actor
) -> None:
    apply_text(container, actor, example())
    text = edit(example(), "  - name: ReadOnly\n", "  - name: Viewer\n").replace(
        "permission_set: ReadOnly", "permission_set: Viewer"
    )
    plan = plan_of(container, text)
    assert plan.count("create") == 1 + 3 and plan.count("delete") == 1 + 3 and plan.count("update") == 0
    assert [c.kind for c in plan.changes if c.action == "delete"][-1] == "permission_set"
    apply_text(container, actor, text)
    with container.db.read() as conn:
        assert [p.name for p in container.access.all_permission_sets(conn)] == [
            "Administrator",
            "Developer",
            "Viewer",
        ]
    assert plan_of(container, text).changes == ()
