"""A private throwaway PostgreSQL cluster for the test session (testing-recipes.md §2).

Used unless KEYHALL_TEST_POSTGRES_URL names a server to use instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def find_pg_bin() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    if candidates:
        return candidates[0].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    bindir = find_pg_bin()
    if bindir is None:
        raise RuntimeError(
            "PostgreSQL binaries not found: run `make test` (it installs postgresql) "
            "or set KEYHALL_TEST_POSTGRES_URL"
        )
    root = tempfile.mkdtemp(prefix="keyhall-pg-")  # not under pytest's 0700 tmp: postgres must reach it
    run: dict[str, Any] = {"cwd": root, "capture_output": True}
    if os.geteuid() == 0:  # initdb and pg_ctl refuse to run as root
        shutil.chown(root, "postgres", "postgres")
        run.update(user="postgres", group="postgres", extra_groups=[])
    port = _free_port()
    data = str(Path(root) / "data")
    subprocess.run(
        [
            str(bindir / "initdb"),
            "-D",
            data,
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "-N",
        ],
        check=True,
        **run,
    )
    subprocess.run(
        [
            str(bindir / "pg_ctl"),
            "-D",
            data,
            "-l",
            f"{root}/server.log",
            "-w",
            "-o",
            f"-h 127.0.0.1 -p {port} -k {root} -F -c max_connections=300",
            "start",
        ],
        check=True,
        **run,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [str(bindir / "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"], check=False, **run
        )
        shutil.rmtree(root, ignore_errors=True)
