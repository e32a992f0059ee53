"""The access portal in a browser: the accounts and roles a person reaches, with access keys and console
links; their MFA devices (authenticator apps and WebAuthn security keys or passkeys); their sessions; their
password. Also the sign-in steps WebAuthn adds to ``keyhall.web.pages``: a security key as the second
factor, passkey sign-in, and the enrolment the ``required`` MFA policy forces before any session exists.

Handlers parse, check the CSRF token, do their work in one transaction (audit records included) and render,
on the plumbing of ``keyhall.web.pages``. The WebAuthn ceremonies are JSON endpoints driven by
``static/webauthn.js``; they take the CSRF token in the ``X-CSRF-Token`` header, and keep the challenge in a
short-lived sealed cookie whose challenge the service marks as spent on first use.
"""

from __future__ import annotations

import base64
import re
import shlex
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import segno
from sqlalchemy import Connection, delete, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from keyhall.access import store as access_store
from keyhall.access.models import Account, PermissionSet
from keyhall.access.portal import (
    CredentialIssuer,
    FederationNotConfiguredError,
    ForbiddenError,
    IssuedRoleCredentials,
    IssueRequest,
    PortalService,
    grc_audit_event,
)
from keyhall.access.service import AccessService
from keyhall.api import sso_portal
from keyhall.api.common import json_body, request_actor
from keyhall.audit.events import Actor, AuditEvent
from keyhall.audit.writer import AuditWriter
from keyhall.db.tables import totp_devices
from keyhall.directory import store as directory_store
from keyhall.directory.models import User, name_key
from keyhall.errors import KeyhallError, UnauthorizedError, ValidationError
from keyhall.ids import is_account_id
from keyhall.instance import require_instance
from keyhall.keys import derive_key
from keyhall.oauth.clients import load_client
from keyhall.signin import totp
from keyhall.signin.passwords import PasswordHasher
from keyhall.signin.service import (
    ACCOUNT_POLICY,
    ADDRESS_POLICY,
    PASSWORD,
    TOTP,
    SignInStep,
    StepKind,
    TotpEnrolment,
    account_bucket,
    address_bucket,
    too_many_attempts,
)
from keyhall.signin.service import SOURCE as SIGNIN_SOURCE
from keyhall.signin.sessions import PortalSession
from keyhall.signin.webauthn import (
    CEREMONY_SECONDS,
    MAX_TOTP_DEVICES,
    MAX_WEBAUTHN_DEVICES,
    WebAuthnService,
    count_totp_devices,
    lock_user,
)
from keyhall.web import pages
from keyhall.web.pages import (
    Page,
    SignedIn,
    WebContainer,
    ago_text,
    complete_sign_in,
    form_field,
    in_text,
    page_endpoint,
    this_url,
    utc_text,
)
from keyhall.web.security import (
    DEFAULT_NEXT,
    SESSION_COOKIE,
    open_flow,
    safe_next,
    seal_flow,
    security_headers,
)

#: Sealed state of one WebAuthn ceremony (its challenge, for whom, for what); never longer than it may take.
CEREMONY_COOKIE = "kh_webauthn"
CSRF_HEADER = "x-csrf-token"
#: The region to give the AWS CLI for the sso-session: Keyhall answers the same in every region.
PORTAL_REGION = "us-east-1"
FORBIDDEN = "This request has expired or was not sent from this site. Reload the page and try again."
WRONG_PASSWORD = "The password is incorrect."  # noqa: S105 - a message, not a password
_TOUCH_SECONDS = 60
_SAFE_SHELL = re.compile(r"^[A-Za-z0-9/+=_.:-]+$")


class PortalContainer(WebContainer, Protocol):
    """What the portal needs from the process's container, beyond what the sign-in pages need."""

    access: AccessService
    portal: PortalService
    hasher: PasswordHasher
    webauthn: WebAuthnService


# ---- services: no HTTP below this line until the handlers -------------------------------------------


@dataclass(frozen=True)
class AccountEntry:
    """One account a person reaches and the roles (permission sets) they have in it."""

    account: Account
    roles: tuple[PermissionSet, ...]

    @property
    def search_text(self) -> str:
        words = [self.account.name, self.account.id, self.account.email, *(r.name for r in self.roles)]
        return " ".join(words).casefold()

    def matches(self, query: str) -> bool:
        return all(word in self.search_text for word in query.casefold().split())


def reachable_accounts(access: AccessService, conn: Connection, user_id: str) -> list[AccountEntry]:
    """The active accounts a user reaches directly or through groups, sorted by name, each with its roles:
    what ListAccounts and ListAccountRoles answer, in one query."""
    grouped: dict[str, tuple[Account, list[PermissionSet]]] = {}
    for entitlement in access.user_entitlements(conn, user_id):
        if entitlement.account.status != "ACTIVE":
            continue
        _, roles = grouped.setdefault(entitlement.account.id, (entitlement.account, []))
        roles.append(entitlement.permission_set)
    entries = [AccountEntry(account, tuple(roles)) for account, roles in grouped.values()]
    entries.sort(key=lambda e: (e.account.name.casefold(), e.account.id))
    return entries


@dataclass(frozen=True)
class AccessKeys:
    account: Account
    role_name: str
    credentials: IssuedRoleCredentials


@dataclass(frozen=True)
class BrowserGrant:
    """What a browser session may be issued for one role: checked, not yet minted."""

    account: Account
    user: User
    request: IssueRequest
    issuer: CredentialIssuer


