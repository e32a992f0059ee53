"""`keyhall users`: users of the built-in directory, changed directly in the server's database.

A password typed by the operator is read from stdin, never from an option, so it stays out of shell history
and process listings. A generated one-time password is printed once and must be changed at first sign-in.
"""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy import Connection, func, select

from keyhall.cli.context import fail, fail_with, state
from keyhall.cli.output import print_fields, print_json, print_table, to_jsonable, when
from keyhall.db.tables import totp_devices
from keyhall.directory.models import User, UserSpec, check_user_spec
from keyhall.errors import KeyhallError, Problem, ValidationError
from keyhall.signin.passwords import check_password, generate_password

app = typer.Typer(help="Users of the built-in directory.", no_args_is_help=True, rich_markup_mode=None)

_USER_ARG = typer.Argument(..., help="User name or user id.", metavar="USER", show_default=False)
_JSON = typer.Option(False, "--json", help="Print JSON to stdout instead of a table.")
_YES = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")
_PASSWORD_STDIN = typer.Option(
    False,
    "--password-stdin",
    help="Read the password from stdin (prompted, hidden, when stdin is a terminal).",
)
_MUST_CHANGE = typer.Option(
    None,
    "--must-change/--no-must-change",
    help="Whether the user must change the password at next sign-in "
    "(default: yes for a generated password, no for one read from stdin).",
    show_default=False,
)


def _read_password(user_name: str, display_name: str | None) -> tuple[str, list[Problem]]:
    stdin = typer.get_text_stream("stdin")
    if stdin.isatty():
        password = str(typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True))
    else:
        # kept exactly as given (ASVS 6.2.8) except the line ending that `echo` or a here-string adds
        password = stdin.read().removesuffix("\n").removesuffix("\r")
    problems = check_password(password, user_name=user_name, display_name=display_name)
    return password, [Problem("password", p) for p in problems]


def _print_one_time_password(user_name: str, password: str, *, must_change: bool) -> None:
    then = "; it must be changed at first sign-in" if must_change else ""
    typer.echo(f"One-time password for {user_name} (shown only now{then}):")
    typer.echo(f"  {password}")


def _mfa_devices(conn: Connection, user_id: str) -> int:
    query = (
        select(func.count())
        .select_from(totp_devices)
        .where(totp_devices.c.user_id == user_id, totp_devices.c.confirmed.is_(True))
    )
    return int(conn.execute(query).scalar_one())


def _user_json(user: User) -> dict[str, Any]:
    data: dict[str, Any] = to_jsonable(user)
    data.update(email=user.primary_email, given_name=user.given_name, family_name=user.family_name)
    return data


@app.command("create")
def create(
    ctx: typer.Context,
    *,
    user_name: str = typer.Argument(
        ..., help="Sign-in name (unique, case-insensitive).", metavar="USER_NAME", show_default=False
    ),
    display_name: str | None = typer.Option(
        None, "--display-name", metavar="TEXT", help="Name shown in the portal."
    ),
    given_name: str | None = typer.Option(None, "--given-name", metavar="TEXT", help="Given (first) name."),
    family_name: str | None = typer.Option(None, "--family-name", metavar="TEXT", help="Family (last) name."),
    email: str | None = typer.Option(None, "--email", metavar="EMAIL", help="Primary email address."),
    admin: bool = typer.Option(False, "--admin", help="Make the user a Keyhall administrator."),
    disabled: bool = typer.Option(False, "--disabled", help="Create the user disabled (cannot sign in)."),
    password_stdin: bool = _PASSWORD_STDIN,
    no_password: bool = typer.Option(
        False, "--no-password", help="Create the user without a password (set one later with reset-password)."
    ),
    must_change: bool | None = _MUST_CHANGE,
) -> None:
    """Create a user; by default with a generated one-time password, printed once."""
    if password_stdin and no_password:
        fail("--password-stdin and --no-password cannot be used together")
    st = state(ctx)
    spec = UserSpec(
        user_name,
        display_name=display_name,
        given_name=given_name,
        family_name=family_name,
        email=email,
        status="DISABLED" if disabled else "ENABLED",
        is_admin=admin,
    )
    problems = check_user_spec(spec)
    password: str | None = None
    generated = not (password_stdin or no_password)
    if password_stdin:
        password, password_problems = _read_password(user_name, display_name)
        problems += password_problems
    elif generated:
        password = generate_password()
    if problems:
        fail_with(ValidationError.from_problems(problems))
    c = st.container()
    password_hash = c.hasher.hash(password) if password is not None else None
    try:
        with c.db.write() as conn:
            user = c.directory.create_user(
                conn,
                st.actor,
                spec,
                password_hash=password_hash,
                must_change_password=generated if must_change is None else must_change,
            )
    except KeyhallError as exc:
        fail_with(exc)
    typer.echo(f"Created user {user.user_name} ({user.id}).")
    if generated and password is not None:
        _print_one_time_password(user.user_name, password, must_change=user.must_change_password)


@app.command("list")
def list_(ctx: typer.Context, json_output: bool = _JSON) -> None:
    """List all users."""
    c = state(ctx).container()
    with c.db.read() as conn:
        users = c.directory.all_users(conn)
    if json_output:
        print_json([_user_json(u) for u in users])
        return
    print_table(
        "Users",
        ["User name", "Display name", "Email", "Status", "Admin", "Id"],
        (
            (u.user_name, u.display_name, u.primary_email, u.status, "yes" if u.is_admin else "no", u.id)
            for u in users
        ),
    )


