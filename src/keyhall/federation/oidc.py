"""Keyhall as an OpenID Connect issuer for AssumeRoleWithWebIdentity: the discovery document and JWKS that
AWS fetches from the public issuer URL, and the short-lived ID tokens it accepts.

AWS fetches ``<issuer>/.well-known/openid-configuration`` (OpenID Connect Discovery 1.0 §4) and then the
``jwks_uri`` over https; it checks the token's signature, ``iss`` (exactly the provider's URL), ``aud``
(one of the provider's client ids), ``exp``, and reads session tags from the
``https://aws.amazon.com/tags`` claim ("Passing session tags using AssumeRoleWithWebIdentity", IAM User
Guide). Tokens are RS256 (RFC 7518 §3.3) with the signing key's ``kid`` in the header (RFC 7515 §4.1.4).
The source identity travels in the ``https://aws.amazon.com/source_identity`` claim ("Monitor and control
actions taken with assumed roles", IAM User Guide).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import RSAKey

from keyhall.federation.keys import SigningKey

ALGORITHM = "RS256"
#: AWS accepts tokens of up to an hour; ours live just long enough for the one STS call they are made for.
TOKEN_SECONDS = 300
TAGS_CLAIM = "https://aws.amazon.com/tags"
SOURCE_IDENTITY_CLAIM = "https://aws.amazon.com/source_identity"
JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"


def jwks_uri(issuer_url: str) -> str:
    return issuer_url.rstrip("/") + JWKS_PATH


def discovery_document(issuer_url: str) -> dict[str, Any]:
    """The OpenID Provider metadata (Discovery §3) of an issuer that only ever signs ID tokens for AWS STS."""
    return {
        "issuer": issuer_url,
        "jwks_uri": jwks_uri(issuer_url),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "nbf",
            "jti",
            TAGS_CLAIM,
            SOURCE_IDENTITY_CLAIM,
        ],
    }


def jwks(keys: Sequence[SigningKey]) -> dict[str, Any]:
    """The JWK Set (RFC 7517 §5) of the published keys: during a rotation the next key is listed too, so AWS
    already knows it when it starts signing."""
    return {"keys": [key.public_jwk() for key in keys]}


def tags_claim(principal_tags: Mapping[str, str], transitive_tag_keys: Sequence[str]) -> dict[str, Any]:
    """AWS's session-tag claim: each principal tag's value is a one-element list."""
    claim: dict[str, Any] = {"principal_tags": {key: [value] for key, value in principal_tags.items()}}
    if transitive_tag_keys:
        claim["transitive_tag_keys"] = list(transitive_tag_keys)
    return claim


def web_identity_token(
    *,
    private_key: rsa.RSAPrivateKey,
    kid: str,
    issuer_url: str,
    audience: str,
    subject: str,
    now: float,
    principal_tags: Mapping[str, str] | None = None,
    transitive_tag_keys: Sequence[str] = (),
    source_identity: str | None = None,
    lifetime_seconds: int = TOKEN_SECONDS,
) -> str:
    """A signed ID token for one AssumeRoleWithWebIdentity call.

    ``sub`` is the user's immutable id, so a renamed user keeps the same subject in trust-policy conditions;
    ``iss`` is the configured issuer URL byte for byte (AWS compares it exactly).
    """
    issued = int(now)
    claims: dict[str, Any] = {
        "iss": issuer_url,
        "sub": subject,
        "aud": audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime_seconds,
        "jti": secrets.token_urlsafe(16),
    }
    if principal_tags or transitive_tag_keys:
        claims[TAGS_CLAIM] = tags_claim(principal_tags or {}, transitive_tag_keys)
    if source_identity:
        claims[SOURCE_IDENTITY_CLAIM] = source_identity
    key = RSAKey.import_key(private_key, parameters={"kid": kid, "alg": ALGORITHM, "use": "sig"})
    return jwt.encode({"alg": ALGORITHM, "kid": kid, "typ": "JWT"}, claims, key, algorithms=[ALGORITHM])
