"""The browser pages through the ASGI app, on SQLite and PostgreSQL: sign-in (password, TOTP, forced change),
throttling, CSRF, device verification and consent for code + PKCE, with their audit records."""

from __future__ import annotations

import html
import re
import secrets
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning

from keyhall.audit.events import Actor
from keyhall.clock import FrozenClock
from keyhall.container import Container
from keyhall.crypto import generate_master_key
from keyhall.db.tables import audit_events, device_authorizations, portal_sessions
from keyhall.directory.models import User, UserSpec
from keyhall.instance import create_instance, update_instance_settings
from keyhall.oauth import codes
from keyhall.oauth.device import DeviceStart
from keyhall.oauth.pkce import s256
from keyhall.oauth.service import CreateTokenRequest
from keyhall.signin import totp
from keyhall.signin.service import GENERIC_FAILURE, TOTP_FAILURE, SignInService
from keyhall.web import pages, portal_pages

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 and warns when it falls back to httpx, the project's dev dependency today
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

PASSWORD = "correct horse battery staple"
DEVICE_IP = "203.0.113.7"


@dataclass
class Web:
    container: Container
    client: TestClient
    alice: User
    clock: FrozenClock

    @property
    def signin(self) -> SignInService:
        return self.container.signin  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
def web(container: Container, clock: FrozenClock, actor: Actor) -> Iterator[Web]:
    container.master_key = generate_master_key()
    container.signin = SignInService(  # type: ignore[attr-defined]
        container.clock,
        container.audit,
        container.hasher,
        container.sessions,
        master_key=container.master_key,
    )
    with container.db.write() as conn:
        create_instance(conn, actor, container.audit, clock, "Example Corp")
        # these tests are about the sign-in pages; forced MFA enrolment is covered by tests/browser
        update_instance_settings(conn, actor, container.audit, mfa_policy="optional")
        alice = container.directory.create_user(
            conn,
            actor,
            UserSpec("alice", display_name="Alice Liddell", email="alice@example.com"),
            password_hash=container.hasher.hash(PASSWORD),
        )
    app = Starlette(routes=portal_pages.routes + pages.routes)
    app.state.container = container
    with TestClient(app, follow_redirects=False) as client:
        yield Web(container, client, alice, clock)


# ---- helpers ---------------------------------------------------------------------------------------


def csrf_of(response: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', response.text)
    assert found, response.text
    return found.group(1)


def hidden_fields(response: httpx.Response) -> dict[str, str]:
    return {
        name: html.unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', response.text)
    }


def sign_in(
    web: Web, user_name: str = "alice", password: str = PASSWORD, next_url: str = "", *, again: bool = False
) -> httpx.Response:
    """Through the sign-in page; ``again`` signs a signed-in person in once more."""
    params = {**({"next": next_url} if next_url else {}), **({"again": "1"} if again else {})}
    page = web.client.get("/login", params=params or None)
    response: httpx.Response = web.client.post(
        "/login", data={"csrf": csrf_of(page), "user_name": user_name, "password": password, "next": next_url}
    )
    return response


def sign_out(web: Web) -> None:
    start = web.client.get("/start")
    assert web.client.post("/logout", data={"csrf": csrf_of(start)}).status_code == 303


def audit_rows(web: Web) -> list[dict[str, Any]]:
    with web.container.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(audit_events).order_by(audit_events.c.seq))]


def audit_names(web: Web) -> list[str]:
    return [row["event_name"] for row in audit_rows(web)]


