"""Accounts of kind ``aws``: credentials from AWS STS through AssumeRoleWithSAML / AssumeRoleWithWebIdentity,
with moto's server playing AWS on loopback, on both databases.

moto checks almost nothing of what it is sent (testing-recipes.md §3), so every assertion and token that
reaches it is captured here and verified independently (signxml, joserfc); the unit tests check them field
by field. Also: the signing-key lifecycle, STS errors as portal errors, the rule that no network call runs
inside a database transaction, the console (SAML POST page, federation sign-in URL) and the public routes.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from lxml import etree
from moto.server import ThreadedMotoServer
from signxml.verifier import SignatureConfiguration, XMLVerifier
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning

from keyhall.access.models import AccountSpec, PermissionSetSpec
from keyhall.access.portal import ForbiddenError, IssuedRoleCredentials, PortalService
from keyhall.api import federation as federation_api
from keyhall.audit.events import Actor
from keyhall.client.config import ProfileConfig, SessionConfig
from keyhall.client.console import console_sign_in_url
from keyhall.client.credential_cache import CredentialCache
from keyhall.client.errors import ConsoleNotAvailableError
from keyhall.client.token_cache import SSOToken, TokenCache
from keyhall.clock import FrozenClock
from keyhall.container import Container
from keyhall.credentials.portal_issuer import LocalPortalIssuer
from keyhall.crypto import SecretBox, SecretBoxError
from keyhall.db.tables import audit_events, signing_keys
from keyhall.directory.models import UserSpec
from keyhall.errors import ConflictError, UnauthorizedError
from keyhall.federation import naming, oidc, saml
from keyhall.federation.console import ConsolePostForm, ConsoleRedirect, ConsoleService
from keyhall.federation.issuer import (
    AwsFederationIssuer,
    Boto3StsClient,
    FederationMetadata,
    StsCallError,
    StsClient,
    StsCredentials,
    StsRejected,
    StsThrottled,
    StsUnreachable,
    principal_tags,
    resolve_path,
    role_session_name,
    user_document,
)
from keyhall.federation.keys import SigningKeys
from keyhall.federation.settings import FederationSettings, save_federation_settings
from keyhall.instance import create_instance
from keyhall.keys import derive_key
from keyhall.oauth.tokens import issue_tokens
from keyhall.web import console_pages
from keyhall.web import pages as web_pages

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 and warns when it falls back to httpx (as in test_web_pages.py)
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

ACCOUNT = "123456789012"  # moto's default account, so IAM and STS agree on it
LOCAL_ACCOUNT = "111111111111"
PUBLIC_URL = "https://keyhall.example.com"
ISSUER_URL = "https://keyhall.example.com"
CALLER = Actor(type="Anonymous", source_ip="192.0.2.1", user_agent="botocore/1.44", request_id="r-1")
AWS_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


# ---- moto ----------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_url: str) -> str:
    httpx.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
    return moto_url


def _aws_client(url: str, service: str, **keys: str) -> Any:
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", **(keys or AWS_KEYS))


# ---- the world -----------------------------------------------------------------------------------------


@dataclass
class Recorder:
    """An STS client that records what it sends, around the real (moto-bound) one or a stand-in."""

    inner: StsClient | None = None
    saml_assertions: list[str] = field(default_factory=list)
    web_identity_tokens: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    hook: Any = None
    error: Exception | None = None

    def _answer(self, **params: Any) -> StsCredentials:
        self.calls.append(params)
        if self.hook is not None:
            self.hook()
        if self.error is not None:
            raise self.error
        assert self.inner is not None
        if "principal_arn" in params:
            return self.inner.assume_role_with_saml(**params)
        return self.inner.assume_role_with_web_identity(**params)

    def assume_role_with_saml(
        self, *, role_arn: str, principal_arn: str, saml_assertion: str, duration_seconds: int
    ) -> StsCredentials:
        self.saml_assertions.append(saml_assertion)
        return self._answer(
            role_arn=role_arn,
            principal_arn=principal_arn,
            saml_assertion=saml_assertion,
            duration_seconds=duration_seconds,
        )

    def assume_role_with_web_identity(
        self, *, role_arn: str, role_session_name: str, web_identity_token: str, duration_seconds: int
    ) -> StsCredentials:
        self.web_identity_tokens.append(web_identity_token)
        return self._answer(
            role_arn=role_arn,
            role_session_name=role_session_name,
            web_identity_token=web_identity_token,
            duration_seconds=duration_seconds,
        )


@dataclass
class World:
    container: Container
    keys: SigningKeys
    issuer: AwsFederationIssuer
    portal: PortalService
    metadata: FederationMetadata
    recorder: Recorder
    token: str
    alice: str
    session: str
    instance_id: str
    admin_ps: str
    actor: Actor

    def settings(self, **values: Any) -> FederationSettings:
        base: dict[str, Any] = {"access_control_attributes": {"Department": "${path:enterprise.department}"}}
        settings = FederationSettings(**{**base, **values})
        c = self.container
        with c.db.write() as conn:
            save_federation_settings(conn, self.actor, c.audit, c.clock, settings)
        return settings

    def role_name(self) -> str:
        return naming.role_name("Admin", self.instance_id, ACCOUNT, self.admin_ps)


@pytest.fixture
def world(container: Container, actor: Actor) -> World:
    c = container
    assert c.master_key is not None
    keys = SigningKeys(c.master_key, c.clock, c.audit)
    recorder = Recorder()
    factories: dict[tuple[str, str], StsClient] = {}

    def factory(endpoint: str, region: str) -> StsClient:
        if recorder.inner is None:
            recorder.inner = factories.setdefault((endpoint, region), Boto3StsClient(endpoint, region))
        return recorder

    issuer = AwsFederationIssuer(c.db, keys, public_url=PUBLIC_URL, sts_client_factory=factory)
    assert c.local_sts is not None
    portal = PortalService(
        c.db, c.clock, c.audit, c.sessions, {"local": LocalPortalIssuer(c.local_sts), "aws": issuer}
    )
    with c.db.write() as conn:
        instance = create_instance(conn, actor, c.audit, c.clock, "Test")
        real = c.access.create_account(
            conn, actor, AccountSpec("Prod", "prod@example.com", id=ACCOUNT, kind="aws")
        )
        local = c.access.create_account(
            conn, actor, AccountSpec("Sandbox", "sb@example.com", id=LOCAL_ACCOUNT)
        )
        admin = c.access.create_permission_set(
            conn,
            actor,
            PermissionSetSpec(
                "Admin", session_duration="PT2H", relay_state="https://console.aws.amazon.com/s3/home"
            ),
        )
        ro = c.access.create_permission_set(conn, actor, PermissionSetSpec("ReadOnly"))
        alice = c.directory.create_user(
            conn,
            actor,
            UserSpec(
                "alice",
                given_name="Alice",
                email="alice@example.com",
                attributes={"Extensions": {"aws:identitystore:enterprise": {"department": "Engineering"}}},
            ),
        )
        c.access.create_assignment(conn, actor, real.id, admin.id, "USER", alice.id)
        c.access.create_assignment(conn, actor, real.id, ro.id, "USER", alice.id)
        c.access.create_assignment(conn, actor, local.id, ro.id, "USER", alice.id)
        session, _ = c.sessions.create(conn, user_id=alice.id, kind="cli", lifetime_seconds=8 * 3600)
        tokens = issue_tokens(
            conn,
            c.clock,
            session_id=session.id,
            user_id=alice.id,
            client_id="c",
            scopes=[],
            session_expires_at=session.expires_at,
        )
        keys.ensure_active_key(conn, actor, "saml")
        keys.ensure_active_key(conn, actor, "oidc")
    return World(
        c,
        keys,
        issuer,
        portal,
        FederationMetadata(keys, public_url=PUBLIC_URL),
        recorder,
        tokens.access_token,
        alice.id,
        session.id,
        instance.id,
        admin.id,
        actor,
    )


def _trust(principal: str, action: str, condition: dict[str, Any]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": principal},
                    "Action": [action, "sts:TagSession", "sts:SetSourceIdentity"],
                    "Condition": {"StringEquals": condition},
                }
            ],
        }
    )


def _provision_saml(world: World, aws_url: str) -> tuple[str, str]:
    """What `keyhall aws apply` does in the account, done here with moto's IAM."""
    iam = _aws_client(aws_url, "iam")
    with world.container.db.read() as conn:
        metadata = world.metadata.saml_metadata(conn)
    provider = iam.create_saml_provider(SAMLMetadataDocument=metadata, Name="Keyhall")["SAMLProviderArn"]
    assert provider == naming.saml_provider_arn("aws", ACCOUNT, "Keyhall")
    role = iam.create_role(
        RoleName=world.role_name(),
        Path=naming.ROLE_PATH,
        AssumeRolePolicyDocument=_trust(
            provider, "sts:AssumeRoleWithSAML", {"SAML:aud": naming.saml_audience("aws")}
        ),
        MaxSessionDuration=43200,
    )["Role"]["Arn"]
    assert role == naming.role_arn("aws", ACCOUNT, world.role_name())
    return role, provider


