"""The login, refresh, portal and logout flows against a fake Keyhall behind ``httpx.MockTransport``,
and the whole user CLI against the same fake served over real HTTP in a thread.

The fake speaks the wire format the AWS clients use (aws-wire.md §1.1, real-clients.md §2): rest-json,
errors named by ``x-amzn-ErrorType``, ``expiration`` in epoch milliseconds, rotated refresh tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import typer
from typer.testing import CliRunner

from keyhall import errors as wire
from keyhall.cli.fast import maybe_fast_path
from keyhall.cli.user_commands import register
from keyhall.client import session as session_lib
from keyhall.client._http import error_from_response
from keyhall.client.config import SessionConfig
from keyhall.client.credential_cache import CredentialCache
from keyhall.client.credentials import get_role_credentials, whoami
from keyhall.client.errors import LoginError, NotLoggedInError, ServiceError
from keyhall.client.oidc import OIDCClient, authorization_code_flow
from keyhall.client.token_cache import ClientRegistration, SSOToken, TokenCache
from keyhall.clock import Clock, FrozenClock, SystemClock

BASE = "http://keyhall.test"
ACCOUNTS = [
    ("111111111111", "Sandbox", "sandbox@example.com", ["Developer", "AdministratorAccess"]),
    ("222222222222", "Production", "prod@example.com", ["ReadOnly"]),
    ("333333333333", "Management", "mgmt@example.com", ["AdministratorAccess"]),
]


class FakeKeyhall:
    """Just enough of Keyhall's sso-oidc, portal and STS to drive the client; records every request."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.requests: list[httpx.Request] = []
        self.clients: dict[str, str] = {}
        self.device_answers: list[str] = ["ok"]
        self.codes: dict[str, dict[str, str]] = {}
        self.access_tokens: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self.rotate_refresh_tokens = True
        self.expires_in = 3600
        self.page_size = 1
        self.logged_out: list[str] = []

    # -- plumbing

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route = (request.method, request.url.path)
        body = json.loads(request.content) if request.content and route != ("POST", "/") else {}
        handlers = {
            ("POST", "/client/register"): self._register,
            ("POST", "/device_authorization"): self._device_authorization,
            ("POST", "/token"): self._token,
            ("GET", "/assignment/accounts"): self._accounts,
            ("GET", "/assignment/roles"): self._roles,
            ("GET", "/federation/credentials"): self._credentials,
            ("POST", "/logout"): self._logout,
            ("POST", "/"): self._sts,
        }
        handler = handlers.get(route)
        if handler is None:
            return httpx.Response(404, json={"message": "no route"})
        return handler(request, body)

    def paths_called(self) -> list[str]:
        return [r.url.path for r in self.requests]

    @staticmethod
    def _oauth_error(aws_code: str, error: str, status: int = 400) -> httpx.Response:
        return httpx.Response(
            status,
            headers={
                "x-amzn-ErrorType": f"{aws_code}:http://internal.amazon.com/coral/com.amazonaws.ssooidc/"
            },
            json={"error": error, "error_description": f"{error} (fake)"},
        )

    def _bearer(self, request: httpx.Request) -> str | None:
        token = request.headers.get("x-amz-sso_bearer_token")
        return token if token in self.access_tokens else None

    @staticmethod
    def _unauthorized() -> httpx.Response:
        return httpx.Response(
            401,
            headers={"x-amzn-ErrorType": "UnauthorizedException"},
            json={"message": "Session token not found or invalid"},
        )

    def _issue(self) -> dict[str, Any]:
        access, refresh = "at-" + secrets.token_hex(4), "rt-" + secrets.token_hex(4)
        self.access_tokens.add(access)
        self.refresh_tokens.add(refresh)
        return {
            "accessToken": access,
            "tokenType": "Bearer",
            "expiresIn": self.expires_in,
            "refreshToken": refresh,
        }

    # -- sso-oidc

    def _register(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        client_id = "client-" + secrets.token_hex(4)
        self.clients[client_id] = "secret-" + secrets.token_hex(4)
        now = int(self.clock.timestamp())
        return httpx.Response(
            200,
            json={
                "clientId": client_id,
                "clientSecret": self.clients[client_id],
                "clientIdIssuedAt": now,
                "clientSecretExpiresAt": now + 90 * 86400,
            },
        )

    def _device_authorization(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        if self.clients.get(body.get("clientId", "")) != body.get("clientSecret"):
            return self._oauth_error("InvalidClientException", "invalid_client", 401)
        return httpx.Response(
            200,
            json={
                "deviceCode": "device-code",
                "userCode": "ABCD-EFGH",
                "verificationUri": f"{BASE}/device",
                "verificationUriComplete": f"{BASE}/device?user_code=ABCD-EFGH",
                "expiresIn": 600,
                "interval": 1,
            },
        )

    def approve(self, authorize_url: str) -> str:
        """What the browser gets after sign-in on ``/authorize``: the redirect to the loopback listener."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
        assert query["response_type"] == "code"
        assert query["code_challenge_method"] == "S256"
        assert query["client_id"] in self.clients
        code = "code-" + secrets.token_hex(4)
        self.codes[code] = query
        return query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})

    def _token(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        if self.clients.get(body.get("clientId", "")) != body.get("clientSecret"):
            return self._oauth_error("InvalidClientException", "invalid_client", 401)
        grant = body.get("grantType")
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            answer = self.device_answers.pop(0)
            errors = {
                "pending": ("AuthorizationPendingException", "authorization_pending"),
                "slow_down": ("SlowDownException", "slow_down"),
                "expired": ("ExpiredTokenException", "expired_token"),
                "denied": ("AccessDeniedException", "access_denied"),
            }
            if answer in errors:
                return self._oauth_error(*errors[answer])
            return httpx.Response(200, json=self._issue())
        if grant == "authorization_code":
            issued = self.codes.pop(body.get("code", ""), None)
            if issued is None:
                return self._oauth_error("InvalidGrantException", "invalid_grant")
            digest = hashlib.sha256(body["codeVerifier"].encode()).digest()
            challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if challenge != issued["code_challenge"] or body.get("redirectUri") != issued["redirect_uri"]:
                return self._oauth_error("InvalidGrantException", "invalid_grant")
            return httpx.Response(200, json=self._issue())
        if grant == "refresh_token":
            if body.get("refreshToken") not in self.refresh_tokens:
                return self._oauth_error("InvalidGrantException", "invalid_grant")
            issued_tokens = self._issue()
            if self.rotate_refresh_tokens:
                self.refresh_tokens.discard(body["refreshToken"])
            else:
                self.refresh_tokens.discard(issued_tokens.pop("refreshToken"))
            return httpx.Response(200, json=issued_tokens)
        return self._oauth_error("UnsupportedGrantTypeException", "unsupported_grant_type")

    # -- portal

    def _page(self, request: httpx.Request, items: list[dict[str, Any]], key: str) -> httpx.Response:
        start = int(request.url.params.get("next_token") or 0)
        size = int(request.url.params.get("max_result") or self.page_size)
        body: dict[str, Any] = {key: items[start : start + size]}
        if start + size < len(items):
            body["nextToken"] = str(start + size)
        return httpx.Response(200, json=body)

    def _accounts(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        if self._bearer(request) is None:
            return self._unauthorized()
        items = [{"accountId": i, "accountName": n, "emailAddress": e} for i, n, e, _ in ACCOUNTS]
        return self._page(request, items, "accountList")

    def _roles(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        if self._bearer(request) is None:
            return self._unauthorized()
        account = request.url.params["account_id"]
        roles = next(r for i, _, _, r in ACCOUNTS if i == account)
        return self._page(request, [{"roleName": r, "accountId": account} for r in roles], "roleList")

    def _credentials(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        if self._bearer(request) is None:
            return self._unauthorized()
        expiration_ms = int((self.clock.timestamp() + 3600) * 1000)
        return httpx.Response(
            200,
            json={
                "roleCredentials": {
                    "accessKeyId": "ASIA" + secrets.token_hex(8).upper(),
                    "secretAccessKey": "secret/" + secrets.token_hex(8),
                    "sessionToken": "session+" + secrets.token_hex(8),
                    "expiration": expiration_ms,
                }
            },
        )

    def _logout(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        token = self._bearer(request)
        if token is None:
            return self._unauthorized()
        self.access_tokens.discard(token)
        self.logged_out.append(token)
        return httpx.Response(200)

    def _sts(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        assert request.content == b"Action=GetCallerIdentity&Version=2011-06-15"
        authorization = request.headers["authorization"]
        assert authorization.startswith("AWS4-HMAC-SHA256 Credential=ASIA")
        assert "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token," in authorization
        return httpx.Response(
            200,
            headers={"content-type": "text/xml"},
            text=(
                '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>'
                "<Arn>arn:aws:sts::111111111111:assumed-role/AWSReservedSSO_Developer_0123456789abcdef/demo</Arn>"
                "<UserId>AROAEXAMPLE:demo</UserId><Account>111111111111</Account></GetCallerIdentityResult>"
                "<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
            ),
        )


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(start=1_800_000_000.0)


@pytest.fixture
def fake(clock: FrozenClock) -> FakeKeyhall:
    return FakeKeyhall(clock)


@pytest.fixture
def transport(fake: FakeKeyhall) -> httpx.MockTransport:
    return httpx.MockTransport(fake)


@pytest.fixture
def session() -> SessionConfig:
    return SessionConfig(name="keyhall", base_url=BASE)


@pytest.fixture
def token_cache(tmp_path: Path) -> TokenCache:
    return TokenCache(tmp_path / ".aws" / "sso" / "cache")


@pytest.fixture
def credential_cache(tmp_path: Path) -> CredentialCache:
    return CredentialCache(str(tmp_path / ".aws" / "cli" / "cache"))


class Sleeper:
    """An injected ``sleep`` that moves the frozen clock instead of waiting."""

    def __init__(self, clock: FrozenClock) -> None:
        self.clock = clock
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.clock.advance(seconds)


def _device_login(
    session: SessionConfig,
    token_cache: TokenCache,
    transport: httpx.MockTransport,
    clock: FrozenClock,
    **kwargs: Any,
) -> tuple[session_lib.LoginResult, Sleeper, list[str]]:
    sleeper, lines = Sleeper(clock), []
    result = session_lib.login(
        session=session,
        token_cache=token_cache,
        echo=lines.append,
        device=True,
        open_browser=None,
        transport=transport,
        clock=clock,
        sleep=sleeper,
        **kwargs,
    )
    return result, sleeper, lines


# --- device authorization (RFC 8628) ----------------------------------------------------------------------


def test_device_flow_pending_slow_down_success(
    session: SessionConfig,
    token_cache: TokenCache,
    transport: httpx.MockTransport,
    fake: FakeKeyhall,
    clock: FrozenClock,
) -> None:
    fake.device_answers = ["pending", "slow_down", "pending", "ok"]
    result, sleeper, lines = _device_login(session, token_cache, transport, clock)

    assert sleeper.calls == [1, 1, 6, 6], "interval honoured, +5 s from the slow_down on"
    assert "ABCD-EFGH" in "\n".join(lines)
    assert f"{BASE}/device?user_code=ABCD-EFGH" in "\n".join(lines)
    assert not result.reused
    stored = token_cache.load_token("keyhall")
    assert stored == result.token
    assert stored is not None
    assert stored.start_url == f"{BASE}/start"
    assert stored.expires_at == clock.now() + timedelta(seconds=3600)
    assert stored.refresh_token in fake.refresh_tokens
    assert stored.client_id in fake.clients
    register_body = json.loads(fake.requests[0].content)
    assert register_body == {
        "clientName": "keyhall-keyhall",
        "clientType": "public",
        "scopes": ["sso:account:access"],
    }
    device_body = json.loads(fake.requests[1].content)
    assert device_body["startUrl"] == f"{BASE}/start"


def test_device_login_reuses_registration_and_token(
    session: SessionConfig,
    token_cache: TokenCache,
    transport: httpx.MockTransport,
    fake: FakeKeyhall,
    clock: FrozenClock,
) -> None:
    _device_login(session, token_cache, transport, clock)
    again, _, _ = _device_login(session, token_cache, transport, clock)
    assert again.reused
    fake.device_answers = ["ok"]
    forced, _, _ = _device_login(session, token_cache, transport, clock, force=True)
    assert not forced.reused
    assert fake.paths_called().count("/client/register") == 2, "--force registers anew"

    clock.advance(2 * 3600)  # the token has expired, the registration has not
    fake.device_answers = ["ok"]
    _device_login(session, token_cache, transport, clock)
    assert fake.paths_called().count("/client/register") == 2, "the cached registration is reused"


def test_device_login_registers_again_when_the_server_forgot_the_client(
    session: SessionConfig,
    token_cache: TokenCache,
    transport: httpx.MockTransport,
    fake: FakeKeyhall,
    clock: FrozenClock,
) -> None:
    _device_login(session, token_cache, transport, clock)
    fake.clients.clear()  # e.g. a fresh database
    clock.advance(2 * 3600)  # the token has expired; the cached registration has not
    fake.device_answers = ["ok"]
    result, _, _ = _device_login(session, token_cache, transport, clock)
    assert result.token.client_id in fake.clients
    assert fake.paths_called().count("/client/register") == 2


@pytest.mark.parametrize(("answer", "message"), [("expired", "expired"), ("denied", "denied")])
def test_device_flow_failures(
    session: SessionConfig,
    token_cache: TokenCache,
    transport: httpx.MockTransport,
    fake: FakeKeyhall,
    clock: FrozenClock,
    answer: str,
    message: str,
) -> None:
    fake.device_answers = ["pending", answer]
    with pytest.raises(LoginError, match=message):
        _device_login(session, token_cache, transport, clock)
    assert token_cache.load_token("keyhall") is None


def test_device_flow_gives_up_at_expires_in(
    session: SessionConfig,
    token_cache: TokenCache,
    transport: httpx.MockTransport,
    fake: FakeKeyhall,
    clock: FrozenClock,
) -> None:
    fake.device_answers = ["pending"] * 1000
    with pytest.raises(LoginError, match="expired"):
        _device_login(session, token_cache, transport, clock)
    assert fake.paths_called().count("/token") == 600


# --- authorization code + PKCE (RFC 7636, RFC 8252) -------------------------------------------------------


class Browser:
    """Signs in on the fake's /authorize and follows the redirect to the loopback listener over real HTTP."""

    def __init__(self, fake: FakeKeyhall, *, tamper: dict[str, str] | None = None) -> None:
        self.fake = fake
        self.tamper = tamper or {}
        self.pages: list[httpx.Response] = []

    def __call__(self, url: str) -> bool:
        redirect = self.fake.approve(url)
        if self.tamper:
            parts = urlsplit(redirect)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()} | self.tamper
            redirect = f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"
        assert redirect.startswith("http://127.0.0.1:")
        self.pages.append(httpx.get(redirect, timeout=5))
        return True


def test_pkce_login_through_the_loopback_listener(
    session: SessionConfig,
    token_cache: TokenCache,
    transport: httpx.MockTransport,
    fake: FakeKeyhall,
    clock: FrozenClock,
) -> None:
    browser = Browser(fake)
    lines: list[str] = []
    result = session_lib.login(
        session=session,
        token_cache=token_cache,
        echo=lines.append,
        open_browser=browser,
        transport=transport,
        clock=clock,
        timeout=10,
    )
    assert browser.pages[0].status_code == 200
    assert "close this tab" in browser.pages[0].text
    assert browser.pages[0].headers["cache-control"] == "no-store"
    assert token_cache.load_token("keyhall") == result.token
    register_body = json.loads(fake.requests[0].content)
    assert register_body["grantTypes"] == ["authorization_code", "refresh_token"]
    assert register_body["redirectUris"] == ["http://127.0.0.1/oauth/callback"]
    assert register_body["issuerUrl"] == f"{BASE}/start"
    token_body = json.loads(fake.requests[-1].content)
    assert token_body["grantType"] == "authorization_code"
    assert len(token_body["codeVerifier"]) == 64
    assert any(f"{BASE}/authorize?" in line for line in lines)
    registration = token_cache.load_registration(
        start_url=f"{BASE}/start", region="us-east-1", scopes=["sso:account:access"], session_name="keyhall"
    )
    assert registration is not None
    assert registration.is_pkce


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        ({"state": "forged"}, "state mismatch"),
        ({"error": "access_denied", "error_description": "<b>no</b>"}, "refused"),
    ],
)
def test_pkce_bad_callbacks(
    session: SessionConfig,
    token_cache: TokenCache,
    transport: httpx.MockTransport,
    fake: FakeKeyhall,
    clock: FrozenClock,
    tamper: dict[str, str],
    message: str,
) -> None:
    browser = Browser(fake, tamper=tamper)
    with pytest.raises(LoginError, match=message):
        session_lib.login(
            session=session,
            token_cache=token_cache,
            echo=lambda _: None,
            open_browser=browser,
            transport=transport,
            clock=clock,
            timeout=10,
        )
    assert browser.pages[0].status_code == 400
    assert "<b>" not in browser.pages[0].text, "the error text is escaped"
    assert "/token" not in fake.paths_called()