@app.command("show")
def show(ctx: typer.Context, user: str = _USER_ARG, json_output: bool = _JSON) -> None:
    """Show a user: attributes, groups, status, password state, confirmed MFA devices."""
    c = state(ctx).container()
    try:
        with c.db.read() as conn:
            found = c.directory.resolve_user(conn, user)
            groups = c.directory.groups_of(conn, found.id)
            mfa = _mfa_devices(conn, found.id)
    except KeyhallError as exc:
        fail_with(exc)
    if json_output:
        data = _user_json(found)
        data.update(groups=[{"id": g.id, "display_name": g.display_name} for g in groups], mfa_devices=mfa)
        print_json(data)
        return
    print_fields(
        f"User {found.user_name}",
        [
            ("Id", found.id),
            ("User name", found.user_name),
            ("Display name", found.display_name),
            ("Given name", found.given_name),
            ("Family name", found.family_name),
            ("Email", found.primary_email),
            ("Status", found.status),
            ("Admin", "yes" if found.is_admin else "no"),
            ("Source", found.source),
            ("Password", _password_state(found)),
            ("MFA devices", mfa),
            ("Groups", ", ".join(g.display_name for g in groups)),
            ("Managed by apply", "yes" if found.managed else "no"),
            ("Created", f"{when(found.created_at)} by {found.created_by or '-'}"),
            ("Updated", f"{when(found.updated_at)} by {found.updated_by or '-'}"),
        ],
    )


def _password_state(user: User) -> str:
    if not user.has_password:
        return "none"
    return "set, must be changed" if user.must_change_password else "set"


@app.command("update")
def update(
    ctx: typer.Context,
    *,
    user: str = _USER_ARG,
    user_name: str | None = typer.Option(None, "--user-name", metavar="USER_NAME", help="New sign-in name."),
    display_name: str | None = typer.Option(None, "--display-name", metavar="TEXT", help="New display name."),
    given_name: str | None = typer.Option(
        None, "--given-name", metavar="TEXT", help="New given (first) name."
    ),
    family_name: str | None = typer.Option(
        None, "--family-name", metavar="TEXT", help="New family (last) name."
    ),
    email: str | None = typer.Option(None, "--email", metavar="EMAIL", help="New primary email address."),
    admin: bool | None = typer.Option(
        None, "--admin/--no-admin", help="Grant or revoke Keyhall administration.", show_default=False
    ),
) -> None:
    """Change a user's names, email or administrator flag."""
    if all(v is None for v in (user_name, display_name, given_name, family_name, email, admin)):
        fail("Nothing to change: give at least one option (see --help)")
    st = state(ctx)
    c = st.container()
    try:
        with c.db.write() as conn:
            found = c.directory.resolve_user(conn, user)
            updated = c.directory.update_user(
                conn,
                st.actor,
                found.id,
                user_name=user_name,
                display_name=display_name,
                given_name=given_name,
                family_name=family_name,
                email=email,
                is_admin=admin,
            )
    except KeyhallError as exc:
        fail_with(exc)
    typer.echo(f"Updated user {updated.user_name}.")


def _set_status(ctx: typer.Context, user: str, status: str) -> None:
    st = state(ctx)
    c = st.container()
    try:
        with c.db.write() as conn:
            found = c.directory.resolve_user(conn, user)
            changed = c.directory.set_status(conn, st.actor, found.id, status)
    except KeyhallError as exc:
        fail_with(exc)
    typer.echo(f"User {changed.user_name} is {changed.status.lower()}.")


@app.command("disable")
def disable(ctx: typer.Context, user: str = _USER_ARG) -> None:
    """Disable a user: they can no longer sign in or get credentials."""
    _set_status(ctx, user, "DISABLED")


@app.command("enable")
def enable(ctx: typer.Context, user: str = _USER_ARG) -> None:
    """Enable a disabled user."""
    _set_status(ctx, user, "ENABLED")


@app.command("reset-password")
def reset_password(
    ctx: typer.Context,
    *,
    user: str = _USER_ARG,
    password_stdin: bool = _PASSWORD_STDIN,
    must_change: bool | None = _MUST_CHANGE,
) -> None:
    """Set a new password; by default a generated one-time password, printed once."""
    st = state(ctx)
    c = st.container()
    try:
        with c.db.read() as conn:
            found = c.directory.resolve_user(conn, user)
    except KeyhallError as exc:
        fail_with(exc)
    if password_stdin:
        password, problems = _read_password(found.user_name, found.display_name)
        if problems:
            fail_with(ValidationError.from_problems(problems))
    else:
        password = generate_password()
    must = (not password_stdin) if must_change is None else must_change
    password_hash = c.hasher.hash(password)
    try:
        with c.db.write() as conn:
            c.directory.set_password_hash(conn, st.actor, found.id, password_hash, must_change=must)
    except KeyhallError as exc:
        fail_with(exc)
    typer.echo(f"Password of {found.user_name} reset.")
    if not password_stdin:
        _print_one_time_password(found.user_name, password, must_change=must)


@app.command("delete")
def delete(ctx: typer.Context, user: str = _USER_ARG, yes: bool = _YES) -> None:
    """Delete a user, their group memberships and their account assignments."""
    st = state(ctx)
    c = st.container()
    try:
        with c.db.read() as conn:
            found = c.directory.resolve_user(conn, user)
    except KeyhallError as exc:
        fail_with(exc)
    if not yes:
        typer.confirm(f"Delete user {found.user_name} ({found.id})?", abort=True)
    try:
        with c.db.write() as conn:
            c.directory.delete_user(conn, st.actor, found.id)
    except KeyhallError as exc:
        fail_with(exc)
    typer.echo(f"Deleted user {found.user_name}.")