def browser_grant(
    container: PortalContainer, conn: Connection, session: PortalSession, account_id: str, role_name: str
) -> BrowserGrant:
    """GetRoleCredentials' checks for a browser session instead of a bearer token: session alive, user
    enabled, account active, assignment now; and the issuer GetRoleCredentials uses for the account."""
    if not is_account_id(account_id):
        raise ValidationError("account_id must be a 12-digit account id")
    if not role_name or len(role_name) > 32:
        raise ValidationError("role_name must name a permission set")
    current = container.sessions.get(conn, session.id)
    user = directory_store.get_user(conn, session.user_id)
    if current is None or not current.active(container.clock.timestamp()) or user is None or not user.enabled:
        raise UnauthorizedError("Your sign-in has ended. Sign in again.")
    permission_set = access_store.entitled_permission_set(conn, user.id, account_id, name_key(role_name))
    account = access_store.get_account(conn, account_id)
    if permission_set is None or account is None:
        raise ForbiddenError("No access")
    issuer = container.portal.issuer_for(account.kind)
    if issuer is None:
        raise FederationNotConfiguredError(
            f"Account {account_id} is a real AWS account and federation is not configured on this instance"
        )
    request = IssueRequest(
        instance_id=require_instance(conn).id,
        account_id=account_id,
        permission_set_id=permission_set.id,
        permission_set_name=permission_set.name,
        user_id=user.id,
        user_name=user.user_name,
        session_id=session.id,
        duration_seconds=permission_set.session_seconds,
        account_kind=account.kind,
    )
    return BrowserGrant(account, user, request, issuer)


def issue_for_browser_session(
    container: PortalContainer, actor: Actor, session: PortalSession, account_id: str, role_name: str
) -> AccessKeys | None:
    """GetRoleCredentials for a browser session: the checks, then minting outside any transaction (for a
    real AWS account the issuer calls AWS STS, which must never hold SQLite's write lock), then the checks
    again (the session or the assignment may have ended meanwhile) with the same audit record as the API
    writes, in one transaction. None when the person must enrol MFA first. The credentials belong to the
    browser session, so signing it out stops them at Keyhall's STS, as for the CLI."""
    with container.db.read() as conn:
        if mfa_missing(container, conn, session.user_id):
            return None
        grant = browser_grant(container, conn, session, account_id, role_name)
    credentials = grant.issuer.issue(grant.request, now=container.clock.timestamp())
    with container.db.write() as conn:
        again = browser_grant(container, conn, session, account_id, role_name)
        if again.request.permission_set_id != grant.request.permission_set_id:
            raise ForbiddenError("No access")
        event = grc_audit_event(grant.request, credentials)
        container.audit.record(conn, _as_user(actor, grant.user), event)
    return AccessKeys(grant.account, grant.request.permission_set_name, credentials)


def reauthenticate(
    container: PortalContainer, conn: Connection, user: User, password: str, actor: Actor
) -> str | None:
    """Check the password of a signed-in person before a sensitive change (ASVS 7.5.1); None when right,
    else the message to show. Throttled on the sign-in's own counters, so a stolen session cannot be used
    to guess the password faster than the sign-in page allows."""
    throttle = container.signin.throttle
    own_bucket = account_bucket(user.user_name)
    ip_bucket = address_bucket("signin", actor.source_ip)
    wait = throttle.wait(conn, own_bucket, lock=True)
    if ip_bucket:
        wait = max(wait, throttle.wait(conn, ip_bucket))
    if wait:
        return too_many_attempts(wait)
    stored = directory_store.get_password_hash(conn, user.id)
    if len(password) <= 1024 and container.hasher.verify(stored, password):
        return None
    throttle.fail(conn, own_bucket, ACCOUNT_POLICY)
    if ip_bucket:
        throttle.fail(conn, ip_bucket, ADDRESS_POLICY)
    container.audit.record(
        conn,
        _as_user(actor, user),
        AuditEvent(
            SIGNIN_SOURCE,
            "CredentialVerification",
            additional_data={
                "CredentialType": PASSWORD,
                "UserName": user.user_name,
                "Purpose": "Reauthentication",
                "CredentialVerification": "Failure",
            },
            error_code="AuthenticationFailed",
        ),
    )
    return WRONG_PASSWORD


@dataclass(frozen=True)
class TotpDevice:
    id: str
    name: str
    created_at: float
    last_used_at: float | None


def totp_device_list(conn: Connection, user_id: str) -> list[TotpDevice]:
    rows = conn.execute(
        select(
            totp_devices.c.id, totp_devices.c.name, totp_devices.c.created_at, totp_devices.c.last_used_step
        )
        .where(totp_devices.c.user_id == user_id, totp_devices.c.confirmed.is_(True))
        .order_by(totp_devices.c.created_at)
    ).all()
    return [TotpDevice(r.id, r.name, r.created_at, _last_used(r.last_used_step, r.created_at)) for r in rows]


def _last_used(step: int | None, created_at: float) -> float | None:
    """When a code was last accepted (the start of its 30-second step); None while only the enrolment's
    own code has been used."""
    if step is None:
        return None
    started = float(step * totp.TIME_STEP_SECONDS)
    return started if started > created_at else None


def remove_totp_device(
    audit: AuditWriter, conn: Connection, actor: Actor, user_id: str, device_id: str
) -> bool:
    removed = conn.execute(
        delete(totp_devices)
        .where(totp_devices.c.id == device_id, totp_devices.c.user_id == user_id)
        .returning(totp_devices.c.name)
    ).first()
    if removed is None:
        return False
    audit.record(
        conn,
        actor,
        AuditEvent(
            SIGNIN_SOURCE,
            "DeactivateMfaDevice",
            resource_type="MfaDevice",
            resource_id=device_id,
            additional_data={"CredentialType": TOTP, "UserId": user_id, "DeviceName": removed.name},
        ),
    )
    return True


def mfa_device_count(container: PortalContainer, conn: Connection, user_id: str) -> int:
    return count_totp_devices(conn, user_id) + len(container.webauthn.credentials(conn, user_id))


