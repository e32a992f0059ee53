"""`keyhall permission-sets`: IAM policies, session duration and relay state, as IAM Identity Center has them.

``update`` rebuilds the whole PermissionSetSpec from the stored permission set plus the options given, so
the service validates the result exactly as it validates a new one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from keyhall.access.models import PermissionSet, PermissionSetSpec
from keyhall.cli.admin_accounts import format_tags, parse_tags
from keyhall.cli.context import fail, fail_with, state
from keyhall.cli.output import print_fields, print_json, print_table, to_jsonable, when
from keyhall.errors import KeyhallError, Problem, ValidationError
from keyhall.ids import permission_set_arn
from keyhall.instance import load_instance

app = typer.Typer(
    help="Permission sets: policies and session duration.", no_args_is_help=True, rich_markup_mode=None
)

_PS_ARG = typer.Argument(
    ..., help="Permission set name, id (ps-…) or ARN.", metavar="PERMISSION_SET", show_default=False
)
_JSON = typer.Option(False, "--json", help="Print JSON to stdout instead of a table.")
_DESCRIPTION = typer.Option(
    None, "--description", metavar="TEXT", help='What the permission set grants ("" clears it).'
)
_DURATION = typer.Option(
    None,
    "--session-duration",
    metavar="DURATION",
    help="ISO-8601 duration of role sessions, PT1H to PT12H (default PT1H).",
)
_RELAY = typer.Option(
    None, "--relay-state", metavar="URL", help='https:// URL the console opens on ("" clears it).'
)
_MANAGED = typer.Option(
    None, "--managed-policy", metavar="ARN", help="Attach an AWS managed policy ARN (repeatable)."
)
_CUSTOMER = typer.Option(
    None,
    "--customer-managed-policy",
    metavar="NAME[:PATH]",
    help="Attach a customer managed policy NAME[:PATH] (repeatable).",
)
_INLINE = typer.Option(
    None,
    "--inline-policy-file",
    metavar="FILE",
    help="File with the inline IAM policy JSON (- reads stdin).",
    allow_dash=True,
)
_BOUNDARY_ARN = typer.Option(
    None, "--boundary-managed-policy", metavar="ARN", help="Permissions boundary: an AWS managed policy ARN."
)
_BOUNDARY_CUSTOMER = typer.Option(
    None,
    "--boundary-customer-managed-policy",
    metavar="NAME[:PATH]",
    help="Permissions boundary: a customer managed policy NAME[:PATH].",
)
_TAG = typer.Option(None, "--tag", metavar="KEY=VALUE", help="Set a tag key=value (repeatable).")


def _reference(value: str) -> dict[str, str]:
    name, _, path = value.partition(":")
    return {"Name": name, "Path": path or "/"}


def _read_inline(path: Path) -> str:
    if str(path) == "-":
        return typer.get_text_stream("stdin").read()
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--inline-policy-file") from exc


def _boundary(arn: str | None, customer: str | None) -> dict[str, Any] | None:
    if arn is not None and customer is not None:
        fail("Give --boundary-managed-policy or --boundary-customer-managed-policy, not both")
    if arn is not None:
        return {"ManagedPolicyArn": arn}
    if customer is not None:
        return {"CustomerManagedPolicyReference": _reference(customer)}
    return None


def _ps_json(ps: PermissionSet, instance_id: str | None) -> dict[str, Any]:
    data: dict[str, Any] = to_jsonable(ps)
    data["arn"] = permission_set_arn(instance_id, ps.id) if instance_id else None
    return data


def _boundary_text(boundary: dict[str, Any] | None) -> str | None:
    if not boundary:
        return None
    if "ManagedPolicyArn" in boundary:
        return str(boundary["ManagedPolicyArn"])
    ref = boundary.get("CustomerManagedPolicyReference") or {}
    return f"{ref.get('Path', '/')}{ref.get('Name', '')} (customer managed)"


@app.command("create")
def create(
    ctx: typer.Context,
    *,
    name: str = typer.Argument(
        ..., help="Name (becomes the role name; cannot change).", metavar="NAME", show_default=False
    ),
    description: str | None = _DESCRIPTION,
    session_duration: str | None = _DURATION,
    relay_state: str | None = _RELAY,
    managed_policy: list[str] | None = _MANAGED,
    customer_managed_policy: list[str] | None = _CUSTOMER,
    inline_policy_file: Path | None = _INLINE,
    boundary_managed_policy: str | None = _BOUNDARY_ARN,
    boundary_customer_managed_policy: str | None = _BOUNDARY_CUSTOMER,
    tag: list[str] | None = _TAG,
) -> None:
    """Create a permission set."""
    spec = PermissionSetSpec(
        name=name,
        description=description or None,
        session_duration=session_duration or "PT1H",
        relay_state=relay_state or None,
        managed_policy_arns=list(managed_policy or []),
        customer_managed_policies=[_reference(v) for v in customer_managed_policy or []],
        inline_policy=_read_inline(inline_policy_file) if inline_policy_file is not None else None,
        permissions_boundary=_boundary(boundary_managed_policy, boundary_customer_managed_policy),
        tags=parse_tags(tag),
    )
    st = state(ctx)
    c = st.container()
    try:
        with c.db.write() as conn:
            ps = c.access.create_permission_set(conn, st.actor, spec)
    except KeyhallError as exc:
        fail_with(exc)
    typer.echo(f"Created permission set {ps.name} ({ps.id}).")


@app.command("list")
def list_(ctx: typer.Context, json_output: bool = _JSON) -> None:
    """List all permission sets."""
    c = state(ctx).container()
    with c.db.read() as conn:
        sets = c.access.all_permission_sets(conn)
        instance = load_instance(conn)
    if json_output:
        print_json([_ps_json(ps, instance.id if instance else None) for ps in sets])
        return
    print_table(
        "Permission sets",
        ["Name", "Session", "Policies", "Inline", "Description", "Id"],
        (
            (
                ps.name,
                ps.session_duration,
                len(ps.managed_policy_arns) + len(ps.customer_managed_policies),
                "yes" if ps.inline_policy else "no",
                ps.description,
                ps.id,
            )
            for ps in sets
        ),
    )


@app.command("show")
def show(ctx: typer.Context, permission_set: str = _PS_ARG, json_output: bool = _JSON) -> None:
    """Show a permission set, with its inline policy."""
    c = state(ctx).container()
    try:
        with c.db.read() as conn:
            ps = c.access.resolve_permission_set(conn, permission_set)
            instance = load_instance(conn)
            assignments = len(c.access.list_assignments(conn, ps_id=ps.id))
    except KeyhallError as exc:
        fail_with(exc)
    data = _ps_json(ps, instance.id if instance else None)
    if json_output:
        data["assignment_count"] = assignments
        print_json(data)
        return
    customer = [f"{r.get('Path', '/')}{r['Name']}" for r in ps.customer_managed_policies]
    print_fields(
        f"Permission set {ps.name}",
        [
            ("Id", ps.id),
            ("ARN", data["arn"]),
            ("Description", ps.description),
            ("Session duration", ps.session_duration),
            ("Relay state", ps.relay_state),
            ("AWS managed policies", "\n".join(ps.managed_policy_arns)),
            ("Customer managed", "\n".join(customer)),
            ("Permissions boundary", _boundary_text(ps.permissions_boundary)),
            ("Tags", format_tags(ps.tags)),
            ("Assignments", assignments),
            ("Managed by apply", "yes" if ps.managed else "no"),
            ("Created", when(ps.created_at)),
            ("Updated", when(ps.updated_at)),
        ],
    )
    if ps.inline_policy:
        typer.echo("Inline policy:")
        typer.echo(json.dumps(json.loads(ps.inline_policy), indent=2))


def _detach(current: list[Any], remove: list[Any], what: str, problems: list[Problem]) -> list[Any]:
    for item in remove:
        if item not in current:
            problems.append(Problem(what, f"{item} is not attached"))
    return [item for item in current if item not in remove]


@app.command("update")
def update(
    ctx: typer.Context,
    *,
    permission_set: str = _PS_ARG,
    description: str | None = _DESCRIPTION,
    session_duration: str | None = _DURATION,
    relay_state: str | None = _RELAY,
    managed_policy: list[str] | None = _MANAGED,
    detach_managed_policy: list[str] | None = typer.Option(
        None, "--detach-managed-policy", metavar="ARN", help="Detach an AWS managed policy ARN (repeatable)."
    ),
    customer_managed_policy: list[str] | None = _CUSTOMER,
    detach_customer_managed_policy: list[str] | None = typer.Option(
        None,
        "--detach-customer-managed-policy",
        metavar="NAME[:PATH]",
        help="Detach a customer managed policy NAME[:PATH] (repeatable).",
    ),
    inline_policy_file: Path | None = _INLINE,
    clear_inline_policy: bool = typer.Option(
        False, "--clear-inline-policy", help="Remove the inline policy."
    ),
    boundary_managed_policy: str | None = _BOUNDARY_ARN,
    boundary_customer_managed_policy: str | None = _BOUNDARY_CUSTOMER,
    clear_boundary: bool = typer.Option(False, "--clear-boundary", help="Remove the permissions boundary."),
    tag: list[str] | None = _TAG,
    remove_tag: list[str] | None = typer.Option(
        None, "--remove-tag", metavar="KEY", help="Remove the tag KEY (repeatable)."
    ),
) -> None:
    """Change a permission set; options left out keep their current value (it cannot be renamed)."""
    if clear_inline_policy and inline_policy_file is not None:
        fail("Give --inline-policy-file or --clear-inline-policy, not both")
    boundary = _boundary(boundary_managed_policy, boundary_customer_managed_policy)
    if clear_boundary and boundary is not None:
        fail("Give a boundary option or --clear-boundary, not both")
    inline = _read_inline(inline_policy_file) if inline_policy_file is not None else None
    new_tags = parse_tags(tag)
    st = state(ctx)
    c = st.container()
    try:
        with c.db.write() as conn:
            ps = c.access.resolve_permission_set(conn, permission_set)
            problems: list[Problem] = []
            arns = _detach(
                ps.managed_policy_arns, detach_managed_policy or [], "detach_managed_policy", problems
            )
            refs = _detach(
                ps.customer_managed_policies,
                [_reference(v) for v in detach_customer_managed_policy or []],
                "detach_customer_managed_policy",
                problems,
            )
            if problems:
                raise ValidationError.from_problems(problems)
            spec = PermissionSetSpec(
                name=ps.name,
                description=ps.description if description is None else (description or None),
                session_duration=session_duration or ps.session_duration,
                relay_state=ps.relay_state if relay_state is None else (relay_state or None),
                managed_policy_arns=arns + [a for a in managed_policy or [] if a not in arns],
                customer_managed_policies=refs
                + [r for r in (_reference(v) for v in customer_managed_policy or []) if r not in refs],
                inline_policy=None
                if clear_inline_policy
                else (inline if inline is not None else ps.inline_policy),
                permissions_boundary=None if clear_boundary else (boundary or ps.permissions_boundary),
                tags={k: v for k, v in ps.tags.items() if k not in (remove_tag or [])} | new_tags,
            )
            updated = c.access.update_permission_set(conn, st.actor, ps.id, spec)
    except KeyhallError as exc:
        fail_with(exc)
    typer.echo(
        f"No changes to permission set {ps.name}."
        if updated == ps
        else f"Updated permission set {updated.name}."
    )


@app.command("delete")
def delete(
    ctx: typer.Context,
    *,
    permission_set: str = _PS_ARG,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a permission set (refused while account assignments use it)."""
    st = state(ctx)
    c = st.container()
    try:
        with c.db.read() as conn:
            ps = c.access.resolve_permission_set(conn, permission_set)
    except KeyhallError as exc:
        fail_with(exc)
    if not yes:
        typer.confirm(f"Delete permission set {ps.name} ({ps.id})?", abort=True)
    try:
        with c.db.write() as conn:
            c.access.delete_permission_set(conn, st.actor, ps.id)
    except KeyhallError as exc:
        fail_with(exc)
    typer.echo(f"Deleted permission set {ps.name}.")
