"""What every admin command needs: settings from options and environment, and the services built on them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import typer

from keyhall.audit.events import Actor
from keyhall.container import Container
from keyhall.db import migrate
from keyhall.errors import KeyhallError
from keyhall.settings import Settings


@dataclass
class CliState:
    data_dir: Path | None = None
    database_url: str | None = None
    _container: Container | None = field(default=None, repr=False)

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {}
        if self.data_dir is not None:
            values["data_dir"] = self.data_dir
        if self.database_url is not None:
            values["database_url"] = self.database_url
        values.update({k: v for k, v in overrides.items() if v is not None})
        return Settings(**values)

    def container(self, *, require_schema: bool = True) -> Container:
        if self._container is None:
            settings = self.settings()
            if settings.database_url is None and not settings.data_dir.exists():
                fail(
                    f"No Keyhall data directory at {settings.data_dir}; "
                    "run `keyhall init` first (or pass --data-dir)"
                )
            self._container = Container.build(settings)
            if require_schema and not migrate.is_up_to_date(self._container.db.engine):
                fail(
                    "The database has no Keyhall schema, or an older one. Run `keyhall init` "
                    "(new instance) or `keyhall migrate` (upgrade)."
                )
        return self._container

    def close(self) -> None:
        """Release the database connections a command opened (in-process callers run many commands)."""
        if self._container is not None:
            self._container.db.dispose()
            self._container = None

    @property
    def actor(self) -> Actor:
        return Actor.local_operator()


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    obj = root.obj
    if not isinstance(obj, CliState):
        obj = CliState()
        root.obj = obj
        root.call_on_close(obj.close)
    return obj


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def fail_with(error: KeyhallError) -> NoReturn:
    problems = getattr(error, "problems", None)
    if problems:
        typer.secho("Error: the request is not valid:", fg=typer.colors.RED, err=True)
        for problem in problems:
            typer.echo(f"  - {problem}", err=True)
        raise typer.Exit(1)
    fail(error.message)


def env_flag(name: str) -> bool:
    """Strict boolean environment parsing: only true/false/1/0/yes/no, anything else is an error."""
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise typer.BadParameter(f"{name} must be true or false, got {value!r}")