def _audit(world: World, name: str) -> list[Any]:
    with world.container.db.read() as conn:
        return list(
            conn.execute(
                select(audit_events).where(audit_events.c.event_name == name).order_by(audit_events.c.seq)
            )
        )


def _verify(world: World, response: bytes, certificate_pem: str) -> Any:
    """signxml's verifier at the injected clock's time, when the certificate is valid."""
    config = SignatureConfiguration(verification_time=world.container.clock.now())
    return XMLVerifier().verify(response, x509_cert=certificate_pem, id_attribute="ID", expect_config=config)


def _caller_arn(aws_url: str, credentials: IssuedRoleCredentials) -> str:
    sts = _aws_client(
        aws_url,
        "sts",
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
    )
    return str(sts.get_caller_identity()["Arn"])


# ---- GetRoleCredentials through STS --------------------------------------------------------------------


def test_saml_credentials_from_sts(world: World, aws: str) -> None:
    role_arn, provider_arn = _provision_saml(world, aws)
    world.settings(sts_endpoint=aws)
    started = time.time()
    credentials = world.portal.get_role_credentials(CALLER, world.token, ACCOUNT, "admin")
    assert re.fullmatch(r"ASIA[A-Z0-9]{16}", credentials.access_key_id)
    assert started + 7200 - 5 <= credentials.expiration <= time.time() + 7200 + 5  # moto honours the duration
    assert _caller_arn(aws, credentials) == f"arn:aws:sts::{ACCOUNT}:assumed-role/{world.role_name()}/alice"

    (call,) = world.recorder.calls
    assert call["role_arn"] == role_arn and call["principal_arn"] == provider_arn
    assert call["duration_seconds"] == 7200
    (sent,) = world.recorder.saml_assertions
    with world.container.db.read() as conn:
        (published,) = world.keys.published_keys(conn, "saml")
    assertion = _verify(world, base64.b64decode(sent), published.certificate_pem)
    ns = {"saml": saml.SAML}
    values = {
        a.get("Name"): [v.text for v in a.findall("saml:AttributeValue", ns)]
        for a in assertion.signed_xml.findall("saml:AttributeStatement/saml:Attribute", ns)
    }
    assert values[saml.ROLE_ATTRIBUTE] == [f"{role_arn},{provider_arn}"]
    assert values[saml.ROLE_SESSION_NAME_ATTRIBUTE] == ["alice"]
    assert values[saml.SESSION_DURATION_ATTRIBUTE] == ["7200"]
    assert values[saml.SOURCE_IDENTITY_ATTRIBUTE] == ["alice"]
    assert values[saml.PRINCIPAL_TAG_PREFIX + "Department"] == ["Engineering"]
    issuer = assertion.signed_xml.findtext("saml:Issuer", namespaces=ns)
    assert issuer == f"{PUBLIC_URL}/saml/metadata"

    (record,) = _audit(world, "GetRoleCredentials")
    assert record.actor_id == world.alice and record.actor_name == "alice" and record.error_code is None
    assert record.request_parameters == {"accountId": ACCOUNT, "roleName": "Admin"}
    assert record.response_elements["accessKeyId"] == credentials.access_key_id
    assert record.additional_data["RoleArn"] == role_arn
    assert record.additional_data["FederationMethod"] == "saml"
    assert record.additional_data["AssumedRoleArn"].endswith(f"/{world.role_name()}/alice")
    assert credentials.secret_access_key not in str(tuple(record))
    assert credentials.session_token not in str(tuple(record))


