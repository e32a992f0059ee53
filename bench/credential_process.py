"""The `keyhall credential-process` warm path, timed as the AWS SDKs run it: a whole process per call.

Setup: `keyhall init --demo`, `keyhall serve`, and a signed-in CLI session minted with the real code
(``SessionService.create`` + ``issue_tokens`` for the demo user and a client registered through
``OidcService.register_client``) written to a temporary HOME's ``~/.aws/sso/cache`` by Keyhall's own
``TokenCache``, the AWS CLI's format. One `keyhall credential-process` call then fetches the credentials
from the server (the cold path) and caches them; the server is stopped, so what is timed next can only be
served from the cache.

Timed, interleaved (A B C A B C …, so drift hits all three alike), wall clock around the whole process:
``keyhall credential-process --sso-session keyhall --account … --role …``, ``python -c pass`` and
``python -c "import boto3"``. hyperfine, when available, times the same three commands as a cross-check.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.http_servers import HOST, running
from bench.portal_api import Instance, PortalServer, init_instance
from bench.stats import percentile

BIN = Path(sys.executable).parent
ACCOUNT = "111111111111"  # the demo's Sandbox account
ROLE = "Developer"  # the demo user reaches it through the Developers group
SESSION_NAME = "keyhall"
TARGET_WARM_MS = 80.0


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYHALL_", "AWS_", "PYTHON"))}
    env["HOME"] = str(home)
    return env


def sign_in(instance: Instance, home: Path, base_url: str) -> None:
    """A CLI session of the demo user, written where `keyhall login` (or `aws sso login`) would put it."""
    from keyhall.audit.events import Actor
    from keyhall.client.token_cache import SSOToken, TokenCache
    from keyhall.container import Container
    from keyhall.directory import store as directory_store
    from keyhall.oauth.clients import DEVICE_GRANT, REFRESH_GRANT
    from keyhall.oauth.tokens import issue_tokens
    from keyhall.settings import Settings

    container = Container.build(Settings(data_dir=instance.data_dir, database_url=instance.url))
    try:
        registration = container.oidc.register_client(
            Actor(type="Anonymous", source_ip="127.0.0.1", user_agent="keyhall-bench"),
            name=f"botocore-client-{SESSION_NAME}",
            client_type="public",
            scopes=["sso:account:access"],
            grant_types=[DEVICE_GRANT, REFRESH_GRANT],
            redirect_uris=None,
            issuer_url=None,
        )
        with container.db.write() as conn:
            user = directory_store.get_user_by_name_key(conn, "demo")
            if user is None:
                raise RuntimeError("`keyhall init --demo` made no demo user")
            session, _ = container.sessions.create(
                conn,
                user_id=user.id,
                kind="cli",
                lifetime_seconds=8 * 3600,
                client_id=registration.client.id,
                source_ip="127.0.0.1",
                user_agent="keyhall-bench",
            )
            tokens = issue_tokens(
                conn,
                container.clock,
                session_id=session.id,
                user_id=user.id,
                client_id=registration.client.id,
                scopes=["sso:account:access"],
                session_expires_at=session.expires_at,
            )
    finally:
        container.db.dispose()
    now = time.time()
    TokenCache(home / ".aws" / "sso" / "cache").store_token(
        SESSION_NAME,
        SSOToken(
            start_url=f"{base_url}/start",
            region="us-east-1",
            access_token=tokens.access_token,
            expires_at=datetime.fromtimestamp(now + tokens.expires_in, UTC),
            client_id=registration.client.id,
            client_secret=registration.client_secret,
            registration_expires_at=datetime.fromtimestamp(registration.client.expires_at, UTC),
            refresh_token=tokens.refresh_token,
        ),
    )


def _commands() -> dict[str, list[str]]:
    python = str(BIN / "python")
    return {
        "credential_process_warm": [
            str(BIN / "keyhall"), "credential-process", "--sso-session", SESSION_NAME,
            "--account", ACCOUNT, "--role", ROLE,
        ],
        "python_pass": [python, "-c", "pass"],
        "python_import_boto3": [python, "-c", "import boto3"],
    }  # fmt: skip


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=60)
    return (time.perf_counter() - started) * 1000, done


def _credentials(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    if done.returncode != 0:
        raise RuntimeError(f"keyhall credential-process failed ({done.returncode}): {done.stderr[-500:]}")
    output = json.loads(done.stdout)
    if output.get("Version") != 1 or not str(output.get("AccessKeyId", "")).startswith("ASIA"):
        raise RuntimeError(f"unexpected credential-process output: {done.stdout[:200]}")
    return dict(output)


def _summary(ms: list[float]) -> dict[str, Any]:
    ordered = sorted(ms)
    return {
        "runs": len(ms),
        "median_ms": round(statistics.median(ordered), 1),
        "p90_ms": round(percentile(ordered, 0.90), 1),
        "min_ms": round(ordered[0], 1),
        "max_ms": round(ordered[-1], 1),
    }


def _hyperfine(
    hyperfine: str, commands: dict[str, list[str]], env: dict[str, str], runs: int
) -> dict[str, Any]:
    """hyperfine's view of the same commands (one after another, not interleaved), as a cross-check."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        argv = [
            hyperfine,
            "-N",
            "--warmup",
            "3",
            "--runs",
            str(runs),
            "--export-json",
            out.name,
            "--style",
            "none",
        ]
        for name, command in commands.items():
            argv += ["--command-name", name, " ".join(_quote(part) for part in command)]
        subprocess.run(argv, env=env, capture_output=True, check=True, timeout=300)
        data = json.loads(Path(out.name).read_text())
    results = {}
    for item in data["results"]:
        times = [t * 1000 for t in item["times"]]
        results[item["command"]] = _summary(times)
    return results


