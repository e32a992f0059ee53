"""`keyhall groups`: groups of the built-in directory and their members.

Adding or removing several members is one transaction: either every change (and its audit record) is
made, or none is.
"""

from __future__ import annotations

from typing import Any

import typer

from keyhall.cli.context import fail, fail_with, state
from keyhall.cli.output import print_fields, print_json, print_table, to_jsonable, when
from keyhall.directory.models import User
from keyhall.errors import KeyhallError

app = typer.Typer(help="Groups and their members.", no_args_is_help=True, rich_markup_mode=None)

_GROUP_ARG = typer.Argument(..., help="Group name or group id.", metavar="GROUP", show_default=False)
_USERS_ARG = typer.Argument(..., help="User names or user ids.", metavar="USER...", show_default=False)
_JSON = typer.Option(False, "--json", help="Print JSON to stdout instead of a table.")


def _member_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "user_name": user.user_name,
        "display_name": user.display_name,
        "status": user.status,
    }


def _print_members(title: str, members: list[User]) -> None:
    print_table(
        title,
        ["User name", "Display name", "Status", "Id"],
        ((u.user_name, u.display_name, u.status, u.id) for u in members),
    )


@app.command("create")
def create(
    ctx: typer.Context,
    *,
    name: str = typer.Argument(
        ..., help="Group name (unique, case-insensitive).", metavar="NAME", show_default=False
    ),
    description: str | None = typer.Option(
        None, "--description", metavar="TEXT", help="What the group is for."
    ),
) -> None:
    """Create a group."""
    st = state(ctx)
    c = st.container()
    try:
        with c.db.write() as conn:
            group = c.directory.create_group(conn, st.actor, name, description)
    except KeyhallError as exc:
        fail_with(exc)
    typer.echo(f"Created group {group.display_name} ({group.id}).")


@app.command("list")
def list_(ctx: typer.Context, json_output: bool = _JSON) -> None:
    """List all groups with their member counts."""
    c = state(ctx).container()
    with c.db.read() as conn:
        groups = c.directory.all_groups(conn)
    if json_output:
        print_json(groups)
        return
    print_table(
        "Groups",
        ["Name", "Members", "Description", "Id"],
        ((g.display_name, g.member_count, g.description, g.id) for g in groups),
    )


@app.command("show")
def show(ctx: typer.Context, group: str = _GROUP_ARG, json_output: bool = _JSON) -> None:
    """Show a group and its members."""
    c = state(ctx).container()
    try:
        with c.db.read() as conn:
            found = c.directory.resolve_group(conn, group)
            members = c.directory.members(conn, found.id)
    except KeyhallError as exc:
        fail_with(exc)
    if json_output:
        data: dict[str, Any] = to_jsonable(found)
        data.update(member_count=len(members), members=[_member_json(u) for u in members])
        print_json(data)
        return
    print_fields(
        f"Group {found.display_name}",
        [
            ("Id", found.id),
            ("Name", found.display_name),
            ("Description", found.description),
            ("Members", len(members)),
            ("Managed by apply", "yes" if found.managed else "no"),
            ("Created", when(found.created_at)),
            ("Updated", when(found.updated_at)),
        ],
    )
    _print_members("Members", members)


@app.command("update")
def update(
    ctx: typer.Context,
    *,
    group: str = _GROUP_ARG,
    name: str | None = typer.Option(None, "--name", metavar="NAME", help="New group name."),
    description: str | None = typer.Option(
        None, "--description", metavar="TEXT", help='New description ("" clears it).'
    ),
) -> None:
    """Rename a group or change its description."""
    if name is None and description is None:
        fail("Nothing to change: give --name or --description")
    st = state(ctx)
    c = st.container()
    try:
        with c.db.write() as conn:
            found = c.directory.resolve_group(conn, group)
            updated = c.directory.update_group(
                conn, st.actor, found.id, display_name=name, description=description
            )
    except KeyhallError as exc:
        fail_with(exc)
    typer.echo(f"Updated group {updated.display_name}.")


@app.command("delete")
def delete(
    ctx: typer.Context,
    *,
    group: str = _GROUP_ARG,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a group, its memberships and its account assignments (the users stay)."""
    st = state(ctx)
    c = st.container()
    try:
        with c.db.read() as conn:
            found = c.directory.resolve_group(conn, group)
    except KeyhallError as exc:
        fail_with(exc)
    if not yes:
        typer.confirm(f"Delete group {found.display_name} ({found.id})?", abort=True)
    try:
        with c.db.write() as conn:
            c.directory.delete_group(conn, st.actor, found.id)
    except KeyhallError as exc:
        fail_with(exc)
    typer.echo(f"Deleted group {found.display_name}.")


@app.command("add-member")
def add_member(ctx: typer.Context, group: str = _GROUP_ARG, users: list[str] = _USERS_ARG) -> None:
    """Add users to a group (all or none)."""
    st = state(ctx)
    c = st.container()
    try:
        with c.db.write() as conn:
            found = c.directory.resolve_group(conn, group)
            for name in users:
                c.directory.add_member(conn, st.actor, found.id, c.directory.resolve_user(conn, name).id)
    except KeyhallError as exc:
        fail_with(exc)
    typer.echo(f"Added {len(users)} member(s) to {found.display_name}.")


@app.command("remove-member")
def remove_member(ctx: typer.Context, group: str = _GROUP_ARG, users: list[str] = _USERS_ARG) -> None:
    """Remove users from a group (all or none)."""
    st = state(ctx)
    c = st.container()
    try:
        with c.db.write() as conn:
            found = c.directory.resolve_group(conn, group)
            for name in users:
                c.directory.remove_member(conn, st.actor, found.id, c.directory.resolve_user(conn, name).id)
    except KeyhallError as exc:
        fail_with(exc)
    typer.echo(f"Removed {len(users)} member(s) from {found.display_name}.")


@app.command("members")
def members(ctx: typer.Context, group: str = _GROUP_ARG, json_output: bool = _JSON) -> None:
    """List the members of a group."""
    c = state(ctx).container()
    try:
        with c.db.read() as conn:
            found = c.directory.resolve_group(conn, group)
            users = c.directory.members(conn, found.id)
    except KeyhallError as exc:
        fail_with(exc)
    if json_output:
        print_json([_member_json(u) for u in users])
        return
    _print_members(f"Members of {found.display_name}", users)