def test_oidc_credentials_from_sts(world: World, aws: str) -> None:
    iam = _aws_client(aws, "iam")
    provider = iam.create_open_id_connect_provider(
        Url=ISSUER_URL, ClientIDList=["sts.amazonaws.com"], ThumbprintList=["a" * 40]
    )["OpenIDConnectProviderArn"]
    assert provider == naming.oidc_provider_arn("aws", ACCOUNT, ISSUER_URL)
    host = urlsplit(ISSUER_URL).netloc
    iam.create_role(
        RoleName=world.role_name(),
        Path=naming.ROLE_PATH,
        AssumeRolePolicyDocument=_trust(
            provider, "sts:AssumeRoleWithWebIdentity", {f"{host}:aud": "sts.amazonaws.com"}
        ),
        MaxSessionDuration=43200,
    )
    world.settings(sts_endpoint=aws, method="oidc", oidc_issuer_url=ISSUER_URL)
    started = time.time()
    credentials = world.portal.get_role_credentials(CALLER, world.token, ACCOUNT, "Admin")
    assert credentials.access_key_id.startswith("ASIA")
    assert started + 7200 - 5 <= credentials.expiration <= time.time() + 7200 + 5
    assert _caller_arn(aws, credentials) == f"arn:aws:sts::{ACCOUNT}:assumed-role/{world.role_name()}/alice"
    (call,) = world.recorder.calls
    assert call["role_session_name"] == "alice" and call["duration_seconds"] == 7200

    (token,) = world.recorder.web_identity_tokens
    with world.container.db.read() as conn:
        keys = KeySet.import_key_set(world.metadata.jwks(conn))
        discovery = world.metadata.oidc_discovery(conn)
    assert discovery is not None and discovery["issuer"] == ISSUER_URL
    decoded = jwt.decode(token, keys, algorithms=["RS256"])
    assert decoded.header["alg"] == "RS256"
    assert decoded.claims["iss"] == ISSUER_URL and decoded.claims["aud"] == "sts.amazonaws.com"
    assert decoded.claims["sub"] == world.alice
    assert decoded.claims["exp"] - decoded.claims["iat"] == 300
    assert decoded.claims[oidc.TAGS_CLAIM] == {"principal_tags": {"Department": ["Engineering"]}}
    (record,) = _audit(world, "GetRoleCredentials")
    assert record.additional_data["FederationMethod"] == "oidc"
    assert record.additional_data["ProviderArn"] == provider


