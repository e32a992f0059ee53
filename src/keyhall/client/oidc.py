"""sso-oidc, the client side: RegisterClient, StartDeviceAuthorization, CreateToken, and the two login flows.

Wire format as the AWS CLI v2 sends it (aws-wire.md §1.1, §2.6; real-clients.md §2.1, §2.4): unsigned
rest-json at the root of the Keyhall URL, errors named by ``x-amzn-ErrorType``. The flows:

- authorization code + PKCE (RFC 7636, S256 only) with a loopback redirect (RFC 8252 §7.3):
  ``http://127.0.0.1:<port>/oauth/callback``, registered without the port, as the CLI does;
- device authorization (RFC 8628 §3.2-3.5): poll at ``interval``, +5 s for every ``slow_down``;
- refresh (RFC 6749 §6): the rotated refresh token replaces the old one; if the server sends none, the
  old one is kept (§6: "the client MUST discard the old refresh token" only when a new one is issued).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import httpx

from keyhall import errors as wire
from keyhall.client._http import json_or_raise, make_client, require_int, require_str
from keyhall.client.errors import LoginError
from keyhall.client.token_cache import ClientRegistration, SSOToken
from keyhall.clock import Clock

GRANT_DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
GRANT_AUTHORIZATION_CODE = "authorization_code"
GRANT_REFRESH_TOKEN = "refresh_token"  # noqa: S105 (a grant type name)
CALLBACK_PATH = "/oauth/callback"
#: What RegisterClient is told; the port is added per login (RFC 8252 §7.3: any loopback port is accepted).
REGISTERED_REDIRECT_URI = "http://127.0.0.1/oauth/callback"
#: The device flow's default interval when the server sends none (RFC 8628 §3.2).
DEFAULT_INTERVAL = 5
#: RFC 8628 §3.5: "the interval MUST be increased by 5 seconds for this and all subsequent requests".
SLOW_DOWN_INCREMENT = 5

Echo = Callable[[str], None]
OpenBrowser = Callable[[str], object]


@dataclass(frozen=True)
class RegisterClientResult:
    client_id: str
    client_secret: str = field(repr=False)
    client_id_issued_at: int
    client_secret_expires_at: int  # epoch seconds


@dataclass(frozen=True)
class DeviceAuthorization:
    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int


@dataclass(frozen=True)
class TokenResult:
    access_token: str = field(repr=False)
    token_type: str
    expires_in: int
    refresh_token: str | None = field(default=None, repr=False)


class OIDCClient:
    """The three sso-oidc operations, plus the ``/authorize`` URL of the PKCE flow."""

    def __init__(self, base_url: str, *, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = make_client(self.base_url, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OIDCClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._http.post(path, json={k: v for k, v in body.items() if v is not None})
        return json_or_raise(response, oauth=True)

    def register_client(
        self,
        *,
        client_name: str,
        scopes: list[str] | None = None,
        grant_types: list[str] | None = None,
        redirect_uris: list[str] | None = None,
        issuer_url: str | None = None,
    ) -> RegisterClientResult:
        """RegisterClient: ``POST /client/register``; ``clientSecretExpiresAt`` is in epoch seconds."""
        body = self._post(
            "/client/register",
            {
                "clientName": client_name,
                "clientType": "public",
                "scopes": scopes or None,
                "grantTypes": grant_types,
                "redirectUris": redirect_uris,
                "issuerUrl": issuer_url,
            },
        )
        op = "RegisterClient"
        return RegisterClientResult(
            client_id=require_str(body, "clientId", operation=op),
            client_secret=require_str(body, "clientSecret", operation=op),
            client_id_issued_at=require_int(body, "clientIdIssuedAt", operation=op, default=0),
            client_secret_expires_at=require_int(body, "clientSecretExpiresAt", operation=op),
        )

    def start_device_authorization(
        self, *, client_id: str, client_secret: str, start_url: str
    ) -> DeviceAuthorization:
        """StartDeviceAuthorization: ``POST /device_authorization`` (RFC 8628 §3.1-3.2)."""
        body = self._post(
            "/device_authorization",
            {"clientId": client_id, "clientSecret": client_secret, "startUrl": start_url},
        )
        op = "StartDeviceAuthorization"
        verification_uri = require_str(body, "verificationUri", operation=op)
        return DeviceAuthorization(
            device_code=require_str(body, "deviceCode", operation=op),
            user_code=require_str(body, "userCode", operation=op),
            verification_uri=verification_uri,
            verification_uri_complete=str(body.get("verificationUriComplete") or verification_uri),
            expires_in=require_int(body, "expiresIn", operation=op, default=600),
            interval=require_int(body, "interval", operation=op, default=DEFAULT_INTERVAL),
        )

    def create_token(
        self,
        *,
        client_id: str,
        client_secret: str,
        grant_type: str,
        device_code: str | None = None,
        code: str | None = None,
        code_verifier: str | None = None,
        redirect_uri: str | None = None,
        refresh_token: str | None = None,
    ) -> TokenResult:
        """CreateToken: ``POST /token``. OAuth errors raise ``keyhall.errors`` classes (``SlowDown`` …)."""
        body = self._post(
            "/token",
            {
                "clientId": client_id,
                "clientSecret": client_secret,
                "grantType": grant_type,
                "deviceCode": device_code,
                "code": code,
                "codeVerifier": code_verifier,
                "redirectUri": redirect_uri,
                "refreshToken": refresh_token,
            },
        )
        op = "CreateToken"
        refreshed = body.get("refreshToken")
        return TokenResult(
            access_token=require_str(body, "accessToken", operation=op),
            token_type=str(body.get("tokenType") or "Bearer"),
            expires_in=require_int(body, "expiresIn", operation=op),
            refresh_token=refreshed if isinstance(refreshed, str) and refreshed else None,
        )

    def authorize_url(
        self, *, client_id: str, redirect_uri: str, state: str, code_challenge: str, scopes: list[str]
    ) -> str:
        """``GET /authorize`` with the parameters and order the AWS CLI uses (``scopes`` space-joined)."""
        query = urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "state": state,
                "code_challenge_method": "S256",
                "scopes": " ".join(scopes),
                "code_challenge": code_challenge,
            },
            quote_via=quote,
        )
        return f"{self.base_url}/authorize?{query}"


# --- RFC 7636: Proof Key for Code Exchange ---------------------------------------------------------------

#: RFC 7636 §4.1: unreserved characters ``[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"``.
VERIFIER_ALPHABET = string.ascii_letters + string.digits + "-._~"


def make_code_verifier(length: int = 64) -> str:
    """A code_verifier of *length* (43..128, RFC 7636 §4.1) characters from ``secrets``."""
    if not 43 <= length <= 128:
        raise ValueError("RFC 7636 §4.1: a code verifier has 43 to 128 characters")
    return "".join(secrets.choice(VERIFIER_ALPHABET) for _ in range(length))


def code_challenge_s256(verifier: str) -> str:
    """RFC 7636 §4.2: ``BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))`` without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def make_state() -> str:
    return secrets.token_urlsafe(32)


