"""Role credentials for accounts of kind ``aws``: Keyhall signs a SAML assertion (or an OIDC token) for the
person and exchanges it at AWS STS with AssumeRoleWithSAML (or AssumeRoleWithWebIdentity). Both calls are
unsigned: the server holds no AWS credentials at all.

Errors, each a portal error carrying the STS code it stands for (``upstream_code``, audited)::

    CredentialIssueError (keyhall.access.portal)   400 InvalidRequestException
    ├── StsRejected                                400 InvalidRequestException  STS said no; the message says
    │                                                                           what the operator must fix
    ├── StsThrottled                               429 TooManyRequestsException
    └── StsUnreachable                             400 InvalidRequestException  no answer (network, timeout,
                                                                                STS 5xx after one retry)

StsUnreachable is deliberately a 4xx: SDKs retry every 5xx, and each retry would wait out the STS
timeouts again.

The portal calls ``issue`` outside any database transaction (``ISSUED_OUTSIDE_TRANSACTIONS`` in
keyhall.access.portal); it reads what it needs (settings, the user, the active key) in its own short read.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection

from keyhall.access.portal import (
    CredentialIssueError,
    FederationNotConfiguredError,
    IssuedRoleCredentials,
    IssueRequest,
)
from keyhall.db.database import Database
from keyhall.directory import store as directory_store
from keyhall.directory.models import User
from keyhall.errors import UnauthorizedError
from keyhall.federation import naming, oidc, saml
from keyhall.federation.keys import ActiveSigningKey, SigningKeys
from keyhall.federation.settings import FederationSettings, load_federation_settings

#: STS call timeouts (seconds) and attempts (one retry).
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 5.0
MAX_ATTEMPTS = 2
#: STS limits (aws-wire.md §1.5): RoleSessionName and SourceIdentity are 2..64 of ``[\w+=,.@-]``.
_SESSION_NAME_CHARS = re.compile(r"[A-Za-z0-9_+=,.@-]")
MIN_SESSION_NAME = 2
MAX_SESSION_NAME = 64
MAX_SESSION_TAGS = 50
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
_TAG_PUNCTUATION = frozenset("_.:/=+-@")


# ---- errors ------------------------------------------------------------------------------------------


class StsRejected(CredentialIssueError):
    """STS answered with an error: the assertion, the role or the provider is not as AWS needs it."""


class StsThrottled(CredentialIssueError):
    status = 429
    aws_code = "TooManyRequestsException"


class StsUnreachable(CredentialIssueError):
    """No usable answer from STS (see the module docstring for why this is not a 5xx)."""


# ---- the STS client ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StsCredentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: float
    assumed_role_arn: str | None = None


class StsCallError(Exception):
    """STS answered with an error document (``<Error><Code>``)."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class StsTransportError(Exception):
    """No answer from STS, or one that is not an STS document."""


class StsClient(Protocol):
    """The two unsigned STS operations Keyhall uses; tests swap in a fake or point the real one at moto."""

    def assume_role_with_saml(
        self, *, role_arn: str, principal_arn: str, saml_assertion: str, duration_seconds: int
    ) -> StsCredentials: ...

    def assume_role_with_web_identity(
        self, *, role_arn: str, role_session_name: str, web_identity_token: str, duration_seconds: int
    ) -> StsCredentials: ...


StsClientFactory = Callable[[str, str], StsClient]
"""(endpoint URL, region) → client."""