def test_no_network_call_inside_a_transaction(world: World) -> None:
    """While STS is being asked, another request can write: the portal holds no transaction (on SQLite a
    write transaction would hold the database's one write lock and this write would wait, then fail)."""
    c = world.container
    world.settings(sts_endpoint="http://sts.invalid")
    wrote: list[bool] = []

    def write_meanwhile() -> None:
        with c.db.write() as conn:
            c.directory.create_user(conn, world.actor, UserSpec(f"bob{len(wrote)}"))
        wrote.append(True)

    world.recorder.hook = write_meanwhile
    world.recorder.error = None
    world.recorder.inner = _Fixed()
    credentials = world.portal.get_role_credentials(CALLER, world.token, ACCOUNT, "Admin")
    assert wrote == [True] and credentials.access_key_id == "ASIAFIXEDFIXEDFIXED0"


@dataclass
class _Fixed:
    def assume_role_with_saml(self, **_: Any) -> StsCredentials:
        return StsCredentials("ASIAFIXEDFIXEDFIXED0", "secret", "token", time.time() + 3600, None)

    def assume_role_with_web_identity(self, **_: Any) -> StsCredentials:
        return StsCredentials("ASIAFIXEDFIXEDFIXED0", "secret", "token", time.time() + 3600, None)


def test_credentials_are_dropped_when_the_session_ends_during_the_call(world: World) -> None:
    c = world.container
    world.settings(sts_endpoint="http://sts.invalid")

    def revoke() -> None:
        with c.db.write() as conn:
            c.sessions.revoke(conn, world.actor, world.session, reason="test")

    world.recorder.hook = revoke
    world.recorder.inner = _Fixed()
    with pytest.raises(UnauthorizedError):
        world.portal.get_role_credentials(CALLER, world.token, ACCOUNT, "Admin")
    assert _audit(world, "GetRoleCredentials") == []  # nothing handed out, nothing recorded as handed out


def test_an_unreachable_sts_is_a_clear_error_and_audited(world: World) -> None:
    closed = f"http://127.0.0.1:{_free_port()}"
    world.settings(sts_endpoint=closed)
    with pytest.raises(StsUnreachable) as caught:
        world.portal.get_role_credentials(CALLER, world.token, ACCOUNT, "Admin")
    assert closed in caught.value.message and "keyhall aws configure" in caught.value.message
    assert caught.value.status == 400 and caught.value.aws_code == "InvalidRequestException"
    (record,) = _audit(world, "GetRoleCredentials")
    assert record.error_code == "STSUnreachable" and record.response_elements is None
    assert len(world.recorder.calls) == 1


