"""Keyhall's own user commands against `keyhall serve`: login (PKCE and device), configure, and the
credentials they hand to tools, checked with the stock AWS CLI and boto3."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from e2e.aws_env import AWS_CLI
from e2e.clients import Workstation, demo_person
from e2e.harness import KEYHALL, RunningServer
from e2e.person import Person

ARN_RE = r"arn:aws:sts::{account}:assumed-role/AWSReservedSSO_{role}_[0-9a-f]{{16}}/demo"


@pytest.fixture(scope="module")
def demo(shared_server: RunningServer) -> Iterator[Person]:
    person = demo_person(shared_server)
    yield person
    person.close()


@pytest.fixture
def station(shared_server: RunningServer, tmp_path: Path) -> Workstation:
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    return Workstation(shared_server, home)


def keyhall(station: Workstation, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [KEYHALL, *args], capture_output=True, text=True, env=station.env, timeout=120, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"keyhall {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def login_with(
    station: Workstation, args: list[str], act: Callable[[str], object]
) -> subprocess.CompletedProcess[str]:
    """Run `keyhall login …`; when it prints a URL, ``act(url)`` plays the person in the browser."""
    lines: list[str] = []
    actor: threading.Thread | None = None
    with subprocess.Popen(
        [KEYHALL, "login", "--url", station.server.url, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=station.env,
    ) as process:
        assert process.stderr is not None and process.stdout is not None
        for line in process.stderr:
            lines.append(line)
            if line.startswith("http") and actor is None and ("/authorize?" in line or "user_code=" in line):
                actor = threading.Thread(target=act, args=(line.strip(),), daemon=True)
                actor.start()
        stdout = process.stdout.read()
        process.wait(timeout=60)
    if actor:
        actor.join(timeout=30)
    return subprocess.CompletedProcess([], process.returncode, stdout, "".join(lines))


def allow_in_browser(person: Person) -> Callable[[str], object]:
    def act(url: str) -> None:
        page = person.sign_in_if_asked(person.http.get(url))
        if page.url.path != "/authorize":
            page = person.http.get(url)
        # Allow answers 303 to the CLI's loopback listener, which the "browser" follows
        done = person.submit(page, where="/authorize", values={}, button=("decision", "allow"))
        assert done.status_code == 200

    return act


def test_login_with_pkce_then_configure_and_use_the_profiles(station: Workstation, demo: Person) -> None:
    result = login_with(station, ["--no-browser"], allow_in_browser(demo))
    assert result.returncode == 0, result.stderr
    assert "Signed in to" in result.stdout
    token = station.token_cache()  # the AWS-format cache the other clients read
    assert token["accessToken"] and token["refreshToken"]

    configured = keyhall(station, "configure", "--credential-process")
    assert "Sandbox" in configured.stdout or "sandbox" in configured.stdout.lower()
    config = (station.home / ".aws" / "config").read_text()
    assert "[sso-session keyhall]" in config and "sso_account_id = 222222222222" in config
    assert keyhall(station, "configure", "--credential-process").stdout  # idempotent: runs again cleanly
    assert (station.home / ".aws" / "config").read_text() == config

    listing = json.loads(keyhall(station, "ls", "--json").stdout)
    profiles = {(p["account_id"], p["role"]): p["profile"] for p in _flatten(listing)}
    dev_profile = profiles[("111111111111", "Developer")]
    ro_profile = profiles[("222222222222", "ReadOnly")]

    # the stock AWS CLI uses the written profile as an SSO profile
    cli = station.aws("sts", "get-caller-identity", "--profile", dev_profile, "--output", "json")
    assert re.fullmatch(
        ARN_RE.format(account="111111111111", role="Developer"), json.loads(cli.stdout)["Arn"]
    )
    # boto3 through `keyhall credential-process` (the .process profiles)
    identity = station.boto3(f"{ro_profile}.process")
    assert re.fullmatch(ARN_RE.format(account="222222222222", role="ReadOnly"), str(identity["arn"]))
    again = station.boto3(f"{ro_profile}.process")
    assert again["key"] == identity["key"]  # served from the credential cache

    process = json.loads(keyhall(station, "credential-process", "--profile", ro_profile).stdout)
    assert process["Version"] == 1 and process["AccessKeyId"].startswith("ASIA")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", process["Expiration"])

    env = keyhall(station, "env", dev_profile).stdout
    assert "export AWS_ACCESS_KEY_ID=" in env and "export AWS_SESSION_TOKEN=" in env
    ran = keyhall(
        station, "exec", dev_profile, "--", AWS_CLI, "sts", "get-caller-identity", "--output", "json"
    )
    assert json.loads(ran.stdout)["Account"] == "111111111111"

    whoami = keyhall(station, "whoami")
    assert "demo" in whoami.stdout
    console = keyhall(station, "console", dev_profile, check=False)
    assert console.returncode != 0 and "local" in (console.stdout + console.stderr).lower()

    keyhall(station, "logout")
    after = keyhall(station, "ls", check=False)
    assert after.returncode != 0


def _flatten(listing: object) -> list[dict[str, str]]:
    """`keyhall ls --json` rows as {account_id, role, profile}, whatever the nesting."""
    rows: list[dict[str, str]] = []
    items = listing if isinstance(listing, list) else listing.get("accounts", [])  # type: ignore[union-attr]
    for account in items:
        for role in account.get("roles", []):
            rows.append(
                {
                    "account_id": account.get("accountId") or account.get("account_id"),
                    "role": role.get("roleName") or role.get("role") if isinstance(role, dict) else role,
                    "profile": role.get("profile") if isinstance(role, dict) else "",
                }
            )
    return rows


def test_login_with_the_device_flow(station: Workstation, demo: Person) -> None:
    result = login_with(station, ["--device", "--no-browser"], demo.approve_device)
    assert result.returncode == 0, result.stderr
    assert "enter the code" in result.stderr
    assert station.token_cache()["refreshToken"]
