"""HTTP server choice: the real app (keyhall.asgi:create_from_env) under granian and uvicorn.

Each server serves a fresh instance created by `keyhall init` on the embedded SQLite database and answers
``GET /healthz`` (no I/O) and ``GET /readyz`` (a database round trip and the schema check) to 64 keep-alive
connections on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import importlib.metadata
import math
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.deps import DEPS_DIR
from bench.loadgen import load, require_loopback
from bench.pg import free_port

HOST = "127.0.0.1"
ENDPOINTS = ("/healthz", "/readyz")
HEALTHZ = ("/healthz",)  # for the side questions (uvloop, access log): the server's own cost
CONNECTIONS = 64
START_TIMEOUT_S = 30.0
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class ServerConfig:
    name: str
    server: str  # granian | uvicorn
    workers: int
    loop: str
    log_level: str = "warning"
    with_bench_deps: bool = False  # PYTHONPATH=bench/.deps (uvloop, httptools, uvicorn)
    endpoints: tuple[str, ...] = ENDPOINTS

    def argv(self, data_dir: Path, port: int) -> list[str]:
        if self.server == "granian":  # exactly what users run
            return [
                str(BIN / "keyhall"), "--data-dir", str(data_dir), "serve",
                "--host", HOST, "--port", str(port), "--workers", str(self.workers),
                "--log-level", self.log_level,
            ]  # fmt: skip
        return [
            sys.executable, "-m", "uvicorn", "--factory", "keyhall.asgi:create_from_env",
            "--host", HOST, "--port", str(port), "--workers", str(self.workers),
            "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip

    def env(self, data_dir: Path, port: int) -> dict[str, str]:
        env = {
            **os.environ,
            # what `keyhall serve` exports to its workers; uvicorn's workers read the same
            "KEYHALL_DATA_DIR": str(data_dir),
            "KEYHALL_DATABASE_URL": f"sqlite:///{data_dir / 'keyhall.db'}",
            "KEYHALL_HOST": HOST,
            "KEYHALL_PORT": str(port),
            "KEYHALL_LOG_LEVEL": self.log_level,
        }
        if self.with_bench_deps:
            env["PYTHONPATH"] = str(DEPS_DIR)
        else:
            env.pop("PYTHONPATH", None)
        return env


def server_configs(*, uvicorn: bool) -> list[ServerConfig]:
    configs = [
        ServerConfig("granian w1", "granian", 1, "asyncio"),
        ServerConfig("granian w2", "granian", 2, "asyncio"),
    ]
    if uvicorn:
        configs += [
            ServerConfig(
                "granian w1 +uvloop", "granian", 1, "uvloop", with_bench_deps=True, endpoints=HEALTHZ
            ),
            ServerConfig("uvicorn w1", "uvicorn", 1, "uvloop+httptools", with_bench_deps=True),
            ServerConfig("uvicorn w2", "uvicorn", 2, "uvloop+httptools", with_bench_deps=True),
        ]
    # the default log level writes one JSON access line per request: what does that cost?
    configs.append(
        ServerConfig("granian w1 log=info", "granian", 1, "asyncio", log_level="info", endpoints=HEALTHZ)
    )
    return configs


def create_instance(data_dir: Path) -> None:
    """`keyhall init` as an operator runs it (argon2 hash, master key file, migrations)."""
    env = {**os.environ, "KEYHALL_BENCH_ADMIN_PASSWORD": secrets.token_urlsafe(24) + "-Aa1"}
    argv = [str(BIN / "keyhall"), "--data-dir", str(data_dir), "init", "--password-env"]
    subprocess.run([*argv, "KEYHALL_BENCH_ADMIN_PASSWORD"], env=env, check=True, capture_output=True)


def _get(port: int, path: str, timeout: float = 2.0) -> int:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@contextmanager
def running(config: ServerConfig, data_dir: Path) -> Iterator[int]:
    """Start the server in its own process group, wait until it answers, and stop it (that group only)."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            config.argv(data_dir, port),
            env=config.env(data_dir, port),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"{config.name} exited at start:\n{log.read().decode()[-2000:]}")
                try:
                    if _get(port, "/healthz") == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{config.name} did not answer within {START_TIMEOUT_S} s")
                time.sleep(0.1)
            yield port
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(value: str | None) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value or "")
    return round(float(match.group(1)) * _UNIT_MS[match.group(2)], 3) if match else math.nan