def test_a_broken_sts_answer_is_a_clear_error(world: World, aws: str) -> None:
    """moto answers input it cannot parse with an HTML 500 (testing-recipes.md §3): what botocore then reports
    (after its one retry) becomes a portal error naming the endpoint, and is audited."""
    _provision_saml(world, aws)
    world.settings(sts_endpoint=aws)
    real = Boto3StsClient(aws, "us-east-1")

    @dataclass
    class Mangling:
        def assume_role_with_saml(self, **params: Any) -> StsCredentials:
            return real.assume_role_with_saml(**{**params, "saml_assertion": "bm90IHhtbA=="})  # "not xml"

        def assume_role_with_web_identity(self, **params: Any) -> StsCredentials:
            raise AssertionError("not used")

    world.recorder.inner = Mangling()
    with pytest.raises(StsUnreachable) as caught:
        world.portal.get_role_credentials(CALLER, world.token, ACCOUNT, "Admin")
    assert aws in caught.value.message
    (record,) = _audit(world, "GetRoleCredentials")
    assert record.error_code == "STSUnreachable"


@pytest.mark.parametrize(
    ("code", "message", "status", "kind", "hint"),
    [
        (
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithSAML",
            403,
            StsRejected,
            "trust policy",
        ),
        ("InvalidIdentityToken", "Specified provider doesn't exist", 400, StsRejected, "is missing"),
        ("InvalidIdentityToken", "Response signature invalid", 400, StsRejected, "metadata"),
        (
            "ValidationError",
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            400,
            StsRejected,
            "MaxSessionDuration",
        ),
        ("RegionDisabledException", "STS is not activated in this region", 403, StsRejected, "activate"),
        ("ExpiredTokenException", "Token must be redeemed within 5 minutes", 400, StsRejected, "clock"),
        ("PackedPolicyTooLarge", "too large", 400, StsRejected, "session tags"),
        ("Throttling", "Rate exceeded", 400, StsThrottled, "throttling"),
        ("InternalFailure", "boom", 500, StsUnreachable, "try again"),
    ],
)
def test_sts_errors_say_what_to_fix(
    world: World, code: str, message: str, status: int, kind: type[Exception], hint: str
) -> None:
    world.settings(sts_endpoint="http://sts.invalid")
    world.recorder.inner = _Fixed()
    world.recorder.error = StsCallError(code, message, status)
    with pytest.raises(kind) as caught:
        world.portal.get_role_credentials(CALLER, world.token, ACCOUNT, "Admin")
    assert hint in str(caught.value) and code in str(caught.value)
    (record,) = _audit(world, "GetRoleCredentials")
    assert record.error_code == code


def test_local_accounts_keep_their_own_path(world: World, clock: FrozenClock) -> None:
    credentials = world.portal.get_role_credentials(CALLER, world.token, LOCAL_ACCOUNT, "ReadOnly")
    assert credentials.expiration == clock.timestamp() + 3600 and credentials.details is None
    assert world.recorder.calls == []
    with pytest.raises(ForbiddenError):
        world.portal.get_role_credentials(CALLER, world.token, LOCAL_ACCOUNT, "Admin")


# ---- signing keys --------------------------------------------------------------------------------------


def test_signing_key_rotation_publishes_before_signing(world: World, clock: FrozenClock) -> None:
    c, keys, actor = world.container, world.keys, world.actor
    with c.db.write() as conn:
        first = keys.ensure_active_key(conn, actor, "saml")
        assert keys.ensure_active_key(conn, actor, "saml") == first  # idempotent
        upcoming = keys.rotate(conn, actor, "saml")
        assert upcoming.status == "next"
        with pytest.raises(ConflictError):
            keys.rotate(conn, actor, "saml")
        assert [k.kid for k in keys.published_keys(conn, "saml")] == [first.kid, upcoming.kid]
        assert keys.active_signing_key(conn, "saml").kid == first.kid  # the next key does not sign yet
        metadata = world.metadata.saml_metadata(conn)
    assert metadata.count("<ds:X509Certificate>") == 2
    for key in (first, upcoming):
        assert key.certificate_base64 in metadata

    with c.db.write() as conn:
        promoted = keys.promote(conn, actor, "saml")
        assert promoted.kid == upcoming.kid and promoted.status == "active"
        assert keys.active_signing_key(conn, "saml").kid == upcoming.kid
        statuses = {k.kid: k.status for k in keys.published_keys(conn, "saml")}
    assert statuses == {upcoming.kid: "active", first.kid: "retired"}  # still published for the overlap

    clock.advance(keys.overlap_seconds + 1)
    with c.db.write() as conn:
        assert [k.kid for k in keys.published_keys(conn, "saml")] == [upcoming.kid]
        assert keys.prune(conn, actor, "saml") == [first.kid]
        with pytest.raises(ConflictError):
            keys.promote(conn, actor, "saml")
    names = [r.event_name for r in _audit(world, "CreateSigningKey")]
    names += [r.event_name for r in _audit(world, "RotateSigningKey") + _audit(world, "PromoteSigningKey")]
    names += [r.event_name for r in _audit(world, "DeleteSigningKey")]
    assert names == [
        "CreateSigningKey",
        "CreateSigningKey",
        "RotateSigningKey",
        "PromoteSigningKey",
        "DeleteSigningKey",
    ]


