"""`keyhall serve` as a real process: health, readiness, request ids, error shapes, security headers."""

from __future__ import annotations

import json

import httpx

from e2e.harness import RunningServer, run_keyhall


def test_health_and_readiness(server: RunningServer) -> None:
    health = httpx.get(f"{server.url}/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert len(health.headers["x-amzn-requestid"]) == 32
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.json() == {"status": "ready"}


def test_portal_refuses_a_bad_token_in_the_aws_shape(server: RunningServer) -> None:
    response = httpx.get(f"{server.url}/assignment/accounts", headers={"x-amz-sso_bearer_token": "nope"})
    assert response.status_code == 401
    assert response.headers["x-amzn-errortype"].startswith("UnauthorizedException")


def test_sign_in_page_is_locked_down(server: RunningServer) -> None:
    page = httpx.get(f"{server.url}/login")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"


def test_init_twice_is_refused_and_if_missing_is_quiet(server: RunningServer) -> None:
    again = server.keyhall("init", check=False)
    assert again.returncode == 1 and "already holds instance" in again.stderr
    quiet = server.keyhall("init", "--if-missing")
    assert quiet.returncode == 0 and "already initialised" in quiet.stdout


def test_serve_refuses_an_uninitialised_data_dir(tmp_path: object) -> None:
    from pathlib import Path

    data_dir = Path(str(tmp_path)) / "empty"
    data_dir.mkdir()
    result = run_keyhall(data_dir, f"sqlite:///{data_dir}/keyhall.db", "serve", "--port", "1", check=False)
    assert result.returncode == 1
    assert "master key" in result.stderr


def test_purge_expired_runs_beside_the_server(server: RunningServer) -> None:
    tables = {
        "access_tokens",
        "refresh_tokens",
        "authorization_codes",
        "device_authorizations",
        "portal_sessions",
        "oauth_clients",
        "rate_limits",
    }
    deleted = json.loads(server.keyhall("purge-expired", "--json").stdout)
    assert set(deleted) == tables and deleted == dict.fromkeys(tables, 0)  # a new instance: nothing yet
    table = server.keyhall("purge-expired").stdout
    assert "Expired rows deleted" in table and "access_tokens" in table
    assert httpx.get(f"{server.url}/readyz").json() == {"status": "ready"}  # the server carried on


def test_signing_keys_rotate_then_promote_from_the_cli(server: RunningServer) -> None:
    def listed() -> list[dict[str, object]]:
        return list(json.loads(server.keyhall("aws", "keys", "list", "--purpose", "oidc", "--json").stdout))

    def kids(status: str) -> list[object]:
        return [k["kid"] for k in listed() if k["status"] == status]

    first = server.keyhall("aws", "keys", "rotate", "--purpose", "oidc").stdout  # none yet: it signs at once
    (active,) = kids("active")
    assert f"Created OIDC key {active} (active)" in first
    rotated = server.keyhall("aws", "keys", "rotate", "--purpose", "oidc").stdout
    (upcoming,) = kids("next")
    assert f"Created OIDC key {upcoming} (next)" in rotated and "It is in the JWKS now" in rotated
    assert {k["kid"] for k in listed() if k["published"]} == {active, upcoming}  # published before it signs
    promoted = server.keyhall("aws", "keys", "promote", "--purpose", "oidc").stdout
    assert f"OIDC key {upcoming} signs from now on." in promoted
    assert kids("active") == [upcoming] and kids("next") == [] and kids("retired") == [active]
    refused = server.keyhall("aws", "keys", "promote", "--purpose", "oidc", check=False)
    assert refused.returncode == 1 and "no OIDC key to promote" in refused.stderr