def mfa_missing(container: PortalContainer, conn: Connection, user_id: str) -> bool:
    """True when the instance requires MFA and the user has no device: they may only enrol one."""
    return require_instance(conn).mfa_policy == "required" and mfa_device_count(container, conn, user_id) == 0


def credential_snippets(keys: AccessKeys, *, sts_endpoint: str | None) -> dict[str, str]:
    """The three ways the AWS access portal offers credentials (aws-wire.md §3.8): shell variables,
    PowerShell variables and a ``~/.aws/credentials`` profile named ``<account>_<role>``."""
    c = keys.credentials
    values = [
        ("AWS_ACCESS_KEY_ID", c.access_key_id),
        ("AWS_SECRET_ACCESS_KEY", c.secret_access_key),
        ("AWS_SESSION_TOKEN", c.session_token),
    ]
    if sts_endpoint:  # a local account: its credentials are good at Keyhall's own STS
        values.append(("AWS_ENDPOINT_URL_STS", sts_endpoint))
    shell = [f"export {name}={_shell_quote(value)}" for name, value in values]
    powershell = [f"$Env:{name}='{value.replace(chr(39), chr(39) * 2)}'" for name, value in values]
    profile = [
        f"[{keys.account.id}_{keys.role_name}]",
        f"aws_access_key_id={c.access_key_id}",
        f"aws_secret_access_key={c.secret_access_key}",
        f"aws_session_token={c.session_token}",
    ]
    return {"shell": "\n".join(shell), "powershell": "\n".join(powershell), "file": "\n".join(profile)}


def _shell_quote(value: str) -> str:
    return f'"{value}"' if _SAFE_SHELL.fullmatch(value) else shlex.quote(value)


def _as_user(actor: Actor, user: User) -> Actor:
    return Actor(
        type="IdentityCenterUser",
        id=user.id,
        name=user.user_name,
        source_ip=actor.source_ip,
        user_agent=actor.user_agent,
        request_id=actor.request_id,
    )


def _after_factors(user: User) -> StepKind:
    return "change_password" if user.must_change_password else "done"


def _qr_data_uri(text: str) -> str:
    """The otpauth URI as an SVG QR code in a data: URI (the CSP allows data: images, never inline code)."""
    return segno.make(text, error="m").svg_data_uri(scale=5, border=2, dark="#000", light="#fff")


def _issuer_label(instance_name: str) -> str:
    """The issuer an authenticator app files the code under; a colon is reserved by the otpauth format."""
    return " ".join(instance_name.replace(":", " ").split())[:32] or "Keyhall"


# ---- HTTP plumbing -----------------------------------------------------------------------------------


def _container(page: Page) -> PortalContainer:
    container: PortalContainer = page.request.app.state.container
    return container