def test_private_keys_are_stored_sealed_to_their_kid(world: World) -> None:
    c = world.container
    assert c.master_key is not None
    with c.db.read() as conn:
        rows = list(conn.execute(select(signing_keys)))
    assert len(rows) == 2
    box = SecretBox(derive_key(c.master_key, "signing-keys"))
    first, second = rows
    assert b"PRIVATE KEY" not in first.private_key_encrypted
    assert box.decrypt(first.private_key_encrypted, context=first.kid.encode()).startswith(b"-----BEGIN")
    with pytest.raises(SecretBoxError):  # a row's key copied under another kid does not open
        box.decrypt(first.private_key_encrypted, context=second.kid.encode())


# ---- attributes for access control ---------------------------------------------------------------------


def test_attribute_paths(world: World) -> None:
    with world.container.db.read() as conn:
        from keyhall.directory import store

        user = store.get_user(conn, world.alice)
    assert user is not None
    document = user_document(user)
    assert resolve_path("userName", document) == "alice"
    assert resolve_path("name.givenName", document) == "Alice"
    assert resolve_path("emails[primary eq true].value", document) == "alice@example.com"
    assert resolve_path('emails[type eq "WORK"].value', document) == "alice@example.com"
    assert resolve_path("enterprise.department", document) == "Engineering"
    assert resolve_path(
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", document
    ) == ("Engineering")
    assert resolve_path("enterprise.costCenter", document) is None
    assert resolve_path("emails", document) is None  # not a scalar
    tags = principal_tags(
        {
            "Department": "${path:enterprise.department}",
            "Who": "${path:name.givenName} ${path:userName}",
            "Refused": "(${path:userName})",
            "Missing": "${path:enterprise.costCenter}",
            "Team": "platform",
        },
        user,
    )
    # no value, or characters STS refuses in a tag value ("(" here): left out, never sent
    assert tags == {"Department": "Engineering", "Who": "Alice alice", "Team": "platform"}
    assert role_session_name("alice smith/ops") == "alice-smith-ops"
    assert role_session_name("a") == "a_"
    assert len(role_session_name("x" * 100)) == 64


# ---- console -------------------------------------------------------------------------------------------


def _console(world: World, transport: httpx.BaseTransport | None = None) -> ConsoleService:
    c = world.container
    return ConsoleService(
        c.db, c.clock, c.audit, world.issuer, public_url=PUBLIC_URL, signin_transport=transport
    )


def test_console_saml_post(world: World) -> None:
    world.settings()
    form = _console(world).sign_in(
        CALLER,
        user_id=world.alice,
        user_name="alice",
        session_id=world.session,
        account_id=ACCOUNT,
        role_name="Admin",
    )
    assert isinstance(form, ConsolePostForm)
    assert form.action == "https://signin.aws.amazon.com/saml"
    assert form.relay_state == "https://console.aws.amazon.com/s3/home"  # the permission set's relay state
    with world.container.db.read() as conn:
        (published,) = world.keys.published_keys(conn, "saml")
    _verify(world, base64.b64decode(form.saml_response), published.certificate_pem)
    assert world.recorder.calls == []  # nothing was sent anywhere by the server
    (record,) = _audit(world, "Federate")
    assert record.additional_data["Binding"] == "SAML-POST" and record.error_code is None
    ro = _console(world).sign_in(
        CALLER,
        user_id=world.alice,
        user_name="alice",
        session_id=world.session,
        account_id=ACCOUNT,
        role_name="ReadOnly",
    )
    assert isinstance(ro, ConsolePostForm) and ro.relay_state == "https://console.aws.amazon.com/"


