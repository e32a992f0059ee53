"""End-to-end harness: `keyhall init` and `keyhall serve` run as real processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

KEYHALL = str(Path(sys.executable).parent / "keyhall")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    data_dir: Path
    database_url: str
    process: subprocess.Popen[bytes]
    init_output: str
    log_path: Path

    def one_time_password(self, user_name: str) -> str:
        """The password `keyhall init --demo` printed for a user."""
        lines = self.init_output.splitlines()
        for i, line in enumerate(lines):
            if line.strip() in (f"Demo user: {user_name}", f"Administrator: {user_name}"):
                return lines[i + 1].rsplit(":", 1)[1].strip()
        raise AssertionError(f"no password for {user_name} in init output")

    def keyhall(
        self, *args: str, input_text: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run_keyhall(self.data_dir, self.database_url, *args, input_text=input_text, check=check)


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("KEYHALL_", "AWS_"))}


def run_keyhall(
    data_dir: Path, database_url: str, *args: str, input_text: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KEYHALL, "--data-dir", str(data_dir), "--database-url", database_url, *args],
        capture_output=True,
        text=True,
        input=input_text,
        check=check,
        env=clean_env(),
        timeout=120,
    )


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"keyhall serve exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError("keyhall serve did not become ready")


def serve_keyhall(
    root: Path,
    database_url: str,
    extra_env: dict[str, str] | None = None,
    *,
    public_host: str | None = None,
    before_serve: Sequence[Sequence[str]] = (),
) -> Iterator[RunningServer]:
    """`keyhall init --demo`, then each command of ``before_serve`` (e.g. `settings set …`), then
    `keyhall serve` on a free port of 127.0.0.1 until the generator is closed. ``public_host`` makes the
    server's public URL (and ``RunningServer.url``) ``http://<public_host>:<port>``: WebAuthn needs a
    host name, not an address."""
    data_dir = root / "keyhall-data"
    init = run_keyhall(data_dir, database_url, "init", "--demo")
    for command in before_serve:
        run_keyhall(data_dir, database_url, *command)
    port = free_port()
    local_url = f"http://127.0.0.1:{port}"
    url = f"http://{public_host}:{port}" if public_host else local_url
    env = {**clean_env(), "KEYHALL_DEVICE_POLL_INTERVAL": "1", **(extra_env or {})}  # quick CLI polling
    if public_host:
        env["KEYHALL_PUBLIC_URL"] = url
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
        env=env,
    )
    try:
        wait_ready(local_url, process)
        yield RunningServer(url, data_dir, database_url, process, init.stdout, root / "serve.log")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
