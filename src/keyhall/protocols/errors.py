"""Renderers that turn a KeyhallError into each protocol's error bytes.

- awsJson1_1 (identitystore, sso-admin): body ``{"__type": Code, "message": ...}`` plus ``x-amzn-ErrorType``.
- restJson1 (sso portal): ``x-amzn-ErrorType`` header and ``{"message": ...}``.
- sso-oidc (restJson1 with OAuth bodies): header plus ``{"error": ..., "error_description": ...}``; botocore
  maps the code from the header, so an RFC body alone would break every client (real-clients.md §3).
- awsQuery (sts): ``<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>``.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

import orjson
from starlette.responses import Response

from keyhall.errors import KeyhallError, NotFoundError, OAuthError, ValidationError

AWS_JSON_CONTENT_TYPE = "application/x-amz-json-1.1"


def _aws_body(error: KeyhallError) -> dict[str, object]:
    body: dict[str, object] = {"__type": error.aws_code, "message": error.message, "Message": error.message}
    if isinstance(error, NotFoundError):
        body["ResourceType"] = error.resource_type.upper()
        body["ResourceId"] = error.resource_id
    if isinstance(error, ValidationError) and error.problems:
        body["problems"] = [{"location": p.location, "message": p.message} for p in error.problems]
    return body


def render_aws_json(error: KeyhallError, request_id: str) -> Response:
    body = _aws_body(error)
    body["RequestId"] = request_id
    return Response(
        orjson.dumps(body),
        status_code=error.status,
        media_type=AWS_JSON_CONTENT_TYPE,
        headers={"x-amzn-ErrorType": error.aws_code, "x-amzn-RequestId": request_id},
    )


def render_rest_json(error: KeyhallError, request_id: str) -> Response:
    if isinstance(error, OAuthError):
        body: dict[str, object] = {"error": error.error, "error_description": error.description}
    else:
        body = _aws_body(error)
    return Response(
        orjson.dumps(body),
        status_code=error.status,
        media_type="application/json",
        headers={"x-amzn-ErrorType": f"{error.aws_code}:", "x-amzn-RequestId": request_id},
    )


def render_oauth(error: KeyhallError, request_id: str) -> Response:
    """Plain RFC 6749 §5.2 shape, for standards clients of /oauth2/* endpoints."""
    code = error.error if isinstance(error, OAuthError) else "server_error"
    description = error.description if isinstance(error, OAuthError) else error.message
    return Response(
        orjson.dumps({"error": code, "error_description": description}),
        status_code=error.status,
        media_type="application/json",
        headers={"Cache-Control": "no-store", "x-amzn-RequestId": request_id},
    )


def render_aws_query(error: KeyhallError, request_id: str) -> Response:
    xml = (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        f"<Error><Type>{error.query_type}</Type><Code>{escape(error.wire_query_code)}</Code>"
        f"<Message>{escape(error.message)}</Message></Error>"
        f"<RequestId>{escape(request_id)}</RequestId></ErrorResponse>"
    )
    return Response(
        xml.encode(),
        status_code=error.status,
        media_type="text/xml",
        headers={"x-amzn-RequestId": request_id},
    )