def test_pkce_times_out_without_a_browser(fake: FakeKeyhall, transport: httpx.MockTransport) -> None:
    registration = ClientRegistration(
        client_id="c", client_secret="s", expires_at=datetime(2099, 1, 1, tzinfo=UTC)
    )
    with OIDCClient(BASE, transport=transport) as oidc, pytest.raises(LoginError, match="No answer"):
        authorization_code_flow(
            oidc=oidc,
            registration=registration,
            scopes=["sso:account:access"],
            echo=lambda _: None,
            open_browser=None,
            timeout=0.05,
        )


def test_loopback_listener_ignores_other_paths(fake: FakeKeyhall, transport: httpx.MockTransport) -> None:
    from keyhall.client.oidc import LoopbackListener

    with LoopbackListener(expected_state="s") as listener:
        assert httpx.get(f"http://127.0.0.1:{listener.port}/favicon.ico").status_code == 404
        assert httpx.get(f"{listener.redirect_uri}?code=c&state=s").status_code == 200
        assert httpx.get(f"{listener.redirect_uri}?code=c2&state=s").status_code == 409
        assert listener.wait(1) == "c"


# --- refresh ---------------------------------------------------------------------------------------------


def _logged_in(
    session: SessionConfig, token_cache: TokenCache, transport: httpx.MockTransport, clock: FrozenClock
) -> SSOToken:
    result, _, _ = _device_login(session, token_cache, transport, clock)
    return result.token


