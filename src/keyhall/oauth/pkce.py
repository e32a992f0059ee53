"""PKCE (RFC 7636), S256 only: ``plain`` exposes the verifier and is refused (RFC 9700 §2.1.1)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

VERIFIER_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")  # RFC 7636 §4.1
CHALLENGE_RE = re.compile(r"^[A-Za-z0-9\-_]{43}$")  # base64url(sha256) without padding


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def verifier_matches(verifier: str, challenge: str) -> bool:
    if not VERIFIER_RE.match(verifier):
        return False
    return hmac.compare_digest(s256(verifier), challenge)
