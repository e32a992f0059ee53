"""``keyhall apply FILE``: make the database match a declarative YAML file (docs/apply.md).

The file is the desired state, so there is no prompt: apply prints the plan and makes it; ``--plan`` only
prints it. An invalid file changes nothing and every problem is printed as ``FILE:LINE:COL: message``.
"""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from keyhall.cli.context import fail, state
from keyhall.cli.output import print_json

if TYPE_CHECKING:
    from keyhall.declarative.config import InvalidConfigError
    from keyhall.declarative.plan import Change, FieldDiff, Plan

_SYMBOLS = {"create": "+", "update": "~", "delete": "-"}
_COLOURS = {"+": typer.colors.GREEN, "~": typer.colors.YELLOW, "-": typer.colors.RED}
#: an update whose field changes fit on one line is shown on one line, terraform-like
_ONE_LINE = 100
EXIT_CHANGES = 2


def register(app: typer.Typer) -> None:
    app.command(
        "apply",
        help="Make accounts, permission sets, groups, users and assignments match a YAML file.",
    )(apply_command)


def apply_command(
    ctx: typer.Context,
    file: str = typer.Argument(..., metavar="FILE", help="The YAML file, or - to read standard input."),
    plan_only: bool = typer.Option(False, "--plan", help="Show what would change, and change nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan (and result) as JSON."),
    detailed_exitcode: bool = typer.Option(
        False,
        "--detailed-exitcode",
        help="With --plan: exit 2 when there are changes, 0 when there are none.",
    ),
    _yes: bool = typer.Option(
        False, "--yes", "-y", hidden=True, help="Accepted for scripts; apply never asks."
    ),
) -> None:
    from keyhall.declarative import InvalidConfigError, apply_config, parse_config, plan_config
    from keyhall.errors import KeyhallError

    if detailed_exitcode and not plan_only:
        raise typer.BadParameter("only goes with --plan", param_hint="--detailed-exitcode")
    desired = parse_config(_read(file), source=file)
    st = state(ctx)
    container = st.container()
    ctx.call_on_close(container.db.dispose)
    try:
        plan = plan_config(container, desired)
    except InvalidConfigError as exc:
        _refuse(exc, as_json=as_json)
    except KeyhallError as exc:
        _fail(exc.message)
    if plan_only or not plan.changes:
        _show(plan, as_json=as_json, applied=None if plan_only else 0)
        if detailed_exitcode and plan.changes:
            raise typer.Exit(EXIT_CHANGES)
        return
    if not as_json:
        _print_plan(plan)
    try:
        result = apply_config(container, st.actor, desired, expected=plan)
    except InvalidConfigError as exc:
        _refuse(exc, as_json=as_json)
    except KeyhallError as exc:
        _fail(f"{exc.message.rstrip('.')}. Nothing was changed.")
    if as_json:
        print_json({**result.plan.to_dict(), "applied": result.applied})
    else:
        typer.echo(f"Applied {result.applied} change{'' if result.applied == 1 else 's'}.")


def _read(file: str) -> str:
    if file == "-":
        return sys.stdin.read()
    try:
        return Path(file).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {file}: {exc}")


def _fail(message: str) -> NoReturn:
    fail(message)
    raise typer.Exit(1)  # fail() has exited already; this tells the type checker


def _refuse(exc: InvalidConfigError, *, as_json: bool) -> NoReturn:
    problems = exc.config_problems
    if as_json:
        print_json({"errors": [p.to_dict() for p in problems]})
        raise typer.Exit(1)
    for problem in problems:
        typer.echo(str(problem), err=True)
    count = len(problems)
    typer.secho(
        f"Error: {count} problem{'' if count == 1 else 's'} in the file; nothing was changed.",
        fg=typer.colors.RED,
        err=True,
    )
    raise typer.Exit(1)


def _show(plan: Plan, *, as_json: bool, applied: int | None) -> None:
    if as_json:
        body = plan.to_dict()
        print_json(body if applied is None else {**body, "applied": applied})
    elif plan.changes:
        _print_plan(plan)
    else:
        typer.echo("No changes.")


def _print_plan(plan: Plan) -> None:
    for line in plan_lines(plan):
        stripped = line.lstrip()
        colour = _COLOURS.get(stripped[:1]) if stripped else None
        typer.secho(line, fg=colour)  # click drops the colour when stdout is not a terminal
    typer.echo("")
    typer.echo(plan.summary)


def plan_lines(plan: Plan) -> list[str]:
    """The plan for people: ``+ create …``, ``~ update …: field old -> new``, ``- delete …``."""
    return [line for change in plan.changes for line in _change_lines(change)]


def _change_lines(change: Change) -> list[str]:
    from keyhall.declarative.plan import KIND_NAMES

    head = f"{_SYMBOLS[change.action]} {change.verb} {KIND_NAMES[change.kind]} {change.label}"
    details = [_field_lines(diff) for diff in change.diffs]
    if all(len(d) == 1 for d in details):
        one = f"{head}: {', '.join(d[0] for d in details)}" if details else head
        if len(one) <= _ONE_LINE:
            return [one]
    return [head] + [f"    {line}" for d in details for line in d]


def _field_lines(diff: FieldDiff) -> list[str]:
    if diff.field == "inline_policy" and diff.old is not None and diff.new is not None:
        return [f"{diff.field}:", *_policy_lines(diff.old, diff.new)]
    return [f"{diff.field} {_value(diff.old)} -> {_value(diff.new)}"]


def _policy_lines(old: Any, new: Any) -> list[str]:
    """A line diff of the two policies, pretty-printed, so a one-word change is easy to see."""
    before = json.dumps(old, indent=2, ensure_ascii=False).splitlines()
    after = json.dumps(new, indent=2, ensure_ascii=False).splitlines()
    lines: list[str] = []
    for line in difflib.unified_diff(before, after, lineterm="", n=1):
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            if lines:  # between two hunks: some unchanged lines are left out
                lines.append("  ...")
            continue
        lines.append(f"  {line}")
    return lines


def _value(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value and value.strip() == value else json.dumps(value)
    return json.dumps(value, ensure_ascii=False)