def test_refresh_when_less_than_15_minutes_remain_stores_rotated_token(
    session: SessionConfig,
    token_cache: TokenCache,
    transport: httpx.MockTransport,
    fake: FakeKeyhall,
    clock: FrozenClock,
) -> None:
    first = _logged_in(session, token_cache, transport, clock)
    clock.advance(3600 - 16 * 60)
    assert (
        session_lib.get_valid_token(
            session=session, token_cache=token_cache, transport=transport, clock=clock
        )
        == first
    )
    clock.advance(2 * 60)  # 14 minutes left
    refreshed = session_lib.get_valid_token(
        session=session, token_cache=token_cache, transport=transport, clock=clock
    )
    assert refreshed.access_token != first.access_token
    assert refreshed.refresh_token != first.refresh_token
    assert first.refresh_token not in fake.refresh_tokens, "the server rotated it"
    assert refreshed.expires_at == clock.now() + timedelta(seconds=3600)
    assert token_cache.load_token("keyhall") == refreshed, "the rotated refresh token is stored"
    body = json.loads(fake.requests[-1].content)
    assert body == {
        "clientId": first.client_id,
        "clientSecret": first.client_secret,
        "grantType": "refresh_token",
        "refreshToken": first.refresh_token,
    }

    clock.advance(3600 - 10 * 60)
    again = session_lib.get_valid_token(
        session=session, token_cache=token_cache, transport=transport, clock=clock
    )
    assert again.access_token != refreshed.access_token, "the stored (rotated) refresh token works"


