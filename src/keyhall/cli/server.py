"""Server commands: `keyhall init`, `keyhall serve`, `keyhall migrate`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from keyhall.cli.context import fail, fail_with, state
from keyhall.errors import KeyhallError


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("serve")(serve)
    app.command("migrate")(migrate_command)
    app.command("purge-expired")(purge_expired_command)


def _read_admin_password(password_env: str | None, prompt: bool) -> tuple[str, bool]:
    """The first administrator's password, and whether it was generated here (so it must be printed)."""
    from keyhall.signin.passwords import check_password, generate_password

    if password_env:
        value = os.environ.get(password_env)
        if not value:
            fail(f"Environment variable {password_env} is empty or not set")
        password, generated = value, False
    elif prompt:
        password = typer.prompt("Administrator password", hide_input=True, confirmation_prompt=True)
        generated = False
    else:
        return generate_password(), True
    problems = check_password(password)
    if problems:
        fail("The administrator password is not acceptable: " + "; ".join(problems))
    return password, generated


def init(
    ctx: typer.Context,
    name: str = typer.Option("Keyhall", help="Name of the instance, shown on the sign-in page."),
    admin_user: str = typer.Option("admin", help="User name of the first administrator."),
    admin_email: str | None = typer.Option(None, help="Email of the first administrator."),
    password_env: str | None = typer.Option(
        None,
        "--password-env",
        metavar="VAR",
        help="Read the administrator's password from this environment variable.",
    ),
    prompt: bool = typer.Option(False, "--prompt", help="Prompt for the administrator's password."),
    demo: bool = typer.Option(
        False, "--demo", help="Also seed a demo organisation (local accounts, groups, a demo user)."
    ),
    if_missing: bool = typer.Option(
        False, "--if-missing", help="Do nothing (exit 0) when already initialised."
    ),
) -> None:
    """Create the instance: database schema, master key, instance ids and the first administrator.

    The administrator's password is read from --password-env, prompted for with --prompt, or generated and
    printed once.
    """
    from keyhall.audit.events import Actor
    from keyhall.db import migrate
    from keyhall.demo import seed_demo
    from keyhall.directory.models import UserSpec
    from keyhall.instance import create_instance, load_instance
    from keyhall.keys import ensure_master_key_file

    st = state(ctx)
    settings = st.settings()
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    container = st.container(require_schema=False)
    migrate.upgrade(container.db.engine)
    with container.db.read() as conn:
        existing = load_instance(conn)
    if existing is not None:
        if if_missing:
            typer.echo(
                f"Keyhall instance {existing.id} is already initialised ({settings.effective_database_url.split('://')[0]})."
            )
            return
        fail(f"This database already holds instance {existing.id}; nothing changed")
    if not settings.master_key and ensure_master_key_file(settings.master_key_file):
        typer.echo(
            f"Created master key {settings.master_key_file} (mode 0600). Back it up: stored secrets need it."
        )
    password, generated = _read_admin_password(password_env, prompt)
    actor = Actor.local_operator()
    try:
        with container.db.write() as conn:
            created = create_instance(conn, actor, container.audit, container.clock, name)
            admin = container.directory.create_user(
                conn,
                actor,
                UserSpec(admin_user, display_name="Administrator", email=admin_email, is_admin=True),
                password_hash=container.hasher.hash(password),
                must_change_password=generated,
            )
            demo_result = seed_demo(container, conn, actor, admin_user_id=admin.id) if demo else None
    except KeyhallError as exc:
        fail_with(exc)
    typer.echo(f"Initialised Keyhall instance {created.id} (identity store {created.identity_store_id}).")
    typer.echo(f"Administrator: {admin_user}")
    if generated:
        typer.echo(f"  one-time password (shown once, change it at first sign-in): {password}")
    if demo_result:
        typer.echo(
            "Demo organisation: accounts Sandbox, Production, Management; groups Developers, Administrators."
        )
        typer.echo(f"Demo user: {demo_result.user_name}")
        typer.echo(f"  one-time password (shown once): {demo_result.one_time_password}")


def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", envvar="KEYHALL_HOST", help="Address to listen on."),
    port: int = typer.Option(8080, envvar="KEYHALL_PORT", help="Port to listen on."),
    workers: int = typer.Option(1, envvar="KEYHALL_WORKERS", min=1, max=64, help="Server processes."),
    public_url: str | None = typer.Option(
        None, envvar="KEYHALL_PUBLIC_URL", help="URL users reach Keyhall at."
    ),
    log_level: str = typer.Option("info", envvar="KEYHALL_LOG_LEVEL", help="debug, info, warning or error."),
    access_log: bool = typer.Option(
        False, "--access-log", envvar="KEYHALL_ACCESS_LOG", help="Log one JSON line per request."
    ),
) -> None:
    """Serve Keyhall (granian, ASGI). Defaults to the embedded SQLite database in the data directory."""
    from keyhall.db import migrate
    from keyhall.keys import MasterKeyMissing, load_master_key

    st = state(ctx)
    settings = st.settings(host=host, port=port, workers=workers, public_url=public_url, log_level=log_level)
    try:
        load_master_key(settings)
    except (MasterKeyMissing, ValueError) as exc:
        fail(str(exc))
    container = st.container(require_schema=False)
    if not migrate.is_up_to_date(container.db.engine):
        fail("The database schema is missing or old: run `keyhall init` (new) or `keyhall migrate` (upgrade)")
    container.db.dispose()
    # workers are separate processes: they rebuild Settings from the environment
    os.environ.update(
        {
            "KEYHALL_DATA_DIR": str(Path(settings.data_dir).resolve()),
            "KEYHALL_DATABASE_URL": settings.effective_database_url,
            "KEYHALL_HOST": host,
            "KEYHALL_PORT": str(port),
            "KEYHALL_WORKERS": str(workers),
            "KEYHALL_LOG_LEVEL": log_level,
            "KEYHALL_ACCESS_LOG": "true" if access_log else "false",
        }
    )
    if public_url:
        os.environ["KEYHALL_PUBLIC_URL"] = public_url
    from granian.constants import Interfaces, Loops
    from granian.server import Server

    typer.echo(f"Keyhall serving on {settings.effective_public_url} with {workers} worker(s)", err=True)
    sys.stderr.flush()
    Server(
        "keyhall.asgi:create_from_env",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        loop=Loops.auto,
        factory=True,
        log_access=False,
    ).serve()


def migrate_command(ctx: typer.Context) -> None:
    """Upgrade the database schema to this version of Keyhall (safe to run repeatedly)."""
    from keyhall.db import migrate

    container = state(ctx).container(require_schema=False)
    before = migrate.current_revision(container.db.engine)
    migrate.upgrade(container.db.engine)
    after = migrate.current_revision(container.db.engine)
    typer.echo(f"Schema at {after}" + (f" (was {before})" if before != after else " (already current)"))


def purge_expired_command(
    ctx: typer.Context,
    json_output: bool = typer.Option(False, "--json", help="Print JSON to stdout instead of a table."),
) -> None:
    """Delete expired tokens, codes, device requests and registrations, sessions ended over a day ago and
    old sign-in counters, now (a running server does it every 10 minutes; audit records are kept)."""
    from keyhall.cli.output import print_json, print_table
    from keyhall.db.housekeeping import purge_expired

    container = state(ctx).container()
    deleted = purge_expired(container.db, container.clock.timestamp())
    if json_output:
        print_json(deleted)
        return
    print_table("Expired rows deleted", ["table", "rows"], sorted(deleted.items()))
