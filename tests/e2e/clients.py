"""Driving the stock AWS CLI v2 (Debian), boto3 and the JS SDK against a running Keyhall."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from e2e.aws_env import AWS_CLI, SESSION_NAME, client_env, write_config
from e2e.harness import RunningServer
from e2e.person import Person

JS_DIR = Path(__file__).parent / "js"


@dataclass
class Workstation:
    """A developer's machine: its own HOME with ~/.aws, pointed at the server."""

    server: RunningServer
    home: Path

    @property
    def env(self) -> dict[str, str]:
        return client_env(self.home, self.server.url)

    def configure(self, profiles: dict[str, tuple[str, str]]) -> None:
        write_config(self.home, self.server.url, profiles)

    def aws(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [AWS_CLI, *args], capture_output=True, text=True, env=self.env, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"aws {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def aws_json(self, *args: str) -> dict[str, object]:
        return dict(json.loads(self.aws(*args, "--output", "json").stdout))

    def sso_login(
        self, approve: Callable[[str], object], *, profile: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`aws sso login --no-browser`; ``approve(verification_uri_complete)`` plays the person."""
        args = [AWS_CLI, "sso", "login", "--no-browser"]
        args += ["--profile", profile] if profile else ["--sso-session", SESSION_NAME]
        lines: list[str] = []
        approver: threading.Thread | None = None
        with subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env
        ) as process:
            assert process.stdout is not None and process.stderr is not None
            for line in process.stdout:
                lines.append(line)
                if line.startswith("http") and "user_code=" in line and approver is None:
                    approver = threading.Thread(target=approve, args=(line.strip(),), daemon=True)
                    approver.start()
            stderr = process.stderr.read()
            process.wait(timeout=120)
        if approver:
            approver.join(timeout=30)
        return subprocess.CompletedProcess(args, process.returncode, "".join(lines), stderr)

    def token_cache(self) -> dict[str, object]:
        import hashlib

        name = hashlib.sha1(SESSION_NAME.encode()).hexdigest()  # noqa: S324 (the AWS CLI's cache key)
        return dict(json.loads((self.home / ".aws" / "sso" / "cache" / f"{name}.json").read_text()))

    def boto3(self, profile: str) -> dict[str, object]:
        """boto3's SSO credential provider (and its token refresh), in a fresh process."""
        result = subprocess.run(
            [sys.executable, str(Path(__file__).parent / "boto3_identity.py"), profile],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )
        try:
            return dict(json.loads(result.stdout.strip().splitlines()[-1]))
        except (IndexError, json.JSONDecodeError) as exc:
            raise AssertionError(f"boto3: {result.stdout}\n{result.stderr}") from exc

    def node(self, script: str, *args: str) -> dict[str, object]:
        result = subprocess.run(
            ["node", str(JS_DIR / script), *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=JS_DIR,
            timeout=60,
            check=False,
        )
        try:
            return dict(json.loads(result.stdout.strip().splitlines()[-1]))
        except (IndexError, json.JSONDecodeError) as exc:
            raise AssertionError(f"node {script}: {result.stdout}\n{result.stderr}") from exc


def demo_person(server: RunningServer) -> Person:
    return Person(server.url, "demo", server.one_time_password("demo"))
