"""What AWS (and `keyhall console`) read from Keyhall for federation:

- ``GET /saml/metadata``: the SAML IdP metadata, public (it holds only certificates); the same document
  `keyhall aws apply` uploads to each account's IAM SAML provider.
- ``GET /.well-known/openid-configuration`` and ``GET /.well-known/jwks.json``: the OIDC issuer's discovery
  document and keys, public, served once an OIDC issuer URL is configured (before the method is switched to
  ``oidc``, so that AWS can already fetch them).
- ``GET /federation/console?account_id=…&role_name=…``: a Keyhall extension of the portal API for
  `keyhall console` (bearer token in ``x-amz-sso_bearer_token``, as GetRoleCredentials): the account's kind,
  the partition and where the console should open (the permission set's relay state).
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from keyhall.db.database import Database
from keyhall.errors import KeyhallError
from keyhall.federation.console import ConsoleService, federation_url
from keyhall.federation.issuer import FederationMetadata
from keyhall.protocols.errors import render_rest_json

TOKEN_HEADER = "x-amz-sso_bearer_token"  # noqa: S105 (a header name, not a secret)
PUBLIC_CACHE = "public, max-age=300"


class FederationContainer(Protocol):
    """What these routes need from the process's container (None without a master key)."""

    db: Database
    federation_metadata: FederationMetadata | None
    console: ConsoleService | None


def _container(request: Request) -> FederationContainer:
    container: FederationContainer = request.app.state.container
    return container


def _rid(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def _not_available(what: str) -> Response:
    return PlainTextResponse(what, status_code=404, headers={"Cache-Control": "no-store"})


def _json(body: dict[str, Any], *, cache: str = "no-store") -> Response:
    return Response(orjson.dumps(body), media_type="application/json", headers={"Cache-Control": cache})


async def saml_metadata(request: Request) -> Response:
    metadata: FederationMetadata | None = getattr(_container(request), "federation_metadata", None)
    if metadata is None:
        return _not_available("SAML federation is not available on this server (no master key)")

    def read() -> str:
        with _container(request).db.read() as conn:
            return metadata.saml_metadata(conn)

    try:
        document = await run_in_threadpool(read)
    except KeyhallError as error:
        return _not_available(error.message)
    return Response(
        document.encode("utf-8"),
        media_type="application/samlmetadata+xml",
        headers={"Cache-Control": PUBLIC_CACHE, "Content-Disposition": 'inline; filename="keyhall-saml.xml"'},
    )


async def openid_configuration(request: Request) -> Response:
    metadata: FederationMetadata | None = getattr(_container(request), "federation_metadata", None)
    if metadata is None:
        return _not_available("OIDC federation is not available on this server (no master key)")

    def read() -> dict[str, Any] | None:
        with _container(request).db.read() as conn:
            return metadata.oidc_discovery(conn)

    document = await run_in_threadpool(read)
    if document is None:
        return _not_available("No OIDC issuer URL is configured (keyhall aws configure --oidc-issuer-url)")
    return _json(document, cache=PUBLIC_CACHE)


async def jwks(request: Request) -> Response:
    metadata: FederationMetadata | None = getattr(_container(request), "federation_metadata", None)
    if metadata is None:
        return _not_available("OIDC federation is not available on this server (no master key)")

    def read() -> dict[str, Any] | None:
        with _container(request).db.read() as conn:
            if metadata.oidc_discovery(conn) is None:
                return None
            return metadata.jwks(conn)

    document = await run_in_threadpool(read)
    if document is None:
        return _not_available("No OIDC issuer URL is configured (keyhall aws configure --oidc-issuer-url)")
    return _json(document, cache=PUBLIC_CACHE)


async def console_target(request: Request) -> Response:
    """The Keyhall extension behind `keyhall console` (see the module docstring)."""
    console: ConsoleService | None = getattr(_container(request), "console", None)
    if console is None:
        return render_rest_json(
            KeyhallError("Console sign-in is not available on this server (no master key)"), _rid(request)
        )
    try:
        target = await run_in_threadpool(
            console.target_for_token,
            request.headers.get(TOKEN_HEADER),
            request.query_params.get("account_id"),
            request.query_params.get("role_name"),
        )
    except KeyhallError as error:
        return render_rest_json(error, _rid(request))
    return _json(
        {
            "accountId": target.account_id,
            "roleName": target.permission_set_name,
            "accountKind": target.account_kind,
            "partition": target.partition,
            "federationUrl": federation_url(target.partition),
            "destination": target.destination,
        }
    )


routes: list[BaseRoute] = [
    Route("/saml/metadata", saml_metadata, methods=["GET"]),
    Route("/.well-known/openid-configuration", openid_configuration, methods=["GET"]),
    Route("/.well-known/jwks.json", jwks, methods=["GET"]),
    Route("/federation/console", console_target, methods=["GET"]),
]
