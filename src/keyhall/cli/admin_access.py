"""`keyhall access`: effective access, as the portal computes it (direct assignments plus groups)."""

from __future__ import annotations

from typing import Any

import typer

from keyhall.access.models import AccountAccess, Entitlement
from keyhall.cli.context import fail_with, state
from keyhall.cli.output import print_json, print_table
from keyhall.errors import KeyhallError

app = typer.Typer(
    help="Effective access: where a user can go, who can reach an account.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

_JSON = typer.Option(False, "--json", help="Print JSON to stdout instead of a table.")


def via_text(direct: bool, groups: tuple[str, ...]) -> str:
    return ", ".join((["direct"] if direct else []) + [f"group:{g}" for g in groups])


def access_json(item: AccountAccess) -> dict[str, Any]:
    return {
        "user_id": item.user_id,
        "user_name": item.user_name,
        "permission_set_id": item.permission_set.id,
        "permission_set_name": item.permission_set.name,
        "session_duration": item.permission_set.session_duration,
        "direct": item.direct,
        "via_groups": list(item.via_groups),
        "via": via_text(item.direct, item.via_groups),
    }


def _entitlement_json(e: Entitlement) -> dict[str, Any]:
    return {
        "account_id": e.account.id,
        "account_name": e.account.name,
        "account_status": e.account.status,
        "permission_set_id": e.permission_set.id,
        "permission_set_name": e.permission_set.name,
        "session_duration": e.permission_set.session_duration,
        "direct": e.direct,
        "via_groups": list(e.via_groups),
        "via": e.via,
    }


@app.command("user")
def user(
    ctx: typer.Context,
    *,
    user: str = typer.Argument(..., help="User name or user id.", metavar="USER", show_default=False),
    json_output: bool = _JSON,
) -> None:
    """Where a user can go: accounts and permission sets, directly or through which groups."""
    c = state(ctx).container()
    try:
        with c.db.read() as conn:
            found = c.directory.resolve_user(conn, user)
            entitlements = c.access.user_entitlements(conn, found.id)
    except KeyhallError as exc:
        fail_with(exc)
    if json_output:
        print_json([_entitlement_json(e) for e in entitlements])
        return
    print_table(
        f"Access of {found.user_name}" + ("" if found.enabled else " (user disabled)"),
        ["Account", "Account id", "Status", "Permission set", "Session", "Via"],
        (
            (
                e.account.name,
                e.account.id,
                e.account.status,
                e.permission_set.name,
                e.permission_set.session_duration,
                e.via,
            )
            for e in entitlements
        ),
    )


@app.command("account")
def account(
    ctx: typer.Context,
    *,
    account: str = typer.Argument(..., help="Account id or name.", metavar="ACCOUNT", show_default=False),
    json_output: bool = _JSON,
) -> None:
    """Who can reach an account, with which permission set, directly or through which groups."""
    c = state(ctx).container()
    try:
        with c.db.read() as conn:
            found = c.access.resolve_account(conn, account)
            access = c.access.account_access(conn, found.id)
    except KeyhallError as exc:
        fail_with(exc)
    if json_output:
        print_json([access_json(a) for a in access])
        return
    print_table(
        f"Access to {found.name} ({found.id})",
        ["User", "Permission set", "Session", "Via"],
        (
            (
                a.user_name,
                a.permission_set.name,
                a.permission_set.session_duration,
                via_text(a.direct, a.via_groups),
            )
            for a in access
        ),
    )
