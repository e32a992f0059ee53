"""Keyhall's STS for `local` accounts: awsQuery (form-encoded ``POST /``, XML replies; aws-wire.md §1.5).

GetCallerIdentity is served; every other Action is ``InvalidAction`` for now. ``authenticate_local_request``
is the one way a Keyhall endpoint authenticates a caller holding `local` role credentials, so the JSON
APIs (identitystore, sso-admin) reuse it with their own signing names.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote
from xml.sax.saxutils import escape

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import Response

from keyhall.clock import Clock
from keyhall.credentials.errors import (
    ExpiredSecurityToken,
    InvalidAction,
    InvalidClientTokenId,
    MissingAction,
)
from keyhall.credentials.local import LocalCredentialIssuer, SessionClaims
from keyhall.db.database import Database
from keyhall.errors import KeyhallError, ValidationError
from keyhall.protocols.errors import render_aws_query
from keyhall.protocols.sigv4 import verify_sigv4

API_VERSION = "2011-06-15"
XML_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
SIGNING_NAME = "sts"
SECURITY_TOKEN_HEADER = "x-amz-security-token"  # noqa: S105 - a header name
SECURITY_TOKEN_PARAM = "X-Amz-Security-Token"  # noqa: S105 - a query parameter name
#: STS requests are small (the largest, AssumeRole with a policy and tags, stays well under this).
MAX_BODY_BYTES = 64 * 1024
_FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class StsDeps:
    """What the STS handler and ``authenticate_local_request`` need, passed in rather than looked up.

    ``session_alive(conn, session_id, user_id)`` is the revocation check: in production
    ``keyhall.signin.sessions.credential_session_alive``.
    """

    issuer: LocalCredentialIssuer
    db: Database
    clock: Clock
    session_alive: Callable[[Connection, str, str], bool]


@dataclass(frozen=True)
class SignedRequest:
    """The parts of an HTTP request that SigV4 covers, as received (path and query still encoded)."""

    method: str
    path: str
    query_string: str
    headers: Sequence[tuple[str, str]]
    body: bytes

    @classmethod
    async def from_starlette(cls, request: Request, *, max_body_bytes: int = MAX_BODY_BYTES) -> SignedRequest:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body_bytes:
            raise ValidationError("The request body is too large")
        body = await request.body()
        if len(body) > max_body_bytes:
            raise ValidationError("The request body is too large")
        raw_path = request.scope.get("raw_path")
        if isinstance(raw_path, bytes) and raw_path:
            path = raw_path.split(b"?", 1)[0].decode("latin-1")
        else:  # the server gave only the decoded path: encode it the way SDKs do
            path = quote(request.scope.get("path") or "/", safe="/")
        return cls(
            method=request.method,
            path=path,
            query_string=request.scope.get("query_string", b"").decode("latin-1"),
            headers=tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw),
            body=body,
        )

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name]


def authenticate_local_request(request: SignedRequest, deps: StsDeps, *, service: str) -> SessionClaims:
    """Who signed ``request`` with `local` role credentials, or the AWS error that refuses it.

    In order: the session token opens for the signing key id (it is sealed with that id as associated
    data, so a token cannot be paired with another key); the credentials have not expired
    (``ExpiredToken``); the SigV4 signature verifies with the secret derived from that id; and, the
    one database read, the portal session they came from is not revoked and its user still enabled.

    A revoked session or disabled user gets ``InvalidClientTokenId`` ("The security token included in
    the request is invalid"), which is what AWS answers for temporary credentials whose issuing
    principal no longer exists. ``ExpiredToken`` would be untrue (the credentials have not expired)
    and tells users to wait or refresh, which would not help.
    """
    token = _security_token(request)
    now = deps.clock.timestamp()
    opened: list[SessionClaims] = []

    def secret_lookup(access_key_id: str) -> str | None:
        if token is None:  # every `local` key is temporary: no token, no key
            return None
        claims = deps.issuer.open(access_key_id, token)
        if claims.expired(now):
            raise ExpiredSecurityToken
        opened.append(claims)
        return deps.issuer.secret_for(access_key_id, key_version=claims.key_version)

    result = verify_sigv4(
        method=request.method,
        path=request.path,
        query_string=request.query_string,
        headers=request.headers,
        body=request.body,
        secret_lookup=secret_lookup,
        now=now,
        service=service,
    )
    claims = opened[0]
    if claims.access_key_id != result.access_key_id:  # guaranteed by the token's associated data
        raise InvalidClientTokenId
    with deps.db.read() as conn:
        alive = deps.session_alive(conn, claims.session_id, claims.user_id)
    if not alive:
        raise InvalidClientTokenId
    return claims


async def handle_sts(request: Request, deps: StsDeps) -> Response:
    """``POST /`` (or a presigned ``GET /``) with ``Action`` and ``Version`` in the form body or query."""
    request_id = _request_id(request)
    try:
        signed = await SignedRequest.from_starlette(request)
        params = _action_params(signed)
        action = params.get("Action")
        if not action:
            raise MissingAction
        version = params.get("Version")
        if action != "GetCallerIdentity" or version != API_VERSION:
            raise InvalidAction(
                f"Could not find operation {action} for version {version or 'NO_VERSION_SPECIFIED'}"
            )
        claims = authenticate_local_request(signed, deps, service=SIGNING_NAME)
    except KeyhallError as error:
        return render_aws_query(error, request_id)
    return _xml(
        "GetCallerIdentity",
        f"<Arn>{escape(claims.arn)}</Arn>"
        f"<UserId>{escape(claims.user_id_for_sts)}</UserId>"
        f"<Account>{escape(claims.account_id)}</Account>",
        request_id,
    )


def _xml(action: str, result: str, request_id: str) -> Response:
    body = (
        f'<{action}Response xmlns="{XML_NAMESPACE}">'
        f"<{action}Result>{result}</{action}Result>"
        f"<ResponseMetadata><RequestId>{escape(request_id)}</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    )
    return Response(body.encode(), media_type="text/xml", headers={"x-amzn-RequestId": request_id})


def _security_token(request: SignedRequest) -> str | None:
    """``X-Amz-Security-Token`` from the header, or from the query of a presigned request; not both."""
    in_header = request.header(SECURITY_TOKEN_HEADER)
    in_query = [
        v for k, v in parse_qsl(request.query_string, keep_blank_values=True) if k == SECURITY_TOKEN_PARAM
    ]
    values = [*in_header, *in_query]
    if not values:
        return None
    if len(values) > 1:
        raise InvalidClientTokenId
    return values[0].strip()


def _action_params(request: SignedRequest) -> dict[str, str]:
    """Query parameters, then form-body ones (awsQuery sends them in the body; presigned, in the query)."""
    params: dict[str, str] = {}
    for key, value in parse_qsl(request.query_string, keep_blank_values=True):
        params.setdefault(key, value)
    content_type = next(iter(request.header("content-type")), "")
    if request.body and content_type.split(";", 1)[0].strip().lower() == _FORM_CONTENT_TYPE:
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError("The request body is not UTF-8 form data") from None
        for key, value in parse_qsl(text, keep_blank_values=True):
            params.setdefault(key, value)
    return params


def _request_id(request: Request) -> str:
    """The id RequestContextMiddleware gave the request, or a fresh one when mounted without it."""
    given = request.scope.get("state", {}).get("request_id")
    return str(given) if given else str(uuid.uuid4())
