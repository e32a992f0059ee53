"""`keyhall audit`: read the audit log, newest first."""

from __future__ import annotations

import typer

from keyhall.audit.query import AuditRecord, parse_since, query_events
from keyhall.cli.context import fail_with, state
from keyhall.cli.output import print_json, print_table, when
from keyhall.errors import KeyhallError

app = typer.Typer(help="The audit log.", no_args_is_help=True, rich_markup_mode=None)


def _resource(record: AuditRecord) -> str | None:
    if record.resource_type is None:
        return record.resource_id
    return f"{record.resource_type} {record.resource_id or ''}".strip()


@app.command("list")
def list_(
    ctx: typer.Context,
    *,
    limit: int = typer.Option(
        50, "--limit", metavar="N", min=1, max=10_000, help="How many records to show."
    ),
    event: str | None = typer.Option(
        None, "--event", metavar="EVENT_NAME", help="Only this event name, e.g. CreateUser."
    ),
    actor: str | None = typer.Option(
        None, "--actor", metavar="ACTOR", help="Only records by this actor (id or name)."
    ),
    since: str | None = typer.Option(
        None,
        "--since",
        metavar="WHEN",
        help="Only records since then: ISO-8601 (UTC if no zone) or relative like 30m, 1h, 2d.",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print JSON to stdout instead of a table."),
) -> None:
    """List audit records, newest first."""
    c = state(ctx).container()
    try:
        start = parse_since(since, now=c.clock.timestamp()) if since is not None else None
        with c.db.read() as conn:
            records = query_events(conn, limit=limit, event_name=event, actor=actor, since=start)
    except KeyhallError as exc:
        fail_with(exc)
    if json_output:
        print_json(records)
        return
    print_table(
        "Audit records",
        ["Time", "Event", "Actor", "Resource", "Source IP", "Error"],
        (
            (
                when(r.event_time),
                r.event_name,
                r.actor_name or r.actor_id or r.actor_type,
                _resource(r),
                r.source_ip,
                r.error_code,
            )
            for r in records
        ),
    )
