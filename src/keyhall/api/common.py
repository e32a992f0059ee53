"""What every handler needs: who is calling (address, agent, request id) and a parsed JSON body."""

from __future__ import annotations

import ipaddress
from typing import Any

import orjson
from starlette.requests import Request

from keyhall.audit.events import Actor
from keyhall.errors import InvalidRequest, OAuthError, ValidationError


def client_ip(request: Request, trusted_proxies: tuple[str, ...] = ()) -> str | None:
    """The peer address; X-Forwarded-For is believed only from configured proxies (security.md §0.14)."""
    peer = request.client.host if request.client else None
    return believed_address(peer, request.headers.get("x-forwarded-for"), trusted_proxies)


def believed_address(
    peer: str | None, forwarded_for: str | None, trusted_proxies: tuple[str, ...]
) -> str | None:
    """``peer``, or the last X-Forwarded-For hop when ``peer`` is one of the trusted proxies."""
    if peer and trusted_proxies and forwarded_for is not None:
        try:
            peer_ip = ipaddress.ip_address(peer)
            if any(peer_ip in ipaddress.ip_network(cidr, strict=False) for cidr in trusted_proxies):
                return str(ipaddress.ip_address(forwarded_for.split(",")[-1].strip()))
        except ValueError:
            return peer
    return peer


def request_actor(request: Request, *, actor_type: str = "Anonymous", actor_id: str | None = None) -> Actor:
    container = request.app.state.container
    return Actor(
        type=actor_type,
        id=actor_id,
        source_ip=client_ip(request, container.settings.trusted_proxies),
        user_agent=request.headers.get("user-agent"),
        request_id=str(request.scope.get("state", {}).get("request_id", "")) or None,
    )


async def json_body(request: Request, *, oauth: bool = False) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > 64 * 1024:
        raise (
            InvalidRequest("The request body is too large") if oauth else ValidationError("Body too large")
        )
    try:
        value = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        error: OAuthError | ValidationError = (
            InvalidRequest("The body is not valid JSON")
            if oauth
            else ValidationError("The body is not valid JSON")
        )
        raise error from exc
    if not isinstance(value, dict):
        raise (
            InvalidRequest("The body must be a JSON object")
            if oauth
            else ValidationError("Body must be an object")
        )
    return value


def str_field(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string")
    return value


def str_list_field(body: dict[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequest(f"{name} must be a list of strings")
    return value