def test_refresh_without_a_new_refresh_token_keeps_the_old_one(
    session: SessionConfig,
    token_cache: TokenCache,
    transport: httpx.MockTransport,
    fake: FakeKeyhall,
    clock: FrozenClock,
) -> None:
    first = _logged_in(session, token_cache, transport, clock)
    fake.rotate_refresh_tokens = False
    clock.advance(3600 - 5 * 60)
    refreshed = session_lib.get_valid_token(
        session=session, token_cache=token_cache, transport=transport, clock=clock
    )
    assert refreshed.refresh_token == first.refresh_token


def test_failed_refresh_keeps_a_valid_token_and_refuses_an_expired_one(
    session: SessionConfig,
    token_cache: TokenCache,
    transport: httpx.MockTransport,
    fake: FakeKeyhall,
    clock: FrozenClock,
) -> None:
    first = _logged_in(session, token_cache, transport, clock)
    fake.refresh_tokens.clear()  # the portal session was revoked
    clock.advance(3600 - 5 * 60)
    assert (
        session_lib.get_valid_token(
            session=session, token_cache=token_cache, transport=transport, clock=clock
        )
        == first
    )
    clock.advance(10 * 60)
    with pytest.raises(NotLoggedInError, match="keyhall login"):
        session_lib.get_valid_token(
            session=session, token_cache=token_cache, transport=transport, clock=clock
        )


