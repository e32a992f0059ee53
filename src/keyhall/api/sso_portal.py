"""The sso portal API (restJson1): ListAccounts, ListAccountRoles, GetRoleCredentials, Logout.

The bearer token travels in ``x-amz-sso_bearer_token``; ``expiration`` is in epoch milliseconds.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from keyhall.api.common import believed_address, request_actor
from keyhall.audit.events import Actor
from keyhall.container import Container
from keyhall.errors import KeyhallError, ValidationError
from keyhall.protocols.errors import render_rest_json

TOKEN_HEADER = "x-amz-sso_bearer_token"  # noqa: S105 (a header name, not a secret)
TOKEN_HEADER_BYTES = TOKEN_HEADER.encode()  # as ASGI scopes carry header names: lower case bytes

log = logging.getLogger("keyhall.portal")


def _rid(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def _max_results(request: Request) -> int | None:
    value = request.query_params.get("max_result")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise ValidationError("max_result must be a number") from exc


def _json(body: dict[str, object]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json", headers={"Cache-Control": "no-store"})


async def list_accounts(request: Request) -> Response:
    container: Container = request.app.state.container
    try:
        page = container.portal.list_accounts(
            request.headers.get(TOKEN_HEADER),
            limit=_max_results(request),
            next_token=request.query_params.get("next_token"),
        )
    except KeyhallError as error:
        return render_rest_json(error, _rid(request))
    body: dict[str, object] = {
        # keyhallAccountKind is Keyhall's own field (SDKs ignore members their model lacks): `keyhall
        # configure` needs it to send a real account's STS calls to AWS and a local one's to Keyhall
        "accountList": [
            {"accountId": a.id, "accountName": a.name, "emailAddress": a.email, "keyhallAccountKind": a.kind}
            for a in page.items
        ]
    }
    if page.next_token:
        body["nextToken"] = page.next_token
    return _json(body)


async def list_account_roles(request: Request) -> Response:
    container: Container = request.app.state.container
    account_id = request.query_params.get("account_id")
    try:
        page = container.portal.list_account_roles(
            request.headers.get(TOKEN_HEADER),
            account_id,
            limit=_max_results(request),
            next_token=request.query_params.get("next_token"),
        )
    except KeyhallError as error:
        return render_rest_json(error, _rid(request))
    body: dict[str, object] = {
        "roleList": [{"roleName": name, "accountId": account_id} for name in page.items]
    }
    if page.next_token:
        body["nextToken"] = page.next_token
    return _json(body)


def role_credentials_app(container: Container) -> ASGIApp:
    """GetRoleCredentials as a bare ASGI app, which the app's outer layer calls for its one path.

    It is the call every SDK process makes, so it skips Starlette's routing, Request and Response objects
    (measured in docs/performance.md): the three parameters are read straight from the scope."""
    portal = container.portal
    trusted_proxies = container.settings.trusted_proxies

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "GET":
            response: Response = PlainTextResponse("Method Not Allowed", 405, headers={"Allow": "GET"})
            await response(scope, receive, send)
            return
        token = agent = forwarded = None
        for name, value in scope["headers"]:
            if name == TOKEN_HEADER_BYTES:
                token = value.decode("latin-1")
            elif name == b"user-agent":
                agent = value.decode("latin-1")
            elif name == b"x-forwarded-for":
                forwarded = value.decode("latin-1")
        query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        request_id = scope["state"]["request_id"]
        client = scope.get("client")
        actor = Actor(
            type="Anonymous",
            source_ip=believed_address(client[0] if client else None, forwarded, trusted_proxies),
            user_agent=agent,
            request_id=request_id,
        )
        try:
            credentials = await portal.get_role_credentials_async(
                actor, token, query.get("account_id"), query.get("role_name")
            )
        except KeyhallError as error:
            await render_rest_json(error, request_id)(scope, receive, send)
            return
        except Exception as error:
            log.exception("GetRoleCredentials failed", exc_info=error)
            await render_rest_json(KeyhallError(), request_id)(scope, receive, send)
            return
        body = orjson.dumps(
            {
                "roleCredentials": {
                    "accessKeyId": credentials.access_key_id,
                    "secretAccessKey": credentials.secret_access_key,
                    "sessionToken": credentials.session_token,
                    "expiration": int(credentials.expiration * 1000),  # milliseconds (real-clients.md §3)
                }
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"cache-control", b"no-store"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


async def logout(request: Request) -> Response:
    container: Container = request.app.state.container
    try:
        container.portal.logout(request_actor(request), request.headers.get(TOKEN_HEADER))
    except KeyhallError as error:
        return render_rest_json(error, _rid(request))
    return Response(b"", status_code=200)


#: GetRoleCredentials' path, served by ``role_credentials_app`` outside the router
ROLE_CREDENTIALS_PATH = "/federation/credentials"
routes = [
    Route("/assignment/accounts", list_accounts, methods=["GET"]),
    Route("/assignment/roles", list_account_roles, methods=["GET"]),
    Route("/logout", logout, methods=["POST"]),
]
