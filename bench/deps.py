"""Bench-only tools, installed on first use and never into the project's dependencies.

* ``wrk`` (Debian package) drives the HTTP measurements; when it cannot be had, bench/loadgen.py does (the
  portal stage, which needs wrk's Lua scripting, is skipped then).
* ``hyperfine`` (Debian package) cross-checks the credential-process timings.
* uvicorn with uvloop and httptools, the alternative server we compare granian against, goes into
  ``bench/.deps`` with ``pip install --target`` and reaches only the processes given that PYTHONPATH, so the
  granian runs see exactly the packages a production install has (no uvloop).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

DEPS_DIR = Path(__file__).resolve().parent / ".deps"
UVICORN_PACKAGES = ("uvicorn", "uvloop", "httptools")  # uvicorn's click and h11 are already in the venv


def _debian_tool(name: str, *, install: bool) -> str | None:
    """The tool on PATH, installed from its Debian package of the same name when missing (root only)."""
    found = shutil.which(name)
    if found or not install:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(f"  {name} is missing and cannot be installed here (needs root and apt-get)", flush=True)
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", name]
    print(f"  installing {name} (apt-get install {name}) ...", flush=True)
    if subprocess.run(command, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
        subprocess.run(command, env=env, capture_output=True, check=False)
    return shutil.which(name)


def ensure_wrk(*, install: bool) -> str | None:
    return _debian_tool("wrk", install=install)


def ensure_hyperfine(*, install: bool) -> str | None:
    """hyperfine cross-checks the credential-process timings (bench/credential_process.py times them too)."""
    return _debian_tool("hyperfine", install=install)


def _import_check(code: str, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)


def ensure_uvicorn(*, install: bool) -> dict[str, str] | None:
    """Versions of uvicorn, uvloop and httptools importable with PYTHONPATH=bench/.deps, installing them."""
    code = (
        "import importlib.metadata as m;"
        f"print(' '.join(n + '=' + m.version(n) for n in {UVICORN_PACKAGES!r}))"
    )
    probe = _import_check(code, DEPS_DIR)
    if probe.returncode != 0 and install:
        print(f"  installing {', '.join(UVICORN_PACKAGES)} into {DEPS_DIR} (bench only) ...", flush=True)
        pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps"]
        subprocess.run([*pip, "--target", str(DEPS_DIR), *UVICORN_PACKAGES], check=False)
        probe = _import_check(code, DEPS_DIR)
    if probe.returncode != 0:
        return None
    return dict(item.split("=", 1) for item in probe.stdout.split())