def test_no_token_or_a_token_from_elsewhere_is_not_logged_in(
    session: SessionConfig, token_cache: TokenCache, transport: httpx.MockTransport, clock: FrozenClock
) -> None:
    with pytest.raises(NotLoggedInError, match="not signed in"):
        session_lib.get_valid_token(
            session=session, token_cache=token_cache, transport=transport, clock=clock
        )
    _logged_in(session, token_cache, transport, clock)
    other = SessionConfig(name="keyhall", base_url="http://other.test")
    with pytest.raises(NotLoggedInError, match=r"other\.test"):
        session_lib.get_valid_token(session=other, token_cache=token_cache, transport=transport, clock=clock)


# --- portal ----------------------------------------------------------------------------------------------


def test_list_access_follows_every_page(
    session: SessionConfig,
    token_cache: TokenCache,
    transport: httpx.MockTransport,
    fake: FakeKeyhall,
    clock: FrozenClock,
) -> None:
    _logged_in(session, token_cache, transport, clock)
    access = session_lib.list_access(
        session=session, token_cache=token_cache, transport=transport, clock=clock
    )
    assert [(a.account_name, [r.role_name for r in roles]) for a, roles in access] == [
        ("Management", ["AdministratorAccess"]),
        ("Production", ["ReadOnly"]),
        ("Sandbox", ["Developer", "AdministratorAccess"]),
    ]
    assert fake.paths_called().count("/assignment/accounts") == 3, "page size 1: three pages"
    listing = next(r for r in fake.requests if r.url.path == "/assignment/accounts")
    assert "authorization" not in listing.headers
    assert listing.headers["x-amz-sso_bearer_token"].startswith("at-")


