"""CSRF tokens, the sign-in flow cookie, the ``next`` sanitiser and the headers of the portal pages."""

from __future__ import annotations

import pytest

from keyhall.crypto import generate_master_key
from keyhall.keys import derive_key
from keyhall.signin.service import DEVICE_LOOKUP_POLICY, ThrottlePolicy
from keyhall.web.security import (
    DEFAULT_CSP,
    CookiePolicy,
    content_security_policy,
    csrf_token,
    loopback_form_target,
    open_flow,
    pre_session_binding,
    safe_next,
    seal_flow,
    security_headers,
    session_binding,
    valid_pre_session_id,
    verify_csrf,
)


@pytest.fixture
def key() -> bytes:
    return derive_key(generate_master_key(), "csrf")


def test_csrf_token_verifies_only_for_its_binding_and_key(key: bytes) -> None:
    token = csrf_token(key, session_binding("s-1"))
    assert verify_csrf(key, [session_binding("s-1")], token)
    assert verify_csrf(key, [pre_session_binding("p"), session_binding("s-1")], token)
    assert not verify_csrf(key, [session_binding("s-2")], token)
    assert not verify_csrf(key, [pre_session_binding("s-1")], token)  # a pre-session id is another binding
    assert not verify_csrf(derive_key(generate_master_key(), "csrf"), [session_binding("s-1")], token)


@pytest.mark.parametrize("presented", [None, "", "x" * 500, "not-a-token", "é"])
def test_csrf_missing_or_malformed_is_refused(key: bytes, presented: str | None) -> None:
    assert not verify_csrf(key, [session_binding("s-1")], presented)


def test_csrf_without_any_binding_is_refused(key: bytes) -> None:
    assert not verify_csrf(key, [], csrf_token(key, session_binding("s-1")))


def test_pre_session_id_format() -> None:
    assert valid_pre_session_id("a" * 43) == "a" * 43
    assert valid_pre_session_id("a" * 42) is None
    assert valid_pre_session_id("a" * 42 + ";") is None
    assert valid_pre_session_id(None) is None


def test_flow_cookie_round_trip_expiry_and_tampering(key: bytes) -> None:
    sealed = seal_flow(key, {"uid": "u-1", "stage": "totp", "exp": 1000.0})
    assert open_flow(key, sealed, now=999.0) == {"uid": "u-1", "stage": "totp", "exp": 1000.0}
    assert open_flow(key, sealed, now=1000.0) is None  # expired
    payload, mac = sealed.split(".")
    forged = seal_flow(key, {"uid": "u-2", "stage": "totp", "exp": 1000.0}).split(".")[0]
    assert open_flow(key, f"{forged}.{mac}", now=0) is None
    assert open_flow(derive_key(generate_master_key(), "x"), sealed, now=0) is None
    assert open_flow(key, payload, now=0) is None
    assert open_flow(key, None, now=0) is None
    assert open_flow(key, "a.b.c", now=0) is None


@pytest.mark.parametrize(
    "value",
    [
        "/start",
        "/authorize?client_id=abc&redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcb&state=x",
        "/device?user_code=BCDF-GHJK",
    ],
)
def test_safe_next_keeps_local_paths(value: str) -> None:
    assert safe_next(value) == value


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "https://evil.example/",
        "//evil.example/",
        "///evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        " /start",
        "start",
        "javascript:alert(1)",
        "http:/evil.example",
        "/" + "a" * 3000,
    ],
)
def test_safe_next_refuses_anything_that_could_leave_the_site(value: str | None) -> None:
    assert safe_next(value) == "/start"


def test_security_headers_forbid_inline_code_and_framing() -> None:
    headers = security_headers()
    csp = headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "base-uri 'none'" in csp
    assert "form-action 'self'" in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"


def test_consent_csp_allows_exactly_the_loopback_target() -> None:
    target = loopback_form_target("http://127.0.0.1:53123/oauth/callback")
    assert target == "http://127.0.0.1:53123"
    csp = content_security_policy(form_targets=(target,))
    assert "form-action 'self' http://127.0.0.1:53123;" in csp
    assert loopback_form_target("http://127.0.0.1/cb") == "http://127.0.0.1"
    # CSP host sources cannot name an IPv6 literal: that page goes without form-action instead
    assert loopback_form_target("http://[::1]:5000/cb") is None
    assert "form-action" not in content_security_policy(restrict_forms=False)
    assert "frame-ancestors 'none'" in content_security_policy(restrict_forms=False)
    assert "127.0.0.1" not in DEFAULT_CSP


def test_cookie_policy_is_secure_only_over_https() -> None:
    assert CookiePolicy.for_public_url("https://sso.example.com").secure
    assert not CookiePolicy.for_public_url("http://127.0.0.1:8080").secure
    attributes = CookiePolicy(secure=True).attributes(same_site="strict", path="/login")
    assert attributes == {"path": "/login", "secure": True, "httponly": True, "samesite": "strict"}


def test_throttle_policy_grows_then_caps_and_never_locks_for_good() -> None:
    policy = ThrottlePolicy(threshold=5, window_seconds=900, max_delay_seconds=900)
    assert [policy.delay(n, 0, 0) for n in range(1, 9)] == [0, 0, 0, 0, 2, 4, 8, 16]
    assert policy.delay(50, 0, 0) == 900
    # the device-code lookup policy blocks until the window ends, then forgets
    assert DEVICE_LOOKUP_POLICY.delay(9, 100, 200) == 0
    assert DEVICE_LOOKUP_POLICY.delay(10, 100, 200) == 800