def set_cookie_headers(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


def enrol_totp(web: Web, actor: Actor) -> bytes:
    with web.container.db.write() as conn:
        enrolment = web.signin.begin_totp_enrolment(conn, web.alice.id)
        code = totp.totp_code(enrolment.secret, totp.time_step(web.clock.timestamp()))
        assert web.signin.confirm_totp_enrolment(conn, web.alice.id, enrolment.device_id, code, actor=actor)
    return enrolment.secret


def current_code(web: Web, secret: bytes) -> str:
    return totp.totp_code(secret, totp.time_step(web.clock.timestamp()))


# ---- sign-in ---------------------------------------------------------------------------------------


def test_sign_in_sets_an_http_only_session_cookie_and_writes_user_authentication(web: Web) -> None:
    response = sign_in(web)
    assert response.status_code == 303
    assert response.headers["location"] == "/start"
    session_cookie = next(c for c in set_cookie_headers(response) if c.startswith("kh_session="))
    assert "HttpOnly" in session_cookie
    assert "SameSite=lax" in session_cookie
    assert "Secure" not in session_cookie  # the public URL is plain http here
    names = audit_names(web)
    assert names[-3:] == ["CredentialChallenge", "CredentialVerification", "UserAuthentication"]
    authentication = audit_rows(web)[-1]
    assert authentication["actor_id"] == web.alice.id
    assert authentication["additional_data"]["UserName"] == "alice"
    assert authentication["additional_data"]["MFAUsed"] is False

    start = web.client.get("/start")
    assert start.status_code == 200
    assert "Alice Liddell" in start.text


def test_signed_out_start_page_sends_to_sign_in_with_next(web: Web) -> None:
    response = web.client.get("/start")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fstart"


@pytest.mark.parametrize(
    ("user_name", "masked"), [("alice", "a***e"), ("mallory", "m*****y"), ("ALICE", "A***E")]
)
def test_wrong_password_or_unknown_user_gets_the_same_generic_answer(
    web: Web, user_name: str, masked: str
) -> None:
    wrong = "Tr0ub4dor&3-wrong"
    response = sign_in(web, user_name=user_name, password=wrong if user_name != "mallory" else PASSWORD)
    assert response.status_code == 400
    assert html.escape(GENERIC_FAILURE) in response.text
    assert not any(c.startswith("kh_session=") for c in set_cookie_headers(response))
    rows = audit_rows(web)
    assert "UserAuthentication" not in [r["event_name"] for r in rows]
    verification = next(r for r in rows if r["event_name"] == "CredentialVerification")
    assert verification["additional_data"]["UserName"] == masked
    assert verification["additional_data"]["CredentialType"] == "PASSWORD"
    assert verification["additional_data"]["CredentialVerification"] == "Failure"
    assert verification["error_code"] == "AuthenticationFailed"
    assert verification["actor_id"] is None
    for row in rows:  # no password in any record, in any column
        assert wrong not in repr(row)
        assert PASSWORD not in repr(row)


def test_disabled_user_is_refused_with_the_same_message(web: Web, actor: Actor) -> None:
    with web.container.db.write() as conn:
        web.container.directory.set_status(conn, actor, web.alice.id, "DISABLED")
    response = sign_in(web)
    assert response.status_code == 400
    assert html.escape(GENERIC_FAILURE) in response.text


def test_next_is_honoured_only_for_local_paths(web: Web) -> None:
    assert sign_in(web, next_url="//evil.example/x").headers["location"] == "/start"
    sign_out(web)
    assert sign_in(web, next_url="https://evil.example/").headers["location"] == "/start"
    sign_out(web)
    assert (
        sign_in(web, next_url="/device?user_code=BCDF-GHJK").headers["location"]
        == "/device?user_code=BCDF-GHJK"
    )


def test_totp_is_required_when_enrolled_and_a_code_is_accepted_once(web: Web, actor: Actor) -> None:
    secret = enrol_totp(web, actor)
    web.clock.advance(30)

    response = sign_in(web)
    assert response.status_code == 303
    assert response.headers["location"] == "/login/totp"
    assert not any(c.startswith("kh_session=") for c in set_cookie_headers(response))
    assert web.client.get("/start").status_code == 303  # not signed in yet

    code = current_code(web, secret)
    page = web.client.get("/login/totp")
    done = web.client.post("/login/totp", data={"csrf": csrf_of(page), "code": code})
    assert done.status_code == 303
    assert done.headers["location"] == "/start"
    assert web.client.get("/start").status_code == 200
    with web.container.db.read() as conn:
        methods = list(conn.execute(select(portal_sessions.c.mfa_method)).scalars())
    assert methods == ["totp"]
    assert audit_rows(web)[-1]["additional_data"]["MFAUsed"] is True

    # the same code again, in a new sign-in within its validity window, is refused
    sign_out(web)
    assert sign_in(web).headers["location"] == "/login/totp"
    page = web.client.get("/login/totp")
    replay = web.client.post("/login/totp", data={"csrf": csrf_of(page), "code": code})
    assert replay.status_code == 400
    assert html.escape(TOTP_FAILURE) in replay.text
    failure = audit_rows(web)[-1]
    assert failure["event_name"] == "CredentialVerification"
    assert failure["additional_data"]["CredentialType"] == "TOTP"
    assert failure["additional_data"]["UserName"] == "a***e"
    assert code not in repr(audit_rows(web))

    web.clock.advance(30)
    fresh = web.client.post("/login/totp", data={"csrf": csrf_of(page), "code": current_code(web, secret)})
    assert fresh.status_code == 303


def test_totp_page_without_a_password_step_goes_back_to_sign_in(web: Web) -> None:
    assert web.client.get("/login/totp").headers["location"] == "/login"


def test_forced_password_change_after_an_administrator_reset(web: Web, actor: Actor) -> None:
    with web.container.db.write() as conn:
        web.container.directory.set_password_hash(
            conn, actor, web.alice.id, web.container.hasher.hash("abcd-efgh-jkmn-pqrs"), must_change=True
        )
    response = sign_in(web, password="abcd-efgh-jkmn-pqrs", next_url="/device")
    assert response.headers["location"] == "/login/change-password"
    page = web.client.get("/login/change-password")
    weak = web.client.post(
        "/login/change-password",
        data={"csrf": csrf_of(page), "new_password": "password", "confirm_password": "password"},
    )
    assert weak.status_code == 400
    assert "too common" in weak.text
    new = "a much better passphrase"
    done = web.client.post(
        "/login/change-password", data={"csrf": csrf_of(page), "new_password": new, "confirm_password": new}
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/device"
    assert "ChangePassword" in audit_names(web)
    sign_out(web)
    assert sign_in(web, password=new).headers["location"] == "/start"
    assert new not in repr(audit_rows(web))


# ---- throttling ------------------------------------------------------------------------------------


def test_throttling_after_repeated_failures_then_lifting(web: Web) -> None:
    for _ in range(5):
        assert sign_in(web, password="wrong password").status_code == 400
    blocked = sign_in(web)  # even the right password waits while blocked
    assert blocked.status_code == 429
    assert "Too many attempts, try again in 2 seconds" in blocked.text
    assert blocked.headers["retry-after"] == "2"

    web.clock.advance(3)
    assert sign_in(web, password="wrong password").status_code == 400  # 6th failure: 4 s
    assert "try again in 4 seconds" in sign_in(web).text

    web.clock.advance(15 * 60)  # the block and the window have passed: no permanent lockout
    assert sign_in(web).status_code == 303
    sign_out(web)
    # success cleared the account's counter: a single mistake is not blocked
    assert sign_in(web, password="wrong password").status_code == 400
    assert sign_in(web).status_code == 303


def test_concurrent_failures_cannot_slip_past_the_limit(web: Web) -> None:
    """Keycloak CVE-2024-4629: parallel guesses must be counted one after another."""

    def attempt(i: int) -> int | None:
        with web.container.db.write() as conn:
            step = web.signin.verify_password(
                conn, "alice", f"guess {i}", actor=Actor(type="Anonymous", source_ip=f"198.51.100.{i}")
            )
        assert step.refused
        return step.retry_after

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(attempt, range(10)))
    assert sum(1 for retry in outcomes if retry is None) == 5  # the rest were refused unchecked


# ---- CSRF and headers ------------------------------------------------------------------------------


def test_missing_or_wrong_csrf_token_is_refused(web: Web) -> None:
    web.client.get("/login")
    data = {"user_name": "alice", "password": PASSWORD}
    assert web.client.post("/login", data=data).status_code == 403
    assert web.client.post("/login", data={**data, "csrf": "forged"}).status_code == 403
    with TestClient(web.client.app, follow_redirects=False) as other:  # a token from another browser
        foreign = csrf_of(other.get("/login"))
    assert web.client.post("/login", data={**data, "csrf": foreign}).status_code == 403
    assert "UserAuthentication" not in audit_names(web)
    assert sign_in(web).status_code == 303
    assert web.client.post("/logout", data={"csrf": "forged"}).status_code == 403


def test_pages_carry_the_security_headers(web: Web) -> None:
    for response in (
        web.client.get("/login"),
        web.client.get("/start"),
        sign_in(web),
        web.client.get("/start"),
    ):
        csp = response.headers["content-security-policy"]
        assert "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
    page = web.client.get("/start").text
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)  # scripts only from files, never inline
    assert "style=" not in page and "<style" not in page
    css = web.client.get("/static/keyhall.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert css.headers["x-content-type-options"] == "nosniff"


def test_pre_session_cookie_is_strict_and_http_only(web: Web) -> None:
    cookie = next(c for c in set_cookie_headers(web.client.get("/login")) if c.startswith("kh_pre="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_sign_out_revokes_the_browser_session(web: Web) -> None:
    sign_in(web)
    sign_out(web)
    assert web.client.get("/start").status_code == 303
    with web.container.db.read() as conn:
        revoked = list(conn.execute(select(portal_sessions.c.revoked_at)).scalars())
    assert revoked and all(value is not None for value in revoked)
    assert "RevokeSession" in audit_names(web)


# ---- device verification ---------------------------------------------------------------------------


def start_device(web: Web) -> tuple[DeviceStart, str, str]:
    device_actor = Actor(type="Anonymous", source_ip=DEVICE_IP, user_agent="aws-cli/2.9.19 Python/3.11.2")
    registration = web.container.oidc.register_client(
        device_actor,
        name="botocore-client-dev",
        client_type="public",
        scopes=None,
        grant_types=None,
        redirect_uris=None,
        issuer_url=None,
    )
    started = web.container.oidc.start_device_authorization(
        device_actor,
        client_id=registration.client.id,
        client_secret=registration.client_secret,
        start_url="http://127.0.0.1:8080/start",
    )
    return started, registration.client.id, registration.client_secret


def device_status(web: Web) -> tuple[str, str | None, str | None]:
    with web.container.db.read() as conn:
        row = conn.execute(
            select(
                device_authorizations.c.status,
                device_authorizations.c.user_id,
                device_authorizations.c.approver_ip,
            )
        ).one()
    return row.status, row.user_id, row.approver_ip


def test_device_page_signed_out_goes_to_sign_in_and_comes_back(web: Web) -> None:
    started, _, _ = start_device(web)
    response = web.client.get("/device", params={"user_code": started.user_code})
    assert response.status_code == 303
    next_url = parse_qs(urlsplit(response.headers["location"]).query)["next"][0]
    assert next_url == f"/device?user_code={started.user_code}"
    assert sign_in(web, next_url=next_url).headers["location"] == next_url


def test_device_approval_needs_the_explicit_approve(web: Web) -> None:
    started, client_id, client_secret = start_device(web)
    sign_in(web)

    prefilled = web.client.get("/device", params={"user_code": started.user_code})
    assert prefilled.status_code == 200
    assert f'value="{started.user_code}"' in prefilled.text
    assert device_status(web)[0] == "PENDING"  # verificationUriComplete never approves

    confirm = web.client.post(
        "/device", data={"csrf": csrf_of(prefilled), "user_code": started.user_code.lower()}
    )
    assert confirm.status_code == 200
    assert device_status(web)[0] == "PENDING"  # seeing the details does not approve either
    for shown in ("botocore-client-dev", "unverified client", DEVICE_IP, "aws-cli/2.9.19", "UTC", "just now"):
        assert shown in confirm.text
    assert started.user_code in confirm.text
    assert "Is this the code shown on your device?" in confirm.text

    fields = hidden_fields(confirm)
    done = web.client.post("/device/confirm", data={**fields, "decision": "approve"})
    assert done.status_code == 200
    assert "Device approved" in done.text
    status, user_id, approver_ip = device_status(web)
    assert (status, user_id, approver_ip) == ("APPROVED", web.alice.id, "testclient")
    approval = audit_rows(web)[-1]
    assert approval["event_name"] == "ApproveDeviceAuthorization"
    assert approval["actor_id"] == web.alice.id
    assert approval["additional_data"]["deviceInitiatorIp"] == DEVICE_IP

    tokens = web.container.oidc.create_token(
        Actor(type="Anonymous", source_ip=DEVICE_IP),
        CreateTokenRequest(
            client_id=client_id,
            client_secret=client_secret,
            grant_type="urn:ietf:params:oauth:grant-type:device_code",
            device_code=started.device_code,
        ),
    )
    assert tokens.access_token
    assert started.device_code not in repr(audit_rows(web))


def test_device_deny(web: Web) -> None:
    started, _, _ = start_device(web)
    sign_in(web)
    page = web.client.get("/device")
    confirm = web.client.post("/device", data={"csrf": csrf_of(page), "user_code": started.user_code})
    done = web.client.post("/device/confirm", data={**hidden_fields(confirm), "decision": "deny"})
    assert done.status_code == 200
    assert "Request denied" in done.text
    assert device_status(web)[0] == "DENIED"
    assert audit_names(web)[-1] == "DenyDeviceAuthorization"


def test_device_approval_needs_a_recent_sign_in(web: Web, monkeypatch: pytest.MonkeyPatch) -> None:
    shorter = web.container.settings.model_copy(update={"device_approval_max_auth_age": 300})
    monkeypatch.setattr(web.container, "settings", shorter)  # under the device code's 600 s
    started, _, _ = start_device(web)
    sign_in(web)
    page = web.client.get("/device", params={"user_code": started.user_code})
    confirm = web.client.post("/device", data={"csrf": csrf_of(page), "user_code": started.user_code})
    assert confirm.status_code == 200
    web.clock.advance(301)  # the confirm page sat open past the limit: a live session is not enough

    late = web.client.post("/device/confirm", data={**hidden_fields(confirm), "decision": "approve"})
    assert late.status_code == 303
    query = parse_qs(urlsplit(late.headers["location"]).query)
    assert query["again"] == ["1"] and query["next"] == [f"/device?user_code={started.user_code}"]
    assert device_status(web)[0] == "PENDING"
    assert web.client.get("/device").headers["location"].startswith("/login?")  # every device page asks

    again = web.client.get(late.headers["location"])  # signed in, yet the page asks again
    assert again.status_code == 200
    assert "Approving a device needs a recent sign-in" in again.text
    assert 'value="alice"' in again.text
    back = sign_in(web, next_url=query["next"][0], again=True)
    assert back.headers["location"] == query["next"][0]
    page = web.client.get(back.headers["location"])
    assert page.status_code == 200 and f'value="{started.user_code}"' in page.text
    confirm = web.client.post("/device", data={"csrf": csrf_of(page), "user_code": started.user_code})
    done = web.client.post("/device/confirm", data={**hidden_fields(confirm), "decision": "approve"})
    assert "Device approved" in done.text and device_status(web)[0] == "APPROVED"


def test_sign_in_page_sends_a_signed_in_person_on_unless_asked_again(web: Web) -> None:
    sign_in(web)
    assert web.client.get("/login", params={"next": "/start"}).headers["location"] == "/start"
    assert web.client.get("/login", params={"next": "/start", "again": "1"}).status_code == 200


def test_expired_device_code_is_refused(web: Web) -> None:
    started, _, _ = start_device(web)
    sign_in(web)
    page = web.client.get("/device")
    confirm = web.client.post("/device", data={"csrf": csrf_of(page), "user_code": started.user_code})
    assert confirm.status_code == 200
    web.clock.advance(601)
    late = web.client.post("/device/confirm", data={**hidden_fields(confirm), "decision": "approve"})
    assert late.status_code == 400
    assert "no longer waiting" in late.text
    assert "location" not in late.headers
    again = web.client.post("/device", data={"csrf": csrf_of(page), "user_code": started.user_code})
    assert again.status_code == 400
    assert "not valid or has expired" in again.text
    assert device_status(web)[0] == "PENDING"


def test_user_code_guessing_is_throttled_per_address(web: Web) -> None:
    started, _, _ = start_device(web)
    sign_in(web)
    csrf = csrf_of(web.client.get("/device"))
    for guess in range(10):
        wrong = web.client.post("/device", data={"csrf": csrf, "user_code": f"BCDF-GHJ{'KLMNPQRSTV'[guess]}"})
        assert wrong.status_code == 400
    blocked = web.client.post("/device", data={"csrf": csrf, "user_code": started.user_code})
    assert blocked.status_code == 429
    assert "Too many attempts" in blocked.text
    web.clock.advance(15 * 60 + 1)  # the window has passed (and the first code expired meanwhile)
    fresh, _, _ = start_device(web)
    sign_in(web, again=True)  # approving needs a sign-in of the last 15 minutes
    csrf = csrf_of(web.client.get("/device"))
    assert web.client.post("/device", data={"csrf": csrf, "user_code": fresh.user_code}).status_code == 200


# ---- consent for code + PKCE -----------------------------------------------------------------------


@dataclass
class Pkce:
    client_id: str
    client_secret: str
    verifier: str
    params: dict[str, str]

    @property
    def query(self) -> str:
        return urlencode(self.params)


REDIRECT = "http://127.0.0.1:54321/oauth/callback"


@pytest.fixture
def pkce(web: Web) -> Pkce:
    registration = web.container.oidc.register_client(
        Actor(type="Anonymous", source_ip="127.0.0.1"),
        name="keyhall-cli",
        client_type="public",
        scopes=["sso:account:access"],
        grant_types=["authorization_code", "refresh_token"],
        redirect_uris=["http://127.0.0.1/oauth/callback"],
        issuer_url=None,
    )
    verifier = secrets.token_urlsafe(48)
    params = {
        "response_type": "code",
        "client_id": registration.client.id,
        "redirect_uri": REDIRECT,
        "state": "state-7f3a",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        "scopes": "sso:account:access",
    }
    return Pkce(registration.client.id, registration.client_secret, verifier, params)


@pytest.mark.parametrize(
    "change",
    [
        {"code_challenge_method": "plain"},
        {"code_challenge_method": None},
        {"code_challenge": None},
        {"redirect_uri": "http://127.0.0.1:54321/elsewhere"},
        {"redirect_uri": "http://localhost:54321/oauth/callback"},
        {"redirect_uri": "https://evil.example/oauth/callback"},
        {"client_id": "no-such-client"},
        {"response_type": "token"},
        {"scopes": "sso:account:access admin"},
    ],
)
def test_bad_authorization_requests_show_the_error_page_and_never_redirect(
    web: Web, pkce: Pkce, change: dict[str, str | None]
) -> None:
    params = {k: v for k, v in {**pkce.params, **change}.items() if v is not None}
    for signed_in in (False, True):
        if signed_in:
            sign_in(web)
        response = web.client.get("/authorize", params=params)
        assert response.status_code == 400
        assert "location" not in response.headers
        assert "Something went wrong" in response.text


def test_signed_out_authorize_goes_to_sign_in_with_next(web: Web, pkce: Pkce) -> None:
    response = web.client.get(f"/authorize?{pkce.query}")
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/login?next=")
    assert parse_qs(urlsplit(location).query)["next"][0] == f"/authorize?{pkce.query}"


def test_consent_allow_redirects_to_the_loopback_uri_with_a_redeemable_code(web: Web, pkce: Pkce) -> None:
    next_url = f"/authorize?{pkce.query}"
    assert sign_in(web, next_url=next_url).headers["location"] == next_url
    consent = web.client.get(next_url)
    assert consent.status_code == 200
    assert "keyhall-cli" in consent.text and "unverified client" in consent.text
    assert "127.0.0.1:54321" in consent.text and "sso:account:access" in consent.text
    # the Allow POST is answered by a redirect to the loopback URI, which form-action must permit
    csp = consent.headers["content-security-policy"]
    assert "form-action 'self' http://127.0.0.1:54321;" in csp
    assert "unsafe-inline" not in csp

    allowed = web.client.post("/authorize", data={**hidden_fields(consent), "decision": "allow"})
    assert allowed.status_code == 303
    location = urlsplit(allowed.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    answer = parse_qs(location.query)
    assert answer["state"] == ["state-7f3a"]
    assert answer["iss"] == [web.container.settings.effective_public_url]
    code = answer["code"][0]

    with web.container.db.write() as conn:
        redeemed = codes.redeem(
            conn,
            web.clock,
            client_id=pkce.client_id,
            code=code,
            redirect_uri=REDIRECT,
            code_verifier=pkce.verifier,
        )
    assert isinstance(redeemed, codes.RedeemedCode)
    assert redeemed.user_id == web.alice.id
    assert redeemed.scopes == ["sso:account:access"]
    record = audit_rows(web)[-1]
    assert record["event_name"] == "AuthorizeClient"
    assert record["additional_data"]["Decision"] == "Allow"
    assert code not in repr(audit_rows(web))


def test_consent_deny_redirects_with_access_denied(web: Web, pkce: Pkce) -> None:
    sign_in(web)
    consent = web.client.get(f"/authorize?{pkce.query}")
    denied = web.client.post("/authorize", data={**hidden_fields(consent), "decision": "deny"})
    assert denied.status_code == 303
    answer = parse_qs(urlsplit(denied.headers["location"]).query)
    assert answer["error"] == ["access_denied"]
    assert answer["state"] == ["state-7f3a"]
    assert "code" not in answer
    assert audit_rows(web)[-1]["additional_data"]["Decision"] == "Deny"


def test_consent_post_is_checked_again_and_needs_csrf(web: Web, pkce: Pkce) -> None:
    sign_in(web)
    fields = hidden_fields(web.client.get(f"/authorize?{pkce.query}"))
    tampered = web.client.post(
        "/authorize", data={**fields, "redirect_uri": "http://127.0.0.1:1/x", "decision": "allow"}
    )
    assert tampered.status_code == 400 and "location" not in tampered.headers
    forged = web.client.post("/authorize", data={**fields, "csrf": "forged", "decision": "allow"})
    assert forged.status_code == 403 and "location" not in forged.headers


def test_ipv6_loopback_consent_page_leaves_form_action_open(web: Web) -> None:
    registration = web.container.oidc.register_client(
        Actor(type="Anonymous"),
        name="v6-cli",
        client_type="public",
        scopes=None,
        grant_types=["authorization_code"],
        redirect_uris=["http://[::1]/cb"],
        issuer_url=None,
    )
    sign_in(web)
    params = {
        "response_type": "code",
        "client_id": registration.client.id,
        "redirect_uri": "http://[::1]:6000/cb",
        "code_challenge": s256(secrets.token_urlsafe(48)),
        "code_challenge_method": "S256",
    }
    consent = web.client.get("/authorize", params=params)
    assert consent.status_code == 200
    csp = consent.headers["content-security-policy"]
    assert "form-action" not in csp and "frame-ancestors 'none'" in csp


def test_mfa_policy_off_skips_the_totp_step(web: Web, actor: Actor) -> None:
    enrol_totp(web, actor)
    with web.container.db.write() as conn:
        update_instance_settings(conn, actor, web.container.audit, mfa_policy="off")
    assert sign_in(web).headers["location"] == "/start"