# --- RFC 8252 §7.3: the loopback redirect ------------------------------------------------------------------


@dataclass(frozen=True)
class AuthorizationCallback:
    code: str | None = field(default=None, repr=False)
    state: str | None = field(default=None, repr=False)
    error: str | None = None
    error_description: str | None = None


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Keyhall</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}</style>
</head><body><h1>{title}</h1><p>{text}</p></body></html>
"""


class _CallbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, expected_state: str, request_timeout: float) -> None:
        self.expected_state = expected_state
        self.request_timeout = request_timeout
        self.callback: AuthorizationCallback | None = None
        self.done = threading.Event()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _CallbackHandler)


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _CallbackServer
    server_version = "keyhall-login"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.request_timeout)  # a stalled browser connection cannot hang us

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != CALLBACK_PATH:
            self._page(404, "Not found", "This address only receives the Keyhall sign-in redirect.")
            return
        query = parse_qs(parts.query)

        def first(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        callback = AuthorizationCallback(
            code=first("code"),
            state=first("state"),
            error=first("error"),
            error_description=first("error_description"),
        )
        with self.server.lock:
            if self.server.done.is_set():
                self._page(409, "Already done", "This sign-in has already finished. You can close this tab.")
                return
            self.server.callback = callback
            ok = _callback_problem(callback, self.server.expected_state) is None
            if ok:
                self._page(
                    200,
                    "Signed in",
                    "Keyhall has your sign-in. You can close this tab and go back to the terminal.",
                )
            else:
                reason = html.escape(_callback_problem(callback, self.server.expected_state) or "")
                self._page(400, "Sign-in failed", f"{reason} Go back to the terminal for details.")
            self.server.done.set()

    def _page(self, status: int, title: str, text: str) -> None:
        body = _PAGE.format(title=html.escape(title), text=text).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the query string carries the authorization code."""


def _callback_problem(callback: AuthorizationCallback, expected_state: str) -> str | None:
    if callback.error:
        detail = f": {callback.error_description}" if callback.error_description else ""
        # Whoever calls the listener chooses this text, and it reaches the terminal: printable only.
        shown = "".join(c for c in f"{callback.error}{detail}" if c.isprintable())[:300]
        return f"The sign-in was refused ({shown})."
    if callback.state is None or not hmac.compare_digest(callback.state.encode(), expected_state.encode()):
        return "The sign-in answer does not belong to this login (state mismatch)."
    if not callback.code:
        return "The sign-in answer has no authorization code."
    return None


