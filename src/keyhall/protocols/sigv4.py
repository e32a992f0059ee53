"""AWS Signature Version 4 verification, for requests signed with the Authorization header or presigned.

Spec: AWS IAM User Guide, "Create a signed AWS API request" (canonical request, string to sign, signing
key, signature) and "Elements of an AWS API request signature"; presigned (query-string) authentication
per Amazon S3 API Reference, "Authenticating Requests: Using Query Parameters (AWS Signature Version 4)".
Where the spec leaves room, we do what botocore 1.4x does when it signs (``botocore/auth.py``), because
that is what every client we serve produces.

Beyond checking the signature, the verifier insists on what makes a signature mean something
(security.md §1.10): ``host``, the date header and any ``x-amz-security-token`` / ``x-amz-target`` must be
signed; the signing time must be within ``max_skew`` of ``now``; a given ``x-amz-content-sha256`` must be
the body's hash; ``UNSIGNED-PAYLOAD`` is only for S3; signatures are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote_plus

from keyhall.credentials.errors import (
    IncompleteSignature,
    InvalidClientTokenId,
    MissingAuthenticationToken,
    SignatureDoesNotMatch,
)

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
#: Longest validity of a presigned request (seven days), as AWS enforces.
MAX_PRESIGNED_EXPIRES = 604_800
#: Allowed difference between the signing time and ours: the product asks for ±5 minutes, which is
#: also what STS answers with "Signature expired" (security.md §1.10 allows up to 15 as an outer bound).
DEFAULT_MAX_SKEW = 300

SecretLookup = Callable[[str], str | None]

_AMZ_DATE_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$")
_SCOPE_DATE_RE = re.compile(r"^\d{8}$")
_SHA256_HEX_RE = re.compile(r"^[0-9a-f]{64}$")
_UNRESERVED = "-_.~"
_PRESIGN_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)
#: Headers that steer authentication or routing: when sent, they must be covered by the signature.
#: (``x-amz-content-sha256`` need not be: its value is the canonical request's last line anyway.)
_MUST_BE_SIGNED_IF_PRESENT = ("x-amz-security-token", "x-amz-target")


@dataclass(frozen=True)
class SigV4Result:
    """Who signed the request, and for what (the credential scope)."""

    access_key_id: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    #: The signing time, epoch seconds.
    signed_at: float
    presigned: bool


@dataclass(frozen=True)
class _Authorization:
    access_key_id: str
    scope_date: str
    region: str
    service: str
    signed_headers: str
    signature: str
    amz_date: str
    #: Seconds a presigned request stays valid; None for header authentication.
    expires: int | None


def verify_sigv4(
    *,
    method: str,
    path: str,
    query_string: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    secret_lookup: SecretLookup | str,
    now: float,
    service: str | None,
    max_skew: float = DEFAULT_MAX_SKEW,
) -> SigV4Result:
    """Verify a SigV4-signed request and return who signed it.

    ``path`` and ``query_string`` are raw, percent-encoded as received; ``headers`` are all header
    lines as received (repeats included). ``secret_lookup`` maps an access key id to its secret (None:
    unknown), or is the secret itself. ``service``, when given, is the only signing name accepted.

    Raises ``MissingAuthenticationToken`` (no signature at all), ``IncompleteSignature`` (malformed),
    ``InvalidClientTokenId`` (unknown key), ``SignatureDoesNotMatch`` (wrong signature, wrong scope,
    unsigned required header, body hash mismatch, or a signing time outside the allowed window), and
    whatever ``secret_lookup`` raises. The key is looked up once the Authorization is well formed and
    before the signing time is judged, so a lookup that refuses credentials (say, expired ones) is
    heard even when the client's clock is also off.
    """
    header_map = _header_map(headers)
    query = _parse_query(query_string)
    auth = _parse_authorization(header_map, query)
    expected_service = service or auth.service
    if auth.service != expected_service:
        raise SignatureDoesNotMatch(f"Credential should be scoped to correct service: '{expected_service}'.")
    secret = secret_lookup if isinstance(secret_lookup, str) else secret_lookup(auth.access_key_id)
    if secret is None:
        raise InvalidClientTokenId
    signed_at = _parse_amz_date(auth.amz_date)
    if auth.scope_date != auth.amz_date[:8]:
        raise SignatureDoesNotMatch(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{auth.scope_date}' != '{auth.amz_date[:8]}', from '{auth.amz_date}'."
        )
    _check_time(auth, signed_at, now, max_skew)

    signed_names = auth.signed_headers.split(";")
    _check_signed_headers(signed_names, header_map, presigned=auth.expires is not None)
    canonical_headers = "".join(
        f"{name}:{','.join(' '.join(v.split()) for v in header_map[name])}\n" for name in signed_names
    )
    canonical_request = "\n".join(
        (
            method.upper(),
            _canonical_uri(path, s3=expected_service == "s3"),
            _canonical_query(query, exclude_signature=auth.expires is not None),
            canonical_headers,
            auth.signed_headers,
            _payload_hash(header_map, body, service=expected_service, presigned=auth.expires is not None),
        )
    )
    scope = f"{auth.scope_date}/{auth.region}/{auth.service}/{TERMINATOR}"
    string_to_sign = "\n".join(
        (ALGORITHM, auth.amz_date, scope, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest())
    )
    expected = hmac.new(
        signing_key(secret, auth.scope_date, auth.region, auth.service),
        string_to_sign.encode("utf-8"),
        hashlib.sha256,
    ).hexdigest()
    if not hmac.compare_digest(expected.encode("ascii"), auth.signature.encode("utf-8")):
        raise SignatureDoesNotMatch
    return SigV4Result(
        access_key_id=auth.access_key_id,
        region=auth.region,
        service=auth.service,
        signed_headers=tuple(signed_names),
        signed_at=signed_at,
        presigned=auth.expires is not None,
    )


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The signing key chain: HMAC("AWS4"+secret, date) → region → service → "aws4_request"."""
    key = hmac.digest(f"AWS4{secret}".encode(), date.encode("utf-8"), "sha256")
    for part in (region, service, TERMINATOR):
        key = hmac.digest(key, part.encode("utf-8"), "sha256")
    return key


