"""End-to-end fixtures: `keyhall init` and `keyhall serve` run as real processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dbs import DATABASES, drop_postgres, fresh_postgres
from e2e.harness import RunningServer, serve_keyhall


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[RunningServer]:
    """`keyhall init --demo` then `keyhall serve` on a free port, on each database."""
    yield from serve_keyhall(tmp_path, database_url)


@pytest.fixture(scope="module", params=DATABASES)
def shared_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One server per test module and database, for the slower real-client tests."""
    root = tmp_path_factory.mktemp("shared-server")
    if request.param == "sqlite":
        database_url = f"sqlite:///{root}/keyhall.db"
        yield from serve_keyhall(root, database_url)
        return
    server_url = request.getfixturevalue("postgres_template")
    name, database_url = fresh_postgres(server_url)
    try:
        yield from serve_keyhall(root, database_url)
    finally:
        drop_postgres(server_url, name)
