"""The stock AWS CLI v2, boto3 and the AWS SDK for JavaScript v3 against `keyhall serve`, unmodified:
only endpoint settings point them at Keyhall (real-clients.md)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import botocore.exceptions
import httpx
import pytest
from botocore import UNSIGNED
from botocore.config import Config

from e2e.aws_env import REGION
from e2e.clients import Workstation, demo_person
from e2e.harness import RunningServer
from e2e.person import Person
from keyhall.oauth.pkce import s256

ARN_RE = r"arn:aws:sts::{account}:assumed-role/AWSReservedSSO_{role}_[0-9a-f]{{16}}/{user}"
PROFILES = {"sandbox-dev": ("111111111111", "Developer"), "prod-ro": ("222222222222", "ReadOnly")}


@pytest.fixture(scope="module")
def demo(shared_server: RunningServer) -> Iterator[Person]:
    """The demo user, shared by the module's tests (their first sign-in changes the one-time password)."""
    person = demo_person(shared_server)
    yield person
    person.close()


@pytest.fixture
def workstation(shared_server: RunningServer, tmp_path: Path) -> Workstation:
    station = Workstation(shared_server, tmp_path / "home")
    station.configure(PROFILES)
    return station


@pytest.fixture
def logged_in(workstation: Workstation, demo: Person) -> Workstation:
    result = workstation.sso_login(demo.approve_device)
    assert result.returncode == 0, result.stderr
    assert "Successfully logged into Start URL" in result.stdout
    return workstation


def oidc_client(server: RunningServer) -> botocore.client.BaseClient:
    return boto3.client(
        "sso-oidc", endpoint_url=server.url, region_name=REGION, config=Config(signature_version=UNSIGNED)
    )


def portal_client(server: RunningServer) -> botocore.client.BaseClient:
    return boto3.client(
        "sso", endpoint_url=server.url, region_name=REGION, config=Config(signature_version=UNSIGNED)
    )


