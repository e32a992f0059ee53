"""Redirect matching, PKCE and user codes: the small rules the authorization server rests on."""

from __future__ import annotations

import pytest

from keyhall.oauth.pkce import s256, verifier_matches
from keyhall.oauth.redirects import is_loopback_redirect, redirect_matches
from keyhall.oauth.user_codes import ALPHABET, display_user_code, new_user_code, normalise_user_code

REGISTERED = "http://127.0.0.1/oauth/callback"


@pytest.mark.parametrize(
    "presented",
    [
        "http://127.0.0.1/oauth/callback",
        "http://127.0.0.1:49152/oauth/callback",
        "http://127.0.0.1:1/oauth/callback",
    ],
)
def test_loopback_port_may_differ(presented: str) -> None:
    assert redirect_matches(REGISTERED, presented)


@pytest.mark.parametrize(
    "presented",
    [
        "http://localhost:49152/oauth/callback",  # localhost is not loopback by address (RFC 8252 §8.3)
        "http://127.0.0.1:49152/oauth/callback/",
        "http://127.0.0.1:49152/OAUTH/callback",  # case matters (fosite CVE-2020-15234)
        "http://127.0.0.1:49152/oauth/callback?x=1",  # query matters (fosite CVE-2020-15233)
        "http://127.0.0.1:49152/oauth/callback#f",
        "https://127.0.0.1:49152/oauth/callback",
        "http://127.0.0.2:49152/oauth/callback",
        "http://evil@127.0.0.1:49152/oauth/callback",
        "http://127.0.0.1@evil.example/oauth/callback",
        "http://127.0.0.1:49152/oauth/../oauth/callback",
        "http://127.0.0.1:notaport/oauth/callback",
    ],
)
def test_anything_else_must_match_exactly(presented: str) -> None:
    assert not redirect_matches(REGISTERED, presented)


def test_ipv6_loopback() -> None:
    assert redirect_matches("http://[::1]/cb", "http://[::1]:8000/cb")
    assert is_loopback_redirect("http://[::1]/cb")


@pytest.mark.parametrize(
    "uri",
    ["https://example.com/cb", "http://localhost/cb", "http://127.0.0.1/cb#frag", "http://u:p@127.0.0.1/cb"],
)
def test_only_loopback_http_may_be_registered(uri: str) -> None:
    assert not is_loopback_redirect(uri)


def test_pkce_rfc7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert s256(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert verifier_matches(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    assert not verifier_matches(verifier + "x", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    assert not verifier_matches("short", s256("short"))  # below 43 characters: refused outright


def test_user_codes() -> None:
    code = new_user_code()
    assert len(code) == 8
    assert set(code) <= set(ALPHABET)
    shown = display_user_code(code)
    assert shown[4] == "-"
    assert normalise_user_code(shown.lower()) == code
    assert normalise_user_code(f" {shown[:2]} {shown[2:]} ") == code
    assert normalise_user_code("AAAA-AAAA") is None  # vowels are not in the alphabet
    assert normalise_user_code("BCDF") is None
