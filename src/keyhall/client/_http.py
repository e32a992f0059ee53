"""The HTTP plumbing the wire clients share: one httpx client per base URL, and error decoding.

AWS rest-json errors name their type in the ``x-amzn-ErrorType`` header (text before ``:``), else in the
body's ``__type`` (after the last ``#``) or ``code``; sso-oidc bodies carry ``error``/``error_description``,
the portal's ``message`` (aws-wire.md §1.0 "How botocore decodes errors").
"""

from __future__ import annotations

from typing import Any

import httpx

from keyhall import errors as wire
from keyhall.client.errors import ServiceError

USER_AGENT = "keyhall-cli"
DEFAULT_TIMEOUT = 15.0


def make_client(base_url: str, *, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=base_url.rstrip("/"),
        transport=transport,
        timeout=DEFAULT_TIMEOUT,
        headers={"user-agent": USER_AGENT},
        follow_redirects=False,
    )


def _subclasses(cls: type[wire.KeyhallError]) -> list[type[wire.KeyhallError]]:
    found: list[type[wire.KeyhallError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def _oauth_classes() -> dict[str, type[wire.OAuthError]]:
    classes: dict[str, type[wire.OAuthError]] = {}
    for cls in _subclasses(wire.OAuthError):
        if issubclass(cls, wire.OAuthError):
            classes.setdefault(cls.aws_code, cls)
    return classes


#: Portal errors whose class takes just a message.
_PORTAL_CLASSES: dict[str, type[wire.KeyhallError]] = {
    "UnauthorizedException": wire.UnauthorizedError,
    "AccessDeniedException": wire.AccessDeniedError,
    "ThrottlingException": wire.ThrottlingError,
    "TooManyRequestsException": wire.ThrottlingError,
    "ConflictException": wire.ConflictError,
    "InternalServerException": wire.KeyhallError,
    "ServiceUnavailableException": wire.ServiceUnavailableError,
}


def _json_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def error_code(response: httpx.Response, body: dict[str, Any]) -> str | None:
    header = response.headers.get("x-amzn-errortype")
    if header:
        return header.split(":", 1)[0].strip() or None
    for key in ("__type", "code", "Code"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value.rsplit("#", 1)[-1]
    return None


def error_from_response(response: httpx.Response, *, oauth: bool) -> Exception:
    """The exception for an error response: a ``keyhall.errors`` class when the code is known."""
    body = _json_body(response)
    code = error_code(response, body)
    description = body.get("error_description") or body.get("message") or body.get("Message")
    message = str(description) if description else None
    if oauth and code is not None:
        oauth_cls = _oauth_classes().get(code)
        if oauth_cls is not None:
            return oauth_cls(message)
    if code is not None and code in _PORTAL_CLASSES:
        return _PORTAL_CLASSES[code](message or code)
    if message is None:
        text = response.text.strip()
        message = text[:200] if text else f"HTTP {response.status_code}"
    prefix = f"{code}: " if code else ""
    return ServiceError(
        f"{prefix}{message} ({response.request.method} {response.request.url.path})",
        status=response.status_code,
        code=code,
    )


def json_or_raise(response: httpx.Response, *, oauth: bool) -> dict[str, Any]:
    """The JSON body of a 2xx response; otherwise raise the decoded error."""
    if response.is_success:
        return _json_body(response)
    raise error_from_response(response, oauth=oauth)


def require_str(body: dict[str, Any], key: str, *, operation: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ServiceError(f"{operation}: the response has no {key!r}", status=200)
    return value


def require_int(body: dict[str, Any], key: str, *, operation: str, default: int | None = None) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ServiceError(f"{operation}: the response has no numeric {key!r}", status=200)
    return int(value)
