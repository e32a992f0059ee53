"""End-to-end fixtures: `keyhall init` and `keyhall serve` run as real processes."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.harness import KEYHALL, RunningServer, clean_env, free_port, run_keyhall, wait_ready


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[RunningServer]:
    """`keyhall init --demo` then `keyhall serve` on a free port, on each database."""
    data_dir = tmp_path / "keyhall-data"
    init = run_keyhall(data_dir, database_url, "init", "--demo")
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [KEYHALL, "--data-dir", str(data_dir), "--database-url", database_url, "serve", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**clean_env(), "KEYHALL_DEVICE_POLL_INTERVAL": "1"},  # keep CLI polling quick
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield RunningServer(url, data_dir, database_url, process, init.stdout)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