class LoopbackListener:
    """An HTTP listener on ``127.0.0.1:<free port>`` that receives one authorization response."""

    def __init__(self, *, expected_state: str, request_timeout: float = 10.0) -> None:
        self._server = _CallbackServer(expected_state, request_timeout)
        self._thread = threading.Thread(target=self._serve, name="keyhall-login", daemon=True)

    def _serve(self) -> None:
        self._server.serve_forever(poll_interval=0.05)  # a short poll so closing the listener is quick

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}{CALLBACK_PATH}"

    def __enter__(self) -> LoopbackListener:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def wait(self, timeout: float) -> str:
        """The authorization code; LoginError on a refusal, a state mismatch or after *timeout* seconds."""
        if not self._server.done.wait(timeout):
            raise LoginError(
                f"No answer from the browser within {int(timeout)} s; run `keyhall login` again."
            )
        callback = self._server.callback
        problem = (
            "no answer" if callback is None else _callback_problem(callback, self._server.expected_state)
        )
        if problem is not None or callback is None or callback.code is None:
            raise LoginError(problem or "The sign-in answer has no authorization code.")
        return callback.code


# --- the flows --------------------------------------------------------------------------------------------


def authorization_code_flow(
    *,
    oidc: OIDCClient,
    registration: ClientRegistration,
    scopes: list[str],
    echo: Echo,
    open_browser: OpenBrowser | None,
    timeout: float = 600.0,
) -> TokenResult:
    """Authorization code with PKCE through the browser and a loopback listener (RFC 7636, RFC 8252)."""
    verifier = make_code_verifier()
    state = make_state()
    with LoopbackListener(expected_state=state) as listener:
        url = oidc.authorize_url(
            client_id=registration.client_id,
            redirect_uri=listener.redirect_uri,
            state=state,
            code_challenge=code_challenge_s256(verifier),
            scopes=scopes,
        )
        if open_browser is not None:
            echo("Opening your browser to sign in. If it does not open, visit this URL on this machine:")
        else:
            echo("Visit this URL in a browser on this machine to sign in:")
        echo(f"\n{url}\n")
        if open_browser is not None:
            open_browser(url)
        code = listener.wait(timeout)
        redirect_uri = listener.redirect_uri
    try:
        return oidc.create_token(
            client_id=registration.client_id,
            client_secret=registration.client_secret,
            grant_type=GRANT_AUTHORIZATION_CODE,
            code=code,
            code_verifier=verifier,
            redirect_uri=redirect_uri,
        )
    except wire.ExpiredToken as exc:
        raise LoginError(
            "The authorization code expired before it was redeemed; run `keyhall login` again."
        ) from exc
    except wire.InvalidGrant as exc:
        raise LoginError(f"The server refused the authorization code: {exc.message}") from exc


def device_authorization_flow(
    *,
    oidc: OIDCClient,
    registration: ClientRegistration,
    start_url: str,
    echo: Echo,
    open_browser: OpenBrowser | None,
    clock: Clock,
    sleep: Callable[[float], None] = time.sleep,
) -> TokenResult:
    """RFC 8628: show the code, then poll CreateToken every ``interval`` s (+5 s per ``slow_down``)."""
    authorization = oidc.start_device_authorization(
        client_id=registration.client_id, client_secret=registration.client_secret, start_url=start_url
    )
    echo("To sign in, visit:")
    echo(f"\n{authorization.verification_uri}\n")
    echo("and enter the code:")
    echo(f"\n{authorization.user_code}\n")
    echo(f"Or open this URL, which fills in the code:\n{authorization.verification_uri_complete}\n")
    if open_browser is not None:
        open_browser(authorization.verification_uri_complete)
    interval = float(max(authorization.interval, 1))
    deadline = clock.timestamp() + authorization.expires_in
    while True:
        if clock.timestamp() >= deadline:
            raise LoginError(
                "The device code expired before it was approved; run `keyhall login --device` again."
            )
        sleep(interval)
        try:
            return oidc.create_token(
                client_id=registration.client_id,
                client_secret=registration.client_secret,
                grant_type=GRANT_DEVICE_CODE,
                device_code=authorization.device_code,
            )
        except wire.AuthorizationPending:
            continue
        except wire.SlowDown:
            interval += SLOW_DOWN_INCREMENT
        except wire.ExpiredToken as exc:
            raise LoginError(
                "The device code expired before it was approved; run `keyhall login --device` again."
            ) from exc
        except wire.OAuthAccessDenied as exc:
            raise LoginError("The sign-in was denied in the browser.") from exc


def refresh(*, oidc: OIDCClient, token: SSOToken, clock: Clock) -> SSOToken:
    """CreateToken with ``grant_type=refresh_token``; the new token keeps the rotated refresh token."""
    if not (token.refresh_token and token.client_id and token.client_secret):
        raise ValueError("the token has no refresh token or client registration")
    result = oidc.create_token(
        client_id=token.client_id,
        client_secret=token.client_secret,
        grant_type=GRANT_REFRESH_TOKEN,
        refresh_token=token.refresh_token,
    )
    return replace(
        token,
        access_token=result.access_token,
        expires_at=clock.now() + timedelta(seconds=result.expires_in),
        refresh_token=result.refresh_token or token.refresh_token,
    )