def parse_wrk(output: str) -> dict[str, Any]:
    percentiles = dict(re.findall(r"^\s+(50|90|99)(?:\.000)?%\s+(\S+)\s*$", output, re.MULTILINE))
    requests = re.search(r"(\d+) requests in", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if not (requests and rate):
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    return {
        "requests": int(requests.group(1)),
        "req_per_s": float(rate.group(1)),
        "p50_ms": _ms(percentiles.get("50")),
        "p90_ms": _ms(percentiles.get("90")),
        "p99_ms": _ms(percentiles.get("99")),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
    }


def drive(wrk: str | None, port: int, path: str, *, seconds: float) -> dict[str, Any]:
    require_loopback(HOST)
    if wrk is None:
        return load(HOST, port, path, connections=CONNECTIONS, seconds=seconds)
    url = f"http://{HOST}:{port}{path}"
    whole = max(1, round(seconds))  # wrk takes whole seconds
    argv = [wrk, "-t2", f"-c{CONNECTIONS}", f"-d{whole}s", "--timeout", "5s", "--latency", url]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 30)
    return parse_wrk(done.stdout)


def _measure(
    wrk: str | None, port: int, path: str, *, seconds: float, warmup_seconds: float
) -> dict[str, Any]:
    """The measured time as one-second rounds: the median resists a noisy neighbour, and the spread shows "
    "it."""
    try:
        drive(wrk, port, path, seconds=warmup_seconds)
        rounds = [drive(wrk, port, path, seconds=1) for _ in range(max(1, round(seconds)))]
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:  # one bad run must not lose the rest
        print(f"    failed: {exc}", flush=True)
        return {"error": str(exc)[-500:]}
    rates = [r["req_per_s"] for r in rounds]
    return {
        "rounds": len(rounds),
        "requests": sum(r["requests"] for r in rounds),
        "req_per_s": round(statistics.median(rates), 1),
        "req_per_s_min": round(min(rates), 1),
        "req_per_s_max": round(max(rates), 1),
        "p50_ms": round(statistics.median(r["p50_ms"] for r in rounds), 3),
        "p90_ms": round(statistics.median(r["p90_ms"] for r in rounds), 3),
        "p99_ms": round(statistics.median(r["p99_ms"] for r in rounds), 3),
        "non_2xx": sum(r["non_2xx"] for r in rounds),
        "socket_errors": sum(r["socket_errors"] for r in rounds),
    }


def _versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in ("granian", "starlette")}


def readyz_parts(data_dir: Path, *, rounds: int = 200) -> dict[str, float]:
    """Mean ms of each step /readyz takes on the event loop, measured in-process on the same instance."""
    from keyhall.db import migrate
    from keyhall.db.database import Database

    db = Database(f"sqlite:///{data_dir / 'keyhall.db'}")
    steps = {
        "db_ping": db.ping,
        "current_revision": lambda: migrate.current_revision(db.engine),
        "head_revision": migrate.head_revision,
    }
    parts = {}
    try:
        for name, step in steps.items():
            step()
            started = time.perf_counter()
            for _ in range(rounds):
                step()
            parts[name] = round((time.perf_counter() - started) / rounds * 1000, 3)
    finally:
        db.dispose()
    return parts


def _describe(config: ServerConfig) -> dict[str, Any]:
    return {
        "server": config.name,
        "kind": config.server,
        "workers": config.workers,
        "loop": config.loop,
        "log_level": config.log_level,
    }


def _measure_server(
    config: ServerConfig, data_dir: Path, wrk: str | None, *, seconds: float, warmup_seconds: float
) -> list[dict[str, Any]]:
    rows = []
    with running(config, data_dir) as port:
        for path in config.endpoints:
            status = _get(port, path)
            print(f"  http / {config.name} / GET {path} ({status})", flush=True)
            result = _measure(wrk, port, path, seconds=seconds, warmup_seconds=warmup_seconds)
            rows.append({**_describe(config), "endpoint": path, "status": status, **result})
    return rows


def run_http(
    *, wrk: str | None, uvicorn: dict[str, str] | None, seconds: float, warmup_seconds: float
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="keyhall-bench-http-") as tmp:
        data_dir = Path(tmp) / "data"
        create_instance(data_dir)
        parts = readyz_parts(data_dir)
        for config in server_configs(uvicorn=uvicorn is not None):
            try:
                rows += _measure_server(config, data_dir, wrk, seconds=seconds, warmup_seconds=warmup_seconds)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                print(f"    {config.name} failed: {exc}", flush=True)
                rows.append({**_describe(config), "endpoint": "-", "error": str(exc)[-500:]})
    return {
        "load_generator": (
            f"wrk -t2 -c{CONNECTIONS} -d1s --latency, {round(seconds)} rounds"
            if wrk
            else f"bench/loadgen.py, {CONNECTIONS} connections"
        ),
        "seconds": seconds,
        "warmup_seconds": warmup_seconds,
        "connections": CONNECTIONS,
        "versions": {**_versions(), **(uvicorn or {})},
        "readyz_parts_ms": parts,
        "load_average_before": os.getloadavg(),
        "rows": rows,
    }
