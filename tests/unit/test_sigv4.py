"""SigV4 verification against requests signed by real botocore (header and presigned forms)."""

from __future__ import annotations

import calendar
import hashlib
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from keyhall.credentials.errors import (
    IncompleteSignature,
    InvalidClientTokenId,
    MissingAuthenticationToken,
    SignatureDoesNotMatch,
)
from keyhall.protocols.sigv4 import SigV4Result, verify_sigv4

ACCESS_KEY = "ASIAQWERTYUIOPASDFGH"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "session-token-value"
ENDPOINT = "http://127.0.0.1:8765"
STS_BODY = b"Action=GetCallerIdentity&Version=2011-06-15"
FORM = "application/x-www-form-urlencoded; charset=utf-8"


def _credentials(secret: str = SECRET, token: str | None = TOKEN) -> Credentials:
    return Credentials(ACCESS_KEY, secret, token)


def _lookup(access_key_id: str) -> str | None:
    return SECRET if access_key_id == ACCESS_KEY else None


def _signed(
    method: str = "POST",
    url: str = ENDPOINT + "/",
    *,
    body: bytes = STS_BODY,
    headers: dict[str, str] | None = None,
    service: str = "sts",
    region: str = "us-east-1",
    signer: type[SigV4Auth] = SigV4Auth,
    credentials: Credentials | None = None,
    params: dict[str, str] | None = None,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Sign with botocore and return the request as a server receives it, plus ``now`` = signing time."""
    request = AWSRequest(
        method=method,
        url=url,
        data=body,
        headers=headers if headers is not None else {"Content-Type": FORM},
        params=params or {},
    )
    request.context.update(context or {})
    signer(credentials or _credentials(), service, region).add_auth(request)
    return _wire(request)


def _presigned(url: str, *, expires: int = 900, service: str = "sts", method: str = "GET") -> dict[str, Any]:
    request = AWSRequest(method=method, url=url, data=b"", headers={})
    SigV4QueryAuth(_credentials(), service, "us-east-1", expires=expires).add_auth(request)
    return _wire(request)


def _wire(request: AWSRequest) -> dict[str, Any]:
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    body = prepared.body or b""
    # The HTTP client adds Host, exactly as botocore signed it (from the URL's netloc).
    headers = [("Host", parts.netloc), *((str(k), str(v)) for k, v in prepared.headers.items())]
    return {
        "method": prepared.method,
        "path": parts.path or "/",
        "query_string": parts.query,
        "headers": headers,
        "body": body.encode() if isinstance(body, str) else body,
        "now": calendar.timegm(time.strptime(request.context["timestamp"], "%Y%m%dT%H%M%SZ")),
    }


def _verify(
    wire: dict[str, Any], *, service: str | None = "sts", offset: float = 0, **overrides: Any
) -> SigV4Result:
    arguments = {**wire, "now": wire["now"] + offset, "secret_lookup": _lookup, "service": service}
    arguments.update(overrides)
    return verify_sigv4(**arguments)


def _replace_header(wire: dict[str, Any], name: str, value: str) -> dict[str, Any]:
    headers = [(k, value if k.lower() == name.lower() else v) for k, v in wire["headers"]]
    return {**wire, "headers": headers}


def _drop_header(wire: dict[str, Any], name: str) -> dict[str, Any]:
    return {**wire, "headers": [(k, v) for k, v in wire["headers"] if k.lower() != name.lower()]}


# --- what real clients send verifies -----------------------------------------------------------


def test_sts_get_caller_identity_form_post() -> None:
    wire = _signed()
    result = _verify(wire)
    assert result.access_key_id == ACCESS_KEY
    assert (result.region, result.service, result.presigned) == ("us-east-1", "sts", False)
    assert result.signed_headers == ("content-type", "host", "x-amz-date", "x-amz-security-token")
    assert result.signed_at == wire["now"]


def test_secret_may_be_given_directly() -> None:
    assert _verify(_signed(), secret_lookup=SECRET).access_key_id == ACCESS_KEY


def test_json_1_1_post_with_target() -> None:
    wire = _signed(
        body=b'{"IdentityStoreId": "d-1234567890"}',
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AWSIdentityStore.ListUsers"},
        service="identitystore",
        region="eu-west-1",
    )
    result = _verify(wire, service="identitystore")
    assert (result.region, result.service) == ("eu-west-1", "identitystore")
    assert "x-amz-target" in result.signed_headers


def test_any_service_when_none_is_required() -> None:
    assert _verify(_signed(service="sso"), service=None).service == "sso"


def test_query_parameters_are_sorted_and_encoded() -> None:
    # botocore sends these params form-encoded ("x+y") but signs them percent-encoded ("x%20y").
    wire = _signed(
        "GET",
        ENDPOINT + "/",
        body=b"",
        headers={},
        params={"b": "2", "a": "x y/z~", "A": "upper", "empty": "", "ü": "ñ"},
    )
    assert _verify(wire).access_key_id == ACCESS_KEY


def test_path_segments_are_normalised_and_encoded_twice() -> None:
    wire = _signed("GET", ENDPOINT + "/a%20b//c/./d/../e%2Ff", body=b"", headers={}, service="execute-api")
    assert wire["path"] == "/a%20b//c/./d/../e%2Ff"
    assert _verify(wire, service="execute-api").service == "execute-api"


def test_s3_paths_are_used_as_received() -> None:
    wire = _signed(
        "GET", ENDPOINT + "/bucket/a%20b//c", body=b"", headers={}, service="s3", signer=S3SigV4Auth
    )
    assert _verify(wire, service="s3").service == "s3"


def test_header_values_are_trimmed_and_spaces_collapsed() -> None:
    wire = _signed(headers={"Content-Type": FORM, "X-Custom": "  a   b \t c  "})
    assert "x-custom" in _verify(wire).signed_headers


def test_repeated_headers_are_joined_with_commas() -> None:
    request = AWSRequest(method="POST", url=ENDPOINT + "/", data=STS_BODY, headers={"Content-Type": FORM})
    request.headers["X-Multi"] = "first"
    request.headers["X-Multi"] = " second  value "  # HTTPMessage keeps both lines
    SigV4Auth(_credentials(), "sts", "us-east-1").add_auth(request)
    wire = _wire(request)
    # AWSRequest.prepare() keeps one line per name; on the wire both lines are sent.
    wire["headers"] = [("Host", "127.0.0.1:8765"), *request.headers.items()]
    assert [v for k, v in wire["headers"] if k == "X-Multi"] == ["first", " second  value "]
    assert "x-multi" in _verify(wire).signed_headers


def test_unsigned_headers_do_not_matter() -> None:
    wire = _signed()
    wire["headers"] = [*wire["headers"], ("User-Agent", "anything"), ("X-Forwarded-For", "10.0.0.1")]
    assert _verify(wire).access_key_id == ACCESS_KEY


def test_date_header_instead_of_x_amz_date() -> None:
    wire = _signed(headers={"Content-Type": FORM, "Date": "Thu, 01 Jan 2037 00:00:00 GMT"})
    result = _verify(wire)
    assert "date" in result.signed_headers
    assert "x-amz-date" not in result.signed_headers


def test_matching_content_sha256_header() -> None:
    wire = _signed(
        headers={"Content-Type": FORM, "X-Amz-Content-SHA256": hashlib.sha256(STS_BODY).hexdigest()}
    )
    assert _verify(wire).access_key_id == ACCESS_KEY


def test_unsigned_payload_is_accepted_for_s3_only() -> None:
    s3 = _signed(
        "PUT",
        "https://127.0.0.1:8765/bucket/key",
        body=b"data",
        headers={},
        service="s3",
        context={"payload_signing_enabled": False},
    )
    assert {k.lower(): v for k, v in s3["headers"]}["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert _verify(s3, service="s3").service == "s3"


def test_unsigned_payload_is_refused_for_other_services() -> None:
    wire = _signed(url="https://127.0.0.1:8765/", context={"payload_signing_enabled": False})
    with pytest.raises(IncompleteSignature, match="UNSIGNED-PAYLOAD"):
        _verify(wire)


def test_skew_within_five_minutes_is_accepted() -> None:
    wire = _signed()
    _verify(wire, offset=299)
    _verify(wire, offset=-299)


# --- presigned URLs -----------------------------------------------------------------------------


def test_presigned_get_caller_identity() -> None:
    wire = _presigned(ENDPOINT + "/?Action=GetCallerIdentity&Version=2011-06-15")
    result = _verify(wire)
    assert result.presigned
    assert result.signed_headers == ("host",)
    assert "X-Amz-Security-Token=" in wire["query_string"]
    _verify(wire, offset=899)  # still within X-Amz-Expires


def test_presigned_url_expires() -> None:
    wire = _presigned(ENDPOINT + "/?Action=GetCallerIdentity&Version=2011-06-15", expires=60)
    with pytest.raises(SignatureDoesNotMatch, match="Signature expired"):
        _verify(wire, offset=61)


def test_presigned_url_is_not_valid_before_it_is_signed() -> None:
    wire = _presigned(ENDPOINT + "/?Action=GetCallerIdentity&Version=2011-06-15")
    with pytest.raises(SignatureDoesNotMatch, match="not yet current"):
        _verify(wire, offset=-360)


def test_presigned_expiry_longer_than_a_week_is_refused() -> None:
    wire = _presigned(ENDPOINT + "/?Action=GetCallerIdentity&Version=2011-06-15", expires=604_801)
    with pytest.raises(IncompleteSignature, match="X-Amz-Expires"):
        _verify(wire)


def test_presigned_query_tampering_is_refused() -> None:
    wire = _presigned(ENDPOINT + "/?Action=GetCallerIdentity&Version=2011-06-15")
    tampered = {**wire, "query_string": wire["query_string"].replace("GetCallerIdentity", "GetSessionToken")}
    with pytest.raises(SignatureDoesNotMatch):
        _verify(tampered)


def test_header_and_query_authentication_together_are_refused() -> None:
    wire = _presigned(ENDPOINT + "/?Action=GetCallerIdentity&Version=2011-06-15")
    header = _signed()
    both = {
        **wire,
        "headers": [*wire["headers"], *[(k, v) for k, v in header["headers"] if k == "Authorization"]],
    }
    with pytest.raises(IncompleteSignature, match="Only one auth mechanism"):
        _verify(both)


# --- refusals ---------------------------------------------------------------------------------


def test_tampered_body_is_refused() -> None:
    wire = _signed()
    with pytest.raises(SignatureDoesNotMatch, match="signature we calculated"):
        _verify({**wire, "body": b"Action=GetCallerIdentity&Version=2011-06-16"})


def test_tampered_header_is_refused() -> None:
    wire = _signed(
        body=b"{}",
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AWSIdentityStore.ListUsers"},
        service="identitystore",
    )
    with pytest.raises(SignatureDoesNotMatch):
        _verify(_replace_header(wire, "X-Amz-Target", "AWSIdentityStore.DeleteUser"), service="identitystore")


def test_tampered_host_is_refused() -> None:
    with pytest.raises(SignatureDoesNotMatch):
        _verify(_replace_header(_signed(), "Host", "127.0.0.1:9999"))


def test_tampered_method_is_refused() -> None:
    with pytest.raises(SignatureDoesNotMatch):
        _verify({**_signed(), "method": "PUT"})


def test_wrong_secret_is_refused() -> None:
    wire = _signed(credentials=_credentials(secret="not-the-secret-at-all-0000000000000000000"))
    with pytest.raises(SignatureDoesNotMatch):
        _verify(wire)


def test_unknown_access_key_is_refused() -> None:
    with pytest.raises(InvalidClientTokenId, match="security token included in the request is invalid"):
        _verify(_signed(), secret_lookup=lambda _key: None)


@pytest.mark.parametrize("offset", [360, -360])
def test_skew_of_six_minutes_either_way_is_refused(offset: float) -> None:
    message = "Signature expired" if offset > 0 else "Signature not yet current"
    with pytest.raises(SignatureDoesNotMatch, match=message):
        _verify(_signed(), offset=offset)


def test_host_must_be_signed() -> None:
    class NoHost(SigV4Auth):
        def headers_to_sign(self, request: AWSRequest) -> Any:
            headers = super().headers_to_sign(request)
            del headers["host"]
            return headers

    with pytest.raises(SignatureDoesNotMatch, match="'Host' or ':authority' must be a 'SignedHeader'"):
        _verify(_signed(signer=NoHost))


def test_security_token_header_must_be_signed() -> None:
    class NoToken(SigV4Auth):
        def headers_to_sign(self, request: AWSRequest) -> Any:
            headers = super().headers_to_sign(request)
            del headers["x-amz-security-token"]
            return headers

    with pytest.raises(SignatureDoesNotMatch, match="x-amz-security-token"):
        _verify(_signed(signer=NoToken))


def test_wrong_service_in_scope_is_refused() -> None:
    with pytest.raises(SignatureDoesNotMatch, match="scoped to correct service: 'sts'"):
        _verify(_signed(service="identitystore"))


def test_content_sha256_mismatch_is_refused() -> None:
    other = hashlib.sha256(b"something else").hexdigest()
    wire = _signed(headers={"Content-Type": FORM, "X-Amz-Content-SHA256": other})
    with pytest.raises(SignatureDoesNotMatch, match="x-amz-content-sha256"):
        _verify(wire)


def test_scope_date_must_match_the_request_date() -> None:
    wire = _signed()
    amz_date = {k.lower(): v for k, v in wire["headers"]}["x-amz-date"]
    next_day = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(wire["now"] + 86_400))
    assert next_day != amz_date
    with pytest.raises(SignatureDoesNotMatch, match="Date in Credential scope"):
        _verify(_replace_header(wire, "X-Amz-Date", next_day), offset=86_400)


def test_missing_authorization_is_refused() -> None:
    with pytest.raises(MissingAuthenticationToken, match="missing Authentication Token"):
        _verify(_drop_header(_signed(), "Authorization"))


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer abc",
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 Credential=ASIAQWERTYUIOPASDFGH/20370101/us-east-1/sts/aws4_request",
        "AWS4-HMAC-SHA256 Credential=K/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host, Signature=00, Signature=00",
        "AWS4-HMAC-SHA256 Credential=K/20370101/us-east-1/sts/aws4_request, SignedHeaders=Host, Signature=00",
        "AWS4-ECDSA-P256-SHA256 Credential=K/20370101/sts/aws4_request, SignedHeaders=host, Signature=00",
    ],
)
def test_malformed_authorization_is_incomplete(authorization: str) -> None:
    with pytest.raises(IncompleteSignature):
        _verify(_replace_header(_signed(), "Authorization", authorization))


def test_missing_date_is_incomplete() -> None:
    with pytest.raises(IncompleteSignature, match="X-Amz-Date"):
        _verify(_drop_header(_signed(), "X-Amz-Date"))


def test_bad_terminator_is_refused() -> None:
    wire = _signed()
    authorization = dict(wire["headers"])["Authorization"].replace("aws4_request", "aws5_request")
    with pytest.raises(SignatureDoesNotMatch, match="terminator"):
        _verify(_replace_header(wire, "Authorization", authorization))


def test_query_already_in_the_url_as_serialisers_write_it() -> None:
    wire = _signed("GET", ENDPOINT + "/?b=%2B&a=x%20y&a=w&flag", body=b"", headers={})
    assert wire["query_string"] == "b=%2B&a=x%20y&a=w&flag"
    assert _verify(wire).access_key_id == ACCESS_KEY
