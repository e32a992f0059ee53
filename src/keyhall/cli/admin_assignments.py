"""`keyhall assignments`: who (a user or a group) gets which permission set in which account."""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy import Connection

from keyhall.access.models import Assignment
from keyhall.cli.context import fail, fail_with, state
from keyhall.cli.output import print_json, print_table
from keyhall.container import Container
from keyhall.errors import KeyhallError, NotFoundError

app = typer.Typer(
    help="Account assignments: who gets which permission set where.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

_ACCOUNT = typer.Option(..., "--account", metavar="ACCOUNT", help="Account id or name.", show_default=False)
_PS = typer.Option(
    ...,
    "--permission-set",
    metavar="PERMISSION_SET",
    help="Permission set name, id or ARN.",
    show_default=False,
)
_USER = typer.Option(None, "--user", metavar="USER", help="User name or id (the principal).")
_GROUP = typer.Option(None, "--group", metavar="GROUP", help="Group name or id (the principal).")


def _check_one_principal(user: str | None, group: str | None) -> None:
    if user is not None and group is not None:
        fail("Give --user or --group, not both")


def _principal(c: Container, conn: Connection, user: str | None, group: str | None) -> tuple[str, str, str]:
    """(type, id, name) of the one principal given."""
    if user is not None:
        found = c.directory.resolve_user(conn, user)
        return "USER", found.id, found.user_name
    found_group = c.directory.resolve_group(conn, str(group))
    return "GROUP", found_group.id, found_group.display_name


@app.command("create")
def create(
    ctx: typer.Context,
    *,
    account: str = _ACCOUNT,
    permission_set: str = _PS,
    user: str | None = _USER,
    group: str | None = _GROUP,
) -> None:
    """Assign a permission set in an account to a user or a group."""
    _check_one_principal(user, group)
    if user is None and group is None:
        fail("Give --user or --group")
    st = state(ctx)
    c = st.container()
    try:
        with c.db.write() as conn:
            principal_type, principal_id, principal_name = _principal(c, conn, user, group)
            found = c.access.resolve_account(conn, account)
            ps = c.access.resolve_permission_set(conn, permission_set)
            c.access.create_assignment(conn, st.actor, found.id, ps.id, principal_type, principal_id)
    except KeyhallError as exc:
        fail_with(exc)
    typer.echo(
        f"Assigned {ps.name} in {found.name} ({found.id}) to {principal_type.lower()} {principal_name}."
    )


@app.command("delete")
def delete(
    ctx: typer.Context,
    *,
    account: str = _ACCOUNT,
    permission_set: str = _PS,
    user: str | None = _USER,
    group: str | None = _GROUP,
) -> None:
    """Remove an assignment; the principal loses that access at once."""
    _check_one_principal(user, group)
    if user is None and group is None:
        fail("Give --user or --group")
    st = state(ctx)
    c = st.container()
    try:
        with c.db.write() as conn:
            principal_type, principal_id, principal_name = _principal(c, conn, user, group)
            found = c.access.resolve_account(conn, account)
            ps = c.access.resolve_permission_set(conn, permission_set)
            c.access.delete_assignment(conn, st.actor, found.id, ps.id, principal_type, principal_id)
    except NotFoundError as exc:
        if exc.resource_type == "ACCOUNT_ASSIGNMENT":
            fail(f"{principal_type.lower()} {principal_name} has no assignment of {ps.name} in {found.name}")
        fail_with(exc)
    except KeyhallError as exc:
        fail_with(exc)
    typer.echo(
        f"Removed {ps.name} in {found.name} ({found.id}) from {principal_type.lower()} {principal_name}."
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    *,
    account: str | None = typer.Option(
        None, "--account", metavar="ACCOUNT", help="Only assignments in this account."
    ),
    permission_set: str | None = typer.Option(
        None, "--permission-set", metavar="PERMISSION_SET", help="Only this permission set."
    ),
    user: str | None = typer.Option(
        None, "--user", metavar="USER", help="Only assignments made to this user directly."
    ),
    group: str | None = typer.Option(
        None, "--group", metavar="GROUP", help="Only assignments made to this group."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print JSON to stdout instead of a table."),
) -> None:
    """List assignments with account, permission set and principal names."""
    _check_one_principal(user, group)
    c = state(ctx).container()
    try:
        with c.db.read() as conn:
            principal_type, principal_id = None, None
            if user is not None or group is not None:
                principal_type, principal_id, _ = _principal(c, conn, user, group)
            found = c.access.list_assignments(
                conn,
                account_id=c.access.resolve_account(conn, account).id if account else None,
                ps_id=c.access.resolve_permission_set(conn, permission_set).id if permission_set else None,
                principal_type=principal_type,
                principal_id=principal_id,
            )
            rows = _named(c, conn, found)
    except KeyhallError as exc:
        fail_with(exc)
    if json_output:
        print_json(rows)
        return
    print_table(
        "Assignments",
        ["Account", "Account id", "Permission set", "Principal type", "Principal"],
        (
            (
                r["account_name"],
                r["account_id"],
                r["permission_set_name"],
                r["principal_type"],
                r["principal_name"],
            )
            for r in rows
        ),
    )


def _named(c: Container, conn: Connection, assignments: list[Assignment]) -> list[dict[str, Any]]:
    accounts = {a.id: a.name for a in c.access.all_accounts(conn)}
    sets = {p.id: p.name for p in c.access.all_permission_sets(conn)}
    names: dict[tuple[str, str], str | None] = {}
    for a in assignments:
        key = (a.principal_type, a.principal_id)
        if key not in names:
            names[key] = _principal_name(c, conn, *key)
    return [
        {
            "id": a.id,
            "account_id": a.account_id,
            "account_name": accounts.get(a.account_id),
            "permission_set_id": a.permission_set_id,
            "permission_set_name": sets.get(a.permission_set_id),
            "principal_type": a.principal_type,
            "principal_id": a.principal_id,
            "principal_name": names[(a.principal_type, a.principal_id)],
            "managed": a.managed,
            "created_at": a.created_at,
        }
        for a in assignments
    ]


def _principal_name(c: Container, conn: Connection, principal_type: str, principal_id: str) -> str | None:
    try:
        if principal_type == "USER":
            return c.directory.get_user(conn, principal_id).user_name
        return c.directory.get_group(conn, principal_id).display_name
    except NotFoundError:
        return None
