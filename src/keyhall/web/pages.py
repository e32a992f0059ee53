"""Server-rendered pages: sign-in (password, TOTP, forced password change), device verification (RFC 8628
§5.4), consent for the code + PKCE flow (RFC 6749 §4.1, RFC 7636), the ``/start`` landing page and sign-out.

Each handler parses the form, checks its CSRF token, does its work in one transaction (audit records
included) and renders. Refusals are pages, never redirects: the only redirects go to a local path checked
by ``safe_next`` or, after an explicit Allow or Deny, to the client's registered loopback URI.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import jinja2
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyhall.api.common import client_ip, request_actor
from keyhall.audit.events import Actor, AuditEvent
from keyhall.audit.writer import AuditWriter
from keyhall.clock import Clock
from keyhall.db.database import Database
from keyhall.directory import store as directory_store
from keyhall.directory.models import User
from keyhall.errors import KeyhallError, ServiceUnavailableError
from keyhall.instance import require_instance
from keyhall.keys import derive_key
from keyhall.oauth import codes, device
from keyhall.oauth.clients import CODE_GRANT, Client, load_client
from keyhall.oauth.pkce import CHALLENGE_RE
from keyhall.oauth.redirects import find_registered
from keyhall.settings import Settings
from keyhall.signin.service import SignInService, SignInStep
from keyhall.signin.sessions import PortalSession, SessionService
from keyhall.signin.webauthn import second_factor_stage
from keyhall.web.security import (
    CSRF_FIELD,
    DEFAULT_CSP,
    DEFAULT_NEXT,
    FLOW_COOKIE,
    FLOW_COOKIE_PATH,
    FLOW_SECONDS,
    PRE_SESSION_COOKIE,
    SESSION_COOKIE,
    CookiePolicy,
    content_security_policy,
    csrf_token,
    loopback_form_target,
    new_pre_session_id,
    open_flow,
    pre_session_binding,
    safe_next,
    seal_flow,
    security_headers,
    session_binding,
    valid_pre_session_id,
    verify_csrf,
)

OAUTH_SOURCE = "sso-oauth.amazonaws.com"

SCOPE_DESCRIPTIONS = {
    "sso:account:access": "See the AWS accounts and roles assigned to you and get credentials for them",
    "openid": "Know who you are",
    "aws": "Act on your behalf with AWS",
    "sts:identity_context": "Pass your identity on to AWS STS",
}
_SIGN_IN_PATHS = frozenset(
    {"/login", "/login/totp", "/login/change-password", "/login/webauthn", "/login/enrol", "/logout"}
)
#: The page of each sign-in step after the password (the WebAuthn and enrolment pages live in portal_pages).
_STAGE_PAGES = {
    "totp": "/login/totp",
    "change_password": "/login/change-password",
    "webauthn": "/login/webauthn",
    "enrol": "/login/enrol",
}
#: Enrolling a first device (installing an app, scanning a code) takes longer than typing a code.
ENROL_FLOW_SECONDS = 900
_USER_CODE_CHARS = re.compile(r"[^A-Za-z-]")
_MAX_STATE = 1024


class WebContainer(Protocol):
    """What the pages need from the process's container."""

    settings: Settings
    db: Database
    clock: Clock
    audit: AuditWriter
    sessions: SessionService
    signin: SignInService
    master_key: bytes | None


