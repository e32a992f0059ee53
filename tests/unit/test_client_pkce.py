"""RFC 7636 PKCE on the client: the Appendix B vector, the verifier alphabet, the /authorize URL."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from keyhall.client.oidc import (
    VERIFIER_ALPHABET,
    OIDCClient,
    code_challenge_s256,
    make_code_verifier,
    make_state,
)


def test_rfc7636_appendix_b_vector() -> None:
    assert (
        code_challenge_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


def test_verifier_is_64_unreserved_characters_and_random() -> None:
    verifiers = {make_code_verifier() for _ in range(50)}
    assert len(verifiers) == 50
    for verifier in verifiers:
        assert len(verifier) == 64
        assert set(verifier) <= set(VERIFIER_ALPHABET)
    assert set(VERIFIER_ALPHABET) == set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


@pytest.mark.parametrize("length", [42, 129])
def test_verifier_length_is_bounded(length: int) -> None:
    with pytest.raises(ValueError, match="43 to 128"):
        make_code_verifier(length)


def test_challenge_has_no_padding() -> None:
    challenge = code_challenge_s256(make_code_verifier())
    assert len(challenge) == 43
    assert "=" not in challenge


def test_state_is_unguessable() -> None:
    assert len({make_state() for _ in range(20)}) == 20
    assert len(make_state()) >= 43


def test_authorize_url_has_the_aws_cli_parameters() -> None:
    with OIDCClient("http://127.0.0.1:8080/") as oidc:
        url = oidc.authorize_url(
            client_id="cid",
            redirect_uri="http://127.0.0.1:4567/oauth/callback",
            state="st",
            code_challenge="ch",
            scopes=["sso:account:access", "openid"],
        )
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "127.0.0.1:8080", "/authorize")
    assert parse_qs(parts.query) == {
        "response_type": ["code"],
        "client_id": ["cid"],
        "redirect_uri": ["http://127.0.0.1:4567/oauth/callback"],
        "state": ["st"],
        "code_challenge_method": ["S256"],
        "scopes": ["sso:account:access openid"],
        "code_challenge": ["ch"],
    }
    assert "%20" in parts.query