def test_role_credentials_are_fetched_once_then_cached(
    session: SessionConfig,
    token_cache: TokenCache,
    credential_cache: CredentialCache,
    transport: httpx.MockTransport,
    fake: FakeKeyhall,
    clock: FrozenClock,
) -> None:
    _logged_in(session, token_cache, transport, clock)
    kwargs: dict[str, Any] = {
        "session": session,
        "account_id": "111111111111",
        "role_name": "Developer",
        "token_cache": token_cache,
        "credential_cache": credential_cache,
        "transport": transport,
        "clock": clock,
    }
    first = get_role_credentials(**kwargs)
    assert first.expiration == clock.timestamp() + 3600, "expiration arrives in epoch milliseconds"
    assert get_role_credentials(**kwargs) == first
    assert fake.paths_called().count("/federation/credentials") == 1
    request = next(r for r in fake.requests if r.url.path == "/federation/credentials")
    assert dict(request.url.params) == {"role_name": "Developer", "account_id": "111111111111"}

    clock.advance(3600 - 299)  # inside the 5-minute window
    second = get_role_credentials(**kwargs)
    assert second != first
    assert fake.paths_called().count("/federation/credentials") == 2


def test_revoked_session_is_reported_as_not_logged_in(
    session: SessionConfig,
    token_cache: TokenCache,
    credential_cache: CredentialCache,
    transport: httpx.MockTransport,
    fake: FakeKeyhall,
    clock: FrozenClock,
) -> None:
    _logged_in(session, token_cache, transport, clock)
    fake.access_tokens.clear()
    with pytest.raises(NotLoggedInError, match="no longer accepts"):
        get_role_credentials(
            session=session,
            account_id="111111111111",
            role_name="Developer",
            token_cache=token_cache,
            credential_cache=credential_cache,
            transport=transport,
            clock=clock,
        )


def test_error_decoding() -> None:
    request = httpx.Request("POST", f"{BASE}/token")

    def response(status: int, headers: dict[str, str], body: Any) -> httpx.Response:
        return httpx.Response(status, headers=headers, json=body, request=request)

    slow = error_from_response(
        response(400, {"x-amzn-ErrorType": "SlowDownException:x"}, {"error": "slow_down"}), oauth=True
    )
    assert isinstance(slow, wire.SlowDown)
    namespaced = error_from_response(
        response(
            401, {}, {"__type": "com.amazonaws.switchboard.portal#UnauthorizedException", "message": "gone"}
        ),
        oauth=False,
    )
    assert isinstance(namespaced, wire.UnauthorizedError)
    assert namespaced.message == "gone"
    bare = error_from_response(response(400, {}, {"error": "authorization_pending"}), oauth=True)
    assert isinstance(bare, ServiceError)
    assert bare.status == 400
    html_error = error_from_response(
        httpx.Response(502, text="<html>bad gateway</html>", request=request), oauth=False
    )
    assert isinstance(html_error, ServiceError)
    assert "bad gateway" in html_error.message


# --- logout and whoami -----------------------------------------------------------------------------------


def test_logout_ends_the_session_and_removes_local_files(
    session: SessionConfig,
    token_cache: TokenCache,
    credential_cache: CredentialCache,
    transport: httpx.MockTransport,
    fake: FakeKeyhall,
    clock: FrozenClock,
) -> None:
    token = _logged_in(session, token_cache, transport, clock)
    get_role_credentials(
        session=session,
        account_id="111111111111",
        role_name="Developer",
        token_cache=token_cache,
        credential_cache=credential_cache,
        transport=transport,
        clock=clock,
    )
    result = session_lib.logout(
        session_name="keyhall",
        token_cache=token_cache,
        credential_cache=credential_cache,
        transport=transport,
    )
    assert (result.had_token, result.server_notified, result.credentials_removed) == (True, True, 1)
    assert fake.logged_out == [token.access_token]
    assert token_cache.load_token("keyhall") is None
    assert not list(Path(credential_cache.directory).iterdir())
    logout_request = fake.requests[-1]
    assert logout_request.method == "POST"
    assert logout_request.content == b""


