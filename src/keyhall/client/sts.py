"""STS GetCallerIdentity, SigV4-signed with role credentials: what `keyhall whoami` asks the server.

awsQuery: a form-encoded ``POST /`` with ``Action=GetCallerIdentity&Version=2011-06-15`` and an XML answer
(aws-wire.md §1.5). The signature follows "Signature Version 4 signing process" (AWS General Reference)
with botocore's signed headers: ``content-type;host;x-amz-date;x-amz-security-token``.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
from dataclasses import dataclass
from datetime import datetime

import httpx

from keyhall.client._http import USER_AGENT, make_client
from keyhall.client.credential_cache import RoleCredentials
from keyhall.client.errors import ServiceError

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
GET_CALLER_IDENTITY_BODY = b"Action=GetCallerIdentity&Version=2011-06-15"


@dataclass(frozen=True)
class CallerIdentity:
    account: str
    arn: str
    user_id: str


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def sign_v4(
    *,
    method: str,
    host: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    region: str,
    service: str,
    credentials: RoleCredentials,
    now: datetime,
) -> dict[str, str]:
    """*headers* plus ``x-amz-date``, ``x-amz-security-token`` and ``Authorization`` (no query string)."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    signed = {k.lower(): " ".join(v.split()) for k, v in headers.items()}
    signed["host"] = host
    signed["x-amz-date"] = amz_date
    signed["x-amz-security-token"] = credentials.session_token
    names = sorted(signed)
    canonical_request = "\n".join(
        [
            method,
            path or "/",
            "",
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()]
    )
    key = _hmac(("AWS4" + credentials.secret_access_key).encode("utf-8"), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    result = dict(headers)
    result["X-Amz-Date"] = amz_date
    result["X-Amz-Security-Token"] = credentials.session_token
    result["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return result


def _xml_text(document: str, tag: str) -> str | None:
    match = re.search(rf"<{tag}>([^<]*)</{tag}>", document)
    return html.unescape(match.group(1)) if match else None


def get_caller_identity(
    *,
    endpoint_url: str,
    region: str,
    credentials: RoleCredentials,
    now: datetime,
    transport: httpx.BaseTransport | None = None,
) -> CallerIdentity:
    """GetCallerIdentity against *endpoint_url* (Keyhall's STS for a local account)."""
    url = httpx.URL(endpoint_url)
    if not url.path:
        url = url.copy_with(path="/")
    path = url.path
    with make_client(endpoint_url, transport=transport) as http:
        host = url.netloc.decode("ascii")
        headers = sign_v4(
            method="POST",
            host=host,
            path=path,
            headers={"Content-Type": FORM_CONTENT_TYPE},
            body=GET_CALLER_IDENTITY_BODY,
            region=region,
            service="sts",
            credentials=credentials,
            now=now,
        )
        headers["User-Agent"] = USER_AGENT
        response = http.post(url, content=GET_CALLER_IDENTITY_BODY, headers=headers)
    text = response.text
    if not response.is_success:
        code = _xml_text(text, "Code") or f"HTTP {response.status_code}"
        message = _xml_text(text, "Message") or ""
        raise ServiceError(f"{code}: {message}".rstrip(": "), status=response.status_code, code=code)
    account, arn, user_id = _xml_text(text, "Account"), _xml_text(text, "Arn"), _xml_text(text, "UserId")
    if not (account and arn and user_id):
        raise ServiceError("GetCallerIdentity: the response has no Account, Arn or UserId", status=200)
    return CallerIdentity(account=account, arn=arn, user_id=user_id)
