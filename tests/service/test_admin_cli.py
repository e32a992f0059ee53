"""The admin commands (`keyhall users|groups|accounts|permission-sets|assignments|access|audit|settings`)
driven through the real typer app, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner, Result

from keyhall.audit.events import Actor
from keyhall.audit.writer import AuditWriter
from keyhall.cli.context import CliState
from keyhall.clock import SystemClock
from keyhall.container import Container
from keyhall.directory import store as directory_store
from keyhall.instance import create_instance
from keyhall.signin.passwords import PasswordHasher

MY_GROUPS = ("users", "groups", "accounts", "permission-sets", "assignments", "access", "audit", "settings")
_app: typer.Typer | None = None


def _fresh_app() -> typer.Typer:
    """The root callback plus the admin groups only, while other command modules do not import yet."""
    from keyhall.cli import (
        admin_access,
        admin_accounts,
        admin_assignments,
        admin_audit,
        admin_groups,
        admin_permission_sets,
        admin_settings,
        admin_users,
        main,
    )

    app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None)
    app.callback()(main._root)
    for name, module in zip(
        MY_GROUPS,
        (
            admin_users,
            admin_groups,
            admin_accounts,
            admin_permission_sets,
            admin_assignments,
            admin_access,
            admin_audit,
            admin_settings,
        ),
        strict=True,
    ):
        app.add_typer(module.app, name=name)
    return app


def cli_app() -> typer.Typer:
    global _app  # noqa: PLW0603 - built once per test session
    if _app is None:
        from keyhall.cli import main

        try:
            if not any(g.name == "users" for g in main.app.registered_groups):
                main._register()
            _app = main.app
        except ImportError:
            _app = _fresh_app()
    return _app


class Cli:
    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.runner = CliRunner(
            env={"COLUMNS": "250", "KEYHALL_DATA_DIR": None, "KEYHALL_DATABASE_URL": None}
        )

    def __call__(self, *args: str, stdin: str | None = None, code: int = 0) -> Result:
        cli_state = CliState()
        try:
            result = self.runner.invoke(
                cli_app(), ["--database-url", self.url, *args], input=stdin, obj=cli_state
            )
        finally:
            # in a real run the process ends here; in-process, close the pool the command opened
            if cli_state._container is not None:
                cli_state._container.db.dispose()
        assert result.exit_code == code, (
            f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}\n"
            f"{result.exception!r}"
        )
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def cli(container: Container, actor: Actor) -> Cli:
    # the commands run on the system clock, so the instance's record must too (audit order, --since)
    with container.db.write() as conn:
        create_instance(conn, actor, AuditWriter(SystemClock()), SystemClock(), "Test")
    return Cli(container.db.url)


def stored_hash(container: Container, user_name: str) -> str | None:
    with container.db.read() as conn:
        user = directory_store.get_user_by_name_key(conn, user_name.casefold())
        assert user is not None
        return directory_store.get_password_hash(conn, user.id)


def one_time_password(result: Result) -> str:
    lines = result.stdout.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("One-time password"))
    password = lines[index + 1].strip()
    assert result.stdout.count(password) == 1
    assert password not in result.stderr
    return password


# ---- users -------------------------------------------------------------------------------------


def test_user_lifecycle(cli: Cli, container: Container) -> None:
    created = cli("users", "create", "alice", "--display-name", "Alice L", "--email", "alice@example.com")
    password = one_time_password(created)
    hasher = PasswordHasher()
    assert hasher.verify(stored_hash(container, "alice"), password)

    [listed] = cli.json("users", "list")
    assert listed["user_name"] == "alice"
    assert listed["email"] == "alice@example.com"
    assert "password_hash" not in listed
    shown = cli.json("users", "show", "ALICE")
    assert shown["id"] == listed["id"]
    assert shown["must_change_password"] is True
    assert shown["status"] == "ENABLED"
    assert shown["groups"] == []
    assert shown["mfa_devices"] == 0
    assert cli.json("users", "show", listed["id"])["user_name"] == "alice"
    table = cli("users", "show", "alice").stdout
    assert "Alice L" in table
    assert "must be changed" in table

    cli("users", "update", "alice", "--given-name", "Alice", "--admin", "--user-name", "alice2")
    shown = cli.json("users", "show", "alice2")
    assert shown["is_admin"] is True
    assert shown["given_name"] == "Alice"
    assert shown["email"] == "alice@example.com"
    cli("users", "update", "alice2", "--no-admin")
    assert cli.json("users", "show", "alice2")["is_admin"] is False
    assert "Nothing to change" in cli("users", "update", "alice2", code=1).stderr

    cli("users", "disable", "alice2")
    assert cli.json("users", "show", "alice2")["status"] == "DISABLED"
    cli("users", "enable", "alice2")
    assert cli.json("users", "show", "alice2")["status"] == "ENABLED"

    new_password = one_time_password(cli("users", "reset-password", "alice2"))
    assert new_password != password
    assert hasher.verify(stored_hash(container, "alice2"), new_password)
    assert not hasher.verify(stored_hash(container, "alice2"), password)

    cli("users", "delete", "alice2", stdin="n\n", code=1)
    assert cli.json("users", "show", "alice2")["user_name"] == "alice2"
    cli("users", "delete", "alice2", "--yes")
    assert cli.json("users", "list") == []
    assert "not found" in cli("users", "show", "alice2", code=1).stderr


def test_password_from_stdin(cli: Cli, container: Container) -> None:
    secret = "correct horse battery staple"
    created = cli("users", "create", "bob", "--password-stdin", stdin=secret + "\n")
    assert secret not in created.stdout
    assert "One-time password" not in created.stdout
    assert PasswordHasher().verify(stored_hash(container, "bob"), secret)
    assert cli.json("users", "show", "bob")["must_change_password"] is False

    refused = cli("users", "reset-password", "bob", "--password-stdin", stdin="bob\n", code=1)
    assert "at least 8 characters" in refused.stderr
    assert "same as your user name" in refused.stderr
    assert PasswordHasher().verify(stored_hash(container, "bob"), secret)

    cli("users", "reset-password", "bob", "--password-stdin", stdin="another fine passphrase\n")
    assert PasswordHasher().verify(stored_hash(container, "bob"), "another fine passphrase")

    cli("users", "create", "carol", "--no-password", "--admin", "--disabled")
    assert stored_hash(container, "carol") is None
    carol = cli.json("users", "show", "carol")
    assert (carol["has_password"], carol["is_admin"], carol["status"]) == (False, True, "DISABLED")


def test_invalid_user_lists_every_problem(cli: Cli) -> None:
    result = cli(
        "users", "create", "bad name", "--email", "nope", "--password-stdin", stdin="password\n", code=1
    )
    assert "UserName: must not contain spaces" in result.stderr
    assert "Emails: 'nope' is not an email address" in result.stderr
    assert "password: Password is too common" in result.stderr
    assert result.stdout == ""
    assert (
        "cannot be used together"
        in cli("users", "create", "x", "--password-stdin", "--no-password", code=1).stderr
    )
    cli("users", "create", "dup")
    assert "already exists" in cli("users", "create", "DUP", code=1).stderr


# ---- groups ------------------------------------------------------------------------------------


def test_group_lifecycle(cli: Cli) -> None:
    for name in ("ann", "ben"):
        cli("users", "create", name, "--no-password")
    cli("groups", "create", "devs", "--description", "Developers")
    cli("groups", "add-member", "devs", "ann", "ben")
    [group] = cli.json("groups", "list")
    assert group["display_name"] == "devs"
    assert group["member_count"] == 2
    shown = cli.json("groups", "show", "DEVS")
    assert shown["description"] == "Developers"
    assert [m["user_name"] for m in shown["members"]] == ["ann", "ben"]
    assert "ann" in cli("groups", "show", "devs").stdout
    assert cli.json("users", "show", "ann")["groups"] == [{"id": group["id"], "display_name": "devs"}]

    # several members are added all or none
    cli("users", "create", "cid", "--no-password")
    assert "'nobody' not found" in cli("groups", "add-member", "devs", "cid", "nobody", code=1).stderr
    assert cli.json("groups", "show", "devs")["member_count"] == 2
    cli("groups", "remove-member", "devs", "ben")
    assert [m["user_name"] for m in cli.json("groups", "members", "devs")] == ["ann"]
    assert "ann" in cli("groups", "members", "devs").stdout

    cli("groups", "update", "devs", "--name", "engineers", "--description", "")
    shown = cli.json("groups", "show", group["id"])
    assert shown["display_name"] == "engineers"
    assert shown["description"] is None
    cli("groups", "delete", "engineers", "--yes")
    assert cli.json("groups", "list") == []
    assert "not found" in cli("groups", "show", "engineers", code=1).stderr


# ---- accounts ----------------------------------------------------------------------------------


def test_account_lifecycle(cli: Cli) -> None:
    cli(
        "accounts", "create", "prod", "--email", "aws+prod@example.com", "--id", "111122223333",
        "--ou", "/Root/Workloads", "--tag", "env=prod", "--tag", "team=core",
    )  # fmt: skip
    cli("accounts", "create", "sandbox", "--email", "aws+sb@example.com")
    listed = cli.json("accounts", "list")
    assert {a["name"] for a in listed} == {"prod", "sandbox"}
    shown = cli.json("accounts", "show", "prod")
    assert shown["id"] == "111122223333"
    assert shown["kind"] == "local"
    assert shown["tags"] == {"env": "prod", "team": "core"}
    assert shown["ou_path"] == "/Root/Workloads"
    assert shown["access"] == []
    assert "/Root/Workloads" in cli("accounts", "show", "111122223333").stdout

    cli(
        "accounts",
        "update",
        "prod",
        "--suspend",
        "--tag",
        "env=production",
        "--remove-tag",
        "team",
        "--ou",
        "",
    )
    shown = cli.json("accounts", "show", "111122223333")
    assert shown["status"] == "SUSPENDED"
    assert shown["tags"] == {"env": "production"}
    assert shown["ou_path"] is None
    cli("accounts", "update", "prod", "--activate", "--name", "production")
    assert cli.json("accounts", "show", "111122223333")["status"] == "ACTIVE"

    cli("accounts", "delete", "production", "--yes")
    assert [a["name"] for a in cli.json("accounts", "list")] == ["sandbox"]


def test_invalid_account_lists_every_problem(cli: Cli) -> None:
    result = cli("accounts", "create", "x", "--email", "nope", "--id", "123", code=1)
    assert "id: account id must be 12 digits, got '123'" in result.stderr
    assert "email: 'nope' is not an email address" in result.stderr
    assert cli("accounts", "create", "x", "--email", "a@b.c", "--kind", "gcp", code=2).exit_code == 2
    assert cli("accounts", "create", "x", "--email", "a@b.c", "--tag", "novalue", code=2).exit_code == 2


# ---- permission sets ---------------------------------------------------------------------------

POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
}
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
BILLING = "arn:aws:iam::aws:policy/job-function/Billing"


def test_permission_set_lifecycle(cli: Cli, tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps(POLICY))
    cli(
        "permission-sets", "create", "Developer", "--description", "Builds things",
        "--session-duration", "PT4H", "--managed-policy", READ_ONLY,
        "--customer-managed-policy", "team-boundary:/teams/",
        "--inline-policy-file", str(policy_file), "--boundary-managed-policy", READ_ONLY, "--tag", "cost=dev",
    )  # fmt: skip
    [listed] = cli.json("permission-sets", "list")
    assert listed["name"] == "Developer"
    assert listed["arn"].startswith("arn:aws:sso:::permissionSet/ssoins-")
    shown = cli.json("permission-sets", "show", "developer")
    assert shown["session_duration"] == "PT4H"
    assert shown["managed_policy_arns"] == [READ_ONLY]
    assert shown["customer_managed_policies"] == [{"Name": "team-boundary", "Path": "/teams/"}]
    assert json.loads(shown["inline_policy"]) == POLICY
    assert shown["permissions_boundary"] == {"ManagedPolicyArn": READ_ONLY}
    assert shown["tags"] == {"cost": "dev"}
    table = cli("permission-sets", "show", listed["id"]).stdout
    assert '  "Statement": [' in table  # pretty-printed inline policy
    assert cli.json("permission-sets", "show", listed["arn"])["id"] == listed["id"]

    cli(
        "permission-sets", "update", "Developer", "--session-duration", "PT8H",
        "--detach-managed-policy", READ_ONLY, "--managed-policy", BILLING,
        "--clear-inline-policy", "--clear-boundary", "--description", "",
    )  # fmt: skip
    shown = cli.json("permission-sets", "show", "Developer")
    assert shown["session_duration"] == "PT8H"
    assert shown["managed_policy_arns"] == [BILLING]
    assert shown["customer_managed_policies"] == [{"Name": "team-boundary", "Path": "/teams/"}]
    assert shown["inline_policy"] is None
    assert shown["permissions_boundary"] is None
    assert shown["description"] is None
    cli("permission-sets", "update", "Developer", "--boundary-customer-managed-policy", "limits")
    assert cli.json("permission-sets", "show", "Developer")["permissions_boundary"] == {
        "CustomerManagedPolicyReference": {"Name": "limits", "Path": "/"}
    }
    assert "No changes" in cli("permission-sets", "update", "Developer", "--session-duration", "PT8H").stdout
    refused = cli("permission-sets", "update", "Developer", "--detach-managed-policy", READ_ONLY, code=1)
    assert "is not attached" in refused.stderr

    cli("permission-sets", "delete", "Developer", "--yes")
    assert cli.json("permission-sets", "list") == []


def test_permission_set_validation(cli: Cli, tmp_path: Path) -> None:
    result = cli("permission-sets", "create", "Long", "--session-duration", "PT13H", code=1)
    assert "session_duration" in result.stderr
    assert "between PT1H and PT12H" in result.stderr

    bad = {"Version": "2012-10-17", "Statement": [{"Effect": "Maybe", "Action": "s3:*", "Resource": "*"}]}
    policy_file = tmp_path / "bad.json"
    policy_file.write_text(json.dumps(bad))
    result = cli(
        "permission-sets", "create", "Bad", "--inline-policy-file", str(policy_file),
        "--managed-policy", "not-an-arn", code=1,
    )  # fmt: skip
    assert 'inline_policy.Statement[0].Effect: Effect must be "Allow" or "Deny"' in result.stderr
    assert "managed_policies[0]" in result.stderr
    assert cli.json("permission-sets", "list") == []

    cli("permission-sets", "create", "Good")
    result = cli("permission-sets", "update", "Good", "--inline-policy-file", "-", stdin="{nope", code=1)
    assert "inline_policy: invalid JSON at line 1" in result.stderr
    both = cli(
        "permission-sets", "create", "Two", "--boundary-managed-policy", READ_ONLY,
        "--boundary-customer-managed-policy", "x", code=1,
    )  # fmt: skip
    assert "not both" in both.stderr


# ---- assignments and effective access ----------------------------------------------------------


def test_assignments_and_access(cli: Cli) -> None:
    for name in ("alice", "bob"):
        cli("users", "create", name, "--no-password")
    cli("groups", "create", "devs")
    cli("groups", "add-member", "devs", "alice", "bob")
    cli("accounts", "create", "prod", "--email", "prod@example.com", "--id", "111122223333")
    cli("accounts", "create", "dev", "--email", "dev@example.com", "--id", "444455556666")
    cli("permission-sets", "create", "Admin", "--session-duration", "PT2H")
    cli("permission-sets", "create", "ReadOnly")

    cli("assignments", "create", "--account", "prod", "--permission-set", "Admin", "--user", "alice")
    cli("assignments", "create", "--account", "111122223333", "--permission-set", "Admin", "--group", "devs")
    cli("assignments", "create", "--account", "dev", "--permission-set", "readonly", "--group", "devs")
    assert (
        "already exists"
        in cli(
            "assignments",
            "create",
            "--account",
            "prod",
            "--permission-set",
            "Admin",
            "--user",
            "alice",
            code=1,
        ).stderr
    )
    no_principal = cli("assignments", "create", "--account", "prod", "--permission-set", "Admin", code=1)
    assert "Give --user or --group" in no_principal.stderr
    assert (
        "not both"
        in cli(
            "assignments",
            "create",
            "--account",
            "prod",
            "--permission-set",
            "Admin",
            "--user",
            "a",
            "--group",
            "b",
            code=1,
        ).stderr
    )

    rows = cli.json("assignments", "list")
    named = {
        (r["account_name"], r["permission_set_name"], r["principal_type"], r["principal_name"]) for r in rows
    }
    assert named == {
        ("prod", "Admin", "USER", "alice"),
        ("prod", "Admin", "GROUP", "devs"),
        ("dev", "ReadOnly", "GROUP", "devs"),
    }
    assert len(cli.json("assignments", "list", "--group", "devs")) == 2
    assert [r["account_name"] for r in cli.json("assignments", "list", "--user", "alice")] == ["prod"]
    assert len(cli.json("assignments", "list", "--account", "dev", "--permission-set", "ReadOnly")) == 1
    table = cli("assignments", "list", "--account", "prod").stdout
    assert "alice" in table
    assert "devs" in table

    alice = {(e["account_name"], e["permission_set_name"]): e for e in cli.json("access", "user", "alice")}
    assert set(alice) == {("prod", "Admin"), ("dev", "ReadOnly")}
    assert alice[("prod", "Admin")]["via"] == "direct, group:devs"
    assert alice[("prod", "Admin")]["session_duration"] == "PT2H"
    assert alice[("dev", "ReadOnly")]["via"] == "group:devs"
    assert "direct, group:devs" in cli("access", "user", "alice").stdout

    prod = {
        (a["user_name"], a["permission_set_name"]): a["via"] for a in cli.json("access", "account", "prod")
    }
    assert prod == {("alice", "Admin"): "direct, group:devs", ("bob", "Admin"): "group:devs"}
    assert [a["user_name"] for a in cli.json("accounts", "show", "prod")["access"]] == ["alice", "bob"]

    # a permission set in use cannot be deleted
    assert "remove them first" in cli("permission-sets", "delete", "ReadOnly", "--yes", code=1).stderr

    cli("assignments", "delete", "--account", "prod", "--permission-set", "Admin", "--group", "devs")
    prod = {
        (a["user_name"], a["permission_set_name"]): a["via"] for a in cli.json("access", "account", "prod")
    }
    assert prod == {("alice", "Admin"): "direct"}
    missing = cli(
        "assignments", "delete", "--account", "prod", "--permission-set", "Admin", "--group", "devs", code=1
    )
    assert "group devs has no assignment of Admin in prod" in missing.stderr
    cli("groups", "remove-member", "devs", "bob")
    assert cli.json("access", "user", "bob") == []
    assert "No access of bob" in cli("access", "user", "bob").stdout


# ---- audit -------------------------------------------------------------------------------------


def test_audit_list_shows_the_changes(cli: Cli) -> None:
    cli("users", "create", "dana", "--no-password")
    cli("groups", "create", "ops")
    cli("users", "disable", "dana")
    records = cli.json("audit", "list")
    names = [r["event_name"] for r in records]
    assert names[:3] == ["DisableUser", "CreateGroup", "CreateUser"]  # newest first
    assert names[-1] == "CreateInstance"
    newest = records[0]
    assert newest["actor_type"] == "LocalOperator"
    assert newest["request_parameters"] == {"UserName": "dana"}

    assert [r["event_name"] for r in cli.json("audit", "list", "--event", "CreateUser")] == ["CreateUser"]
    assert len(cli.json("audit", "list", "--limit", "2")) == 2
    operator = Actor.local_operator()
    by_operator = cli.json("audit", "list", "--actor", str(operator.name))
    assert {r["event_name"] for r in by_operator} == {"CreateUser", "CreateGroup", "DisableUser"}
    assert len(cli.json("audit", "list", "--actor", str(operator.id))) == 3
    assert len(cli.json("audit", "list", "--since", "1h", "--actor", str(operator.id))) == 3
    assert cli.json("audit", "list", "--since", "2999-01-01T00:00:00") == []
    assert "DisableUser" in cli("audit", "list").stdout
    assert "relative time" in cli("audit", "list", "--since", "yesterday", code=1).stderr


# ---- settings ----------------------------------------------------------------------------------


def test_settings(cli: Cli) -> None:
    shown = cli.json("settings", "show")
    assert shown["portal_session_minutes"] == 480
    assert shown["mfa_policy"] == "required"
    assert shown["device_grant_enabled"] is True
    assert shown["arn"].startswith("arn:aws:sso:::instance/ssoins-")

    cli("settings", "set", "--portal-session-minutes", "60", "--mfa-policy", "optional", "--no-device-grant")
    cli("settings", "set", "--name", "Acme")
    shown = cli.json("settings", "show")
    assert shown["portal_session_minutes"] == 60
    assert shown["mfa_policy"] == "optional"
    assert shown["device_grant_enabled"] is False
    assert shown["name"] == "Acme"
    assert "Acme" in cli("settings", "show").stdout

    for minutes in ("14", "129601"):
        refused = cli("settings", "set", "--portal-session-minutes", minutes, code=1)
        assert "15 minutes to 90 days" in refused.stderr
    cli("settings", "set", "--portal-session-minutes", "129600")
    assert cli.json("settings", "show")["portal_session_minutes"] == 129600
    cli("settings", "set", "--mfa-policy", "sometimes", code=2)
    events = [r["event_name"] for r in cli.json("audit", "list", "--event", "UpdateInstanceSettings")]
    assert len(events) == 3


def test_settings_without_instance(database_url: str) -> None:
    assert "keyhall init" in Cli(database_url)("settings", "show", code=1).stderr


# ---- help --------------------------------------------------------------------------------------


def test_every_admin_command_and_option_has_help() -> None:
    root = get_command(cli_app())
    for group_name in MY_GROUPS:
        group = root.commands[group_name]  # type: ignore[attr-defined]
        assert group.help, group_name
        for name, command in group.commands.items():
            assert command.help, f"{group_name} {name}"
            for param in command.params:
                assert getattr(param, "help", None), f"{group_name} {name} {param.name}"
        assert CliRunner().invoke(cli_app(), [group_name, "--help"]).exit_code == 0