def test_logout_without_the_server_still_cleans_up(
    session: SessionConfig,
    token_cache: TokenCache,
    credential_cache: CredentialCache,
    transport: httpx.MockTransport,
    clock: FrozenClock,
) -> None:
    _logged_in(session, token_cache, transport, clock)

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    result = session_lib.logout(
        session_name="keyhall",
        token_cache=token_cache,
        credential_cache=credential_cache,
        transport=httpx.MockTransport(unreachable),
    )
    assert result.had_token
    assert not result.server_notified
    assert result.warning is not None
    assert "connection refused" in result.warning
    assert token_cache.load_token("keyhall") is None


def test_whoami_asks_sts_with_role_credentials(
    session: SessionConfig,
    token_cache: TokenCache,
    credential_cache: CredentialCache,
    transport: httpx.MockTransport,
    fake: FakeKeyhall,
    clock: FrozenClock,
) -> None:
    _logged_in(session, token_cache, transport, clock)
    result = whoami(
        session=session,
        profile=None,
        token_cache=token_cache,
        credential_cache=credential_cache,
        transport=transport,
        clock=clock,
    )
    assert result.identity is not None
    assert result.identity.arn.endswith("/demo")
    assert (result.account_id, result.role_name) == ("333333333333", "AdministratorAccess"), (
        "first account by name"
    )
    sts = fake.requests[-1]
    assert sts.headers["content-type"] == "application/x-www-form-urlencoded; charset=utf-8"
    assert sts.headers["host"] == "keyhall.test"


# --- the whole CLI, over real HTTP -----------------------------------------------------------------------