@functools.cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("keyhall.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@dataclass(frozen=True)
class SignedIn:
    session: PortalSession
    user: User


# ---- per-request plumbing --------------------------------------------------------------------------


class _Page:
    """One request's keys, cookies and signed-in person, and the responses it may give."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.container: WebContainer = request.app.state.container
        master_key = self.container.master_key
        if master_key is None:
            raise ServiceUnavailableError("The portal needs the master key, which this process was not given")
        self.csrf_key = derive_key(master_key, "csrf")
        self.flow_key = derive_key(master_key, "signin-flow")
        self.cookies = CookiePolicy.for_public_url(self.container.settings.effective_public_url)
        self.pre_id = valid_pre_session_id(request.cookies.get(PRE_SESSION_COOKIE))
        self._new_pre_id: str | None = None
        self.current: SignedIn | None = None

    @property
    def clock(self) -> Clock:
        return self.container.clock

    def load_signed_in(self) -> SignedIn | None:
        cookie = self.request.cookies.get(SESSION_COOKIE)
        if not cookie or len(cookie) > 256:
            return None
        with self.container.db.read() as conn:
            session = self.container.sessions.from_cookie(conn, cookie)
            if session is None or session.kind != "browser":
                return None
            user = directory_store.get_user(conn, session.user_id)
        if user is None:
            return None
        self.current = SignedIn(session, user)
        return self.current

    def actor(self) -> Actor:
        anonymous = request_actor(self.request)
        if self.current is None:
            return anonymous
        user = self.current.user
        return Actor(
            type="IdentityCenterUser",
            id=user.id,
            name=user.user_name,
            source_ip=anonymous.source_ip,
            user_agent=anonymous.user_agent,
            request_id=anonymous.request_id,
        )

    def source_ip(self) -> str | None:
        return client_ip(self.request, self.container.settings.trusted_proxies)

    # ---- CSRF ----------------------------------------------------------------------------------

    def csrf(self) -> str:
        if self.current is not None:
            return csrf_token(self.csrf_key, session_binding(self.current.session.id))
        if self.pre_id is None:
            self.pre_id = self._new_pre_id = new_pre_session_id()
        return csrf_token(self.csrf_key, pre_session_binding(self.pre_id))

    def csrf_ok(self, form: FormData) -> bool:
        return self.csrf_value_ok(_field(form, CSRF_FIELD, limit=128))

    def csrf_value_ok(self, presented: str | None) -> bool:
        """The check behind ``csrf_ok``, for a token sent another way (a JSON request's header)."""
        bindings: list[str] = []
        if self.current is not None:
            bindings.append(session_binding(self.current.session.id))
        if self.pre_id is not None:
            bindings.append(pre_session_binding(self.pre_id))
        return verify_csrf(self.csrf_key, bindings, presented)

    async def form(self) -> FormData:
        return await self.request.form(max_files=0, max_fields=32, max_part_size=64 * 1024)

    # ---- responses -----------------------------------------------------------------------------

    def render(
        self,
        template: str,
        *,
        status: int = 200,
        csp: str = DEFAULT_CSP,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> Response:
        values: dict[str, Any] = {
            "user": self.current.user if self.current else None,
            "error": None,
            "csrf_field": CSRF_FIELD,
            "csrf": self.csrf(),
        }
        values.update(context)
        body = _templates().get_template(template).render(values)
        response = HTMLResponse(
            body, status_code=status, headers={**security_headers(csp), **(headers or {})}
        )
        self._finish(response)
        return response

    def error(self, message: str, *, status: int = 400, headers: dict[str, str] | None = None) -> Response:
        """The error page: says what went wrong and links home; never redirects anywhere."""
        return self.render("error.html", status=status, message=message, headers=headers)

    def forbidden(self) -> Response:
        return self.error(
            "This form has expired or was not sent from this site. Go back, reload the page and try again.",
            status=403,
        )

    def redirect(self, location: str) -> Response:
        # 303, never 307: a POST with credentials must not be replayed to the target (RFC 9700 §4.12)
        response = Response(status_code=303, headers={"Location": location, **security_headers()})
        self._finish(response)
        return response

    def to_login(self, next_url: str, *, again: bool = False) -> Response:
        """To the sign-in page, and back to ``next_url`` after it; ``again`` asks a signed-in person to sign
        in once more (a step that needs a recent sign-in)."""
        return self.redirect("/login?" + urlencode({"next": next_url, **({"again": "1"} if again else {})}))

    def _finish(self, response: Response) -> None:
        if self._new_pre_id is not None:
            response.set_cookie(
                PRE_SESSION_COOKIE, self._new_pre_id, **self.cookies.attributes(same_site="strict")
            )

    # ---- the sign-in flow ----------------------------------------------------------------------

    def flow(self, *stages: str) -> dict[str, Any] | None:
        """The sign-in flow state if it is at one of ``stages``."""
        state = open_flow(self.flow_key, self.request.cookies.get(FLOW_COOKIE), now=self.clock.timestamp())
        if state is None or state.get("stage") not in stages or not isinstance(state.get("uid"), str):
            return None
        return state

    def after_step(
        self,
        step: SignInStep,
        session: PortalSession | None,
        cookie: str | None,
        next_url: str,
        *,
        stage: str | None = None,
    ) -> Response:
        """Sign in (``step.next == "done"``) or go to the next step's page; ``stage`` overrides the step's
        own next step (a second factor chosen after the password: WebAuthn, or a forced enrolment)."""
        flow_attributes = self.cookies.attributes(same_site="strict", path=FLOW_COOKIE_PATH)
        if stage is None and step.next == "done":
            assert session is not None and cookie is not None
            response = self.redirect(_continue_to(next_url))
            max_age = max(0, int(session.expires_at - self.clock.timestamp()))
            response.set_cookie(
                SESSION_COOKIE, cookie, max_age=max_age, **self.cookies.attributes(same_site="lax")
            )
            response.delete_cookie(FLOW_COOKIE, **flow_attributes)
            return response
        stage = stage or step.next
        seconds = ENROL_FLOW_SECONDS if stage == "enrol" else FLOW_SECONDS
        state = {
            "uid": step.user_id,
            "wf": step.workflow_id,
            "stage": stage,
            "next": next_url,
            "mfa": step.mfa_method,
            "exp": self.clock.timestamp() + seconds,
        }
        response = self.redirect(_STAGE_PAGES[stage])
        response.set_cookie(FLOW_COOKIE, seal_flow(self.flow_key, state), max_age=seconds, **flow_attributes)
        return response


Handler = Callable[[_Page], Awaitable[Response]]


def _page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Adapts a handler: builds the request's ``_Page`` and turns Keyhall errors into the error page."""

    async def endpoint(request: Request) -> Response:
        try:
            page = _Page(request)
            page.load_signed_in()
        except KeyhallError as error:
            return PlainTextResponse(error.message, status_code=error.status, headers=security_headers())
        try:
            return await handler(page)
        except KeyhallError as error:
            return page.error(error.message, status=error.status)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def _field(form: FormData, name: str, *, limit: int = 1024) -> str:
    """A text field, or "" when missing, repeated-as-file or too long (too long is never valid input)."""
    value = form.get(name)
    if not isinstance(value, str) or len(value) > limit:
        return ""
    return value


def _continue_to(next_url: str) -> str:
    """Where to go after signing in: never back into the sign-in pages (that would loop)."""
    target = safe_next(next_url)
    return DEFAULT_NEXT if urlsplit(target).path in _SIGN_IN_PATHS else target


def _this_url(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return "just now" if seconds < 10 else f"{seconds} seconds ago"
    minutes = seconds // 60
    if minutes < 60:
        return "1 minute ago" if minutes == 1 else f"{minutes} minutes ago"
    hours = minutes // 60
    return "1 hour ago" if hours == 1 else f"{hours} hours ago"


def _in(seconds: float) -> str:
    minutes = max(0, int(seconds)) // 60
    if minutes < 1:
        return "in under a minute"
    if minutes < 120:
        return "in 1 minute" if minutes == 1 else f"in {minutes} minutes"
    return f"in {minutes // 60} hours"


def _retry_headers(step: SignInStep) -> dict[str, str]:
    return {"Retry-After": str(step.retry_after)} if step.retry_after else {}


# ---- sign-in ---------------------------------------------------------------------------------------


def _complete(
    container: WebContainer, conn: Connection, step: SignInStep, actor: Actor
) -> tuple[SignInStep, PortalSession | None, str | None]:
    if step.next != "done" or step.user_id is None:
        return step, None, None
    session, cookie = container.signin.create_browser_session(
        conn, step.user_id, actor=actor, workflow_id=step.workflow_id, mfa_method=step.mfa_method
    )
    return step, session, cookie


@_page
async def login(page: _Page) -> Response:
    """Step 1: user name and password."""
    if page.request.method == "GET":
        next_url = safe_next(page.request.query_params.get("next"))
        again = page.request.query_params.get("again") == "1"
        if page.current is not None and not again:
            return page.redirect(_continue_to(next_url))
        return page.render(
            "login.html",
            next=next_url,
            user_name=page.current.user.user_name if page.current else "",
            notice=SIGN_IN_AGAIN if again else None,
        )
    form = await page.form()
    next_url = safe_next(_field(form, "next", limit=2048))
    if not page.csrf_ok(form):
        return page.forbidden()
    user_name = _field(form, "user_name")
    password = _field(form, "password", limit=4096)
    actor = request_actor(page.request)
    container = page.container

    def work() -> tuple[SignInStep, PortalSession | None, str | None, str | None]:
        with container.db.write() as conn:
            step = container.signin.verify_password(conn, user_name, password, actor=actor)
            # a security key is asked for, or (MFA required, none enrolled) one must be enrolled first
            stage = second_factor_stage(conn, container.audit, step, actor)
            if stage is not None:
                return step, None, None, stage
            return (*_complete(container, conn, step, actor), None)

    step, session, cookie, stage = await run_in_threadpool(work)
    if step.refused:
        return page.render(
            "login.html",
            status=429 if step.retry_after else 400,
            headers=_retry_headers(step),
            error=step.message,
            next=next_url,
            user_name=user_name[:128],
        )
    return page.after_step(step, session, cookie, next_url, stage=stage)


@_page
async def login_totp(page: _Page) -> Response:
    """Step 2: the code from the authenticator app."""
    # from the security-key step too: a person with both may use their authenticator app instead
    flow = page.flow("totp", "webauthn")
    if flow is None:
        return page.redirect("/login")
    webauthn = flow["stage"] == "webauthn"
    if page.request.method == "GET":
        return page.render("login_totp.html", webauthn=webauthn)
    form = await page.form()
    if not page.csrf_ok(form):
        return page.forbidden()
    code = _field(form, "code", limit=64)
    actor = request_actor(page.request)
    container = page.container

    def work() -> tuple[SignInStep, PortalSession | None, str | None]:
        with container.db.write() as conn:
            step = container.signin.verify_totp(
                conn, flow["uid"], code, actor=actor, workflow_id=str(flow["wf"])
            )
            return _complete(container, conn, step, actor)

    step, session, cookie = await run_in_threadpool(work)
    if step.refused:
        return page.render(
            "login_totp.html",
            status=429 if step.retry_after else 400,
            headers=_retry_headers(step),
            error=step.message,
            webauthn=webauthn,
        )
    return page.after_step(step, session, cookie, str(flow.get("next") or DEFAULT_NEXT))


@_page
async def login_change_password(page: _Page) -> Response:
    """Step 3, after an administrator set a one-time password: choose your own."""
    flow = page.flow("change_password")
    if flow is None:
        return page.redirect("/login")
    if page.request.method == "GET":
        return page.render("change_password.html", problems=[])
    form = await page.form()
    if not page.csrf_ok(form):
        return page.forbidden()
    new_password = _field(form, "new_password", limit=4096)
    if new_password != _field(form, "confirm_password", limit=4096):
        return page.render(
            "change_password.html", status=400, problems=["The two passwords are not the same."]
        )
    actor = request_actor(page.request)
    container = page.container
    mfa = flow.get("mfa")
    step = SignInStep(
        "done", str(flow["wf"]), str(flow["uid"]), mfa_method=mfa if isinstance(mfa, str) else None
    )

    def work() -> tuple[list[str], PortalSession | None, str | None]:
        with container.db.write() as conn:
            problems = container.signin.change_password(conn, step.user_id or "", new_password, actor=actor)
            if problems:
                return problems, None, None
            _, session, cookie = _complete(container, conn, step, actor)
            return [], session, cookie

    problems, session, cookie = await run_in_threadpool(work)
    if problems:
        return page.render("change_password.html", status=400, problems=problems)
    return page.after_step(step, session, cookie, str(flow.get("next") or DEFAULT_NEXT))


@_page
async def logout(page: _Page) -> Response:
    """Sign out: the browser session and the CLI sessions it approved end now."""
    form = await page.form()
    if not page.csrf_ok(form):
        return page.forbidden()
    current = page.current
    if current is not None:
        with page.container.db.write() as conn:
            page.container.sessions.revoke(conn, page.actor(), current.session.id, reason="logout")
    response = page.redirect("/login")
    response.delete_cookie(SESSION_COOKIE, **page.cookies.attributes(same_site="lax"))
    return response


# ---- device verification (RFC 8628 §3.3, §5.1, §5.4) ------------------------------------------------


def _device_url(user_code: str) -> str:
    return "/device?" + urlencode({"user_code": _user_code_text(user_code)})


def _user_code_text(value: str | None) -> str:
    return _USER_CODE_CHARS.sub("", value or "")[:16].upper()


#: what the sign-in page says when a step needs a recent sign-in
SIGN_IN_AGAIN = "Approving a device needs a recent sign-in. Sign in again to continue."


def _signed_in_recently(page: _Page) -> bool:
    """Approving a device code is what device-code phishing asks of its victim (RFC 8628 §5.4), so it needs
    a recent sign-in, with MFA where the person has it (security.md §1.3 d), not just a live browser
    session: a person signed in this morning is asked again this afternoon."""
    assert page.current is not None
    age = page.clock.timestamp() - page.current.session.auth_time
    return age <= page.container.settings.device_approval_max_auth_age


def _device_view(page: _Page, pending: device.PendingDevice) -> dict[str, Any]:
    now = page.clock.timestamp()
    return {
        "pending": pending,
        "requested_at": _utc(pending.created_at),
        "requested_ago": _ago(now - pending.created_at),
        "expires_in": _in(pending.expires_at - now),
    }


@_page
async def device_entry(page: _Page) -> Response:
    """Enter (or, from verificationUriComplete, check) the code; a code in the URL only fills the box."""
    if page.current is None:
        return page.to_login(_this_url(page.request))
    if page.request.method == "GET":
        if not _signed_in_recently(page):
            return page.to_login(_this_url(page.request), again=True)
        return page.render(
            "device_entry.html", user_code=_user_code_text(page.request.query_params.get("user_code"))
        )
    form = await page.form()
    if not page.csrf_ok(form):
        return page.forbidden()
    typed = _field(form, "user_code", limit=64)
    if not _signed_in_recently(page):
        return page.to_login(_device_url(typed), again=True)
    ip = page.source_ip()
    container = page.container

    def work() -> tuple[str, device.PendingDevice | None, int]:
        with container.db.write() as conn:
            if not require_instance(conn).device_grant_enabled:
                return "off", None, 0
            wait = container.signin.device_lookup_wait(conn, ip)
            if wait:
                return "throttled", None, wait
            pending = device.find_pending(conn, container.clock, typed)
            if pending is None:
                container.signin.record_failed_device_lookup(conn, ip)
                return "unknown", None, 0
            return "found", pending, 0

    outcome, pending, wait = await run_in_threadpool(work)
    if outcome == "off":
        return page.error("Signing in devices with a code is turned off here.", status=403)
    if outcome == "throttled":
        return page.render(
            "device_entry.html",
            status=429,
            headers={"Retry-After": str(wait)},
            user_code=_user_code_text(typed),
            error=f"Too many attempts, try again in {wait} seconds.",
        )
    if pending is None:
        return page.render(
            "device_entry.html",
            status=400,
            user_code=_user_code_text(typed),
            error="That code is not valid or has expired. Check it and try again.",
        )
    return page.render("device_confirm.html", **_device_view(page, pending))


@_page
async def device_confirm(page: _Page) -> Response:
    """The explicit decision: Approve or Deny the request the person has just compared."""
    current = page.current
    if current is None:
        return page.error("Your sign-in has ended. Sign in and enter the code again.", status=401)
    form = await page.form()
    if not page.csrf_ok(form):
        return page.forbidden()
    decision = _field(form, "decision", limit=16)
    if decision not in ("approve", "deny"):
        return page.error("Choose Approve or Deny.")
    typed = _field(form, "user_code", limit=64)
    if not _signed_in_recently(page):  # the page sat open past the limit: sign in, then compare again
        return page.to_login(_device_url(typed), again=True)
    approve = decision == "approve"
    ip = page.source_ip()
    actor = page.actor()
    container = page.container

    def work() -> tuple[str, int]:
        with container.db.write() as conn:
            wait = container.signin.device_lookup_wait(conn, ip)
            if wait:
                return "throttled", wait
            pending = device.find_pending(conn, container.clock, typed)
            if pending is None:
                container.signin.record_failed_device_lookup(conn, ip)
                return "gone", 0
            decided = device.decide(
                conn,
                container.clock,
                device_id=pending.id,
                approve=approve,
                user_id=current.user.id,
                browser_session_id=current.session.id,
                approver_ip=ip,
            )
            if not decided:
                return "gone", 0
            container.audit.record(
                conn,
                actor,
                AuditEvent(
                    OAUTH_SOURCE,
                    "ApproveDeviceAuthorization" if approve else "DenyDeviceAuthorization",
                    resource_type="DeviceAuthorization",
                    resource_id=pending.id,
                    additional_data={
                        "ClientId": pending.client_id,
                        "userCode": pending.user_code,
                        "deviceInitiatorIp": pending.initiator_ip,
                        "ApproverIp": ip,
                        "SessionId": current.session.id,
                    },
                ),
            )
            return "decided", 0

    outcome, wait = await run_in_threadpool(work)
    if outcome == "throttled":
        return page.error(
            f"Too many attempts, try again in {wait} seconds.", status=429, headers={"Retry-After": str(wait)}
        )
    if outcome == "gone":
        return page.error(
            "This request is no longer waiting for approval: it expired or was already decided."
        )
    return page.render("device_done.html", approved=approve)


# ---- consent for the authorization code flow with PKCE ----------------------------------------------


@dataclass(frozen=True)
class AuthorizationRequest:
    client: Client
    redirect_uri: str
    state: str | None
    code_challenge: str
    scopes: list[str]

    def form_fields(self) -> dict[str, str]:
        fields = {
            "response_type": "code",
            "client_id": self.client.id,
            "redirect_uri": self.redirect_uri,
            "code_challenge": self.code_challenge,
            "code_challenge_method": "S256",
            "scopes": " ".join(self.scopes),
        }
        if self.state is not None:
            fields["state"] = self.state
        return fields


def check_authorization_request(
    conn: Connection, clock: Clock, items: Iterable[tuple[str, Any]]
) -> AuthorizationRequest | str:
    """The request if valid, else why not. The client and redirect URI are checked first and an invalid
    one is never redirected to (RFC 6749 §4.1.2.1); the other problems are shown on the error page too,
    since nothing is sent to an unauthenticated client's URI before the person decides."""
    params: dict[str, list[str]] = {}
    for name, value in items:
        if isinstance(value, str):
            params.setdefault(name, []).append(value)
    repeated = sorted(name for name, values in params.items() if len(values) > 1)
    if repeated:  # RFC 6749 §3.1: parameters must not be repeated
        return f"The request repeats a parameter: {', '.join(repeated)}."

    def one(name: str) -> str | None:
        values = params.get(name)
        return values[0] if values else None

    client_id = one("client_id")
    client = load_client(conn, client_id) if client_id and len(client_id) <= 64 else None
    if client is None:
        return "The application asking to sign in is not registered here."
    if client.expires_at <= clock.timestamp():
        return "The application's registration has expired. Start again from the application."
    if not client.allows(CODE_GRANT):
        return "The application was not registered for this kind of sign-in."
    redirect_uri = one("redirect_uri") or ""
    if len(redirect_uri) > 2048 or find_registered(list(client.redirect_uris), redirect_uri) is None:
        return "The address the application wants the answer sent to is not one it registered."
    if one("response_type") != "code":
        return 'The request must use response_type "code".'
    if one("code_challenge_method") != "S256":
        return "The request must use PKCE with the S256 method (plain is not accepted)."
    challenge = one("code_challenge") or ""
    if not CHALLENGE_RE.fullmatch(challenge):
        return "The request's PKCE code_challenge is missing or malformed."
    requested = one("scopes") if "scopes" in params else one("scope")
    scopes = requested.split() if requested else list(client.scopes)
    unknown = [scope for scope in scopes if scope not in client.scopes]
    if unknown or not scopes:
        return "The application asks for access it was not registered for."
    state = one("state")
    if state is not None and len(state) > _MAX_STATE:
        return "The request's state parameter is too long."
    return AuthorizationRequest(client, redirect_uri, state, challenge, list(dict.fromkeys(scopes)))


def _with_query(uri: str, values: dict[str, str | None]) -> str:
    query = urlencode({k: v for k, v in values.items() if v is not None})
    return f"{uri}{'&' if '?' in uri else '?'}{query}"


@_page
async def authorize(page: _Page) -> Response:
    """GET: check the request and ask for consent; POST: Allow (a code) or Deny, sent to the loopback URI."""
    container = page.container
    if page.request.method == "GET":
        with container.db.read() as conn:
            checked = check_authorization_request(conn, page.clock, page.request.query_params.multi_items())
        if isinstance(checked, str):
            return page.error(checked)
        if page.current is None:
            return page.to_login(_this_url(page.request))
        target = loopback_form_target(checked.redirect_uri)
        csp = (
            content_security_policy(form_targets=(target,))
            if target
            else content_security_policy(restrict_forms=False)
        )
        return page.render(
            "consent.html",
            csp=csp,
            client=checked.client,
            scopes=[(scope, SCOPE_DESCRIPTIONS.get(scope, scope)) for scope in checked.scopes],
            redirect_host=urlsplit(checked.redirect_uri).netloc,
            fields=checked.form_fields(),
        )

    form = await page.form()
    current = page.current
    if current is None:
        return page.error("Your sign-in has ended. Start again from the application.", status=401)
    if not page.csrf_ok(form):
        return page.forbidden()
    decision = _field(form, "decision", limit=16)
    if decision not in ("allow", "deny"):
        return page.error("Choose Allow or Deny.")
    items = [(k, v) for k, v in form.multi_items() if k not in (CSRF_FIELD, "decision")]
    issuer = container.settings.effective_public_url
    actor = page.actor()

    def work() -> tuple[str | None, str]:
        """(refusal, "") or (None, where to send the browser)."""
        with container.db.write() as conn:
            checked = check_authorization_request(conn, container.clock, items)
            if isinstance(checked, str):
                return checked, ""
            code: str | None = None
            if decision == "allow":
                code = codes.create_code(
                    conn,
                    container.clock,
                    client_id=checked.client.id,
                    redirect_uri=checked.redirect_uri,
                    code_challenge=checked.code_challenge,
                    scopes=checked.scopes,
                    user_id=current.user.id,
                    browser_session_id=current.session.id,
                )
            container.audit.record(
                conn,
                actor,
                AuditEvent(
                    OAUTH_SOURCE,
                    "AuthorizeClient",
                    resource_type="OAuthClient",
                    resource_id=checked.client.id,
                    additional_data={
                        "Decision": "Allow" if code else "Deny",
                        "RedirectUri": checked.redirect_uri,
                        "Scopes": checked.scopes,
                        "SessionId": current.session.id,
                    },
                    error_code=None if code else "AccessDenied",
                ),
            )
            answer: dict[str, str | None] = (
                {"code": code}
                if code
                else {"error": "access_denied", "error_description": "The user denied access"}
            )
            # RFC 9207: iss lets the client check which server answered
            return None, _with_query(checked.redirect_uri, {**answer, "state": checked.state, "iss": issuer})

    refusal, location = await run_in_threadpool(work)
    if refusal is not None:
        return page.error(refusal)
    return page.redirect(location)


# ---- static files ----------------------------------------------------------------------------------


class _StaticHeaders:
    """Static files with ``nosniff`` and a modest cache lifetime."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Cache-Control"] = "public, max-age=3600"
            await send(message)

        await self.app(scope, receive, send_with_headers)


# ---- for the other page modules (portal, admin console): the same plumbing, under public names --------

Page = _Page
page_endpoint = _page
form_field = _field
complete_sign_in = _complete
this_url = _this_url
utc_text = _utc
ago_text = _ago
in_text = _in


routes: list[BaseRoute] = [
    Route("/login", login, methods=["GET", "POST"]),
    Route("/login/totp", login_totp, methods=["GET", "POST"]),
    Route("/login/change-password", login_change_password, methods=["GET", "POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/device", device_entry, methods=["GET", "POST"]),
    Route("/device/confirm", device_confirm, methods=["POST"]),
    Route("/authorize", authorize, methods=["GET", "POST"]),
    Mount("/static", app=_StaticHeaders(StaticFiles(packages=[("keyhall.web", "static")])), name="static"),
]