class Boto3StsClient:
    """botocore's STS client with ``signature_version=UNSIGNED``: no credentials are looked up or sent."""

    def __init__(self, endpoint_url: str, region: str) -> None:
        import botocore.session
        from botocore import UNSIGNED
        from botocore.config import Config

        session = botocore.session.Session()
        self._client: Any = session.create_client(
            "sts",
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(
                signature_version=UNSIGNED,
                connect_timeout=CONNECT_TIMEOUT,
                read_timeout=READ_TIMEOUT,
                retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
                user_agent_extra="keyhall",
            ),
        )

    def _call(self, operation: str, **params: Any) -> StsCredentials:
        from botocore.exceptions import BotoCoreError, ClientError
        from botocore.parsers import ResponseParserError

        try:
            answer = getattr(self._client, operation)(**params)
        except ClientError as exc:
            answer_error: dict[str, Any] = dict(exc.response.get("Error") or {})
            metadata: dict[str, Any] = dict(exc.response.get("ResponseMetadata") or {})
            raise StsCallError(
                str(answer_error.get("Code") or "Unknown"),
                str(answer_error.get("Message") or ""),
                int(metadata.get("HTTPStatusCode") or 0),
            ) from exc
        except (BotoCoreError, ResponseParserError) as exc:  # no answer, or one that is not STS's
            raise StsTransportError(str(exc).splitlines()[0]) from exc
        credentials = answer["Credentials"]
        return StsCredentials(
            access_key_id=credentials["AccessKeyId"],
            secret_access_key=credentials["SecretAccessKey"],
            session_token=credentials["SessionToken"],
            expiration=credentials["Expiration"].timestamp(),
            assumed_role_arn=(answer.get("AssumedRoleUser") or {}).get("Arn"),
        )

    def assume_role_with_saml(
        self, *, role_arn: str, principal_arn: str, saml_assertion: str, duration_seconds: int
    ) -> StsCredentials:
        return self._call(
            "assume_role_with_saml",
            RoleArn=role_arn,
            PrincipalArn=principal_arn,
            SAMLAssertion=saml_assertion,
            DurationSeconds=duration_seconds,
        )

    def assume_role_with_web_identity(
        self, *, role_arn: str, role_session_name: str, web_identity_token: str, duration_seconds: int
    ) -> StsCredentials:
        return self._call(
            "assume_role_with_web_identity",
            RoleArn=role_arn,
            RoleSessionName=role_session_name,
            WebIdentityToken=web_identity_token,
            DurationSeconds=duration_seconds,
        )


# ---- names and attributes ------------------------------------------------------------------------------


def role_session_name(user_name: str) -> str:
    """The user name as STS accepts it for RoleSessionName and SourceIdentity: characters outside
    ``[\\w+=,.@-]`` become ``-``, at most 64, padded with ``_`` to the minimum of 2."""
    cleaned = "".join(ch if _SESSION_NAME_CHARS.fullmatch(ch) else "-" for ch in user_name)
    return cleaned[:MAX_SESSION_NAME].ljust(MIN_SESSION_NAME, "_")


_PATH = re.compile(r"\$\{path:([^}]*)\}")
_SEGMENT = re.compile(r"\s*([A-Za-z_][\w$-]*)\s*(?:\[([^\]]*)\])?\s*")
_FILTER = re.compile(
    r'^\s*([A-Za-z_][\w$-]*)\s+eq\s+(true|false|null|-?\d+(?:\.\d+)?|"(?:[^"\\]|\\.)*")\s*$', re.I
)
ENTERPRISE_URN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
#: where the SCIM enterprise extension lives in a user's identitystore ``Extensions``
_ENTERPRISE_KEYS = ("aws:identitystore:enterprise", ENTERPRISE_URN, "enterprise")


def _get(value: Any, name: str) -> Any:
    """SCIM attribute names are case-insensitive (RFC 7643 §2.1): ``givenName`` finds ``GivenName``."""
    if not isinstance(value, Mapping):
        return None
    if name in value:
        return value[name]
    lowered = name.lower()
    for key, item in value.items():
        if isinstance(key, str) and key.lower() == lowered:
            return item
    return None