class _Adapter(BaseHTTPRequestHandler):
    """Serves a FakeKeyhall over HTTP: the CLI cannot be handed a transport, so it gets a real server."""

    fake: FakeKeyhall

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        request = httpx.Request(
            self.command,
            f"http://{self.headers['host']}{self.path}",
            headers=list(self.headers.items()),
            content=self.rfile.read(length),
        )
        response = self.fake(request)
        body = response.read()
        self.send_response(response.status_code)
        for name, value in response.headers.items():
            if name.lower() not in ("content-length", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[str, FakeKeyhall]]:
    fake = FakeKeyhall(SystemClock())
    handler = type("Handler", (_Adapter,), {"fake": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    for name in [n for n in os.environ if n.startswith(("AWS_", "KEYHALL_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", fake
    finally:
        server.shutdown()
        server.server_close()


def test_the_user_cli_end_to_end(
    served: tuple[str, FakeKeyhall], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, fake = served
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    monkeypatch.setattr("webbrowser.open", Browser(fake))

    result = runner.invoke(app, ["login", "--url", url])
    assert result.exit_code == 0, result.output
    assert "Signed in" in result.stdout
    assert "keyhall configure" in result.stdout

    result = runner.invoke(app, ["configure", "--credential-process"])
    assert result.exit_code == 0, result.output
    assert "4 profile(s)" in result.stdout
    config = (tmp_path / ".aws" / "config").read_text()
    assert "[profile sandbox.Developer]" in config
    assert "[profile sandbox.Developer.process]" in config
    assert runner.invoke(app, ["configure", "--dry-run"]).stdout.strip().endswith("no change.") is False
    assert "Unchanged" in runner.invoke(app, ["configure", "--credential-process"]).stdout

    result = runner.invoke(app, ["ls", "--json"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.stdout)
    assert [a["accountName"] for a in listing] == ["Management", "Production", "Sandbox"]
    assert listing[2]["roles"][0] == {"roleName": "Developer", "profile": "sandbox.Developer"}

    result = runner.invoke(app, ["credential-process", "--profile", "sandbox.Developer"])
    assert result.exit_code == 0, result.output
    fetched = json.loads(result.stdout)
    assert fake.paths_called().count("/federation/credentials") == 1

    import io

    out = io.StringIO()
    argv = [
        "credential-process",
        "--sso-session",
        "keyhall",
        "--account",
        "111111111111",
        "--role",
        "Developer",
    ]
    assert maybe_fast_path(argv, stdout=out) == 0, "now served by the warm path"
    assert json.loads(out.getvalue()) == fetched

    result = runner.invoke(app, ["env", "sandbox.Developer"])
    assert result.exit_code == 0, result.output
    assert f"export AWS_ACCESS_KEY_ID={fetched['AccessKeyId']}" in result.stdout
    assert f"export AWS_ENDPOINT_URL_STS={url}" in result.stdout
    assert "unset AWS_PROFILE AWS_DEFAULT_PROFILE" in result.stdout

    monkeypatch.setenv("AWS_PROFILE", "sandbox.Developer")
    check = (
        "import os, sys; e = os.environ; "
        f"ok = e['AWS_ACCESS_KEY_ID'] == {fetched['AccessKeyId']!r} and 'AWS_PROFILE' not in e "
        "and e['AWS_CREDENTIAL_EXPIRATION'].endswith('Z') and e['AWS_REGION'] == 'us-east-1'; "
        "sys.exit(7 if ok else 1)"
    )
    result = runner.invoke(app, ["exec", "sandbox.Developer", "--", sys.executable, "-c", check])
    assert result.exit_code == 7, result.output

    result = runner.invoke(app, ["whoami"])
    assert result.exit_code == 0, result.output
    assert "ARN       arn:aws:sts::111111111111:assumed-role/" in result.stdout
    monkeypatch.delenv("AWS_PROFILE")

    result = runner.invoke(app, ["console", "sandbox.Developer"])
    assert result.exit_code == 1
    assert "emulated by Keyhall" in result.output

    result = runner.invoke(app, ["logout"])
    assert result.exit_code == 0, result.output
    assert "Signed out" in result.stdout
    assert len(fake.logged_out) == 1
    assert not list((tmp_path / ".aws" / "cli" / "cache").iterdir())

    result = runner.invoke(app, ["credential-process", "--profile", "sandbox.Developer"])
    assert result.exit_code == 1
    assert "keyhall login" in result.output


def test_cli_reports_missing_settings(served: tuple[str, FakeKeyhall]) -> None:
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["ls"])
    assert result.exit_code == 1
    assert "no Keyhall URL" in result.output
    result = CliRunner().invoke(app, ["env", "nope", "--shell", "tcsh"])
    assert result.exit_code == 2


def test_boto3_uses_the_token_and_config_keyhall_wrote(
    served: tuple[str, FakeKeyhall], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interop: boto3's own SSO providers read Keyhall's token cache and config, refresh the token through
    Keyhall's endpoint, and Keyhall then reads the token boto3 rewrote (with the rotated refresh token)."""
    import boto3
    import botocore.credentials
    import botocore.tokens

    url, fake = served
    # botocore fixes ~/.aws/sso/cache when it is first imported, maybe before HOME was changed for this test.
    sso_cache = str(tmp_path / ".aws" / "sso" / "cache")
    monkeypatch.setattr(botocore.credentials.SSOProvider, "_SSO_TOKEN_CACHE_DIR", sso_cache)
    monkeypatch.setattr(botocore.tokens.SSOTokenProvider, "_SSO_TOKEN_CACHE_DIR", sso_cache)
    app = typer.Typer()
    register(app)
    monkeypatch.setattr("webbrowser.open", Browser(fake))
    assert CliRunner().invoke(app, ["login", "--url", url]).exit_code == 0
    assert CliRunner().invoke(app, ["configure"]).exit_code == 0
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / ".aws" / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / ".aws" / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    credentials = boto3.Session(profile_name="sandbox.Developer").get_credentials()
    assert credentials is not None
    assert credentials.get_frozen_credentials().access_key.startswith("ASIA")
    assert fake.paths_called().count("/federation/credentials") == 1

    cache = TokenCache(tmp_path / ".aws" / "sso" / "cache")
    before = cache.load_token("keyhall")
    assert before is not None
    cache.store_token(
        "keyhall", SSOToken(**{**before.__dict__, "expires_at": datetime.now(UTC) + timedelta(minutes=5)})
    )
    again = boto3.Session(profile_name="sandbox.Developer").get_credentials()
    assert again is not None
    again.get_frozen_credentials()
    after = cache.load_token("keyhall")
    assert after is not None
    assert after.access_token != before.access_token, "boto3 refreshed through Keyhall's sso-oidc endpoint"
    assert after.refresh_token != before.refresh_token
    assert after.refresh_token in fake.refresh_tokens, (
        "and stored the rotated refresh token where Keyhall reads it"
    )
