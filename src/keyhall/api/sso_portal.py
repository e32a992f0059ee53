"""The sso portal API (restJson1): ListAccounts, ListAccountRoles, GetRoleCredentials, Logout.

The bearer token travels in ``x-amz-sso_bearer_token``; ``expiration`` is in epoch milliseconds.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keyhall.api.common import request_actor
from keyhall.container import Container
from keyhall.errors import KeyhallError, ValidationError
from keyhall.protocols.errors import render_rest_json

TOKEN_HEADER = "x-amz-sso_bearer_token"  # noqa: S105 (a header name, not a secret)


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


async def get_role_credentials(request: Request) -> Response:
    container: Container = request.app.state.container
    try:
        credentials = container.portal.get_role_credentials(
            request_actor(request),
            request.headers.get(TOKEN_HEADER),
            request.query_params.get("account_id"),
            request.query_params.get("role_name"),
        )
    except KeyhallError as error:
        return render_rest_json(error, _rid(request))
    return _json(
        {
            "roleCredentials": {
                "accessKeyId": credentials.access_key_id,
                "secretAccessKey": credentials.secret_access_key,
                "sessionToken": credentials.session_token,
                "expiration": int(credentials.expiration * 1000),  # milliseconds (real-clients.md §3)
            }
        }
    )


async def logout(request: Request) -> Response:
    container: Container = request.app.state.container
    try:
        container.portal.logout(request_actor(request), request.headers.get(TOKEN_HEADER))
    except KeyhallError as error:
        return render_rest_json(error, _rid(request))
    return Response(b"", status_code=200)


routes = [
    Route("/assignment/accounts", list_accounts, methods=["GET"]),
    Route("/assignment/roles", list_account_roles, methods=["GET"]),
    Route("/federation/credentials", get_role_credentials, methods=["GET"]),
    Route("/logout", logout, methods=["POST"]),
]
