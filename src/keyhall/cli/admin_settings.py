"""`keyhall settings`: the instance's settings (portal session length, MFA policy, device grant, name)."""

from __future__ import annotations

from typing import Any

import typer

from keyhall.cli.context import fail, fail_with, state
from keyhall.cli.output import print_fields, print_json, when
from keyhall.errors import KeyhallError
from keyhall.instance import Instance, MfaPolicy, require_instance, update_instance_settings

app = typer.Typer(help="Instance settings.", no_args_is_help=True, rich_markup_mode=None)


def _instance_json(instance: Instance) -> dict[str, Any]:
    return {
        "id": instance.id,
        "arn": instance.arn,
        "identity_store_id": instance.identity_store_id,
        "name": instance.name,
        "directory_source": instance.directory_source,
        "portal_session_minutes": instance.portal_session_minutes,
        "mfa_policy": instance.mfa_policy,
        "device_grant_enabled": instance.device_grant_enabled,
        "created_at": instance.created_at,
    }


def _minutes(value: int) -> str:
    days, rest = divmod(value, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return f"{value} min ({' '.join(parts)})" if value >= 60 else f"{value} min"


@app.command("show")
def show(
    ctx: typer.Context,
    *,
    json_output: bool = typer.Option(False, "--json", help="Print JSON to stdout instead of a table."),
) -> None:
    """Show the instance and its settings."""
    c = state(ctx).container()
    try:
        with c.db.read() as conn:
            instance = require_instance(conn)
    except KeyhallError as exc:
        fail_with(exc)
    if json_output:
        print_json(_instance_json(instance))
        return
    print_fields(
        f"Instance {instance.name}",
        [
            ("Instance ARN", instance.arn),
            ("Identity store", instance.identity_store_id),
            ("Directory source", instance.directory_source),
            ("Portal session", _minutes(instance.portal_session_minutes)),
            ("MFA policy", instance.mfa_policy),
            ("Device grant", "enabled" if instance.device_grant_enabled else "disabled"),
            ("Created", when(instance.created_at)),
        ],
    )


@app.command("set")
def set_(
    ctx: typer.Context,
    *,
    portal_session_minutes: int | None = typer.Option(
        None,
        "--portal-session-minutes",
        metavar="MINUTES",
        help="How long a portal sign-in lasts, 15 to 129600 minutes (90 days).",
    ),
    mfa_policy: MfaPolicy | None = typer.Option(
        None, "--mfa-policy", help="required: every sign-in; optional: if enrolled; off: never."
    ),
    device_grant: bool | None = typer.Option(
        None,
        "--device-grant/--no-device-grant",
        help="Allow the device authorization grant (aws sso login --use-device-code).",
        show_default=False,
    ),
    name: str | None = typer.Option(
        None, "--name", metavar="NAME", help="Instance name shown in the portal."
    ),
) -> None:
    """Change instance settings; the change is audited."""
    if all(v is None for v in (portal_session_minutes, mfa_policy, device_grant, name)):
        fail("Nothing to change: give at least one option (see --help)")
    st = state(ctx)
    c = st.container()
    try:
        with c.db.write() as conn:
            instance = update_instance_settings(
                conn,
                st.actor,
                c.audit,
                portal_session_minutes=portal_session_minutes,
                mfa_policy=mfa_policy,
                device_grant_enabled=device_grant,
                name=name,
            )
    except KeyhallError as exc:
        fail_with(exc)
    typer.echo(
        f"Settings of {instance.name}: portal session {_minutes(instance.portal_session_minutes)}, "
        f"MFA {instance.mfa_policy}, device grant {'on' if instance.device_grant_enabled else 'off'}."
    )