def _json(data: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(data, status_code=status, headers={**security_headers(), **(headers or {})})


def _json_error(message: str, *, status: int = 400, headers: dict[str, str] | None = None) -> Response:
    return _json({"error": message}, status=status, headers=headers)


def _as_json(response: Response) -> Response:
    """A redirect made by ``Page`` (with the cookies it sets) as ``{"location": …}``, for a step a script
    completes: the script then navigates there."""
    result = _json({"location": response.headers["location"]})
    for value in response.headers.getlist("set-cookie"):
        result.headers.append("set-cookie", value)
    return result


async def _json_request(page: Page) -> dict[str, Any] | Response:
    """The JSON body of a script's request, after its CSRF header; or the refusal to send back."""
    if not page.csrf_value_ok(page.request.headers.get(CSRF_HEADER)):
        return _json_error(FORBIDDEN, status=403)
    content_type = page.request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        return _json_error("Send the request as application/json.", status=415)
    try:
        return await json_body(page.request)
    except ValidationError as error:
        return _json_error(error.message)


JsonHandler = Callable[[Page], Awaitable[Response]]


def _json_endpoint(handler: JsonHandler) -> Callable[..., Awaitable[Response]]:
    """``page_endpoint`` for a script's endpoint: Keyhall errors come back as JSON, not as the error page."""

    async def wrapped(page: Page) -> Response:
        try:
            return await handler(page)
        except KeyhallError as error:
            return _json_error(error.message, status=error.status)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return page_endpoint(wrapped)


def _ceremony_key(page: Page) -> bytes:
    master_key = page.container.master_key
    assert master_key is not None  # Page refuses to serve without it
    return derive_key(master_key, "webauthn-ceremony")


def _start_ceremony(
    page: Page, response: Response, *, purpose: str, challenge: bytes, uid: str | None, wf: str | None
) -> None:
    state = {
        "p": purpose,
        "uid": uid,
        "wf": wf,
        "c": base64.urlsafe_b64encode(challenge).decode("ascii"),
        "exp": page.clock.timestamp() + CEREMONY_SECONDS,
    }
    response.set_cookie(
        CEREMONY_COOKIE,
        seal_flow(_ceremony_key(page), state),
        max_age=CEREMONY_SECONDS,
        **page.cookies.attributes(same_site="strict"),
    )


def _ceremony_challenge(page: Page, *, purpose: str, uid: str | None, wf: str | None) -> bytes | None:
    """The challenge of the ceremony this browser started, if it is for this purpose, person and sign-in."""
    state = open_flow(
        _ceremony_key(page), page.request.cookies.get(CEREMONY_COOKIE), now=page.clock.timestamp()
    )
    if state is None or state.get("p") != purpose or state.get("uid") != uid or state.get("wf") != wf:
        return None
    try:
        return base64.urlsafe_b64decode(str(state["c"]))
    except (KeyError, ValueError):
        return None


def _end_ceremony(page: Page, response: Response) -> None:
    response.delete_cookie(CEREMONY_COOKIE, **page.cookies.attributes(same_site="strict"))


def _credential(body: dict[str, Any]) -> dict[str, Any] | None:
    value = body.get("credential")
    return value if isinstance(value, dict) else None


async def _signed_in(page: Page) -> SignedIn | Response:
    """The signed-in person, or the way to the sign-in page; notes the session's last activity."""
    current = page.current
    if current is None:
        return page.to_login(this_url(page.request))
    container = page.container
    if container.clock.timestamp() - current.session.last_seen_at > _TOUCH_SECONDS:

        def touch() -> None:
            with container.db.write() as conn:
                container.sessions.touch(conn, current.session.id)

        await run_in_threadpool(touch)
    return current


def _done_message(page: Page, messages: dict[str, str]) -> str | None:
    return messages.get(page.request.query_params.get("done", ""))


# ---- the portal: accounts and access keys ------------------------------------------------------------


@page_endpoint
async def start(page: Page) -> Response:
    """The start page (the start URL the AWS CLI is configured with): accounts, their roles, search."""
    signed = await _signed_in(page)
    if isinstance(signed, Response):
        return signed
    container = _container(page)
    query = " ".join((page.request.query_params.get("q") or "").split())[:128]

    def work() -> tuple[Any, list[AccountEntry], bool]:
        with container.db.read() as conn:
            return (
                require_instance(conn),
                reachable_accounts(container.access, conn, signed.user.id),
                mfa_missing(container, conn, signed.user.id),
            )

    instance, entries, missing = await run_in_threadpool(work)
    if missing:
        return page.redirect("/mfa")
    public_url = container.settings.effective_public_url
    now = page.clock.timestamp()
    return page.render(
        "portal/home.html",
        section="accounts",
        instance=instance,
        entries=[e for e in entries if e.matches(query)] if query else entries,
        total=len(entries),
        query=query,
        public_url=public_url,
        start_url=f"{public_url}/start",
        region=PORTAL_REGION,
        signed_in_at=utc_text(signed.session.auth_time),
        expires_in=in_text(signed.session.expires_at - now),
    )


@page_endpoint
async def access_keys(page: Page) -> Response:
    """Access keys for one role: minted now, shown once, as shell, PowerShell and credentials-file text."""
    signed = await _signed_in(page)
    if isinstance(signed, Response):
        return signed
    form = await page.form()
    if not page.csrf_ok(form):
        return page.forbidden()
    account_id = form_field(form, "account_id", limit=12)
    role_name = form_field(form, "role_name", limit=32)
    container = _container(page)
    actor = page.actor()

    try:
        keys = await run_in_threadpool(
            issue_for_browser_session, container, actor, signed.session, account_id, role_name
        )
    except ForbiddenError:
        return page.error("You do not have access to that role in that account.", status=403)
    if keys is None:
        return page.redirect("/mfa")
    public_url = container.settings.effective_public_url
    expires = keys.credentials.expiration
    return page.render(
        "portal/credentials.html",
        section="accounts",
        keys=keys,
        local=keys.account.kind == "local",
        snippets=credential_snippets(keys, sts_endpoint=public_url if keys.account.kind == "local" else None),
        expires_at=utc_text(expires),
        expires_iso=datetime.fromtimestamp(expires, UTC).isoformat().replace("+00:00", "Z"),
        expires_in=in_text(expires - page.clock.timestamp()),
        public_url=public_url,
        start_url=f"{public_url}/start",
        region=PORTAL_REGION,
    )


# ---- MFA devices -------------------------------------------------------------------------------------

_MFA_DONE = {
    "totp-added": "Authenticator app added.",
    "webauthn-added": "Security key or passkey added.",
    "removed": "Device removed.",
}


def _mfa_view(container: PortalContainer, conn: Connection, user_id: str) -> dict[str, Any]:
    instance = require_instance(conn)
    apps = totp_device_list(conn, user_id)
    keys = container.webauthn.credentials(conn, user_id)
    total = len(apps) + len(keys)
    return {
        "section": "mfa",
        "policy": instance.mfa_policy,
        "apps": apps,
        "keys": keys,
        "max_apps": MAX_TOTP_DEVICES,
        "max_keys": MAX_WEBAUTHN_DEVICES,
        "missing": instance.mfa_policy == "required" and total == 0,
        "keep_one": instance.mfa_policy == "required" and total == 1,
        "utc": utc_text,
    }


@page_endpoint
async def mfa(page: Page) -> Response:
    """The person's MFA devices, and the ways to add or remove one."""
    signed = await _signed_in(page)
    if isinstance(signed, Response):
        return signed
    container = _container(page)

    def work() -> dict[str, Any]:
        with container.db.read() as conn:
            return _mfa_view(container, conn, signed.user.id)

    return page.render(
        "portal/mfa.html", done=_done_message(page, _MFA_DONE), **await run_in_threadpool(work)
    )


@page_endpoint
async def mfa_totp_begin(page: Page) -> Response:
    """Start adding an authenticator app: a new secret, shown once as a QR code and as text."""
    signed = await _signed_in(page)
    if isinstance(signed, Response):
        return signed
    form = await page.form()
    if not page.csrf_ok(form):
        return page.forbidden()
    name = " ".join(form_field(form, "name", limit=64).split()) or "Authenticator app"
    container = _container(page)

    def work() -> TotpEnrolment | None:
        with container.db.write() as conn:
            lock_user(conn, signed.user.id)
            if count_totp_devices(conn, signed.user.id) >= MAX_TOTP_DEVICES:
                return None
            issuer = _issuer_label(require_instance(conn).name)
            return container.signin.begin_totp_enrolment(conn, signed.user.id, name=name, issuer=issuer)

    enrolment = await run_in_threadpool(work)
    if enrolment is None:
        return page.error(
            f"You already have {MAX_TOTP_DEVICES} authenticator apps; remove one first.", status=409
        )
    return page.render(
        "portal/mfa_totp.html",
        section="mfa",
        enrolment=enrolment,
        device_id=enrolment.device_id,
        qr=_qr_data_uri(enrolment.provisioning_uri),
    )


@page_endpoint
async def mfa_totp_confirm(page: Page) -> Response:
    """Finish adding an authenticator app with a first code from it."""
    signed = await _signed_in(page)
    if isinstance(signed, Response):
        return signed
    form = await page.form()
    if not page.csrf_ok(form):
        return page.forbidden()
    device_id = form_field(form, "device_id", limit=36)
    code = form_field(form, "code", limit=16)
    container = _container(page)
    actor = page.actor()

    def work() -> str | None:
        with container.db.write() as conn:
            lock_user(conn, signed.user.id)
            if count_totp_devices(conn, signed.user.id) >= MAX_TOTP_DEVICES:
                return f"You already have {MAX_TOTP_DEVICES} authenticator apps; remove one first."
            if not container.signin.confirm_totp_enrolment(
                conn, signed.user.id, device_id, code, actor=actor
            ):
                return "That code is not right. Check the time on your phone and enter the current code."
            return None

    problem = await run_in_threadpool(work)
    if problem is not None:
        return page.render(
            "portal/mfa_totp.html",
            status=400,
            section="mfa",
            enrolment=None,
            device_id=device_id,
            qr=None,
            error=problem,
        )
    return page.redirect("/mfa?done=totp-added")


@_json_endpoint
async def mfa_webauthn_register_options(page: Page) -> Response:
    """Options for ``navigator.credentials.create()``: a new security key or passkey for this person."""
    signed = await _signed_in(page)
    if isinstance(signed, Response):
        return _json_error("Your sign-in has ended. Sign in again.", status=401)
    body = await _json_request(page)
    if isinstance(body, Response):
        return body
    container = _container(page)

    def work() -> Any:
        with container.db.read() as conn:
            return container.webauthn.registration_options(conn, signed.user)

    ceremony = await run_in_threadpool(work)
    response = _json({"publicKey": ceremony.options})
    _start_ceremony(
        page, response, purpose="register", challenge=ceremony.challenge, uid=signed.user.id, wf=None
    )
    return response


@_json_endpoint
async def mfa_webauthn_register_verify(page: Page) -> Response:
    """Check the new credential against our challenge and keep it."""
    signed = await _signed_in(page)
    if isinstance(signed, Response):
        return _json_error("Your sign-in has ended. Sign in again.", status=401)
    body = await _json_request(page)
    if isinstance(body, Response):
        return body
    challenge = _ceremony_challenge(page, purpose="register", uid=signed.user.id, wf=None)
    credential = _credential(body)
    if challenge is None or credential is None:
        return _json_error("This request has expired. Try again.")
    name = str(body.get("name") or "")[:64]
    container = _container(page)
    actor = page.actor()

    def work() -> None:
        with container.db.write() as conn:
            container.webauthn.register(conn, actor, signed.user, credential, challenge=challenge, name=name)

    await run_in_threadpool(work)
    response = _json({"location": "/mfa?done=webauthn-added"})
    _end_ceremony(page, response)
    return response


@page_endpoint
async def mfa_remove(page: Page) -> Response:
    """Remove a device, after the password again (ASVS 7.5.1); never the last one when MFA is required."""
    signed = await _signed_in(page)
    if isinstance(signed, Response):
        return signed
    form = await page.form()
    if not page.csrf_ok(form):
        return page.forbidden()
    kind = form_field(form, "kind", limit=16)
    device_id = form_field(form, "device_id", limit=36)
    password = form_field(form, "password", limit=4096)
    container = _container(page)
    actor = page.actor()
    user_actor = _as_user(actor, signed.user)

    def work() -> tuple[str | None, dict[str, Any]]:
        with container.db.write() as conn:
            lock_user(conn, signed.user.id)
            problem = reauthenticate(container, conn, signed.user, password, actor)
            if problem is None and _mfa_view(container, conn, signed.user.id)["keep_one"]:
                problem = "MFA is required here: add another device before you remove this one."
            if problem is None:
                if kind == "totp":
                    removed = remove_totp_device(container.audit, conn, user_actor, signed.user.id, device_id)
                elif kind == "webauthn":
                    removed = container.webauthn.remove(conn, user_actor, signed.user.id, device_id)
                else:
                    removed = False
                if not removed:
                    problem = "That device is not yours or was already removed."
            return problem, _mfa_view(container, conn, signed.user.id)

    problem, view = await run_in_threadpool(work)
    if problem is not None:
        status = 429 if problem.startswith("Too many") else 400
        return page.render("portal/mfa.html", status=status, error=problem, done=None, **view)
    return page.redirect("/mfa?done=removed")


# ---- sessions ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionRow:
    session: PortalSession
    current: bool
    client_name: str | None
    created: str
    last_seen: str
    expires: str


_SESSIONS_DONE = {"revoked": "Session signed out.", "others": "Every other session is signed out."}


@page_endpoint
async def sessions(page: Page) -> Response:
    """The person's active sessions, browser and command line, with a way to end each."""
    signed = await _signed_in(page)
    if isinstance(signed, Response):
        return signed
    container = _container(page)
    now = page.clock.timestamp()

    def work() -> list[SessionRow]:
        with container.db.read() as conn:
            found = container.sessions.list_for_user(conn, signed.user.id)
            clients = {s.client_id: load_client(conn, s.client_id) for s in found if s.client_id is not None}
        return [
            SessionRow(
                s,
                s.id == signed.session.id,
                client.name if (client := clients.get(s.client_id or "")) else None,
                utc_text(s.created_at),
                ago_text(now - s.last_seen_at),
                in_text(s.expires_at - now),
            )
            for s in found
        ]

    rows = await run_in_threadpool(work)
    rows.sort(key=lambda r: (not r.current, r.session.kind != "browser", -r.session.created_at))
    return page.render(
        "portal/sessions.html", section="sessions", rows=rows, done=_done_message(page, _SESSIONS_DONE)
    )


def _signed_out(page: Page) -> Response:
    response = page.redirect("/login")
    response.delete_cookie(SESSION_COOKIE, **page.cookies.attributes(same_site="lax"))
    return response


@page_endpoint
async def sessions_revoke(page: Page) -> Response:
    """Sign out one session (and the CLI sessions it approved); signing out this one is a logout."""
    signed = await _signed_in(page)
    if isinstance(signed, Response):
        return signed
    form = await page.form()
    if not page.csrf_ok(form):
        return page.forbidden()
    session_id = form_field(form, "session_id", limit=36)
    container = _container(page)
    actor = page.actor()

    def work() -> bool:
        with container.db.write() as conn:
            target = container.sessions.get(conn, session_id)
            if target is None or target.user_id != signed.user.id:
                return False
            container.sessions.revoke(conn, actor, target.id, reason="UserSignOut")
            return True

    if not await run_in_threadpool(work):
        return page.error("That session is not yours or has already ended.", status=404)
    if session_id == signed.session.id:
        return _signed_out(page)
    return page.redirect("/sessions?done=revoked")


@page_endpoint
async def sessions_revoke_others(page: Page) -> Response:
    """Sign out every session but this browser's, command-line sessions included."""
    signed = await _signed_in(page)
    if isinstance(signed, Response):
        return signed
    form = await page.form()
    if not page.csrf_ok(form):
        return page.forbidden()
    container = _container(page)
    actor = page.actor()

    def work() -> None:
        with container.db.write() as conn:
            _revoke_others(container, conn, actor, signed)

    await run_in_threadpool(work)
    return page.redirect("/sessions?done=others")


def _revoke_others(container: PortalContainer, conn: Connection, actor: Actor, signed: SignedIn) -> int:
    ended = 0
    for other in container.sessions.list_for_user(conn, signed.user.id):
        if other.id != signed.session.id and container.sessions.revoke(
            conn, actor, other.id, reason="UserSignOutOthers"
        ):
            ended += 1
    return ended


@page_endpoint
async def sessions_revoke_all(page: Page) -> Response:
    """Sign out everywhere, this browser included."""
    signed = await _signed_in(page)
    if isinstance(signed, Response):
        return signed
    form = await page.form()
    if not page.csrf_ok(form):
        return page.forbidden()
    container = _container(page)
    actor = page.actor()

    def work() -> None:
        with container.db.write() as conn:
            container.sessions.revoke_all_for_user(conn, actor, signed.user.id, reason="UserSignOutAll")

    await run_in_threadpool(work)
    return _signed_out(page)


# ---- password ----------------------------------------------------------------------------------------


@page_endpoint
async def password(page: Page) -> Response:
    """Change the password: the current one, then a new one that meets the policy (ASVS 6.2.3)."""
    signed = await _signed_in(page)
    if isinstance(signed, Response):
        return signed
    if page.request.method == "GET":
        return page.render("portal/password.html", section="password", problems=[], changed=False, ended=0)
    form = await page.form()
    if not page.csrf_ok(form):
        return page.forbidden()
    current_password = form_field(form, "current_password", limit=4096)
    new_password = form_field(form, "new_password", limit=4096)
    sign_out_others = form_field(form, "sign_out_others", limit=8) == "on"
    if new_password != form_field(form, "confirm_password", limit=4096):
        return page.render(
            "portal/password.html",
            status=400,
            section="password",
            problems=["The two new passwords are not the same."],
            changed=False,
            ended=0,
        )
    container = _container(page)
    actor = page.actor()

    def work() -> tuple[list[str], int]:
        with container.db.write() as conn:
            problem = reauthenticate(container, conn, signed.user, current_password, actor)
            if problem is not None:
                return [problem if problem != WRONG_PASSWORD else "The current password is incorrect."], 0
            problems = container.signin.change_password(conn, signed.user.id, new_password, actor=actor)
            if problems:
                return problems, 0
            return [], _revoke_others(container, conn, actor, signed) if sign_out_others else 0

    problems, ended = await run_in_threadpool(work)
    if problems:
        status = 429 if problems[0].startswith("Too many") else 400
        return page.render(
            "portal/password.html",
            status=status,
            section="password",
            problems=problems,
            changed=False,
            ended=0,
        )
    return page.render("portal/password.html", section="password", problems=[], changed=True, ended=ended)


# ---- sign-in: a security key as the second factor ------------------------------------------------------


def _flow_ids(flow: dict[str, Any]) -> tuple[str, str]:
    return str(flow["uid"]), str(flow["wf"])


@page_endpoint
async def login_webauthn(page: Page) -> Response:
    """Step 2 for a person with a security key or passkey: use it (or the authenticator app instead)."""
    flow = page.flow("webauthn")
    if flow is None:
        return page.redirect("/login")
    uid, _ = _flow_ids(flow)
    container = _container(page)

    def work() -> bool:
        with container.db.read() as conn:
            return container.signin.has_totp(conn, uid)

    return page.render("portal/login_webauthn.html", has_totp=await run_in_threadpool(work))


@_json_endpoint
async def login_webauthn_options(page: Page) -> Response:
    flow = page.flow("webauthn")
    if flow is None:
        return _json({"error": "Your sign-in has expired.", "location": "/login"}, status=401)
    body = await _json_request(page)
    if isinstance(body, Response):
        return body
    uid, wf = _flow_ids(flow)
    container = _container(page)

    def work() -> Any:
        with container.db.read() as conn:
            return container.webauthn.authentication_options(conn, uid)

    ceremony = await run_in_threadpool(work)
    response = _json({"publicKey": ceremony.options})
    _start_ceremony(page, response, purpose="mfa", challenge=ceremony.challenge, uid=uid, wf=wf)
    return response


@_json_endpoint
async def login_webauthn_verify(page: Page) -> Response:
    flow = page.flow("webauthn")
    if flow is None:
        return _json({"error": "Your sign-in has expired.", "location": "/login"}, status=401)
    body = await _json_request(page)
    if isinstance(body, Response):
        return body
    uid, wf = _flow_ids(flow)
    challenge = _ceremony_challenge(page, purpose="mfa", uid=uid, wf=wf)
    credential = _credential(body)
    if challenge is None or credential is None:
        return _json_error("This request has expired. Try again.")
    return await _finish_webauthn_sign_in(
        page,
        credential,
        challenge=challenge,
        user_id=uid,
        workflow_id=wf,
        next_url=str(flow.get("next") or ""),
    )


async def _finish_webauthn_sign_in(
    page: Page,
    credential: dict[str, Any],
    *,
    challenge: bytes,
    user_id: str | None,
    workflow_id: str,
    next_url: str,
) -> Response:
    """Verify an assertion and, when it holds, complete the sign-in as ``pages`` does after TOTP."""
    container = _container(page)
    actor = request_actor(page.request)

    def work() -> tuple[SignInStep | None, PortalSession | None, str | None, str | None, int | None]:
        with container.db.write() as conn:
            stored, message, wait = container.webauthn.authenticate(
                conn, actor, credential, challenge=challenge, user_id=user_id, workflow_id=workflow_id
            )
            user = directory_store.get_user(conn, stored.user_id) if stored is not None else None
            if user is None:
                return None, None, None, message, wait
            # a passkey alone is its own kind of sign-in (no password), so the audit can say so
            method = "webauthn" if user_id is not None else "passkey"
            step = SignInStep(_after_factors(user), workflow_id, user.id, mfa_method=method)
            _, session, cookie = complete_sign_in(container, conn, step, actor)
            return step, session, cookie, None, None

    step, session, cookie, message, wait = await run_in_threadpool(work)
    if step is None:
        response = _json_error(
            message or "Not accepted.",
            status=429 if wait else 400,
            headers={"Retry-After": str(wait)} if wait else None,
        )
    else:
        response = _as_json(page.after_step(step, session, cookie, safe_next(next_url)))
    _end_ceremony(page, response)
    return response


# ---- sign-in: a passkey alone (it verifies the user, so it is both factors) --------------------------


@_json_endpoint
async def login_passkey_options(page: Page) -> Response:
    body = await _json_request(page)
    if isinstance(body, Response):
        return body
    container = _container(page)

    def work() -> Any:
        with container.db.read() as conn:
            return container.webauthn.authentication_options(conn, None)

    ceremony = await run_in_threadpool(work)
    response = _json({"publicKey": ceremony.options})
    _start_ceremony(page, response, purpose="passkey", challenge=ceremony.challenge, uid=None, wf=None)
    return response


@_json_endpoint
async def login_passkey_verify(page: Page) -> Response:
    body = await _json_request(page)
    if isinstance(body, Response):
        return body
    challenge = _ceremony_challenge(page, purpose="passkey", uid=None, wf=None)
    credential = _credential(body)
    if challenge is None or credential is None:
        return _json_error("This request has expired. Try again.")
    return await _finish_webauthn_sign_in(
        page,
        credential,
        challenge=challenge,
        user_id=None,
        workflow_id=str(uuid.uuid4()),
        next_url=str(body.get("next") or DEFAULT_NEXT)[:2048],
    )


# ---- sign-in: the enrolment the "required" MFA policy forces -------------------------------------------


def _already_enrolled() -> KeyhallError:
    """The person enrolled a device meanwhile (another tab, or someone else who knows the password): the
    enrolment step is over, and the next sign-in asks for that device."""
    return UnauthorizedError("A second factor is already set up for this user. Sign in again to use it.")


@page_endpoint
async def login_enrol(page: Page) -> Response:
    """After the password, for a person without any second factor where MFA is required: add one now."""
    flow = page.flow("enrol")
    if flow is None:
        return page.redirect("/login")
    uid, _ = _flow_ids(flow)
    container = _container(page)

    def work() -> tuple[str, TotpEnrolment]:
        with container.db.write() as conn:
            user = directory_store.get_user(conn, uid)
            if user is None or not user.enabled:
                raise UnauthorizedError("This user cannot sign in.")
            if mfa_device_count(container, conn, uid):
                raise _already_enrolled()
            issuer = _issuer_label(require_instance(conn).name)
            return user.user_name, container.signin.begin_totp_enrolment(conn, uid, issuer=issuer)

    user_name, enrolment = await run_in_threadpool(work)
    return page.render(
        "portal/login_enrol.html",
        user_name=user_name,
        enrolment=enrolment,
        device_id=enrolment.device_id,
        qr=_qr_data_uri(enrolment.provisioning_uri),
    )


@page_endpoint
async def login_enrol_totp(page: Page) -> Response:
    flow = page.flow("enrol")
    if flow is None:
        return page.redirect("/login")
    form = await page.form()
    if not page.csrf_ok(form):
        return page.forbidden()
    uid, wf = _flow_ids(flow)
    device_id = form_field(form, "device_id", limit=36)
    code = form_field(form, "code", limit=16)
    container = _container(page)
    actor = request_actor(page.request)

    def work() -> tuple[SignInStep | None, PortalSession | None, str | None, str]:
        with container.db.write() as conn:
            user = directory_store.get_user(conn, uid)
            if user is None or not user.enabled:
                raise UnauthorizedError("This user cannot sign in.")
            lock_user(conn, uid)
            if mfa_device_count(container, conn, uid):
                raise _already_enrolled()
            if not container.signin.confirm_totp_enrolment(conn, uid, device_id, code, actor=actor):
                return None, None, None, user.user_name
            step = SignInStep(_after_factors(user), wf, uid, mfa_method="totp")
            _, session, cookie = complete_sign_in(container, conn, step, actor)
            return step, session, cookie, user.user_name

    step, session, cookie, user_name = await run_in_threadpool(work)
    if step is None:
        return page.render(
            "portal/login_enrol.html",
            status=400,
            user_name=user_name,
            enrolment=None,
            device_id=device_id,
            qr=None,
            error="That code is not right. Check the time on your phone and enter the current code.",
        )
    return page.after_step(step, session, cookie, str(flow.get("next") or DEFAULT_NEXT))


@_json_endpoint
async def login_enrol_webauthn_options(page: Page) -> Response:
    flow = page.flow("enrol")
    if flow is None:
        return _json({"error": "Your sign-in has expired.", "location": "/login"}, status=401)
    body = await _json_request(page)
    if isinstance(body, Response):
        return body
    uid, wf = _flow_ids(flow)
    container = _container(page)

    def work() -> Any:
        with container.db.read() as conn:
            user = directory_store.get_user(conn, uid)
            if user is None or not user.enabled:
                raise UnauthorizedError("This user cannot sign in.")
            if mfa_device_count(container, conn, uid):
                raise _already_enrolled()
            return container.webauthn.registration_options(conn, user)

    ceremony = await run_in_threadpool(work)
    response = _json({"publicKey": ceremony.options})
    _start_ceremony(page, response, purpose="enrol", challenge=ceremony.challenge, uid=uid, wf=wf)
    return response


@_json_endpoint
async def login_enrol_webauthn_verify(page: Page) -> Response:
    flow = page.flow("enrol")
    if flow is None:
        return _json({"error": "Your sign-in has expired.", "location": "/login"}, status=401)
    body = await _json_request(page)
    if isinstance(body, Response):
        return body
    uid, wf = _flow_ids(flow)
    challenge = _ceremony_challenge(page, purpose="enrol", uid=uid, wf=wf)
    credential = _credential(body)
    if challenge is None or credential is None:
        return _json_error("This request has expired. Try again.")
    name = str(body.get("name") or "")[:64]
    container = _container(page)
    actor = request_actor(page.request)

    def work() -> tuple[SignInStep, PortalSession | None, str | None]:
        with container.db.write() as conn:
            user = directory_store.get_user(conn, uid)
            if user is None or not user.enabled:
                raise UnauthorizedError("This user cannot sign in.")
            lock_user(conn, uid)
            if mfa_device_count(container, conn, uid):
                raise _already_enrolled()
            container.webauthn.register(
                conn, _as_user(actor, user), user, credential, challenge=challenge, name=name
            )
            step = SignInStep(_after_factors(user), wf, uid, mfa_method="webauthn")
            _, session, cookie = complete_sign_in(container, conn, step, actor)
            return step, session, cookie

    step, session, cookie = await run_in_threadpool(work)
    response = _as_json(page.after_step(step, session, cookie, str(flow.get("next") or DEFAULT_NEXT)))
    _end_ceremony(page, response)
    return response


# ---- one path, two callers ---------------------------------------------------------------------------


async def logout(request: Request) -> Response:
    """``POST /logout`` is both the sso portal API's Logout (`aws sso logout`: a bearer token in
    ``x-amz-sso_bearer_token``, no cookie, no CSRF token) and the browser's Sign out form; the header
    decides which one answers."""
    if sso_portal.TOKEN_HEADER in request.headers:
        return await sso_portal.logout(request)
    return await pages.logout(request)


routes: list[BaseRoute] = [
    Route("/logout", logout, methods=["POST"]),
    Route("/start", start, methods=["GET"]),
    Route("/start/credentials", access_keys, methods=["POST"]),
    Route("/mfa", mfa, methods=["GET"]),
    Route("/mfa/totp", mfa_totp_begin, methods=["POST"]),
    Route("/mfa/totp/confirm", mfa_totp_confirm, methods=["POST"]),
    Route("/mfa/webauthn/register/options", mfa_webauthn_register_options, methods=["POST"]),
    Route("/mfa/webauthn/register/verify", mfa_webauthn_register_verify, methods=["POST"]),
    Route("/mfa/remove", mfa_remove, methods=["POST"]),
    Route("/sessions", sessions, methods=["GET"]),
    Route("/sessions/revoke", sessions_revoke, methods=["POST"]),
    Route("/sessions/revoke-others", sessions_revoke_others, methods=["POST"]),
    Route("/sessions/revoke-all", sessions_revoke_all, methods=["POST"]),
    Route("/password", password, methods=["GET", "POST"]),
    Route("/login/webauthn", login_webauthn, methods=["GET"]),
    Route("/login/webauthn/options", login_webauthn_options, methods=["POST"]),
    Route("/login/webauthn/verify", login_webauthn_verify, methods=["POST"]),
    Route("/login/passkey/options", login_passkey_options, methods=["POST"]),
    Route("/login/passkey/verify", login_passkey_verify, methods=["POST"]),
    Route("/login/enrol", login_enrol, methods=["GET"]),
    Route("/login/enrol/totp", login_enrol_totp, methods=["POST"]),
    Route("/login/enrol/webauthn/options", login_enrol_webauthn_options, methods=["POST"]),
    Route("/login/enrol/webauthn/verify", login_enrol_webauthn_verify, methods=["POST"]),
]
