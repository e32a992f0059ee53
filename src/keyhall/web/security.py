"""Browser-facing protections of the portal pages: CSRF tokens, cookies, the sign-in flow cookie, the
``next`` sanitiser (no open redirect, RFC 9700 §4.11) and the security headers of every HTML response
(no inline script, no framing: RFC 9700 §4.16).

Pure functions over bytes and strings, so they are tested without a server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson

#: Browser session (portal_sessions). SameSite=Lax: the CLI opens /authorize with a top-level GET from
#: another site, and the signed-in person must arrive signed in.
SESSION_COOKIE = "kh_session"
#: Random pre-session id that anonymous forms' CSRF tokens are bound to. It carries no authority.
PRE_SESSION_COOKIE = "kh_pre"
#: Signed state between sign-in steps (password verified, TOTP or password change pending).
FLOW_COOKIE = "kh_flow"
FLOW_COOKIE_PATH = "/login"
FLOW_SECONDS = 300
CSRF_FIELD = "csrf"

_PRE_SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_MAX_NEXT = 2048
DEFAULT_NEXT = "/start"

SameSite = Literal["lax", "strict"]


# ---- CSRF ------------------------------------------------------------------------------------------


def new_pre_session_id() -> str:
    return secrets.token_urlsafe(32)


def valid_pre_session_id(value: str | None) -> str | None:
    return value if value is not None and _PRE_SESSION_RE.fullmatch(value) else None


def session_binding(session_id: str) -> str:
    return f"session:{session_id}"


def pre_session_binding(pre_session_id: str) -> str:
    return f"pre:{pre_session_id}"


def csrf_token(key: bytes, binding: str) -> str:
    """HMAC of what the form is bound to (the browser session or the pre-session id) under the CSRF key:
    stateless, and useless to anyone who cannot read this browser's cookies."""
    mac = hmac.new(key, b"keyhall-csrf\0" + binding.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


def verify_csrf(key: bytes, bindings: list[str], presented: str | None) -> bool:
    """True when ``presented`` is the token of one of ``bindings``; compared in constant time."""
    if not presented or len(presented) > 128:
        return False
    candidate = presented.encode("ascii", "replace")
    matched = False
    for binding in bindings:
        matched |= hmac.compare_digest(csrf_token(key, binding).encode("ascii"), candidate)
    return matched


# ---- the sign-in flow cookie -----------------------------------------------------------------------


def seal_flow(key: bytes, state: Mapping[str, Any]) -> str:
    """``payload.mac``: the state between sign-in steps, readable by us only as we wrote it."""
    payload = base64.urlsafe_b64encode(orjson.dumps(dict(state))).decode("ascii").rstrip("=")
    mac = hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest()
    return f"{payload}.{base64.urlsafe_b64encode(mac).decode('ascii').rstrip('=')}"


def open_flow(key: bytes, value: str | None, *, now: float) -> dict[str, Any] | None:
    """The state sealed by ``seal_flow`` if the MAC is right and it has not expired (``exp``)."""
    if not value or len(value) > 4096 or value.count(".") != 1:
        return None
    payload, mac = value.split(".")
    expected = base64.urlsafe_b64encode(hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest())
    if not hmac.compare_digest(expected.decode("ascii").rstrip("=").encode("ascii"), mac.encode("ascii")):
        return None
    try:
        state = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(state, dict) or not isinstance(state.get("exp"), int | float) or state["exp"] <= now:
        return None
    return state


# ---- redirects -------------------------------------------------------------------------------------


def safe_next(value: str | None, default: str = DEFAULT_NEXT) -> str:
    """A local path to continue to after sign-in, or ``default``: only ``/…`` and never ``//…`` (RFC 9700
    §4.11, no open redirector). Backslashes and control characters are refused too, since browsers read
    ``/\\evil`` and ``/\\t/evil`` as ``//evil``."""
    if not value or len(value) > _MAX_NEXT:
        return default
    if not value.startswith("/") or value.startswith("//"):
        return default
    if "\\" in value or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


# ---- headers ---------------------------------------------------------------------------------------


def content_security_policy(*, form_targets: tuple[str, ...] = (), restrict_forms: bool = True) -> str:
    """No inline script or style, nothing framed, forms only to us (plus a consent page's loopback target),
    and scripts may call back to us only (``connect-src``: the WebAuthn ceremonies' JSON requests).

    ``form-action`` also governs the redirect that answers a form POST (Chrome, Firefox), so the consent
    page names the exact loopback origin its Allow/Deny redirects to. CSP host sources cannot express an
    IPv6 literal (CSP3 host-part grammar), so a consent page for an ``http://[::1]`` redirect drops the
    directive (``restrict_forms=False``) rather than send a source browsers reject.
    """
    directives = [
        "default-src 'none'",
        "style-src 'self'",
        "img-src 'self' data:",
        "script-src 'self'",
        "connect-src 'self'",
    ]
    if restrict_forms:
        directives.append("form-action " + " ".join(("'self'", *form_targets)))
    directives += ["frame-ancestors 'none'", "base-uri 'none'"]
    return "; ".join(directives)


DEFAULT_CSP = content_security_policy()


def security_headers(csp: str = DEFAULT_CSP) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp,
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
    }


def loopback_form_target(redirect_uri: str) -> str | None:
    """The CSP source for a registered loopback redirect URI (``http://127.0.0.1:PORT``), or None when the
    host is not one a CSP host source can name."""
    parts = urlsplit(redirect_uri)
    if parts.scheme != "http" or parts.hostname != "127.0.0.1":
        return None
    return f"http://127.0.0.1:{parts.port}" if parts.port is not None else "http://127.0.0.1"


# ---- cookies ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CookiePolicy:
    """Cookies are Secure when users reach Keyhall over https; over plain http (local use) browsers would
    drop a Secure cookie, so it is left off there. Every cookie is HttpOnly."""

    secure: bool

    @classmethod
    def for_public_url(cls, public_url: str) -> CookiePolicy:
        return cls(secure=public_url.lower().startswith("https://"))

    def attributes(self, *, same_site: SameSite, path: str = "/") -> dict[str, Any]:
        return {"path": path, "secure": self.secure, "httponly": True, "samesite": same_site}
