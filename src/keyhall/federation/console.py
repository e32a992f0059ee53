"""Console sign-in to a real AWS account, as the permission set's role.

Two ways in, as AWS documents them:

- SAML POST ("Enabling SAML 2.0 federated principals to access the AWS Management Console"): the browser
  posts the signed SAML response and a RelayState (the permission set's relay state, else the console home)
  to ``https://<signin host>/saml``. Used by the portal's ``GET /console`` page when federation is SAML;
  nothing leaves the server, so it works for private deployments.
- The federation endpoint ("Enable custom identity broker access to the AWS console"): role credentials are
  exchanged for a sign-in token (``Action=getSigninToken``), and the person opens
  ``…/federation?Action=login&Issuer=…&Destination=…&SigninToken=…``. Used by `keyhall console` on the
  user's machine (keyhall.client.console) and by the page when federation is OIDC.

``ConsoleService`` checks the entitlement from current data and audits every sign-in as ``Federate``
(CloudTrail's name for IdC console sign-ins) before anything is handed out.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from keyhall.access import store as access_store
from keyhall.access.portal import (
    CredentialIssueError,
    ForbiddenError,
    IssuedRoleCredentials,
    IssueRequest,
)
from keyhall.audit.events import Actor, AuditEvent
from keyhall.audit.writer import AuditWriter
from keyhall.clock import Clock
from keyhall.db.database import Database
from keyhall.directory.models import name_key
from keyhall.errors import KeyhallError, ValidationError
from keyhall.federation import naming, saml
from keyhall.federation.issuer import AwsFederationIssuer
from keyhall.federation.settings import FederationSettings, load_federation_settings
from keyhall.ids import is_account_id
from keyhall.instance import require_instance
from keyhall.oauth.tokens import resolve_access_token

if TYPE_CHECKING:
    import httpx

SOURCE = "sso.amazonaws.com"
#: A console sign-in token is valid for 15 minutes; the URL carrying it must be used at once.
SIGNIN_TIMEOUT = 10.0
MIN_CONSOLE_SECONDS = 900
MAX_CONSOLE_SECONDS = 43200
_HOST = re.compile(r"[a-z0-9][a-z0-9.-]{0,252}")


class ConsoleNotAvailableError(KeyhallError):
    """A local account has no AWS Management Console (it exists only in Keyhall's STS)."""

    status = 400
    aws_code = "InvalidRequestException"
    query_type = "Sender"


def console_home(partition: str) -> str:
    return f"https://{naming.CONSOLE_HOSTS[partition]}/"


def saml_signin_url(partition: str) -> str:
    return naming.saml_audience(partition)


def federation_url(partition: str) -> str:
    return f"https://{naming.SIGNIN_HOSTS[partition]}/federation"


def destination(partition: str, relay_state: str | None) -> str:
    """Where the console opens: the permission set's relay state, else the console home."""
    return relay_state or console_home(partition)


@dataclass(frozen=True)
class ConsolePostForm:
    """The auto-submitted form of the SAML POST binding (SAML Bindings §3.5)."""

    action: str
    saml_response: str
    relay_state: str
    partition: str

    def form_sources(self) -> tuple[str, ...]:
        """CSP ``form-action`` sources for the page posting this form. Browsers apply ``form-action`` to
        the redirects that answer the POST too, and AWS sign-in answers with redirects to the console (a
        regional ``*.console…`` host, or the relay state's host)."""
        signin = naming.SIGNIN_HOSTS[self.partition]
        console = naming.CONSOLE_HOSTS[self.partition]
        sources = [f"https://{signin}", f"https://*.{signin}", f"https://{console}", f"https://*.{console}"]
        parts = urlsplit(self.relay_state)
        host = parts.hostname or ""
        if parts.scheme == "https" and _HOST.fullmatch(host) and f"https://{host}" not in sources:
            sources.append(f"https://{host}")
        return tuple(sources)


def console_post_form(response: bytes, *, partition: str, relay_state: str | None) -> ConsolePostForm:
    return ConsolePostForm(
        action=saml_signin_url(partition),
        saml_response=saml.encode_response(response),
        relay_state=destination(partition, relay_state),
        partition=partition,
    )


# ---- the federation endpoint ---------------------------------------------------------------------------


def signin_session(access_key_id: str, secret_access_key: str, session_token: str) -> str:
    """The ``Session`` parameter of getSigninToken: the credentials as compact JSON."""
    return json.dumps(
        {"sessionId": access_key_id, "sessionKey": secret_access_key, "sessionToken": session_token},
        separators=(",", ":"),
    )


def console_session_seconds(expiration: float, now: float) -> int | None:
    """``SessionDuration`` for role credentials: what is left of them, within AWS's 900..43200; None (let AWS
    choose) when less than 15 minutes are left."""
    remaining = int(expiration - now)
    if remaining < MIN_CONSOLE_SECONDS:
        return None
    return min(remaining, MAX_CONSOLE_SECONDS)


def get_signin_token(
    *,
    partition: str,
    access_key_id: str,
    secret_access_key: str,
    session_token: str,
    session_seconds: int | None,
    transport: httpx.BaseTransport | None = None,
) -> str:
    """``Action=getSigninToken`` at the partition's federation endpoint: the sign-in token."""
    params = {
        "Action": "getSigninToken",
        "Session": signin_session(access_key_id, secret_access_key, session_token),
    }
    if session_seconds is not None:
        params["SessionDuration"] = str(session_seconds)
    import httpx  # only here: admin commands that build the container need no HTTP client

    url = federation_url(partition)
    try:
        with httpx.Client(transport=transport, timeout=SIGNIN_TIMEOUT, follow_redirects=False) as client:
            answer = client.get(url, params=params)
    except httpx.HTTPError as exc:
        raise CredentialIssueError(
            f"Keyhall could not reach the AWS federation endpoint {url} ({exc})",
            upstream_code="SigninUnreachable",
        ) from exc
    token = None
    if answer.status_code == 200:
        try:
            token = answer.json().get("SigninToken")
        except (ValueError, AttributeError):
            token = None
    if not isinstance(token, str) or not token:
        raise CredentialIssueError(
            f"The AWS federation endpoint refused the credentials (HTTP {answer.status_code}); the console "
            "sign-in token could not be obtained",
            upstream_code=f"SigninHTTP{answer.status_code}",
        )
    return token


def login_url(*, partition: str, issuer: str, destination_url: str, signin_token: str) -> str:
    """``Action=login``: opening it signs the browser in to the console (within 15 minutes)."""
    query = urlencode(
        {"Action": "login", "Issuer": issuer, "Destination": destination_url, "SigninToken": signin_token}
    )
    return f"{federation_url(partition)}?{query}"


# ---- the service ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsoleTarget:
    """An (account, permission set) the person may sign in to, and where the console should open."""

    account_id: str
    account_kind: str
    permission_set_id: str
    permission_set_name: str
    session_seconds: int
    relay_state: str | None
    partition: str
    destination: str


@dataclass(frozen=True)
class ConsoleRedirect:
    """The federation endpoint's login URL (OIDC federation: no SAML response to post)."""

    url: str


class ConsoleService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        audit: AuditWriter,
        issuer: AwsFederationIssuer,
        *,
        public_url: str,
        signin_transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._audit = audit
        self._issuer = issuer
        self._public_url = public_url.rstrip("/")
        self._signin_transport = signin_transport

    def target(self, *, user_id: str, account_id: str | None, role_name: str | None) -> ConsoleTarget:
        """The entitlement, checked from current data (ForbiddenError when there is none)."""
        if not account_id or not is_account_id(account_id):
            raise ValidationError("account_id must be a 12-digit account id")
        if not role_name or len(role_name) > 32:
            raise ValidationError("role_name must name a permission set")
        with self._db.read() as conn:
            permission_set = access_store.entitled_permission_set(
                conn, user_id, account_id, name_key(role_name)
            )
            account = access_store.get_account(conn, account_id)
            settings = load_federation_settings(conn)
        if permission_set is None or account is None:
            raise ForbiddenError("No access")
        return ConsoleTarget(
            account_id=account_id,
            account_kind=account.kind,
            permission_set_id=permission_set.id,
            permission_set_name=permission_set.name,
            session_seconds=permission_set.session_seconds,
            relay_state=permission_set.relay_state,
            partition=settings.partition,
            destination=destination(settings.partition, permission_set.relay_state),
        )

    def target_for_token(
        self, access_token: str | None, account_id: str | None, role_name: str | None
    ) -> ConsoleTarget:
        """The same for a CLI bearer token (`keyhall console`)."""
        from keyhall.errors import UnauthorizedError

        with self._db.read() as conn:
            context = resolve_access_token(conn, self._clock, access_token or "")
        if context is None:
            raise UnauthorizedError("Session token not found or invalid")
        return self.target(user_id=context.user_id, account_id=account_id, role_name=role_name)

    def sign_in(
        self,
        actor: Actor,
        *,
        user_id: str,
        user_name: str,
        session_id: str,
        account_id: str | None,
        role_name: str | None,
    ) -> ConsolePostForm | ConsoleRedirect:
        """What the browser needs to reach the console as the role, audited as ``Federate`` first."""
        target = self.target(user_id=user_id, account_id=account_id, role_name=role_name)
        if target.account_kind != "aws":
            raise ConsoleNotAvailableError(
                f"Account {target.account_id} is a local account: it is emulated by Keyhall and has no AWS "
                "Management Console. Use it with the AWS CLI or an SDK."
            )
        with self._db.read() as conn:
            instance_id = require_instance(conn).id
        request = IssueRequest(
            instance_id=instance_id,
            account_id=target.account_id,
            permission_set_id=target.permission_set_id,
            permission_set_name=target.permission_set_name,
            user_id=user_id,
            user_name=user_name,
            session_id=session_id,
            duration_seconds=target.session_seconds,
        )
        now = self._clock.timestamp()
        settings, user, key = self._issuer.load(request)
        result: ConsolePostForm | ConsoleRedirect
        if settings.method == "saml":
            response = self._issuer.saml_response(request, settings, user, key, now=now)
            result = console_post_form(response, partition=target.partition, relay_state=target.relay_state)
            details = {"Binding": "SAML-POST"}
        else:
            credentials = self._issue_or_audit(actor, target, request, now=now)
            result = ConsoleRedirect(self._federation_login(settings, target, credentials, now=now))
            details = {"Binding": "Federation", "accessKeyId": credentials.access_key_id}
        self._record(actor, target, session_id, details)
        return result

    def _issue_or_audit(
        self, actor: Actor, target: ConsoleTarget, request: IssueRequest, *, now: float
    ) -> IssuedRoleCredentials:
        try:
            return self._issuer.issue(request, now=now)
        except CredentialIssueError as error:
            self._record(
                actor, target, request.session_id, {}, error_code=error.upstream_code or error.aws_code
            )
            raise

    def _federation_login(
        self,
        settings: FederationSettings,
        target: ConsoleTarget,
        credentials: IssuedRoleCredentials,
        *,
        now: float,
    ) -> str:
        token = get_signin_token(
            partition=settings.partition,
            access_key_id=credentials.access_key_id,
            secret_access_key=credentials.secret_access_key,
            session_token=credentials.session_token,
            session_seconds=console_session_seconds(credentials.expiration, now),
            transport=self._signin_transport,
        )
        return login_url(
            partition=settings.partition,
            issuer=self._public_url + "/start",
            destination_url=target.destination,
            signin_token=token,
        )

    def _record(
        self,
        actor: Actor,
        target: ConsoleTarget,
        session_id: str,
        details: dict[str, str],
        *,
        error_code: str | None = None,
    ) -> None:
        with self._db.write() as conn:
            self._audit.record(
                conn,
                actor,
                AuditEvent(
                    SOURCE,
                    "Federate",
                    resource_type="Account",
                    resource_id=target.account_id,
                    request_parameters={
                        "accountId": target.account_id,
                        "roleName": target.permission_set_name,
                    },
                    additional_data={
                        "SessionId": session_id,
                        "PermissionSetId": target.permission_set_id,
                        "Destination": target.destination,
                        **details,
                    },
                    error_code=error_code,
                ),
            )
