"""sso-oidc (restJson1) at the root of the server: RegisterClient, StartDeviceAuthorization, CreateToken.

Parse, call OidcService, serialise. Errors go out with ``x-amzn-ErrorType`` plus the OAuth body, which
is what the AWS CLI, boto3 and the JS SDK need to map them (real-clients.md §3).
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from keyhall.api.common import json_body, request_actor, str_field, str_list_field
from keyhall.container import Container
from keyhall.errors import KeyhallError
from keyhall.oauth.service import CreateTokenRequest
from keyhall.protocols.errors import render_rest_json

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _json(body: dict[str, object]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json", headers=NO_STORE)


def _rid(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


async def register_client(request: Request) -> Response:
    container: Container = request.app.state.container
    try:
        body = await json_body(request, oauth=True)
        registration = container.oidc.register_client(
            request_actor(request),
            name=str_field(body, "clientName", required=True) or "",
            client_type=str_field(body, "clientType", required=True) or "",
            scopes=str_list_field(body, "scopes"),
            grant_types=str_list_field(body, "grantTypes"),
            redirect_uris=str_list_field(body, "redirectUris"),
            issuer_url=str_field(body, "issuerUrl"),
        )
    except KeyhallError as error:
        return render_rest_json(error, _rid(request))
    base = container.settings.effective_public_url
    return _json(
        {
            "clientId": registration.client.id,
            "clientSecret": registration.client_secret,
            "clientIdIssuedAt": int(registration.client.created_at),  # epoch seconds: the CLI needs seconds
            "clientSecretExpiresAt": int(registration.client.expires_at),
            "authorizationEndpoint": f"{base}/authorize",
            "tokenEndpoint": f"{base}/token",
        }
    )


async def start_device_authorization(request: Request) -> Response:
    container: Container = request.app.state.container
    try:
        body = await json_body(request, oauth=True)
        started = container.oidc.start_device_authorization(
            request_actor(request),
            client_id=str_field(body, "clientId", required=True) or "",
            client_secret=str_field(body, "clientSecret", required=True) or "",
            start_url=str_field(body, "startUrl"),
        )
    except KeyhallError as error:
        return render_rest_json(error, _rid(request))
    verification_uri = f"{container.settings.effective_public_url}/device"
    return _json(
        {
            "deviceCode": started.device_code,
            "userCode": started.user_code,
            "verificationUri": verification_uri,
            "verificationUriComplete": f"{verification_uri}?user_code={started.user_code}",
            "expiresIn": started.expires_in,
            "interval": started.interval,
        }
    )


async def create_token(request: Request) -> Response:
    container: Container = request.app.state.container
    try:
        body = await json_body(request, oauth=True)
        tokens = container.oidc.create_token(
            request_actor(request),
            CreateTokenRequest(
                client_id=str_field(body, "clientId", required=True) or "",
                client_secret=str_field(body, "clientSecret", required=True) or "",
                grant_type=str_field(body, "grantType", required=True) or "",
                device_code=str_field(body, "deviceCode"),
                code=str_field(body, "code"),
                refresh_token=str_field(body, "refreshToken"),
                redirect_uri=str_field(body, "redirectUri"),
                code_verifier=str_field(body, "codeVerifier"),
            ),
        )
    except KeyhallError as error:
        return render_rest_json(error, _rid(request))
    return _json(
        {
            "accessToken": tokens.access_token,
            "tokenType": "Bearer",
            "expiresIn": tokens.expires_in,
            "refreshToken": tokens.refresh_token,  # always rotated: clients drop it when absent
        }
    )


routes = [
    Route("/client/register", register_client, methods=["POST"]),
    Route("/device_authorization", start_device_authorization, methods=["POST"]),
    Route("/token", create_token, methods=["POST"]),
]
