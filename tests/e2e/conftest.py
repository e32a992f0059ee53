"""End-to-end fixtures: `keyhall init` and `keyhall serve` run as real processes."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbs import DATABASES, drop_postgres, fresh_postgres
from e2e.harness import KEYHALL, RunningServer, clean_env, free_port, run_keyhall, wait_ready


def _serve(root: Path, database_url: str, extra_env: dict[str, str] | None = None) -> Iterator[RunningServer]:
    data_dir = root / "keyhall-data"
    init = run_keyhall(data_dir, database_url, "init", "--demo")
    port = free_port()
    log = (root / "serve.log").open("wb")
    process = subprocess.Popen(
        [
            KEYHALL,
            "--data-dir",
            str(data_dir),
            "--database-url",
            database_url,
            "serve",
            "--port",
            str(port),
            "--access-log",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**clean_env(), "KEYHALL_DEVICE_POLL_INTERVAL": "1", **(extra_env or {})},  # quick CLI polling
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield RunningServer(url, data_dir, database_url, process, init.stdout, root / "serve.log")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[RunningServer]:
    """`keyhall init --demo` then `keyhall serve` on a free port, on each database."""
    yield from _serve(tmp_path, database_url)


@pytest.fixture(scope="module", params=DATABASES)
def shared_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One server per test module and database, for the slower real-client tests."""
    root = tmp_path_factory.mktemp("shared-server")
    if request.param == "sqlite":
        database_url = f"sqlite:///{root}/keyhall.db"
        yield from _serve(root, database_url)
        return
    server_url = request.getfixturevalue("postgres_template")
    name, database_url = fresh_postgres(server_url)
    try:
        yield from _serve(root, database_url)
    finally:
        drop_postgres(server_url, name)