def _quote(part: str) -> str:
    return f'"{part}"' if " " in part else part


def run_credential_process(*, runs: int, hyperfine: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="keyhall-bench-cp-") as tmp:
        home = Path(tmp) / "home"
        (home / ".aws").mkdir(parents=True)
        data_dir = Path(tmp) / "data"
        instance = Instance("sqlite", data_dir, f"sqlite:///{data_dir / 'keyhall.db'}")
        init_instance(instance, demo=True)
        env = _clean_env(home)
        commands = _commands()
        config = PortalServer(
            name="keyhall serve w1", server="granian", workers=1, loop="asyncio", log_level="info",
            database_url=instance.url,
        )  # fmt: skip
        with running(config, data_dir) as port:
            sign_in(instance, home, f"http://{HOST}:{port}")
            cold_ms, done = _run(commands["credential_process_warm"], env)
            cold = _credentials(done)
        # the server is gone: from here on only the cache can answer
        timings: dict[str, list[float]] = {name: [] for name in commands}
        for argv in commands.values():  # one unmeasured round: page cache, .pyc files
            _run(argv, env)
        for _ in range(runs):
            for name, argv in commands.items():
                ms, done = _run(argv, env)
                if done.returncode != 0:
                    raise RuntimeError(f"{name} failed ({done.returncode}): {done.stderr[-500:]}")
                if name == "credential_process_warm" and _credentials(done) != cold:
                    raise RuntimeError("the warm path did not answer the cached credentials")
                timings[name].append(ms)
        result: dict[str, Any] = {
            "runs": runs,
            "command": " ".join(["keyhall", *commands["credential_process_warm"][1:]]),
            "cold_ms": round(cold_ms, 1),
            "interleaved": {name: _summary(ms) for name, ms in timings.items()},
            "target_warm_ms": TARGET_WARM_MS,
        }
        if hyperfine:
            try:
                result["hyperfine"] = _hyperfine(hyperfine, commands, env, runs)
                version = subprocess.run(
                    [hyperfine, "--version"], capture_output=True, text=True, check=False
                )
                result["hyperfine_version"] = version.stdout.strip()
            except (OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
                result["hyperfine_error"] = str(exc)[-300:]
        return result
