"""`keyhall accounts`: the AWS accounts people get credentials for (``local`` emulated or real ``aws``)."""

from __future__ import annotations

from typing import Any

import typer

from keyhall.access.models import AccountKind, AccountSpec
from keyhall.cli.admin_access import access_json, via_text
from keyhall.cli.context import fail, fail_with, state
from keyhall.cli.output import print_fields, print_json, print_table, to_jsonable, when
from keyhall.errors import KeyhallError

app = typer.Typer(help="AWS accounts (local or real).", no_args_is_help=True, rich_markup_mode=None)

_ACCOUNT_ARG = typer.Argument(
    ..., help="Account id (12 digits) or account name.", metavar="ACCOUNT", show_default=False
)
_JSON = typer.Option(False, "--json", help="Print JSON to stdout instead of a table.")


def parse_tags(values: list[str] | None) -> dict[str, str]:
    """``key=value`` options into a dict; a malformed one is a usage error."""
    tags: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not key=value", param_hint="--tag")
        tags[key] = value
    return tags


def format_tags(tags: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))


@app.command("create")
def create(
    ctx: typer.Context,
    *,
    name: str = typer.Argument(
        ..., help="Account name (unique, case-insensitive).", metavar="NAME", show_default=False
    ),
    email: str = typer.Option(
        ..., "--email", metavar="EMAIL", help="Account email address (root user email for aws accounts)."
    ),
    account_id: str | None = typer.Option(
        None,
        "--id",
        metavar="ACCOUNT_ID",
        help="12-digit account id (required for aws; random for local when left out).",
    ),
    kind: AccountKind = typer.Option(
        "local", "--kind", help="local: Keyhall's own STS emulates it; aws: a real AWS account."
    ),
    ou: str | None = typer.Option(
        None, "--ou", metavar="PATH", help="Organizational unit path, e.g. /Root/Workloads/Prod."
    ),
    tag: list[str] | None = typer.Option(
        None, "--tag", metavar="KEY=VALUE", help="A tag key=value (repeatable)."
    ),
) -> None:
    """Create an account."""
    st = state(ctx)
    spec = AccountSpec(name=name, email=email, id=account_id, kind=kind, ou_path=ou, tags=parse_tags(tag))
    c = st.container()
    try:
        with c.db.write() as conn:
            account = c.access.create_account(conn, st.actor, spec)
    except KeyhallError as exc:
        fail_with(exc)
    typer.echo(f"Created {account.kind} account {account.name} ({account.id}).")


@app.command("list")
def list_(ctx: typer.Context, json_output: bool = _JSON) -> None:
    """List all accounts."""
    c = state(ctx).container()
    with c.db.read() as conn:
        accounts = c.access.all_accounts(conn)
    if json_output:
        print_json(accounts)
        return
    print_table(
        "Accounts",
        ["Name", "Id", "Kind", "Status", "Email", "OU", "Tags"],
        ((a.name, a.id, a.kind, a.status, a.email, a.ou_path, format_tags(a.tags)) for a in accounts),
    )


@app.command("show")
def show(ctx: typer.Context, account: str = _ACCOUNT_ARG, json_output: bool = _JSON) -> None:
    """Show an account and who can reach it, with which permission set and how."""
    c = state(ctx).container()
    try:
        with c.db.read() as conn:
            found = c.access.resolve_account(conn, account)
            access = c.access.account_access(conn, found.id)
    except KeyhallError as exc:
        fail_with(exc)
    if json_output:
        data: dict[str, Any] = to_jsonable(found)
        data["access"] = [access_json(a) for a in access]
        print_json(data)
        return
    print_fields(
        f"Account {found.name}",
        [
            ("Id", found.id),
            ("Name", found.name),
            ("Email", found.email),
            ("Kind", found.kind),
            ("Status", found.status),
            ("OU", found.ou_path),
            ("Tags", format_tags(found.tags)),
            ("Managed by apply", "yes" if found.managed else "no"),
            ("Created", when(found.created_at)),
            ("Updated", when(found.updated_at)),
        ],
    )
    print_table(
        "Access",
        ["User", "Permission set", "Via"],
        ((a.user_name, a.permission_set.name, via_text(a.direct, a.via_groups)) for a in access),
    )


@app.command("update")
def update(
    ctx: typer.Context,
    *,
    account: str = _ACCOUNT_ARG,
    name: str | None = typer.Option(None, "--name", metavar="NAME", help="New account name."),
    email: str | None = typer.Option(None, "--email", metavar="EMAIL", help="New email address."),
    kind: AccountKind | None = typer.Option(None, "--kind", help="local or aws."),
    ou: str | None = typer.Option(
        None, "--ou", metavar="PATH", help='New organizational unit path ("" clears it).'
    ),
    tag: list[str] | None = typer.Option(
        None, "--tag", metavar="KEY=VALUE", help="Set a tag key=value (repeatable)."
    ),
    remove_tag: list[str] | None = typer.Option(
        None, "--remove-tag", metavar="KEY", help="Remove the tag KEY (repeatable)."
    ),
    active: bool | None = typer.Option(
        None,
        "--activate/--suspend",
        help="Activate the account, or suspend it (no one gets credentials for it).",
        show_default=False,
    ),
) -> None:
    """Change an account; options left out keep their current value."""
    if all(v is None for v in (name, email, kind, ou, active)) and not tag and not remove_tag:
        fail("Nothing to change: give at least one option (see --help)")
    new_tags = parse_tags(tag)
    st = state(ctx)
    c = st.container()
    try:
        with c.db.write() as conn:
            found = c.access.resolve_account(conn, account)
            tags = {k: v for k, v in found.tags.items() if k not in (remove_tag or [])} | new_tags
            status = found.status if active is None else ("ACTIVE" if active else "SUSPENDED")
            spec = AccountSpec(
                name=found.name if name is None else name,
                email=found.email if email is None else email,
                id=found.id,
                kind=found.kind if kind is None else kind,
                status=status,
                ou_path=found.ou_path if ou is None else (ou or None),
                tags=tags,
            )
            updated = c.access.update_account(conn, st.actor, found.id, spec)
    except KeyhallError as exc:
        fail_with(exc)
    typer.echo(f"Updated account {updated.name} ({updated.id}, {updated.status.lower()}).")


@app.command("delete")
def delete(
    ctx: typer.Context,
    *,
    account: str = _ACCOUNT_ARG,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete an account and every assignment to it."""
    st = state(ctx)
    c = st.container()
    try:
        with c.db.read() as conn:
            found = c.access.resolve_account(conn, account)
            assignments = len(c.access.list_assignments(conn, account_id=found.id))
    except KeyhallError as exc:
        fail_with(exc)
    if not yes:
        typer.confirm(
            f"Delete account {found.name} ({found.id}) and its {assignments} assignment(s)?", abort=True
        )
    try:
        with c.db.write() as conn:
            c.access.delete_account(conn, st.actor, found.id)
    except KeyhallError as exc:
        fail_with(exc)
    typer.echo(f"Deleted account {found.name} ({found.id}).")
