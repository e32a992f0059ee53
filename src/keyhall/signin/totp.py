"""TOTP second factor: RFC 6238 (over RFC 4226 HOTP) with SHA-1, 6 digits and a 30 s step.

These are the parameters every authenticator app supports. Codes are single use (ASVS 6.5.1):
``verify_totp`` returns the time step it matched, the caller stores it, and any code for that step
or an earlier one is refused afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from urllib.parse import quote, urlencode

#: RFC 6238 §4.1 X (time step) and T0 (epoch); §5.2 recommends 30 s, ASVS 6.5.5 caps it at 30 s.
TIME_STEP_SECONDS = 30
T0 = 0
DIGITS = 6
#: RFC 4226 §4 R6 recommends a 160-bit shared secret, the output size of HMAC-SHA-1.
SECRET_BYTES = 20
#: RFC 4226 §4 R6 requires at least 128 bits.
_MIN_SECRET_BYTES = 16


def new_totp_secret() -> bytes:
    """Return a fresh random 160-bit shared secret for enrolling an authenticator."""
    return secrets.token_bytes(SECRET_BYTES)


def totp_secret_to_base32(secret: bytes) -> str:
    """Encode ``secret`` as unpadded base32, the form authenticator apps accept for manual entry."""
    return base64.b32encode(secret).decode("ascii").rstrip("=")


def provisioning_uri(secret: bytes, *, account_name: str, issuer: str = "Keyhall") -> str:
    """Return the ``otpauth://totp/...`` URI that a QR code carries, per Google's Key Uri Format.

    The issuer appears both as the label prefix and as the ``issuer`` parameter, as the format
    recommends, so old and new apps both group the entry under it. Neither may contain a colon,
    which the format reserves as the label separator.
    """
    if ":" in issuer or ":" in account_name:
        raise ValueError("issuer and account_name must not contain ':'")
    if not account_name:
        raise ValueError("account_name must not be empty")
    label = quote(account_name, safe="")
    if issuer:
        label = f"{quote(issuer, safe='')}:{label}"
    params = {
        "secret": totp_secret_to_base32(secret),
        "algorithm": "SHA1",
        "digits": str(DIGITS),
        "period": str(TIME_STEP_SECONDS),
    }
    if issuer:
        params["issuer"] = issuer
    return f"otpauth://totp/{label}?{urlencode(params, quote_via=quote)}"


def time_step(now: float) -> int:
    """Return the RFC 6238 §4.2 time counter T for the Unix time ``now``."""
    return int((now - T0) // TIME_STEP_SECONDS)


def totp_code(secret: bytes, step: int, *, digits: int = DIGITS) -> str:
    """Return the code for time step ``step``: HOTP (RFC 4226 §5.3) with the step as counter.

    ``digits`` exists for the 8-digit RFC 6238 Appendix B test vectors; Keyhall uses 6.
    """
    if step < 0:
        raise ValueError("time step must not be negative")
    if not 1 <= digits <= 9:
        raise ValueError("digits must be between 1 and 9")
    digest = hmac.new(secret, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    binary = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(binary % 10**digits).zfill(digits)


def verify_totp(
    secret: bytes, code: str, *, now: float, last_used_step: int | None, window: int = 1
) -> int | None:
    """Check ``code`` against the steps around ``now`` and return the step it matched, or None.

    ``window`` steps either side of the current one are accepted (RFC 6238 §5.2) to allow for
    clock drift and typing time. A match on a step at or before ``last_used_step`` is refused:
    the caller persists the returned step as the new ``last_used_step``, which makes every code
    single use. Every candidate step is computed and compared in constant time, with no early
    exit, so the response time does not tell which step (if any) matched.
    """
    if window < 0:
        raise ValueError("window must not be negative")
    if len(secret) < _MIN_SECRET_BYTES:
        raise ValueError(f"TOTP secret must be at least {_MIN_SECRET_BYTES} bytes")
    # Apps show codes as "123 456"; people type them that way too.
    candidate = "".join(code.split())
    if len(candidate) != DIGITS or not (candidate.isascii() and candidate.isdigit()):
        return None
    current = time_step(now)
    matched: int | None = None
    for step in range(max(0, current - window), current + window + 1):
        is_match = hmac.compare_digest(totp_code(secret, step).encode("ascii"), candidate.encode("ascii"))
        is_fresh = last_used_step is None or step > last_used_step
        if is_match and is_fresh and matched is None:
            matched = step
    return matched
