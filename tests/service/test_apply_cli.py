"""`keyhall apply` through the command line, on SQLite and PostgreSQL: output, exit codes, JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import pytest
import typer
from typer.testing import CliRunner, Result

from keyhall.cli import apply_cmd

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "keyhall.example.yaml"
_APP: list[typer.Typer] = []


def keyhall_app() -> typer.Typer:
    """The real `keyhall` app; if the other command modules cannot be imported, a tiny one with `apply`."""
    if not _APP:
        from keyhall.cli import main

        try:
            main._register()
            _APP.append(main.app)
        except ImportError:
            app = typer.Typer(pretty_exceptions_enable=False)
            app.callback()(main._root)
            apply_cmd.register(app)
            _APP.append(app)
    return _APP[0]


class Invoke(Protocol):
    def __call__(self, *args: str, stdin: str | None = None) -> Result: ...


@pytest.fixture
def run(database_url: str) -> Invoke:
    """Runs `keyhall --database-url URL ARGS…` in-process."""
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(keyhall_app(), ["--database-url", database_url, *args], input=stdin)

    return invoke


@pytest.fixture
def org(tmp_path: Path) -> Path:
    path = tmp_path / "org.yaml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    return path


def test_plan_shows_the_changes_and_changes_nothing(run: Invoke, org: Path) -> None:
    result = run("apply", "--plan", str(org))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "+ create account 123456789012 (Management)"
    assert "+ create permission set Developer" in lines
    assert "+ create membership bob in Developers" in lines
    assert "+ create assignment ReadOnly on 111122223333 (Production) for group Developers" in lines
    assert lines[-1] == "Plan: 30 to create, 0 to update, 0 to delete."
    assert "\x1b[" not in result.stdout  # no colours when not a terminal
    # still nothing to show: a second plan is the same
    assert run("apply", "--plan", str(org)).stdout == result.stdout


def test_apply_then_nothing_to_do(run: Invoke, org: Path) -> None:
    first = run("apply", str(org))
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines()[-3:] == [
        "",
        "Plan: 30 to create, 0 to update, 0 to delete.",
        "Applied 30 changes.",
    ]
    second = run("apply", str(org))
    assert second.exit_code == 0
    assert second.stdout == "No changes.\n"
    assert run("apply", "--plan", str(org)).stdout == "No changes.\n"


def test_detailed_exitcode(run: Invoke, org: Path) -> None:
    assert run("apply", "--plan", "--detailed-exitcode", str(org)).exit_code == 2
    assert run("apply", "--yes", str(org)).exit_code == 0
    assert run("apply", "--plan", "--detailed-exitcode", str(org)).exit_code == 0
    misuse = run("apply", "--detailed-exitcode", str(org))
    assert misuse.exit_code == 2 and "only goes with --plan" in misuse.output


def test_updates_are_shown_field_by_field(run: Invoke, org: Path) -> None:
    assert run("apply", str(org)).exit_code == 0
    text = org.read_text(encoding="utf-8")
    text = text.replace("session_duration: PT2H", "session_duration: PT4H")
    text = text.replace("            - support:*\n", "")
    text = text.replace(
        "    email: bob@example.com\n", "    email: bob@builders.example.com\n    admin: true\n"
    )
    org.write_text(text, encoding="utf-8")
    result = run("apply", str(org))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "~ update permission set ReadOnly: session_duration PT2H -> PT4H",
        "~ update permission set Developer",
        "    inline_policy:",
        '               "iam:*",',
        '      -        "sts:*",',
        '      -        "support:*"',
        '      +        "sts:*"',
        "             ],",
        "~ update user bob: email bob@example.com -> bob@builders.example.com, admin false -> true",
        "",
        "Plan: 0 to create, 3 to update, 0 to delete.",
        "Applied 3 changes.",
    ]


def test_json_plan_and_result(run: Invoke, org: Path) -> None:
    plan = json.loads(run("apply", "--plan", "--json", str(org)).stdout)
    assert plan["summary"] == {"create": 30, "update": 0, "delete": 0}
    assert "applied" not in plan
    assert plan["changes"][0] == {
        "action": "create",
        "adopt": False,
        "type": "account",
        "key": ["123456789012"],
        "resource": "123456789012 (Management)",
        "changes": [],
    }
    result = json.loads(run("apply", "--json", str(org)).stdout)
    assert result["applied"] == 30 and result["changes"] == plan["changes"]
    again = json.loads(run("apply", "--json", str(org)).stdout)
    assert again == {"changes": [], "summary": {"create": 0, "update": 0, "delete": 0}, "applied": 0}


def test_an_invalid_file_prints_every_problem_and_changes_nothing(run: Invoke, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "accounts:\n  - id: 1234\n    name: X\n    email: x@example.com\n"
        "groups:\n  - name: Devs\n    members: [ghost]\n",
        encoding="utf-8",
    )
    result = run("apply", str(bad))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f'{bad}:2:9: accounts[0].id: account id must be 12 digits, got 1234; quote it: "012345678901"',
        f"{bad}:7:15: groups[0].members[0]: unknown user 'ghost': declare it under users: or create it first",
        "Error: 2 problems in the file; nothing was changed.",
    ]
    as_json = run("apply", "--plan", "--json", str(bad))
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["errors"][0] == {
        "file": str(bad),
        "line": 2,
        "column": 9,
        "message": 'accounts[0].id: account id must be 12 digits, got 1234; quote it: "012345678901"',
    }
    assert run("apply", "--plan", str(bad.with_name("missing.yaml"))).exit_code == 1


def test_reads_standard_input(run: Invoke) -> None:
    result = run("apply", "--plan", "-", stdin="groups:\n  - name: Devs\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "+ create group Devs"
    bad = run("apply", "-", stdin="groups: {}\n")
    assert bad.stderr.startswith("-:1:9: groups: expected a list")