def _literal(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    if text.startswith('"'):
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return float(text) if "." in text else int(text)


def _matches(item: Any, attribute: str, expected: Any) -> bool:
    actual = _get(item, attribute)
    if isinstance(expected, str) and isinstance(actual, str):
        return actual.casefold() == expected.casefold()  # type and similar are caseExact=false
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected or (isinstance(actual, str) and actual.lower() == str(expected).lower())
    return bool(actual == expected)


def _single(value: Any) -> Any:
    """One value out of a multi-valued attribute: its only item, else its primary one, else nothing."""
    if not isinstance(value, list):
        return value
    if len(value) == 1:
        return value[0]
    primaries = [item for item in value if _get(item, "primary") is True]
    return primaries[0] if len(primaries) == 1 else None


def user_document(user: User) -> dict[str, Any]:
    """The user as the SCIM-like document that attribute paths walk: identitystore attributes plus
    ``userName``, ``displayName``, ``id`` and the enterprise extension as ``enterprise``."""
    document: dict[str, Any] = dict(user.attributes)
    document["userName"] = user.user_name
    document["displayName"] = user.display_name
    document["id"] = user.id
    extensions = user.attributes.get("Extensions")
    if isinstance(extensions, Mapping):
        for key in _ENTERPRISE_KEYS:
            if isinstance(extensions.get(key), Mapping):
                document["enterprise"] = extensions[key]
                break
    return document


def resolve_path(path: str, document: Mapping[str, Any]) -> str | None:
    """The single value at an IdC attribute path (``enterprise.department``, ``name.givenName``,
    ``emails[primary eq true].value``, ``addresses[type eq "work"].locality``), or None when there is
    none, it is multi-valued, or it is not a scalar."""
    path = path.strip()
    if path.startswith(ENTERPRISE_URN + ":"):
        path = "enterprise." + path[len(ENTERPRISE_URN) + 1 :]
    value: Any = document
    position = 0
    while position < len(path):
        match = _SEGMENT.match(path, position)
        if match is None or match.end() == position:
            return None
        name, condition = match.group(1), match.group(2)
        value = _get(_single(value), name)
        if condition is not None:
            parsed = _FILTER.match(condition)
            if parsed is None or not isinstance(value, list):
                return None
            expected = _literal(parsed.group(2))
            chosen = [item for item in value if _matches(item, parsed.group(1), expected)]
            value = chosen[0] if len(chosen) == 1 else None
        position = match.end()
        if position < len(path):
            if path[position] != ".":
                return None
            position += 1
    value = _single(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def resolve_source(source: str, document: Mapping[str, Any]) -> str | None:
    """An attribute source: ``${path:…}`` references (several may be joined with text, as in
    ``${path:name.givenName} ${path:name.familyName}``), or literal text. None when a reference has no
    value."""
    missing = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal missing
        value = resolve_path(match.group(1), document)
        if value is None:
            missing = True
            return ""
        return value

    value = _PATH.sub(substitute, source)
    return None if missing or value == "" else value


def _tag_text_ok(text: str) -> bool:
    """AWS session tag characters: letters, digits, separators (spaces) and ``_.:/=+-@``."""
    return all(ch in _TAG_PUNCTUATION or unicodedata.category(ch)[0] in "LNZ" for ch in text)


def check_tag_keys(attributes: Mapping[str, str]) -> None:
    """Configured keys AWS would refuse as session tag keys, reported before any call is made."""
    if len(attributes) > MAX_SESSION_TAGS:
        raise FederationNotConfiguredError(
            f"{len(attributes)} access-control attributes are configured; AWS accepts at most "
            f"{MAX_SESSION_TAGS} session tags"
        )
    for key in attributes:
        if not 1 <= len(key) <= MAX_TAG_KEY or not _tag_text_ok(key) or key.lower().startswith("aws:"):
            raise FederationNotConfiguredError(
                f"Access-control attribute key {key!r} is not a valid AWS session tag key (1 to 128 letters, "
                "digits, spaces and _.:/=+-@, not starting with aws:): fix it with `keyhall aws configure`"
            )


def principal_tags(attributes: Mapping[str, str], user: User) -> dict[str, str]:
    """Session tags for *user* from the configured ``key → source`` attributes (like IdC's attributes for
    access control). An attribute without a value, or with characters STS refuses in a tag value, is left
    out: a policy conditioned on it then denies, rather than STS refusing every sign-in."""
    check_tag_keys(attributes)
    document = user_document(user)
    tags: dict[str, str] = {}
    for key, source in attributes.items():
        value = resolve_source(source, document)
        if value is None or len(value) > MAX_TAG_VALUE or not _tag_text_ok(value):
            continue
        tags[key] = value
    return tags


# ---- STS errors as portal errors ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    """What one issuance asked STS, for error messages."""

    method: str
    operation: str
    endpoint: str
    region: str
    partition: str
    account_id: str
    role_arn: str
    provider_arn: str
    duration_seconds: int


def _rejected(error: StsCallError, call: _Call) -> CredentialIssueError:
    code, text = error.code, error.message
    lowered = text.lower()
    said = f"AWS STS refused {call.operation} for {call.role_arn} ({code}: {text})."
    apply_hint = f"Run `keyhall aws plan` and `keyhall aws apply` for account {call.account_id}."
    if code in ("Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"):
        return StsThrottled(f"AWS STS is throttling Keyhall ({code}); try again shortly.", upstream_code=code)
    if code in ("InternalFailure", "InternalError", "ServiceUnavailable") or error.status >= 500:
        return StsUnreachable(
            f"AWS STS at {call.endpoint} failed ({code}: {text}); try again shortly.", upstream_code=code
        )
    if code == "AccessDenied":
        trusted = "the SAML provider" if call.method == "saml" else "the OIDC provider"
        actions = (
            "sts:AssumeRoleWithSAML" if call.method == "saml" else "sts:AssumeRoleWithWebIdentity"
        ) + ", sts:TagSession and sts:SetSourceIdentity"
        message = (
            f"{said} The role does not exist in account {call.account_id}, or its trust policy does not "
            f"allow {trusted} {call.provider_arn} to call {actions}. {apply_hint}"
        )
    elif code in ("InvalidIdentityToken", "InvalidIdentityTokenException") and (
        "provider" in lowered
        and ("exist" in lowered or "not found" in lowered or "no openidconnect" in lowered)
    ):
        message = (
            f"{said} The identity provider {call.provider_arn} is missing in account {call.account_id}. "
            + apply_hint
        )
    elif code in ("InvalidIdentityToken", "InvalidIdentityTokenException") and call.method == "saml":
        message = (
            f"{said} AWS did not accept the assertion's signature or form: the SAML provider's metadata in "
            f"account {call.account_id} is probably out of date (a signing key was rotated or promoted "
            f"before the new metadata was uploaded). {apply_hint}"
        )
    elif code in ("InvalidIdentityToken", "InvalidIdentityTokenException"):
        message = (
            f"{said} AWS did not accept the token: the OIDC provider in account {call.account_id} may list "
            f"an outdated thumbprint or audience, or the issuer URL serves other keys. {apply_hint}"
        )
    elif code in ("IDPCommunicationError", "IDPCommunicationErrorException"):
        message = (
            f"{said} AWS could not fetch Keyhall's discovery document or JWKS: the OIDC issuer URL must be "
            "reachable from the internet over https, with a publicly trusted certificate."
        )
    elif code in ("IDPRejectedClaim", "IDPRejectedClaimException"):
        message = (
            f"{said} A claim did not match the role's trust policy or the provider (audience, issuer or "
            f"session tags). {apply_hint}"
        )
    elif code == "ValidationError" and "maxsessionduration" in lowered:
        message = (
            f"{said} The permission set asks for {call.duration_seconds} s, more than the role's "
            f"MaxSessionDuration: `keyhall aws apply` sets it to 12 h, or shorten the permission set's "
            "session duration."
        )
    elif code in ("RegionDisabledException", "RegionDisabled"):
        message = (
            f"{said} STS is not activated in {call.region} for account {call.account_id}: activate the "
            "region in the account's IAM settings, or choose another STS region with "
            "`keyhall aws configure --sts-region`."
        )
    elif code in ("ExpiredTokenException", "ExpiredToken"):
        message = (
            f"{said} The assertion had expired when AWS read it: the Keyhall server's clock is probably "
            "wrong; synchronise it (NTP)."
        )
    elif code in ("PackedPolicyTooLarge", "PackedPolicyTooLargeException"):
        message = (
            f"{said} The session tags are too large: configure fewer or shorter access-control attributes."
        )
    else:
        message = f"{said} Check the role and identity provider in account {call.account_id}. {apply_hint}"
    return StsRejected(message, upstream_code=code)


# ---- the issuer --------------------------------------------------------------------------------------


def default_sts_client(endpoint_url: str, region: str) -> StsClient:
    return Boto3StsClient(endpoint_url, region)


def entity_id(settings: FederationSettings, public_url: str) -> str:
    """The SAML entity id (the assertion's Issuer): configured, else ``<public url>/saml/metadata``."""
    return settings.entity_id or f"{public_url.rstrip('/')}/saml/metadata"


class FederationMetadata:
    """What AWS reads from Keyhall: the SAML metadata (uploaded to IAM by `keyhall aws apply`; this is the
    provisioner's ``MetadataSource``), and the OIDC discovery document and JWKS (fetched by AWS from the
    issuer URL). Both list every published key, so a rotated key is trusted before it signs."""

    def __init__(self, keys: SigningKeys, *, public_url: str) -> None:
        self._keys = keys
        self._public_url = public_url.rstrip("/")

    def saml_metadata(self, conn: Connection) -> str:
        published = self._keys.published_keys(conn, "saml")
        if not published:
            raise FederationNotConfiguredError(
                "Keyhall has no SAML signing key yet: run `keyhall aws configure` (it creates one)"
            )
        settings = load_federation_settings(conn)
        # the same document as keyhall.federation.saml_metadata_source renders for `keyhall aws apply`
        document = saml.metadata_xml(
            entity_id(settings, self._public_url), [k.certificate_pem for k in published]
        )
        return document.decode("utf-8")

    def oidc_discovery(self, conn: Connection) -> dict[str, Any] | None:
        """None unless federation is configured with an OIDC issuer URL."""
        settings = load_federation_settings(conn)
        if not settings.oidc_issuer_url:
            return None
        return oidc.discovery_document(settings.oidc_issuer_url)

    def jwks(self, conn: Connection) -> dict[str, Any]:
        return oidc.jwks(self._keys.published_keys(conn, "oidc"))


class AwsFederationIssuer:
    """The portal's ``CredentialIssuer`` for accounts of kind ``aws``.

    ``public_url`` is Keyhall's public URL; the SAML entity id defaults to ``<public_url>/saml/metadata``.
    One STS client is made per (endpoint, region) and reused (botocore clients are thread-safe).
    """

    def __init__(
        self,
        db: Database,
        keys: SigningKeys,
        *,
        public_url: str,
        sts_client_factory: StsClientFactory = default_sts_client,
    ) -> None:
        self._db = db
        self._keys = keys
        self._public_url = public_url.rstrip("/")
        self._factory = sts_client_factory
        self._clients: dict[tuple[str, str], StsClient] = {}
        self._lock = threading.Lock()

    def entity_id(self, settings: FederationSettings) -> str:
        return entity_id(settings, self._public_url)

    def sts_client(self, endpoint: str, region: str) -> StsClient:
        with self._lock:
            client = self._clients.get((endpoint, region))
            if client is None:
                client = self._clients[(endpoint, region)] = self._factory(endpoint, region)
            return client

    def role_arn(self, settings: FederationSettings, request: IssueRequest) -> str:
        name = naming.role_name(
            request.permission_set_name, request.instance_id, request.account_id, request.permission_set_id
        )
        return naming.role_arn(settings.partition, request.account_id, name)

    def load(self, request: IssueRequest) -> tuple[FederationSettings, User, ActiveSigningKey]:
        """Settings, the user and the active key of the configured method, in one short read."""
        with self._db.read() as conn:
            settings = load_federation_settings(conn)
            user = directory_store.get_user(conn, request.user_id)
            key = self._keys.active_signing_key(conn, settings.method)
        if user is None or not user.enabled:
            raise UnauthorizedError("Session token not found or invalid")
        return settings, user, key

    def saml_response(
        self,
        request: IssueRequest,
        settings: FederationSettings,
        user: User,
        key: ActiveSigningKey,
        *,
        now: float,
    ) -> bytes:
        """The signed SAML response for *request*: what AssumeRoleWithSAML and the console POST take."""
        session_name = role_session_name(request.user_name)
        return saml.signed_response(
            private_key=key.private_key,
            certificate_pem=key.certificate_pem,
            issuer=self.entity_id(settings),
            partition=settings.partition,
            role_arn=self.role_arn(settings, request),
            provider_arn=naming.saml_provider_arn(
                settings.partition, request.account_id, settings.saml_provider_name
            ),
            name_id=request.user_name,
            session_name=session_name,
            source_identity=session_name,
            session_duration=request.duration_seconds,
            now=now,
            principal_tags=principal_tags(settings.access_control_attributes, user),
        )

    def issue(self, request: IssueRequest, *, now: float) -> IssuedRoleCredentials:
        settings, user, key = self.load(request)
        if settings.method == "oidc":
            return self._issue_web_identity(request, settings, user, key, now=now)
        response = self.saml_response(request, settings, user, key, now=now)
        role_arn = self.role_arn(settings, request)
        provider_arn = naming.saml_provider_arn(
            settings.partition, request.account_id, settings.saml_provider_name
        )
        call = self._call_facts(settings, request, "AssumeRoleWithSAML", role_arn, provider_arn)
        credentials = self._exchange(
            call,
            lambda client: client.assume_role_with_saml(
                role_arn=role_arn,
                principal_arn=provider_arn,
                saml_assertion=saml.encode_response(response),
                duration_seconds=request.duration_seconds,
            ),
        )
        return self._issued(credentials, call)

    def _issue_web_identity(
        self,
        request: IssueRequest,
        settings: FederationSettings,
        user: User,
        key: ActiveSigningKey,
        *,
        now: float,
    ) -> IssuedRoleCredentials:
        if not settings.oidc_issuer_url:
            raise FederationNotConfiguredError(
                "Federation uses OIDC but no issuer URL is configured: set it with "
                "`keyhall aws configure --oidc-issuer-url https://…`"
            )
        role_arn = self.role_arn(settings, request)
        provider_arn = naming.oidc_provider_arn(
            settings.partition, request.account_id, settings.oidc_issuer_url
        )
        session_name = role_session_name(request.user_name)
        token = oidc.web_identity_token(
            private_key=key.private_key,
            kid=key.kid,
            issuer_url=settings.oidc_issuer_url,
            audience=settings.oidc_audience,
            subject=request.user_id,
            now=now,
            principal_tags=principal_tags(settings.access_control_attributes, user),
            source_identity=session_name,
        )
        call = self._call_facts(settings, request, "AssumeRoleWithWebIdentity", role_arn, provider_arn)
        credentials = self._exchange(
            call,
            lambda client: client.assume_role_with_web_identity(
                role_arn=role_arn,
                role_session_name=session_name,
                web_identity_token=token,
                duration_seconds=request.duration_seconds,
            ),
        )
        return self._issued(credentials, call)

    def _call_facts(
        self,
        settings: FederationSettings,
        request: IssueRequest,
        operation: str,
        role_arn: str,
        provider_arn: str,
    ) -> _Call:
        return _Call(
            method=settings.method,
            operation=operation,
            endpoint=settings.sts_endpoint or naming.sts_endpoint(settings.partition, settings.sts_region),
            region=settings.sts_region,
            partition=settings.partition,
            account_id=request.account_id,
            role_arn=role_arn,
            provider_arn=provider_arn,
            duration_seconds=request.duration_seconds,
        )

    def _exchange(self, call: _Call, operation: Callable[[StsClient], StsCredentials]) -> StsCredentials:
        try:
            return operation(self.sts_client(call.endpoint, call.region))
        except StsCallError as error:
            raise _rejected(error, call) from error
        except StsTransportError as error:
            raise StsUnreachable(
                f"Keyhall could not reach AWS STS at {call.endpoint} ({error}). Check the server's outbound "
                "https access to STS, or the STS endpoint and region set with `keyhall aws configure`.",
                upstream_code="STSUnreachable",
            ) from error

    @staticmethod
    def _issued(credentials: StsCredentials, call: _Call) -> IssuedRoleCredentials:
        details = {
            "FederationMethod": call.method,
            "RoleArn": call.role_arn,
            "ProviderArn": call.provider_arn,
        }
        if credentials.assumed_role_arn:
            details["AssumedRoleArn"] = credentials.assumed_role_arn
        return IssuedRoleCredentials(
            access_key_id=credentials.access_key_id,
            secret_access_key=credentials.secret_access_key,
            session_token=credentials.session_token,
            expiration=credentials.expiration,
            details=details,
        )
