"""`keyhall aws`: federation with real AWS accounts (docs/aws-provisioning.md).

``configure`` and ``keys`` change Keyhall only. ``import``, ``plan`` and ``apply`` call AWS with *your* AWS
credentials (boto3's default chain, or ``--profile``); Keyhall never stores them. ``status`` shows the
provisioning state recorded by apply, next to what the database wants now, without calling AWS.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from keyhall.cli.context import fail, fail_with, state
from keyhall.cli.output import print_fields, print_json, print_table, when

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from keyhall.audit.events import Actor
    from keyhall.container import Container
    from keyhall.federation.keys import Purpose, SigningKey, SigningKeys

    KeyChange = Callable[[SigningKeys, Connection, Actor, Purpose], SigningKey]
    from keyhall.federation.provisioning import (
        AccountPlan,
        FieldChange,
        Outcome,
        Provisioner,
        ResourceChange,
    )
    from keyhall.federation.settings import FederationSettings

app = typer.Typer(
    help="Real AWS accounts: federation settings, signing keys, import, provisioning.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
keys_app = typer.Typer(
    help="Keyhall's signing keys as a SAML identity provider / OIDC issuer.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(keys_app, name="keys")

_JSON = typer.Option(False, "--json", help="Print JSON to stdout instead of text.")
_PROFILE = typer.Option(
    None,
    "--profile",
    metavar="NAME",
    help="AWS profile for your credentials (default: boto3's default chain).",
)
_REGION = typer.Option(
    None,
    "--region",
    metavar="REGION",
    help="Region for STS calls (default: the profile's, else the partition's).",
)
_ACCOUNTS = typer.Option(
    None,
    "--account",
    metavar="ACCOUNT",
    help="Only this account, by id or name (repeatable). An account given here is inspected even without "
    "assignments, to clean it up.",
)
_SYMBOLS = {"create": "+", "update": "~", "delete": "-"}
_COLOURS = {"+": typer.colors.GREEN, "~": typer.colors.YELLOW, "-": typer.colors.RED, "!": typer.colors.RED}
EXIT_CHANGES = 2


# ---- configure --------------------------------------------------------------------------------------


def parse_abac(values: list[str]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for item in values:
        key, sep, path = item.partition("=")
        if not sep or not key or not path:
            raise typer.BadParameter(f"{item!r} is not KEY=PATH", param_hint="--abac")
        attributes[key] = path
    return attributes


@app.command("configure")
def configure(
    ctx: typer.Context,
    *,
    method: str | None = typer.Option(
        None, "--method", metavar="saml|oidc", help="How Keyhall federates: SAML assertions or OIDC tokens."
    ),
    partition: str | None = typer.Option(None, "--partition", help="aws, aws-us-gov or aws-cn."),
    sts_region: str | None = typer.Option(
        None, "--sts-region", help="Region of the STS endpoint Keyhall calls."
    ),
    sts_endpoint: str | None = typer.Option(
        None, "--sts-endpoint", metavar="URL", help='STS endpoint override (a VPC endpoint); "" clears it.'
    ),
    saml_provider_name: str | None = typer.Option(
        None, "--saml-provider-name", help="Name of the IAM SAML provider in every account."
    ),
    entity_id: str | None = typer.Option(
        None, "--entity-id", help='SAML entity id (default <public url>/saml/metadata); "" clears it.'
    ),
    oidc_issuer_url: str | None = typer.Option(
        None, "--oidc-issuer-url", metavar="URL", help="Public https issuer URL AWS fetches keys from (OIDC)."
    ),
    oidc_audience: str | None = typer.Option(
        None, "--oidc-audience", help="Audience of Keyhall's tokens and the IAM OIDC provider's client id."
    ),
    provisioning_role: str | None = typer.Option(
        None, "--provisioning-role", metavar="NAME", help="Role `aws apply` assumes in member accounts."
    ),
    abac: list[str] | None = typer.Option(
        None,
        "--abac",
        metavar="KEY=PATH",
        help="A session tag from a user attribute, e.g. Department=${path:enterprise.department} "
        "(repeatable; replaces the whole set).",
    ),
    no_abac: bool = typer.Option(False, "--no-abac", help="Remove every attribute for access control."),
    show: bool = typer.Option(False, "--show", help="Only show the current settings."),
    json_output: bool = _JSON,
) -> None:
    """Change the federation settings (options left out keep their value); make sure a signing key exists."""
    from pydantic import ValidationError as PydanticValidationError

    from keyhall.errors import KeyhallError
    from keyhall.federation.settings import (
        FederationSettings,
        load_federation_settings,
        save_federation_settings,
    )

    if abac and no_abac:
        raise typer.BadParameter("give either --abac or --no-abac", param_hint="--no-abac")
    st = state(ctx)
    c = st.container()
    changes: dict[str, Any] = {
        k: v
        for k, v in {
            "method": method,
            "partition": partition,
            "sts_region": sts_region,
            "saml_provider_name": saml_provider_name,
            "oidc_issuer_url": oidc_issuer_url,
            "oidc_audience": oidc_audience,
            "provisioning_role_name": provisioning_role,
        }.items()
        if v is not None
    }
    for key, value in (("sts_endpoint", sts_endpoint), ("entity_id", entity_id)):
        if value is not None:
            changes[key] = value or None
    if abac:
        changes["access_control_attributes"] = parse_abac(abac)
    if no_abac:
        changes["access_control_attributes"] = {}
    if show and changes:
        raise typer.BadParameter("--show takes no other settings", param_hint="--show")
    try:
        if show:
            with c.db.read() as conn:
                current = load_federation_settings(conn)
        else:
            keys = _signing_keys(c)
            with c.db.write() as conn:
                before = load_federation_settings(conn)
                try:
                    current = FederationSettings.model_validate({**before.model_dump(), **changes})
                except PydanticValidationError as exc:
                    _settings_problems(exc)
                if current.method == "oidc" and not current.oidc_issuer_url:
                    fail(
                        "The OIDC method needs the public https issuer URL AWS fetches Keyhall's keys from: "
                        "give --oidc-issuer-url"
                    )
                if current != before:
                    save_federation_settings(conn, st.actor, c.audit, c.clock, current)
                keys.ensure_active_key(conn, st.actor, current.method)
    except KeyhallError as exc:
        fail_with(exc)
    _show_settings(current, as_json=json_output)
    if not show and not json_output:
        typer.echo("Run `keyhall aws plan` to see what this changes in your AWS accounts.")


def _settings_problems(exc: Any) -> NoReturn:
    typer.secho("Error: the settings are not valid:", fg=typer.colors.RED, err=True)
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()))
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        typer.echo(f"  - {where}: {message}" if where else f"  - {message}", err=True)
    raise typer.Exit(1)


def _show_settings(settings: FederationSettings, *, as_json: bool) -> None:
    if as_json:
        print_json(settings.model_dump(mode="json"))
        return
    print_fields(
        "Federation",
        [
            ("Method", settings.method),
            ("Partition", settings.partition),
            ("STS region", settings.sts_region),
            ("STS endpoint", settings.sts_endpoint),
            ("SAML provider name", settings.saml_provider_name),
            ("SAML entity id", settings.entity_id or "(default: <public url>/saml/metadata)"),
            ("OIDC issuer URL", settings.oidc_issuer_url),
            ("OIDC audience", settings.oidc_audience),
            ("Provisioning role", settings.provisioning_role_name),
            (
                "Attributes for access control",
                ", ".join(f"{k}={v}" for k, v in sorted(settings.access_control_attributes.items())),
            ),
        ],
    )


def _master_key(c: Container) -> bytes:
    from keyhall.keys import MasterKeyMissing, load_master_key

    if c.master_key is not None:
        return c.master_key
    try:
        return load_master_key(c.settings)
    except MasterKeyMissing as exc:
        fail(str(exc))


def _signing_keys(c: Container) -> SigningKeys:
    from keyhall.federation.keys import SigningKeys

    return SigningKeys(_master_key(c), c.clock, c.audit)


# ---- keys -------------------------------------------------------------------------------------------

_PURPOSE = typer.Option(
    None, "--purpose", metavar="saml|oidc", help="Which keys (default: those of the configured method)."
)


def _purpose(c: Container, purpose: str | None) -> Purpose:
    from keyhall.federation.settings import load_federation_settings

    if purpose is None:
        with c.db.read() as conn:
            return load_federation_settings(conn).method
    if purpose == "saml":
        return "saml"
    if purpose == "oidc":
        return "oidc"
    raise typer.BadParameter('must be "saml" or "oidc"', param_hint="--purpose")


@keys_app.command("list")
def keys_list(ctx: typer.Context, purpose: str | None = _PURPOSE, json_output: bool = _JSON) -> None:
    """List the signing keys: active (signs), next (published, not signing yet), retired (still published)."""
    c = state(ctx).container()
    chosen = _purpose(c, purpose)
    keys = _signing_keys(c)
    with c.db.read() as conn:
        found = keys.keys(conn, chosen)
        published = {k.kid for k in keys.published_keys(conn, chosen)}
    if json_output:
        print_json(
            [
                {
                    "kid": k.kid,
                    "purpose": k.purpose,
                    "status": k.status,
                    "published": k.kid in published,
                    "created_at": k.created_at,
                    "activated_at": k.activated_at,
                    "retired_at": k.retired_at,
                }
                for k in found
            ]
        )
        return
    print_table(
        f"{chosen.upper()} signing keys",
        ["Kid", "Status", "Published", "Created", "Activated", "Retired"],
        (
            (
                k.kid,
                k.status,
                "yes" if k.kid in published else "no",
                when(k.created_at),
                when(k.activated_at),
                when(k.retired_at),
            )
            for k in found
        ),
    )


def _change_key(ctx: typer.Context, purpose: str | None, change: KeyChange) -> tuple[Purpose, SigningKey]:
    """``SigningKeys.rotate`` or ``.promote`` for the chosen purpose, in one audited transaction."""
    from keyhall.errors import KeyhallError

    st = state(ctx)
    c = st.container()
    chosen = _purpose(c, purpose)
    keys = _signing_keys(c)
    try:
        with c.db.write() as conn:
            key = change(keys, conn, st.actor, chosen)
    except KeyhallError as exc:
        fail_with(exc)
    return chosen, key


@keys_app.command("rotate")
def keys_rotate(ctx: typer.Context, purpose: str | None = _PURPOSE) -> None:
    """Create the next key; it is published at once but signs only after `keys promote`."""
    from keyhall.federation.keys import SigningKeys

    chosen, key = _change_key(ctx, purpose, SigningKeys.rotate)
    typer.echo(f"Created {chosen.upper()} key {key.kid} ({key.status}).")
    if key.status == "next" and chosen == "saml":
        typer.echo(
            "Publish it with `keyhall aws apply` (it updates every SAML provider), then `keys promote`."
        )
    elif key.status == "next":
        typer.echo("It is in the JWKS now; promote it once AWS has had time to fetch the new JWKS.")


@keys_app.command("promote")
def keys_promote(ctx: typer.Context, purpose: str | None = _PURPOSE) -> None:
    """Make the next key the one that signs; the old key stays published for the overlap period."""
    from keyhall.federation.keys import SigningKeys

    chosen, key = _change_key(ctx, purpose, SigningKeys.promote)
    typer.echo(f"{chosen.upper()} key {key.kid} signs from now on.")


# ---- import -----------------------------------------------------------------------------------------


@app.command("import")
def import_(
    ctx: typer.Context,
    profile: str | None = _PROFILE,
    region: str | None = _REGION,
    json_output: bool = _JSON,
) -> None:
    """Import accounts and OU paths from AWS Organizations (run from the management account or a delegated
    administrator). Safe to repeat: unchanged accounts are left as they are."""
    from botocore.exceptions import BotoCoreError, ClientError
    from rich.console import Console

    from keyhall.errors import KeyhallError
    from keyhall.federation.aws_clients import Boto3ClientFactory, error_text
    from keyhall.federation.orgs import import_organization

    st = state(ctx)
    c = st.container()
    partition = _federation(c).partition
    try:
        organizations = Boto3ClientFactory(profile=profile, region=region, partition=partition).client(
            "organizations"
        )
    except BotoCoreError as exc:
        fail(f"Cannot use your AWS credentials: {error_text(exc)[1]}")
    console = Console(stderr=True)
    try:
        if console.is_terminal and not json_output:
            summary = _import_with_progress(c, st.actor, organizations, console)
        else:
            summary = import_organization(c, st.actor, organizations)
    except (ClientError, BotoCoreError) as exc:
        fail(f"AWS Organizations refused: {error_text(exc)[1]}")
    except KeyhallError as exc:
        fail_with(exc)
    if json_output:
        print_json(summary.to_dict())
    else:
        for item in summary.items:
            if item.outcome in ("created", "updated"):
                detail = f" ({', '.join(item.changed)})" if item.changed else ""
                typer.echo(f"{item.outcome.capitalize()} {item.name} ({item.account_id}){detail}")
            elif item.outcome in ("skipped", "conflict"):
                typer.secho(
                    f"{item.outcome.capitalize()} {item.name} ({item.account_id}): {item.message}",
                    fg=typer.colors.YELLOW if item.outcome == "skipped" else typer.colors.RED,
                    err=True,
                )
        for account_id in summary.not_in_organization:
            typer.echo(f"Not in the organisation any more (left as it is): {account_id}", err=True)
        typer.echo(
            f"{len(summary.items)} accounts in {summary.organizational_units} OUs: "
            f"{summary.count('created')} created, {summary.count('updated')} updated, "
            f"{summary.count('unchanged')} unchanged, {summary.count('skipped')} skipped, "
            f"{summary.count('conflict')} conflicts."
        )
    if summary.conflicts:
        raise typer.Exit(1)


def _import_with_progress(c: Container, actor: Any, organizations: Any, console: Any) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    from keyhall.federation.orgs import ImportProgress, import_organization

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
    ) as progress:
        walk = progress.add_task("Reading the organisation", total=None)
        upsert = None

        def report(event: ImportProgress) -> None:
            nonlocal upsert
            if event.phase == "walk":
                progress.update(
                    walk, description=f"Reading the organisation: {event.ous} OUs, {event.accounts} accounts"
                )
                return
            if upsert is None:
                progress.update(walk, visible=False)
                upsert = progress.add_task("Importing accounts", total=event.total)
            progress.update(upsert, completed=event.done)

        return import_organization(c, actor, organizations, on_progress=report)


# ---- plan and apply ---------------------------------------------------------------------------------


class _LazySamlMetadata:
    """Opens the signing keys only when SAML metadata is really needed (the OIDC method never needs them)."""

    def __init__(self, c: Container) -> None:
        self._c = c

    def saml_metadata(self, conn: Connection) -> str:
        from keyhall.federation.issuer import FederationMetadata

        source = FederationMetadata(_signing_keys(self._c), public_url=self._c.settings.effective_public_url)
        return source.saml_metadata(conn)


def _federation(c: Container) -> FederationSettings:
    from keyhall.federation.settings import load_federation_settings

    with c.db.read() as conn:
        return load_federation_settings(conn)


def _provisioner(ctx: typer.Context, profile: str | None, region: str | None) -> Provisioner:
    from botocore.exceptions import BotoCoreError

    from keyhall.federation.aws_clients import Boto3ClientFactory, error_text
    from keyhall.federation.provisioning import Provisioner

    c = state(ctx).container()
    try:
        clients = Boto3ClientFactory(profile=profile, region=region, partition=_federation(c).partition)
    except BotoCoreError as exc:
        fail(f"Cannot use your AWS credentials: {error_text(exc)[1]}")
    return Provisioner(c, clients=clients, metadata=_LazySamlMetadata(c))


@app.command("plan")
def plan(
    ctx: typer.Context,
    account: list[str] | None = _ACCOUNTS,
    profile: str | None = _PROFILE,
    region: str | None = _REGION,
    json_output: bool = _JSON,
    detailed_exitcode: bool = typer.Option(
        False, "--detailed-exitcode", help="Exit 2 when there are changes, 0 when none, 1 on problems."
    ),
) -> None:
    """Show what `aws apply` would change in each account (roles, policies, provider), drift included."""
    from keyhall.errors import KeyhallError

    provisioner = _provisioner(ctx, profile, region)
    try:
        result = provisioner.plan(accounts=account, on_account=None if json_output else _print_account)
    except KeyhallError as exc:
        fail_with(exc)
    if json_output:
        print_json(result.to_dict())
    else:
        if not result.accounts:
            typer.echo("No aws accounts have assignments; nothing to provision.")
        typer.echo(result.summary)
    if result.problems:
        raise typer.Exit(1)
    if detailed_exitcode and result.changes:
        raise typer.Exit(EXIT_CHANGES)


@app.command("apply")
def apply(
    ctx: typer.Context,
    account: list[str] | None = _ACCOUNTS,
    profile: str | None = _PROFILE,
    region: str | None = _REGION,
    json_output: bool = _JSON,
) -> None:
    """Provision: create, repair and remove Keyhall's roles and identity provider in each account. Safe to
    interrupt and run again; exits 1 if anything failed (see `aws status`)."""
    from keyhall.errors import KeyhallError

    st = state(ctx)
    provisioner = _provisioner(ctx, profile, region)
    try:
        result = provisioner.apply(
            st.actor,
            accounts=account,
            on_account=None if json_output else _print_account,
            on_outcome=None if json_output else _print_outcome,
        )
    except KeyhallError as exc:
        fail_with(exc)
    if json_output:
        print_json(result.to_dict())
    else:
        done = sum(1 for o in result.outcomes if o.status != "FAILED")
        typer.echo(f"Apply complete: {done} change{'' if done == 1 else 's'} made, {result.failures} failed.")
    if not result.ok:
        raise typer.Exit(1)


def _print_account(account_plan: AccountPlan) -> None:
    for line in account_lines(account_plan):
        stripped = line.lstrip()
        typer.secho(line, fg=_COLOURS.get(stripped[:1]) if stripped else None)


def _print_outcome(outcome: Outcome) -> None:
    if outcome.status == "FAILED":
        typer.secho(f"  ! {outcome.kind} {outcome.name} failed: {outcome.message}", fg=typer.colors.RED)
    else:
        done = {"create": "created", "update": "updated", "delete": "deleted"}.get(
            outcome.action or "", "done"
        )
        typer.echo(f"  {outcome.kind} {outcome.name}: {done}")


def account_lines(account_plan: AccountPlan) -> list[str]:
    """One account of a plan for people, terraform-like: ``+ create``, ``~ update``, ``- delete``."""
    head = f"Account {account_plan.account_name} ({account_plan.account_id})"
    if account_plan.skipped:
        return [f"{head}: skipped, {account_plan.skipped}"]
    if account_plan.error:
        return [f"{head}:", f"  ! cannot read the account: {account_plan.error}"]
    if not account_plan.changes and not account_plan.blocked and not account_plan.warnings:
        return [f"{head}: up to date"]
    lines = [f"{head}:"]
    for change in account_plan.changes:
        lines += _change_lines(change)
    lines += [
        f"  ! cannot provision role {b.name} ({b.permission_set_name}): {b.reason}"
        for b in account_plan.blocked
    ]
    lines += [f"  note: {w}" for w in account_plan.warnings]
    return lines


def _change_lines(change: ResourceChange) -> list[str]:
    what = "identity provider" if change.kind == "provider" else "role"
    suffix = f" (permission set {change.permission_set_name})" if change.permission_set_name else ""
    lines = [f"  {_SYMBOLS[change.action]} {change.action} {what} {change.name}{suffix}"]
    for f in change.fields:
        lines += [f"      {line}" for line in _field_lines(f)]
    return lines


def _field_lines(f: FieldChange) -> list[str]:
    documents = f.field in ("trust_policy", "inline_policy") or f.field.startswith("inline_policy:")
    if f.old is None:
        if documents:
            return [f"+ {f.field}:", *(f"    {line}" for line in _pretty(f.new))]
        return [f"+ {f.field} {_value(f.new)}"]
    if f.new is None:
        return [f"- {f.field} {'' if documents else _value(f.old)}".rstrip()]
    if documents:
        return [f"~ {f.field}:", *(f"    {line}" for line in _policy_diff(f.old, f.new))]
    return [f"~ {f.field} {_value(f.old)} -> {_value(f.new)}"]


def _pretty(document: Any) -> list[str]:
    return json.dumps(document, indent=2, ensure_ascii=False).splitlines()


def _policy_diff(old: Any, new: Any) -> list[str]:
    """A line diff of two policies, pretty-printed, so a one-word change is easy to see."""
    lines: list[str] = []
    for line in difflib.unified_diff(_pretty(old), _pretty(new), lineterm="", n=1):
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            if lines:
                lines.append("  ...")
            continue
        lines.append(line)
    return lines


def _value(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


# ---- status -----------------------------------------------------------------------------------------


@app.command("status")
def status(
    ctx: typer.Context,
    json_output: bool = _JSON,
    show_all: bool = typer.Option(False, "--all", help="Also list roles that were removed."),
) -> None:
    """Which permission set is provisioned to which account, when, with what outcome (from Keyhall's records;
    AWS is not called). PENDING work is what the next `aws apply` will do."""
    from keyhall.errors import KeyhallError
    from keyhall.federation.provisioning import provisioning_status

    c = state(ctx).container()
    try:
        with c.db.read() as conn:
            rows = provisioning_status(conn, include_removed=show_all)
    except KeyhallError as exc:
        fail_with(exc)
    if json_output:
        print_json(rows)
        return
    print_table(
        "Provisioning",
        ["Account", "Permission set", "Role", "Status", "Pending", "Last attempt", "Provisioned", "Message"],
        (
            (
                f"{r.account_name or '?'} ({r.account_id})",
                r.permission_set_name or r.permission_set_id,
                r.role_name,
                r.status or "NOT PROVISIONED",
                r.pending,
                when(r.last_attempt_at),
                when(r.provisioned_at),
                r.message,
            )
            for r in rows
        ),
    )
    if any(r.pending for r in rows):
        typer.echo(
            "Run `keyhall aws plan` to see the pending changes, `keyhall aws apply` to make them.", err=True
        )
