"""A private throwaway PostgreSQL cluster on 127.0.0.1 (a copy of tests/pg.py, which bench may not import)."""

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_version(bindir: Path) -> str:
    out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


@contextmanager
def throwaway_cluster(*, fsync: bool = True) -> Iterator[str]:
    """Yield the URL of a fresh cluster (trust auth) and remove it afterwards.

    Unlike tests/pg.py, fsync stays on by default: the audit-write measurement should pay for a durable commit
    as a production server would.
    """
    bindir = find_pg_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL binaries not found: run `make system-deps` (it installs postgresql)")
    root = tempfile.mkdtemp(prefix="keyhall-bench-pg-")
    run: dict[str, Any] = {"cwd": root, "capture_output": True}
    if os.geteuid() == 0:  # initdb and pg_ctl refuse to run as root
        shutil.chown(root, "postgres", "postgres")
        run.update(user="postgres", group="postgres", extra_groups=[])
    port = free_port()
    data = str(Path(root) / "data")
    initdb = [str(bindir / "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8"]
    subprocess.run([*initdb, "--locale=C.UTF-8", "-N"], check=True, **run)
    options = f"-h 127.0.0.1 -p {port} -k {root} -c max_connections=300" + ("" if fsync else " -F")
    pg_ctl = str(bindir / "pg_ctl")
    subprocess.run(
        [pg_ctl, "-D", data, "-l", f"{root}/server.log", "-w", "-o", options, "start"], check=True, **run
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"], check=False, **run)
        shutil.rmtree(root, ignore_errors=True)