def error_code(excinfo: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> str:
    return str(excinfo.value.response["Error"]["Code"])


# ---- the AWS CLI v2 ---------------------------------------------------------------------------------


def test_aws_cli_sso_login_lists_accounts_and_signs_requests(logged_in: Workstation) -> None:
    token = logged_in.token_cache()
    assert token["refreshToken"] and token["clientId"] and str(token["startUrl"]).endswith("/start")
    access_token = str(token["accessToken"])
    accounts = logged_in.aws_json("sso", "list-accounts", "--access-token", access_token, "--region", REGION)
    assert {a["accountId"] for a in accounts["accountList"]} == {"111111111111", "222222222222"}  # type: ignore[attr-defined]
    roles = logged_in.aws_json(
        "sso",
        "list-account-roles",
        "--access-token",
        access_token,
        "--account-id",
        "222222222222",
        "--region",
        REGION,
    )
    assert [r["roleName"] for r in roles["roleList"]] == ["ReadOnly"]  # type: ignore[attr-defined]
    identity = logged_in.aws_json("sts", "get-caller-identity", "--profile", "sandbox-dev")
    assert re.fullmatch(
        ARN_RE.format(account="111111111111", role="Developer", user="demo"), str(identity["Arn"])
    )
    assert identity["Account"] == "111111111111"
    assert str(identity["UserId"]).endswith(":demo")
    # a role the demo user does not have in that account
    denied = logged_in.aws("sts", "get-caller-identity", "--profile", "nope", check=False)
    assert denied.returncode != 0


def test_aws_cli_role_credentials_last_the_permission_set_duration(logged_in: Workstation) -> None:
    token = str(logged_in.token_cache()["accessToken"])
    before = time.time()
    creds = logged_in.aws_json(
        "sso",
        "get-role-credentials",
        "--access-token",
        token,
        "--account-id",
        "222222222222",
        "--role-name",
        "ReadOnly",
        "--region",
        REGION,
    )["roleCredentials"]
    lifetime = creds["expiration"] / 1000 - before  # type: ignore[index]
    assert 8 * 3600 - 60 < lifetime <= 8 * 3600 + 5  # ReadOnly is PT8H
    assert re.fullmatch(r"ASIA[A-Z2-7]{16}", creds["accessKeyId"])  # type: ignore[index]


def test_aws_cli_logout_ends_the_session(logged_in: Workstation) -> None:
    token = str(logged_in.token_cache()["accessToken"])
    logged_in.aws("sso", "logout")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        portal_client(logged_in.server).list_accounts(accessToken=token)
    assert error_code(caught) == "UnauthorizedException"


# ---- boto3 ------------------------------------------------------------------------------------------


def test_boto3_sso_provider_and_token_refresh(logged_in: Workstation) -> None:
    identity = logged_in.boto3("sandbox-dev")
    assert re.fullmatch(
        ARN_RE.format(account="111111111111", role="Developer", user="demo"), str(identity["arn"])
    )
    cached = logged_in.token_cache()
    # four minutes left: botocore refreshes (it does below 15 minutes) with the rotated refresh token
    cached["expiresAt"] = (datetime.now(UTC) + timedelta(minutes=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    token_file = next(
        p
        for p in (logged_in.home / ".aws" / "sso" / "cache").glob("*.json")
        if "accessToken" in p.read_text()
    )
    token_file.write_text(json.dumps(cached))
    identity = logged_in.boto3("prod-ro")
    assert re.fullmatch(
        ARN_RE.format(account="222222222222", role="ReadOnly", user="demo"), str(identity["arn"])
    )
    refreshed = json.loads(token_file.read_text())
    assert refreshed["accessToken"] != cached["accessToken"]
    assert refreshed["refreshToken"] != cached["refreshToken"]  # rotated, and kept by botocore
    expires = datetime.strptime(refreshed["expiresAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert expires - datetime.now(UTC) > timedelta(minutes=55)


def test_boto3_refresh_token_reuse_revokes_the_session(logged_in: Workstation) -> None:
    cached = logged_in.token_cache()
    oidc = oidc_client(logged_in.server)
    args = {
        "clientId": cached["clientId"],
        "clientSecret": cached["clientSecret"],
        "grantType": "refresh_token",
    }
    fresh = oidc.create_token(**args, refreshToken=cached["refreshToken"])
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        oidc.create_token(**args, refreshToken=cached["refreshToken"])
    assert error_code(caught) == "InvalidGrantException"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        portal_client(logged_in.server).list_accounts(accessToken=fresh["accessToken"])
    assert error_code(caught) == "UnauthorizedException"


def test_denied_device_code(shared_server: RunningServer, demo: Person) -> None:
    oidc = oidc_client(shared_server)
    client = oidc.register_client(clientName="e2e-denied", clientType="public")
    started = oidc.start_device_authorization(
        clientId=client["clientId"],
        clientSecret=client["clientSecret"],
        startUrl=f"{shared_server.url}/start",
    )
    assert started["interval"] == 1 and started["expiresIn"] == 600
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        oidc.create_token(
            clientId=client["clientId"],
            clientSecret=client["clientSecret"],
            grantType="urn:ietf:params:oauth:grant-type:device_code",
            deviceCode=started["deviceCode"],
        )
    assert error_code(caught) == "AuthorizationPendingException"
    demo.approve_device(started["verificationUriComplete"], approve=False)
    time.sleep(1.1)  # the server's poll interval
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        oidc.create_token(
            clientId=client["clientId"],
            clientSecret=client["clientSecret"],
            grantType="urn:ietf:params:oauth:grant-type:device_code",
            deviceCode=started["deviceCode"],
        )
    assert error_code(caught) == "AccessDeniedException"


def pkce_code(server: RunningServer, person: Person, client_id: str, verifier: str) -> tuple[str, str]:
    """Drive /authorize as the browser would and return (code, redirect_uri) from the loopback redirect."""
    redirect_uri = "http://127.0.0.1:43210/oauth/callback"
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": "s-1",
        "code_challenge_method": "S256",
        "code_challenge": s256(verifier),
        "scopes": "sso:account:access",
    }
    page = person.sign_in_if_asked(person.http.get("/authorize", params=query))
    if page.url.path != "/authorize":
        page = person.http.get("/authorize", params=query)
    person.http.follow_redirects = False
    try:
        answer = person.submit(page, where="/authorize", values={}, button=("decision", "allow"))
    finally:
        person.http.follow_redirects = True
    assert answer.status_code == 303
    location = urlsplit(answer.headers["location"])
    params = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect_uri
    assert params["state"] == ["s-1"] and params["iss"] == [server.url]
    return params["code"][0], redirect_uri


def test_pkce_code_single_use_and_verifier_checked(shared_server: RunningServer, demo: Person) -> None:
    oidc = oidc_client(shared_server)
    client = oidc.register_client(
        clientName="e2e-pkce",
        clientType="public",
        grantTypes=["authorization_code", "refresh_token"],
        redirectUris=["http://127.0.0.1/oauth/callback"],
    )
    verifier = "k" * 64
    creds = {
        "clientId": client["clientId"],
        "clientSecret": client["clientSecret"],
        "grantType": "authorization_code",
    }
    code, redirect_uri = pkce_code(shared_server, demo, client["clientId"], verifier)
    with pytest.raises(botocore.exceptions.ClientError) as caught:  # wrong verifier
        oidc.create_token(**creds, code=code, redirectUri=redirect_uri, codeVerifier="j" * 64)
    assert error_code(caught) == "InvalidGrantException"
    code, redirect_uri = pkce_code(shared_server, demo, client["clientId"], verifier)
    tokens = oidc.create_token(**creds, code=code, redirectUri=redirect_uri, codeVerifier=verifier)
    assert tokens["tokenType"] == "Bearer" and tokens["expiresIn"] == 3600 and tokens["refreshToken"]
    with pytest.raises(botocore.exceptions.ClientError) as caught:  # the same code again
        oidc.create_token(**creds, code=code, redirectUri=redirect_uri, codeVerifier=verifier)
    assert error_code(caught) == "InvalidGrantException"
    with pytest.raises(botocore.exceptions.ClientError) as caught:  # and the first tokens are revoked
        portal_client(shared_server).list_accounts(accessToken=tokens["accessToken"])
    assert error_code(caught) == "UnauthorizedException"


def test_tampered_signature_is_refused(logged_in: Workstation) -> None:
    token = str(logged_in.token_cache()["accessToken"])
    creds = portal_client(logged_in.server).get_role_credentials(
        accessToken=token, accountId="111111111111", roleName="Developer"
    )["roleCredentials"]
    good = boto3.client(
        "sts",
        endpoint_url=logged_in.server.url,
        region_name=REGION,
        aws_access_key_id=creds["accessKeyId"],
        aws_secret_access_key=creds["secretAccessKey"],
        aws_session_token=creds["sessionToken"],
    )
    assert good.get_caller_identity()["Account"] == "111111111111"
    tampered = boto3.client(
        "sts",
        endpoint_url=logged_in.server.url,
        region_name=REGION,
        aws_access_key_id=creds["accessKeyId"],
        aws_secret_access_key=creds["secretAccessKey"][:-1]
        + ("A" if creds["secretAccessKey"][-1] != "A" else "B"),
        aws_session_token=creds["sessionToken"],
    )
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        tampered.get_caller_identity()
    assert error_code(caught) == "SignatureDoesNotMatch"


def test_user_disabled_mid_session(shared_server: RunningServer, workstation: Workstation) -> None:
    shared_server.keyhall(
        "users", "create", "carol", "--password-stdin", input_text="Carol-Passphrase-2026\n"
    )
    shared_server.keyhall("groups", "add-member", "Developers", "carol")
    carol = Person(shared_server.url, "carol", "Carol-Passphrase-2026")
    try:
        assert workstation.sso_login(carol.approve_device).returncode == 0
    finally:
        carol.close()
    token = str(workstation.token_cache()["accessToken"])
    portal = portal_client(shared_server)
    creds = portal.get_role_credentials(accessToken=token, accountId="111111111111", roleName="Developer")
    sts = boto3.client(
        "sts",
        endpoint_url=shared_server.url,
        region_name=REGION,
        aws_access_key_id=creds["roleCredentials"]["accessKeyId"],
        aws_secret_access_key=creds["roleCredentials"]["secretAccessKey"],
        aws_session_token=creds["roleCredentials"]["sessionToken"],
    )
    assert sts.get_caller_identity()["Arn"].endswith("/carol")
    shared_server.keyhall("users", "disable", "carol")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        portal.get_role_credentials(accessToken=token, accountId="111111111111", roleName="Developer")
    assert error_code(caught) == "UnauthorizedException"
    with pytest.raises(botocore.exceptions.ClientError) as caught:  # credentials already issued stop too
        sts.get_caller_identity()
    assert error_code(caught) == "InvalidClientTokenId"


# ---- the AWS SDK for JavaScript v3 ------------------------------------------------------------------


def test_js_sdk_from_sso_with_refresh(logged_in: Workstation) -> None:
    cache_dir = logged_in.home / ".aws" / "sso" / "cache"
    token_file = next(p for p in cache_dir.glob("*.json") if "accessToken" in p.read_text())
    cached = json.loads(token_file.read_text())
    result = logged_in.node("sso_identity.mjs", "prod-ro")
    assert re.fullmatch(
        ARN_RE.format(account="222222222222", role="ReadOnly", user="demo"), str(result["arn"])
    ), result
    # under five minutes left: the JS SDK refreshes through CreateToken and rewrites the cache
    cached["expiresAt"] = (datetime.now(UTC) + timedelta(minutes=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    token_file.write_text(json.dumps(cached))
    result = logged_in.node("sso_identity.mjs", "sandbox-dev")
    assert re.fullmatch(
        ARN_RE.format(account="111111111111", role="Developer", user="demo"), str(result["arn"])
    ), result
    refreshed = json.loads(token_file.read_text())
    assert refreshed["refreshToken"] != cached["refreshToken"]
    assert refreshed["accessToken"] != cached["accessToken"]


def test_portal_pagination_matches_the_cli(logged_in: Workstation) -> None:
    token = str(logged_in.token_cache()["accessToken"])
    response = httpx.get(
        f"{logged_in.server.url}/assignment/accounts",
        params={"max_result": 1},
        headers={"x-amz-sso_bearer_token": token},
    )
    first = response.json()
    assert len(first["accountList"]) == 1 and first["nextToken"]
    page = (
        portal_client(logged_in.server)
        .get_paginator("list_accounts")
        .paginate(accessToken=token, PaginationConfig={"PageSize": 1})
    )
    assert [a["accountId"] for p in page for a in p["accountList"]] == ["111111111111", "222222222222"]


def test_no_token_or_secret_reaches_the_server_log(logged_in: Workstation) -> None:
    cached = logged_in.token_cache()
    creds = portal_client(logged_in.server).get_role_credentials(
        accessToken=str(cached["accessToken"]), accountId="111111111111", roleName="Developer"
    )["roleCredentials"]
    log = logged_in.server.log_path.read_text()
    assert '"path":"/federation/credentials"' in log  # the access log is there, without query strings
    for secret in (
        cached["accessToken"],
        cached["refreshToken"],
        cached["clientSecret"],
        creds["secretAccessKey"],
        creds["sessionToken"],
    ):
        assert str(secret) not in log