def test_console_with_oidc_goes_through_the_federation_endpoint(world: World) -> None:
    world.settings(sts_endpoint="http://sts.invalid", method="oidc", oidc_issuer_url=ISSUER_URL)
    world.recorder.inner = _Fixed()
    seen: list[httpx.Request] = []

    def signin(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"SigninToken": "tok-123"})

    result = _console(world, httpx.MockTransport(signin)).sign_in(
        CALLER,
        user_id=world.alice,
        user_name="alice",
        session_id=world.session,
        account_id=ACCOUNT,
        role_name="Admin",
    )
    assert isinstance(result, ConsoleRedirect)
    (request,) = seen
    assert request.url.host == "signin.aws.amazon.com" and request.url.path == "/federation"
    query = parse_qs(request.url.query.decode())
    assert query["Action"] == ["getSigninToken"]
    assert json.loads(query["Session"][0]) == {
        "sessionId": "ASIAFIXEDFIXEDFIXED0",
        "sessionKey": "secret",
        "sessionToken": "token",
    }
    login = parse_qs(urlsplit(result.url).query)
    assert login == {
        "Action": ["login"],
        "Issuer": [f"{PUBLIC_URL}/start"],
        "Destination": ["https://console.aws.amazon.com/s3/home"],
        "SigninToken": ["tok-123"],
    }
    (record,) = _audit(world, "Federate")
    assert record.additional_data["Binding"] == "Federation"


def _browser(world: World) -> tuple[TestClient, str]:
    c = world.container
    with c.db.write() as conn:
        _, cookie = c.signin.create_browser_session(
            conn, world.alice, actor=CALLER, workflow_id="wf", mfa_method=None
        )
    holder = SimpleNamespace(
        **{
            name: getattr(c, name)
            for name in ("settings", "db", "clock", "audit", "sessions", "signin", "master_key")
        },
        console=_console(world),
        federation_metadata=world.metadata,
    )
    app = Starlette(routes=console_pages.routes + web_pages.routes + federation_api.routes)
    app.state.container = holder
    client = TestClient(app, base_url="http://testserver", follow_redirects=False)
    return client, cookie


def test_console_page(world: World) -> None:
    world.settings()
    client, cookie = _browser(world)
    anonymous = client.get(f"/console?account_id={ACCOUNT}&role_name=Admin")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login?next=%2Fconsole")
    client.cookies.set("kh_session", cookie)
    page = client.get(f"/console?account_id={ACCOUNT}&role_name=Admin")
    assert page.status_code == 200, page.text
    csp = page.headers["content-security-policy"]
    assert "form-action 'self' https://signin.aws.amazon.com" in csp and "script-src 'self'" in csp
    html = etree.HTML(page.text)
    (form,) = html.xpath("//form[@id='console-post']")
    assert form.get("action") == "https://signin.aws.amazon.com/saml" and form.get("method") == "post"
    fields = {i.get("name"): i.get("value") for i in form.xpath(".//input")}
    assert fields["RelayState"] == "https://console.aws.amazon.com/s3/home"
    assert base64.b64decode(fields["SAMLResponse"]).startswith(b"<samlp:Response")
    assert form.xpath(".//button[@type='submit']")  # Continue, for browsers without JavaScript
    scripts = html.xpath("//script")
    assert [s.get("src") for s in scripts] == ["/static/console-post.js"] and not any(s.text for s in scripts)
    assert client.get("/static/console-post.js").status_code == 200

    local = client.get(f"/console?account_id={LOCAL_ACCOUNT}&role_name=ReadOnly")
    assert local.status_code == 400 and "no AWS Management Console" in local.text
    denied = client.get(f"/console?account_id={LOCAL_ACCOUNT}&role_name=Admin")
    assert denied.status_code == 403
    assert [r.error_code for r in _audit(world, "Federate")] == [None]


