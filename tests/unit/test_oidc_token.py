"""The ID token AssumeRoleWithWebIdentity receives, decoded with joserfc and the published JWKS, as AWS does:
moto does not parse the token at all (testing-recipes.md §3)."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidClaimError
from joserfc.jwk import KeySet

from keyhall.federation import oidc
from keyhall.federation.keys import SigningKey, generate_key_material

ISSUER = "https://keyhall.example.com"


def _key(now: float) -> tuple[rsa.RSAPrivateKey, SigningKey]:
    kid, private_pem, certificate_pem = generate_key_material("oidc", now)
    private = serialization.load_pem_private_key(private_pem, password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    public = SigningKey(kid, "oidc", "RS256", certificate_pem, "active", now, now, None)
    return private, public


def test_the_token_decodes_with_the_jwks_and_carries_the_claims_aws_reads() -> None:
    now = float(int(time.time()))
    private, public = _key(now)
    _, upcoming = _key(now)
    token = oidc.web_identity_token(
        private_key=private,
        kid=public.kid,
        issuer_url=ISSUER,
        audience="sts.amazonaws.com",
        subject="9a1b2c3d4e-1111-2222-3333-444455556666",
        now=now,
        principal_tags={"Department": "Engineering"},
        transitive_tag_keys=("Department",),
        source_identity="alice",
    )
    keys = KeySet.import_key_set(oidc.jwks([public, upcoming]))  # during a rotation both are published
    decoded = jwt.decode(token, keys, algorithms=["RS256"])
    assert decoded.header == {"alg": "RS256", "kid": public.kid, "typ": "JWT"}
    claims = decoded.claims
    assert claims["iss"] == ISSUER  # exactly the configured URL: AWS compares it byte for byte
    assert claims["aud"] == "sts.amazonaws.com"
    assert claims["sub"] == "9a1b2c3d4e-1111-2222-3333-444455556666"
    assert claims["iat"] == claims["nbf"] == int(now)
    assert claims["exp"] - claims["iat"] == 300
    assert claims[oidc.TAGS_CLAIM] == {
        "principal_tags": {"Department": ["Engineering"]},
        "transitive_tag_keys": ["Department"],
    }
    assert claims[oidc.SOURCE_IDENTITY_CLAIM] == "alice"
    registry = jwt.JWTClaimsRegistry(
        now=int(now) + 10,
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": "sts.amazonaws.com"},
        sub={"essential": True},
        exp={"essential": True},
    )
    registry.validate(claims)
    with pytest.raises(InvalidClaimError):
        jwt.JWTClaimsRegistry(now=int(now), aud={"essential": True, "value": "other"}).validate(claims)


def test_only_the_key_named_by_kid_verifies() -> None:
    now = time.time()
    private, public = _key(now)
    _, other = _key(now)
    own = oidc.web_identity_token(
        private_key=private, kid=public.kid, issuer_url=ISSUER, audience="aud", subject="u", now=now
    )
    assert jwt.decode(own, KeySet.import_key_set(oidc.jwks([other, public])), algorithms=["RS256"])
    forged = oidc.web_identity_token(  # signed by one key, claiming to be another
        private_key=private, kid=other.kid, issuer_url=ISSUER, audience="aud", subject="u", now=now
    )
    with pytest.raises(BadSignatureError):
        jwt.decode(forged, KeySet.import_key_set(oidc.jwks([other, public])), algorithms=["RS256"])


def test_discovery_and_jwks_publish_nothing_secret() -> None:
    now = time.time()
    _, public = _key(now)
    document = oidc.discovery_document(ISSUER)
    assert document["issuer"] == ISSUER
    assert document["jwks_uri"] == ISSUER + "/.well-known/jwks.json"
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert document["response_types_supported"] == ["id_token"]
    assert document["subject_types_supported"] == ["public"]
    assert oidc.TAGS_CLAIM in document["claims_supported"]
    (jwk,) = oidc.jwks([public])["keys"]
    assert set(jwk) == {"kty", "kid", "use", "alg", "n", "e"}
    assert (jwk["kty"], jwk["kid"], jwk["use"], jwk["alg"], jwk["e"]) == (
        "RSA",
        public.kid,
        "sig",
        "RS256",
        "AQAB",
    )
