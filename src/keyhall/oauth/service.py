"""sso-oidc operations (RegisterClient, StartDeviceAuthorization, CreateToken) and the approvals behind
them, each with its audit record in the same transaction.

Refusals that change state (a replayed refresh token or code revokes a session; a wrong PKCE verifier burns
the code) are committed first and raised after, so the protection sticks even though the request fails.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Connection

from keyhall.audit.events import Actor, AuditEvent
from keyhall.audit.writer import AuditWriter
from keyhall.clock import Clock
from keyhall.db.database import Database
from keyhall.directory import store as directory_store
from keyhall.errors import (
    AuthorizationPending,
    ExpiredToken,
    InvalidGrant,
    InvalidRequest,
    OAuthError,
    SlowDown,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from keyhall.instance import require_instance
from keyhall.oauth import codes, device
from keyhall.oauth.clients import (
    CODE_GRANT,
    DEVICE_GRANT,
    REFRESH_GRANT,
    Client,
    Registration,
    authenticate_client,
    register_client,
)
from keyhall.oauth.tokens import IssuedTokens, issue_tokens, rotate_refresh_token
from keyhall.signin.sessions import PortalSession, SessionService

log = logging.getLogger("keyhall.oauth")
SOURCE = "sso-oauth.amazonaws.com"
QUIET_ERRORS = (AuthorizationPending, SlowDown)  # every poll would otherwise write a record


@dataclass(frozen=True)
class CreateTokenRequest:
    client_id: str
    client_secret: str
    grant_type: str
    device_code: str | None = None
    code: str | None = None
    refresh_token: str | None = None
    redirect_uri: str | None = None
    code_verifier: str | None = None


class OidcService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        audit: AuditWriter,
        sessions: SessionService,
        *,
        device_interval: int = 5,
        device_code_seconds: int = device.DEVICE_CODE_SECONDS,
    ) -> None:
        self._db = db
        self._clock = clock
        self._audit = audit
        self._sessions = sessions
        self._device_interval = device_interval
        self._device_code_seconds = device_code_seconds

    # ---- RegisterClient ------------------------------------------------------------------------

    def register_client(
        self,
        actor: Actor,
        *,
        name: str,
        client_type: str,
        scopes: list[str] | None,
        grant_types: list[str] | None,
        redirect_uris: list[str] | None,
        issuer_url: str | None,
    ) -> Registration:
        with self._db.write() as conn:
            instance = require_instance(conn)
            if grant_types and DEVICE_GRANT in grant_types and not instance.device_grant_enabled:
                raise UnsupportedGrantType("The device authorization grant is turned off on this instance")
            registration = register_client(
                conn,
                self._clock,
                name=name,
                client_type=client_type,
                scopes=scopes,
                grant_types=grant_types,
                redirect_uris=redirect_uris,
                issuer_url=issuer_url,
                source_ip=actor.source_ip,
            )
            self._audit.record(
                conn,
                actor,
                AuditEvent(
                    SOURCE,
                    "RegisterClient",
                    resource_type="OAuthClient",
                    resource_id=registration.client.id,
                    request_parameters={
                        "clientName": name,
                        "clientType": client_type,
                        "scopes": list(registration.client.scopes),
                        "grantTypes": list(registration.client.grant_types),
                        "redirectUris": list(registration.client.redirect_uris),
                    },
                ),
            )
            return registration

    # ---- StartDeviceAuthorization --------------------------------------------------------------

    def start_device_authorization(
        self, actor: Actor, *, client_id: str, client_secret: str, start_url: str | None
    ) -> device.DeviceStart:
        with self._db.write() as conn:
            instance = require_instance(conn)
            client = authenticate_client(conn, self._clock, client_id, client_secret)
            if not instance.device_grant_enabled:
                raise UnauthorizedClient("The device authorization grant is turned off on this instance")
            if not client.allows(DEVICE_GRANT):
                raise UnauthorizedClient("This client was not registered for the device grant")
            started = device.start(
                conn,
                self._clock,
                client_id=client.id,
                start_url=start_url,
                interval=self._device_interval,
                source_ip=actor.source_ip,
                user_agent=actor.user_agent,
                lifetime=self._device_code_seconds,
            )
            self._audit.record(
                conn,
                actor,
                AuditEvent(
                    SOURCE,
                    "StartDeviceAuthorization",
                    resource_type="OAuthClient",
                    resource_id=client.id,
                    request_parameters={"clientId": client.id, "startUrl": start_url},
                    response_elements={"userCode": started.user_code, "expiresIn": started.expires_in},
                ),
            )
            return started

    # ---- CreateToken ---------------------------------------------------------------------------

    def create_token(self, actor: Actor, request: CreateTokenRequest) -> IssuedTokens:
        try:
            outcome = self._create_token(actor, request)
        except OAuthError as error:
            if not isinstance(error, QUIET_ERRORS):
                self._record_failure(actor, request, error)
            raise
        if isinstance(outcome, OAuthError):  # refusal whose state change is already committed
            if not isinstance(outcome, QUIET_ERRORS):
                self._record_failure(actor, request, outcome)
            raise outcome
        return outcome

    def _create_token(self, actor: Actor, request: CreateTokenRequest) -> IssuedTokens | OAuthError:
        with self._db.write() as conn:
            instance = require_instance(conn)
            client = authenticate_client(conn, self._clock, request.client_id, request.client_secret)
            if request.grant_type not in (DEVICE_GRANT, CODE_GRANT, REFRESH_GRANT):
                raise UnsupportedGrantType(f"Unsupported grantType {request.grant_type!r}")
            if not client.allows(request.grant_type):
                raise UnauthorizedClient(f"This client was not registered for {request.grant_type}")
            lifetime = instance.portal_session_minutes * 60
            if request.grant_type == DEVICE_GRANT:
                if not instance.device_grant_enabled:
                    raise UnauthorizedClient("The device authorization grant is turned off on this instance")
                return self._device_token(conn, actor, client, request, lifetime)
            if request.grant_type == CODE_GRANT:
                return self._code_token(conn, actor, client, request, lifetime)
            return self._refresh(conn, actor, client, request)

    def _device_token(
        self, conn: Connection, actor: Actor, client: Client, request: CreateTokenRequest, lifetime: float
    ) -> IssuedTokens | OAuthError:
        if not request.device_code:
            raise InvalidRequest("deviceCode is required for the device_code grant")
        approved = device.poll(conn, self._clock, client_id=client.id, device_code=request.device_code)
        if isinstance(approved, OAuthError):
            return approved
        # device-code phishing redeems, on the attacker's machine, a code its victim approved; a code started
        # on one address and redeemed from another is the mark of it (security.md §1.3 f): recorded, and a
        # warning for whoever watches the logs
        same_address = actor.source_ip == approved.initiator_ip
        if not same_address:
            log.warning(
                "device code redeemed from another address than the one that started it",
                extra={
                    "device_authorization": approved.id,
                    "client_id": client.id,
                    "initiator_ip": approved.initiator_ip,
                    "redeemer_ip": actor.source_ip,
                },
            )
        tokens, _ = self._new_cli_session(
            conn,
            actor,
            client,
            user_id=approved.user_id,
            parent_id=approved.approved_session_id,
            lifetime=lifetime,
            grant=DEVICE_GRANT,
            audit_details={
                "DeviceInitiatorIp": approved.initiator_ip,
                "DeviceApproverIp": approved.approver_ip,
                "RedeemedFromInitiatorIp": same_address,
            },
        )
        return tokens

    def _code_token(
        self, conn: Connection, actor: Actor, client: Client, request: CreateTokenRequest, lifetime: float
    ) -> IssuedTokens | OAuthError:
        if not request.code:
            raise InvalidRequest("code is required for the authorization_code grant")
        redeemed = codes.redeem(
            conn,
            self._clock,
            client_id=client.id,
            code=request.code,
            redirect_uri=request.redirect_uri,
            code_verifier=request.code_verifier,
        )
        if isinstance(redeemed, codes.CodeRefusal):
            return ExpiredToken(redeemed.reason) if redeemed.expired else InvalidGrant(redeemed.reason)
        tokens, session_id = self._new_cli_session(
            conn,
            actor,
            client,
            user_id=redeemed.user_id,
            parent_id=redeemed.browser_session_id,
            lifetime=lifetime,
            grant=CODE_GRANT,
            scopes=redeemed.scopes,
        )
        codes.record_issued_session(conn, redeemed.code_hash, session_id)
        return tokens

    def _refresh(
        self, conn: Connection, actor: Actor, client: Client, request: CreateTokenRequest
    ) -> IssuedTokens | OAuthError:
        if not request.refresh_token:
            raise InvalidRequest("refreshToken is required for the refresh_token grant")
        outcome = rotate_refresh_token(
            conn, self._clock, client_id=client.id, refresh_token=request.refresh_token
        )
        if outcome.tokens is None:
            if outcome.reuse_detected and outcome.session_id:
                self._audit.record(
                    conn,
                    actor,
                    AuditEvent(
                        "signin.amazonaws.com",
                        "RevokeSession",
                        resource_type="Session",
                        resource_id=outcome.session_id,
                        additional_data={"Reason": "refresh token reuse", "UserId": outcome.user_id},
                    ),
                )
            return InvalidGrant(outcome.refused)
        # a CLI session is seen when it refreshes (about hourly): what the sessions page shows as its last
        # activity; GetRoleCredentials does not write it, to keep the hot path to its one audit insert
        if outcome.session_id is not None:
            self._sessions.touch(conn, outcome.session_id)
        self._audit.record(
            conn,
            _as_user(conn, actor, outcome.user_id),
            AuditEvent(
                SOURCE,
                "CreateToken",
                resource_type="Session",
                resource_id=outcome.session_id,
                request_parameters={"clientId": client.id, "grantType": REFRESH_GRANT},
                additional_data={"SessionId": outcome.session_id},
            ),
        )
        return outcome.tokens

    def _new_cli_session(
        self,
        conn: Connection,
        actor: Actor,
        client: Client,
        *,
        user_id: str,
        parent_id: str | None,
        lifetime: float,
        grant: str,
        scopes: list[str] | None = None,
        audit_details: dict[str, object] | None = None,
    ) -> tuple[IssuedTokens, str]:

        user = directory_store.get_user(conn, user_id)
        if user is None or not user.enabled:
            raise InvalidGrant("The user who approved this request is no longer enabled")
        parent: PortalSession | None = self._sessions.get(conn, parent_id) if parent_id else None
        session, _ = self._sessions.create(
            conn,
            user_id=user.id,
            kind="cli",
            lifetime_seconds=lifetime,
            auth_time=parent.auth_time if parent else None,
            mfa_method=parent.mfa_method if parent else None,
            parent_id=parent_id,
            client_id=client.id,
            source_ip=actor.source_ip,
            user_agent=actor.user_agent,
        )
        tokens = issue_tokens(
            conn,
            self._clock,
            session_id=session.id,
            user_id=user.id,
            client_id=client.id,
            scopes=scopes or list(client.scopes),
            session_expires_at=session.expires_at,
        )
        self._audit.record(
            conn,
            _as_user(conn, actor, user.id),
            AuditEvent(
                SOURCE,
                "CreateToken",
                resource_type="Session",
                resource_id=session.id,
                request_parameters={"clientId": client.id, "grantType": grant},
                additional_data={
                    "SessionId": session.id,
                    "ApprovingSessionId": parent_id,
                    **(audit_details or {}),
                },
            ),
        )
        return tokens, session.id

    def _record_failure(self, actor: Actor, request: CreateTokenRequest, error: OAuthError) -> None:
        with self._db.write() as conn:
            self._audit.record(
                conn,
                actor,
                AuditEvent(
                    SOURCE,
                    "CreateToken",
                    request_parameters={"clientId": request.client_id, "grantType": request.grant_type},
                    error_code=error.aws_code,
                ),
            )


def _as_user(conn: Connection, actor: Actor, user_id: str | None) -> Actor:
    """The same request, attributed to the user it acts for (CloudTrail's userIdentity)."""
    user = directory_store.get_user(conn, user_id) if user_id else None
    if user is None:
        return actor
    return Actor(
        type="IdentityCenterUser",
        id=user.id,
        name=user.user_name,
        source_ip=actor.source_ip,
        user_agent=actor.user_agent,
        request_id=actor.request_id,
    )