def test_public_federation_routes(world: World) -> None:
    client, _ = _browser(world)
    world.settings()
    metadata = client.get("/saml/metadata")
    assert metadata.status_code == 200 and metadata.headers["content-type"].startswith(
        "application/samlmetadata+xml"
    )
    assert b'<md:KeyDescriptor use="signing">' in metadata.content
    assert client.get("/.well-known/openid-configuration").status_code == 404
    world.settings(oidc_issuer_url=ISSUER_URL)
    discovery = client.get("/.well-known/openid-configuration").json()
    assert discovery["jwks_uri"] == f"{ISSUER_URL}/.well-known/jwks.json"
    (key,) = client.get("/.well-known/jwks.json").json()["keys"]
    assert key["alg"] == "RS256" and "d" not in key

    target = client.get(
        "/federation/console",
        params={"account_id": ACCOUNT, "role_name": "admin"},
        headers={"x-amz-sso_bearer_token": world.token},
    )
    assert target.json() == {
        "accountId": ACCOUNT,
        "roleName": "Admin",
        "accountKind": "aws",
        "partition": "aws",
        "federationUrl": "https://signin.aws.amazon.com/federation",
        "destination": "https://console.aws.amazon.com/s3/home",
    }
    refused = client.get("/federation/console", params={"account_id": ACCOUNT, "role_name": "Admin"})
    assert refused.status_code == 401 and refused.headers["x-amzn-errortype"].startswith(
        "UnauthorizedException"
    )


# ---- `keyhall console` on the user's machine -------------------------------------------------------------


def test_cli_console_url_with_fake_transports(tmp_path: Path) -> None:
    session = SessionConfig(name="keyhall", base_url="http://keyhall.test")
    token_cache = TokenCache(tmp_path / "sso")
    token_cache.store_token(
        "keyhall",
        SSOToken.from_json(
            {
                "startUrl": session.start_url,
                "region": "us-east-1",
                "accessToken": "kh_at_x",
                "expiresAt": "2999-01-01T00:00:00Z",
            }
        ),
    )
    kinds = {ACCOUNT: "aws", LOCAL_ACCOUNT: "local"}
    credentials_asked: list[str] = []

    def keyhall(request: httpx.Request) -> httpx.Response:
        assert request.headers["x-amz-sso_bearer_token"] == "kh_at_x"
        account = request.url.params["account_id"]
        if request.url.path == "/federation/console":
            return httpx.Response(
                200,
                json={
                    "accountId": account,
                    "roleName": "Admin",
                    "accountKind": kinds[account],
                    "partition": "aws-us-gov",
                    "federationUrl": "ignored",
                    "destination": "https://console.amazonaws-us-gov.com/ec2/home",
                },
            )
        assert request.url.path == "/federation/credentials"
        credentials_asked.append(account)
        expiration = int((time.time() + 3600) * 1000)
        return httpx.Response(
            200,
            json={
                "roleCredentials": {
                    "accessKeyId": "ASIAREALREALREALREAL",
                    "secretAccessKey": "s3cr3t",
                    "sessionToken": "t0k3n",
                    "expiration": expiration,
                }
            },
        )

    signin_requests: list[httpx.Request] = []

    def signin(request: httpx.Request) -> httpx.Response:
        signin_requests.append(request)
        return httpx.Response(200, json={"SigninToken": "SIGNIN"})

    def url_for(account: str) -> str:
        return console_sign_in_url(
            profile=ProfileConfig(name="p", session_name="keyhall", account_id=account, role_name="Admin"),
            session=session,
            token_cache=token_cache,
            credential_cache=CredentialCache(str(tmp_path / "cli")),
            transport=httpx.MockTransport(keyhall),
            signin_transport=httpx.MockTransport(signin),
        )

    url = url_for(ACCOUNT)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "signin.amazonaws-us-gov.com", "/federation")
    assert parse_qs(parts.query) == {
        "Action": ["login"],
        "Issuer": ["http://keyhall.test/start"],
        "Destination": ["https://console.amazonaws-us-gov.com/ec2/home"],
        "SigninToken": ["SIGNIN"],
    }
    (request,) = signin_requests
    assert request.url.host == "signin.amazonaws-us-gov.com"
    query = parse_qs(request.url.query.decode())
    assert json.loads(query["Session"][0]) == {
        "sessionId": "ASIAREALREALREALREAL",
        "sessionKey": "s3cr3t",
        "sessionToken": "t0k3n",
    }
    assert 900 <= int(query["SessionDuration"][0]) <= 3600

    with pytest.raises(ConsoleNotAvailableError, match="emulated by Keyhall"):
        url_for(LOCAL_ACCOUNT)
    assert credentials_asked == [ACCOUNT]  # a local account's credentials never leave for AWS sign-in
