"""Entry point of the `keyhall` command.

Command groups live in their own modules and are registered here; heavy imports stay inside commands so
`keyhall --help` starts fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from keyhall.cli.context import state

app = typer.Typer(
    name="keyhall",
    help="Keyhall: one sign-in, short-lived AWS credentials for every account you are assigned.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    ctx: typer.Context,
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        envvar="KEYHALL_DATA_DIR",
        help="Instance data directory (default ./keyhall-data).",
    ),
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        envvar="KEYHALL_DATABASE_URL",
        help="Database URL (default: SQLite in the data dir).",
    ),
) -> None:
    st = state(ctx)
    st.data_dir = data_dir
    st.database_url = database_url


def _register() -> None:
    from keyhall.cli import (
        admin_access,
        admin_accounts,
        admin_assignments,
        admin_audit,
        admin_groups,
        admin_permission_sets,
        admin_settings,
        admin_users,
        apply_cmd,
        aws_cmd,
        server,
        user_commands,
    )

    server.register(app)
    user_commands.register(app)
    apply_cmd.register(app)
    app.add_typer(admin_users.app, name="users", help="Users of the built-in directory.")
    app.add_typer(admin_groups.app, name="groups", help="Groups and their members.")
    app.add_typer(admin_accounts.app, name="accounts", help="AWS accounts (local or real).")
    app.add_typer(
        admin_permission_sets.app,
        name="permission-sets",
        help="Permission sets: policies and session duration.",
    )
    app.add_typer(
        admin_assignments.app,
        name="assignments",
        help="Account assignments: who gets which permission set where.",
    )
    app.add_typer(
        admin_access.app,
        name="access",
        help="Effective access: where a user can go, who can reach an account.",
    )
    app.add_typer(admin_audit.app, name="audit", help="The audit log.")
    app.add_typer(
        aws_cmd.app,
        name="aws",
        help="Real AWS accounts: federation settings, signing keys, import, plan/apply provisioning, status.",
    )
    app.add_typer(admin_settings.app, name="settings", help="Instance settings.")


def main() -> None:
    _register()
    app()


if __name__ == "__main__":
    main()