def _header_map(headers: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for name, value in headers:
        result.setdefault(name.strip().lower(), []).append(value)
    return result


def _parse_query(query_string: str) -> list[tuple[str, str]]:
    """Decoded (name, value) pairs in order; a name without ``=`` has an empty value.

    ``+`` decodes to a space, as in form encoding: botocore sends ``AWSRequest.params`` that way
    (``urlencode``) while signing them as ``%20``, and it always sends a real ``+`` as ``%2B``.
    """
    pairs = []
    for part in query_string.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((unquote_plus(name), unquote_plus(value)))
    return pairs


def _single(pairs: list[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in pairs if k == name]
    if len(values) > 1:
        raise IncompleteSignature(f"The query parameter {name} must appear only once.")
    return values[0] if values else None


def _parse_authorization(header_map: dict[str, list[str]], query: list[tuple[str, str]]) -> _Authorization:
    header = header_map.get("authorization")
    presign_algorithm = _single(query, "X-Amz-Algorithm")
    if header and presign_algorithm is not None:
        raise IncompleteSignature(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the "
            "Authorization header should be specified"
        )
    if header:
        return _from_header(header, header_map)
    if presign_algorithm is not None:
        return _from_query(presign_algorithm, query)
    raise MissingAuthenticationToken


def _from_header(values: list[str], header_map: dict[str, list[str]]) -> _Authorization:
    """``Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…``."""
    if len(values) != 1:
        raise IncompleteSignature("The request must carry exactly one Authorization header.")
    algorithm, _, rest = values[0].strip().partition(" ")
    if algorithm != ALGORITHM:
        raise IncompleteSignature(f"Unsupported AWS 'algorithm': only '{ALGORITHM}' is accepted.")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or key in fields:
            raise IncompleteSignature(
                "Authorization header is malformed: expected 'Name=value' pairs, once each."
            )
        fields[key] = value.strip()
    missing = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not fields.get(name)
    ]
    date_values = header_map.get("x-amz-date") or header_map.get("date") or []
    if not date_values:
        missing.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    if missing:
        raise IncompleteSignature(" ".join(missing))
    if len(date_values) != 1:
        raise IncompleteSignature("The request must carry exactly one date header.")
    amz_date = date_values[0].strip() if "x-amz-date" in header_map else _http_date_to_amz(date_values[0])
    return _authorization(fields["Credential"], fields["SignedHeaders"], fields["Signature"], amz_date, None)


def _from_query(algorithm: str, query: list[tuple[str, str]]) -> _Authorization:
    """Presigned: ``X-Amz-Algorithm``, ``-Credential``, ``-Date``, ``-Expires``, ``-SignedHeaders``,
    ``-Signature`` in the query string."""
    if algorithm != ALGORITHM:
        raise IncompleteSignature(f"Unsupported AWS 'algorithm': only '{ALGORITHM}' is accepted.")
    values = {name: _single(query, name) for name in _PRESIGN_PARAMS}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise IncompleteSignature(
            f"Query-string authentication requires the parameters {', '.join(missing)}."
        )
    expires_text = values["X-Amz-Expires"] or ""
    if (
        not expires_text.isascii()
        or not expires_text.isdigit()
        or not 1 <= int(expires_text) <= MAX_PRESIGNED_EXPIRES
    ):
        raise IncompleteSignature(
            f"X-Amz-Expires must be a whole number of seconds from 1 to {MAX_PRESIGNED_EXPIRES} (one week)."
        )
    return _authorization(
        values["X-Amz-Credential"] or "",
        values["X-Amz-SignedHeaders"] or "",
        values["X-Amz-Signature"] or "",
        values["X-Amz-Date"] or "",
        int(expires_text),
    )


def _authorization(
    credential: str, signed_headers: str, signature: str, amz_date: str, expires: int | None
) -> _Authorization:
    """Split ``<key id>/<YYYYMMDD>/<region>/<service>/aws4_request`` and check its form."""
    parts = credential.split("/")
    if len(parts) != 5:
        raise IncompleteSignature(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, "
            f"got {len(parts)}."
        )
    access_key_id, scope_date, region, service, terminator = parts
    if not access_key_id:
        raise IncompleteSignature("Credential must start with an access key id.")
    if not _SCOPE_DATE_RE.fullmatch(scope_date):
        raise SignatureDoesNotMatch("Credential should be scoped to a valid date (YYYYMMDD).")
    if not region:
        raise SignatureDoesNotMatch("Credential should be scoped to a valid region.")
    if not service:
        raise SignatureDoesNotMatch("Credential should be scoped to a valid service.")
    if terminator != TERMINATOR:
        raise SignatureDoesNotMatch(f"Credential should be scoped with a valid terminator: '{TERMINATOR}'.")
    if any(not name or name != name.lower() for name in signed_headers.split(";")):
        raise IncompleteSignature("SignedHeaders must be lowercase header names separated by ';'.")
    return _Authorization(
        access_key_id=access_key_id,
        scope_date=scope_date,
        region=region,
        service=service,
        signed_headers=signed_headers,
        signature=signature,
        amz_date=amz_date,
        expires=expires,
    )


def _http_date_to_amz(value: str) -> str:
    """A ``Date`` header (RFC 7231 IMF-fixdate) in the ISO 8601 basic form the string to sign uses."""
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        raise IncompleteSignature("The Date header is not a valid HTTP date.") from None
    if parsed.tzinfo is None:  # "-0000", which botocore's formatdate writes, means UTC (RFC 5322 §3.3)
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _parse_amz_date(value: str) -> float:
    match = _AMZ_DATE_RE.fullmatch(value)
    if not match:
        raise IncompleteSignature("X-Amz-Date must be in the ISO 8601 basic format yyyyMMdd'T'HHmmss'Z'.")
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise IncompleteSignature("X-Amz-Date is not a valid date and time.") from None
    return moment.timestamp()


def _amz(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y%m%dT%H%M%SZ")


def _check_time(auth: _Authorization, signed_at: float, now: float, max_skew: float) -> None:
    """Header auth: the signing time within ``max_skew`` of now. Presigned: not yet past its expiry."""
    minutes = f"{max_skew / 60:g} min."
    if signed_at - now > max_skew:
        raise SignatureDoesNotMatch(
            f"Signature not yet current: {auth.amz_date} is still later than {_amz(now + max_skew)} "
            f"({_amz(now)} + {minutes})"
        )
    if auth.expires is None:
        if now - signed_at > max_skew:
            raise SignatureDoesNotMatch(
                f"Signature expired: {auth.amz_date} is now earlier than {_amz(now - max_skew)} "
                f"({_amz(now)} - {minutes})"
            )
    elif now > signed_at + auth.expires:
        raise SignatureDoesNotMatch(
            f"Signature expired: {auth.amz_date} is now earlier than {_amz(now - auth.expires)} "
            f"({_amz(now)} - {auth.expires} s, the X-Amz-Expires of this presigned request)"
        )


def _check_signed_headers(names: list[str], header_map: dict[str, list[str]], *, presigned: bool) -> None:
    if "host" not in names:
        raise SignatureDoesNotMatch(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
        )
    required = list(_MUST_BE_SIGNED_IF_PRESENT)
    if not presigned:
        required.append("x-amz-date" if "x-amz-date" in header_map else "date")
    for name in required:
        if name in header_map and name not in names:
            raise SignatureDoesNotMatch(f"'{name}' must be a 'SignedHeader' in the AWS Authorization.")
    for name in names:
        if name not in header_map:
            raise SignatureDoesNotMatch(f"The signed header '{name}' is missing from the request.")


def _canonical_uri(raw_path: str, *, s3: bool) -> str:
    """The path, URI-encoded twice after RFC 3986 §5.2.4 dot-segment removal; S3 takes it as received.

    The raw path is already encoded once by the client, so encoding it again here gives the spec's
    "each path segment URI-encoded twice" for every service but S3. Empty segments go as well, as in
    botocore's ``remove_dot_segments``.
    """
    if s3:
        return raw_path or "/"
    return quote(_remove_dot_segments(raw_path) if raw_path else "/", safe="/~")


def _remove_dot_segments(path: str) -> str:
    output: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if output:
                output.pop()
        elif segment and segment != ".":
            output.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and output else ""
    return first + "/".join(output) + last


def _canonical_query(pairs: list[tuple[str, str]], *, exclude_signature: bool) -> str:
    """Names and values URI-encoded (RFC 3986 unreserved characters kept), sorted by name, then value."""
    encoded = sorted(
        (quote(name, safe=_UNRESERVED), quote(value, safe=_UNRESERVED))
        for name, value in pairs
        if not (exclude_signature and name == "X-Amz-Signature")
    )
    return "&".join(f"{name}={value}" for name, value in encoded)


def _payload_hash(header_map: dict[str, list[str]], body: bytes, *, service: str, presigned: bool) -> str:
    """The hashed payload: ``x-amz-content-sha256`` when sent (and then checked), else SHA-256 of the body."""
    declared = header_map.get("x-amz-content-sha256")
    if declared is None:
        if service == "s3" and presigned:
            return UNSIGNED_PAYLOAD
        return hashlib.sha256(body).hexdigest()
    if len(declared) != 1:
        raise IncompleteSignature("The request must carry at most one x-amz-content-sha256 header.")
    value = declared[0].strip()
    if value == UNSIGNED_PAYLOAD:
        if service != "s3":
            raise IncompleteSignature(f"{UNSIGNED_PAYLOAD} is accepted only by S3; sign the request payload.")
        return value
    if not _SHA256_HEX_RE.fullmatch(value):
        raise IncompleteSignature("x-amz-content-sha256 must be the lowercase hex SHA-256 of the payload.")
    if value != hashlib.sha256(body).hexdigest():
        raise SignatureDoesNotMatch(
            "The provided 'x-amz-content-sha256' header does not match what was computed."
        )
    return value
