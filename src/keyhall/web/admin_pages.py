"""The admin console under ``/admin``: users, groups, accounts, permission sets, assignments, effective
access, instance settings and the audit log, as server-rendered pages.

Every request is authorised here, from the database, never from the cookie: the browser session must be
active and its user enabled and an administrator (ASVS 8.2.1, 8.3.1). Every POST carries a CSRF token
bound to that session, and every change runs through the services in one ``db.write()`` transaction with
the administrator as the audit actor, so the change and its audit record commit together.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlencode

import jinja2
from sqlalchemy import Connection, delete, func, or_, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from keyhall.access.models import Account, AccountSpec, PermissionSet, PermissionSetSpec
from keyhall.access.service import AccessService, check_account_spec, check_permission_set_spec
from keyhall.api.common import client_ip
from keyhall.audit.events import Actor, AuditEvent
from keyhall.audit.query import AuditRecord, parse_since
from keyhall.audit.writer import AuditWriter
from keyhall.clock import Clock
from keyhall.db.database import Database
from keyhall.db.tables import audit_events, totp_devices, webauthn_credentials
from keyhall.directory import store as directory_store
from keyhall.directory.models import Group, User, UserSpec, check_user_spec
from keyhall.directory.service import DirectoryService
from keyhall.errors import ConflictError, KeyhallError, NotFoundError, Problem, ValidationError
from keyhall.instance import (
    MAX_PORTAL_SESSION_MINUTES,
    MIN_PORTAL_SESSION_MINUTES,
    Instance,
    require_instance,
    update_instance_settings,
)
from keyhall.keys import derive_key
from keyhall.settings import Settings
from keyhall.signin.passwords import PasswordHasher, generate_password
from keyhall.signin.sessions import PortalSession, SessionService
from keyhall.web.security import (
    CSRF_FIELD,
    SESSION_COOKIE,
    csrf_token,
    safe_next,
    security_headers,
    session_binding,
    verify_csrf,
)

PREFIX = "/admin"
#: Audit source of the MFA resets (AWS records them as sso-directory's DeleteMfaDeviceForUser).
MFA_SOURCE = "sso-directory.amazonaws.com"
AUDIT_PAGE_SIZE = 50
USER_LIST_LIMIT = 200
_MAX_BODY = 256 * 1024
_MAX_FIELD = 64 * 1024
_CURSOR_RE = re.compile(r"^(\d+(?:\.\d+)?)_(\d+)$")
_INDEXED = re.compile(r"^[A-Za-z_]+\[(\d+)\]")
SESSION_CHOICES = ("PT1H", "PT2H", "PT4H", "PT8H", "PT12H")

#: Messages shown after a change; the redirect names a key, so no text from a URL reaches the page.
NOTICES = {
    "user-updated": "The user was saved.",
    "user-disabled": "The user is disabled: they cannot sign in, and their sessions have ended.",
    "user-enabled": "The user is enabled and can sign in again.",
    "user-deleted": "The user was deleted, with their group memberships and assignments.",
    "mfa-reset": "The user's MFA devices were removed and their sessions ended. They enrol again "
    "at their next sign-in.",
    "sessions-ended": "The user's sessions have ended.",
    "group-created": "The group was created.",
    "group-updated": "The group was saved.",
    "group-deleted": "The group was deleted, with its memberships and assignments.",
    "member-added": "The member was added.",
    "member-removed": "The member was removed.",
    "account-created": "The account was created.",
    "account-updated": "The account was saved.",
    "account-suspended": "The account is suspended: nobody can get credentials for it.",
    "account-activated": "The account is active again.",
    "account-deleted": "The account was deleted, with its assignments.",
    "ps-created": "The permission set was created.",
    "ps-updated": "The permission set was saved.",
    "ps-deleted": "The permission set was deleted.",
    "assignment-created": "The assignment was created; it takes effect at the next credential request.",
    "assignment-deleted": "The assignment was removed; it stops working at the next credential request.",
    "settings-saved": "The settings were saved.",
}

MFA_POLICY_HELP = {
    "required": "Every sign-in needs a second factor: an authenticator app or a security key. People "
    "without one are asked to enrol one at their next sign-in. Recommended.",
    "optional": "People who enrolled an authenticator app or a security key must use it; the others "
    "sign in with their password only.",
    "off": "Nobody is asked for a second factor, even with one enrolled. Only for testing.",
}


class AdminContainer(Protocol):
    """What the console needs from the process's container."""

    settings: Settings
    db: Database
    clock: Clock
    audit: AuditWriter
    directory: DirectoryService
    access: AccessService
    sessions: SessionService
    hasher: PasswordHasher
    master_key: bytes | None


# ---- templates -------------------------------------------------------------------------------------


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@functools.cache
def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("keyhall.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["pretty_json"] = _pretty_json
    env.globals["mfa_policy_help"] = MFA_POLICY_HELP
    return env


# ---- form errors -----------------------------------------------------------------------------------


@dataclass
class FormErrors:
    """Problems of a submitted form, placed next to the field they belong to.

    Each entry is ``(path, message)``; ``path`` is a JSON path inside a policy document (or None)."""

    fields: dict[str, list[tuple[str | None, str]]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def add(self, name: str, message: str, path: str | None = None) -> None:
        self.fields.setdefault(name, []).append((path, message))

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.fields.values()) + len(self.general)

    def place(self, problems: Iterable[Problem], fields: dict[str, str]) -> None:
        """Put each service problem next to its field: ``fields`` maps a location's first name
        (``managed_policies`` of ``managed_policies[2]``) to a form field; the rest go to the top."""
        for problem in problems:
            location = problem.location
            if location.startswith("inline_policy"):
                self.add(
                    "inline_policy", problem.message, location[len("inline_policy") :].lstrip(".") or None
                )
                continue
            base = re.split(r"[.\[]", location, maxsplit=1)[0]
            target = fields.get(base)
            if target is None:
                self.general.append(str(problem))
                continue
            indexed = _INDEXED.match(location)
            prefix = f"Line {int(indexed.group(1)) + 1}: " if indexed else ""
            self.add(target, prefix + problem.message)


# ---- per-request plumbing --------------------------------------------------------------------------


class AdminPage:
    """One request of a signed-in administrator: the container, the form, and the responses it may give."""

    def __init__(
        self,
        request: Request,
        container: AdminContainer,
        csrf_key: bytes,
        session: PortalSession,
        admin: User,
        form: FormData | None,
    ) -> None:
        self.request = request
        self.container = container
        self.csrf_key = csrf_key
        self.session = session
        self.admin = admin
        self.form = form

    @property
    def method(self) -> str:
        """How the handler should treat the request: as "POST" for a submitted form, else as "GET" (HEAD
        included), so only a POST, its CSRF token checked, ever reaches a handler's changing branch."""
        return "POST" if self.form is not None else "GET"

    def param(self, name: str) -> str:
        return str(self.request.path_params[name])

    def query(self, name: str, *, limit: int = 256) -> str:
        value = self.request.query_params.get(name, "")
        return value.strip() if len(value) <= limit else ""

    def text(self, name: str, *, strip: bool = True) -> str:
        """A text field of the form, or "" when missing or not text."""
        if self.form is None:
            return ""
        value = self.form.get(name)
        if not isinstance(value, str) or len(value) > _MAX_FIELD:
            return ""
        return value.strip() if strip else value

    def checked(self, name: str) -> bool:
        return self.text(name) in ("on", "true", "1", "yes")

    def actor(self) -> Actor:
        """The administrator as CloudTrail's userIdentity (the same shape as ``request_actor``)."""
        request_id = str(self.request.scope.get("state", {}).get("request_id", "")) or None
        return Actor(
            type="IdentityCenterUser",
            id=self.admin.id,
            name=self.admin.user_name,
            source_ip=client_ip(self.request, self.container.settings.trusted_proxies),
            user_agent=self.request.headers.get("user-agent"),
            request_id=request_id,
        )

    def csrf(self) -> str:
        return csrf_token(self.csrf_key, admin_binding(self.session.id))

    # ---- responses -----------------------------------------------------------------------------

    def render(self, template: str, *, status: int = 200, section: str = "", **context: Any) -> Response:
        notice_key = self.request.query_params.get("notice", "")
        values: dict[str, Any] = {
            "user": self.admin,
            "error": None,
            "csrf_field": CSRF_FIELD,
            "csrf": self.csrf(),
            "section": section,
            "notice": NOTICES.get(notice_key),
            "errors": {},
            "general_errors": [],
            "error_count": 0,
        }
        values.update(context)
        form_errors = values.get("form_errors")
        if isinstance(form_errors, FormErrors):
            values.update(
                errors=form_errors.fields,
                general_errors=form_errors.general,
                error_count=form_errors.count,
            )
        body = _templates().get_template(template).render(values)
        return HTMLResponse(body, status_code=status, headers=security_headers())

    def error(self, message: str, *, status: int = 400, section: str = "") -> Response:
        return self.render("admin/error.html", status=status, section=section, message=message)

    def redirect(self, location: str, notice: str | None = None) -> Response:
        # 303 after every POST, so a reload never repeats the change
        if notice is not None:
            location += ("&" if "?" in location else "?") + urlencode({"notice": notice})
        return Response(status_code=303, headers={"Location": location, **security_headers()})


def admin_binding(session_id: str) -> str:
    """What admin forms' CSRF tokens are bound to: the browser session, under a purpose of its own, so a
    token from a portal page is no good on a console form."""
    return "admin:" + session_binding(session_id)


Handler = Callable[[AdminPage], Response]


def _plain(message: str, status: int) -> Response:
    return PlainTextResponse(message, status_code=status, headers=security_headers())


def _refusal(status: int, message: str) -> Response:
    """A page for someone who is not (or no longer) an administrator: no console navigation."""
    body = (
        _templates()
        .get_template("error.html")
        .render(user=None, error=None, message=message, csrf_field=CSRF_FIELD, csrf="")
    )
    return HTMLResponse(body, status_code=status, headers=security_headers())


def _signed_in_admin(container: AdminContainer, cookie: str | None) -> tuple[PortalSession, User] | str:
    """The active browser session and its user, read from the database now; or why there is none:
    "signed-out" or "forbidden"."""
    if not cookie or len(cookie) > 256:
        return "signed-out"
    with container.db.read() as conn:
        session = container.sessions.from_cookie(conn, cookie)
        if session is None or session.kind != "browser":
            return "signed-out"
        user = directory_store.get_user(conn, session.user_id)
    if user is None or not user.enabled:
        return "signed-out"
    if not user.is_admin:
        return "forbidden"
    return session, user


def _admin_page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Authorise the request, check the CSRF token of a POST, then run ``handler`` in a worker thread.

    A signed-out GET is sent to the sign-in page and back; anything else that is not a signed-in,
    enabled administrator gets a 403 page. Any error ends in an error page, never in a change."""

    async def endpoint(request: Request) -> Response:
        container: AdminContainer = request.app.state.container
        if container.master_key is None:
            return _plain("The admin console needs the master key, which this process was not given", 503)
        form: FormData | None = None
        if request.method == "POST":
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > _MAX_BODY:
                return _plain("The form is too large", 413)
            form = await request.form(max_files=0, max_fields=64, max_part_size=_MAX_FIELD)
        try:
            return await run_in_threadpool(_run, handler, request, container, form)
        finally:
            if form is not None:
                await form.close()

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def _run(handler: Handler, request: Request, container: AdminContainer, form: FormData | None) -> Response:
    assert container.master_key is not None
    try:
        found = _signed_in_admin(container, request.cookies.get(SESSION_COOKIE))
    except KeyhallError as error:
        return _plain(error.message, error.status)
    if found == "signed-out":
        if request.method != "POST":
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return Response(
                status_code=303,
                headers={"Location": "/login?" + urlencode({"next": safe_next(here)}), **security_headers()},
            )
        return _refusal(403, "Your sign-in has ended. Sign in again and repeat the change.")
    if found == "forbidden":
        return _refusal(403, "This page is for Keyhall administrators only.")
    assert not isinstance(found, str)
    session, admin = found
    page = AdminPage(request, container, derive_key(container.master_key, "csrf"), session, admin, form)
    if form is not None and not verify_csrf(
        page.csrf_key, [admin_binding(session.id)], page.text(CSRF_FIELD)
    ):
        return page.error(
            "This form has expired or was not sent from this site. Go back, reload the page and try again.",
            status=403,
        )
    try:
        return handler(page)
    except KeyhallError as error:
        return page.error(error.message, status=error.status)


# ---- storage the console needs that no service offers yet -------------------------------------------
# (kept private here; they belong in keyhall.signin and keyhall.audit.query)


@dataclass(frozen=True)
class MfaDevice:
    id: str
    kind: str  # TOTP | WEBAUTHN
    name: str
    confirmed: bool
    created_at: float
    last_used_at: float | None


def list_mfa_devices(conn: Connection, user_id: str) -> list[MfaDevice]:
    devices = [
        MfaDevice(row.id, "TOTP", row.name, bool(row.confirmed), row.created_at, None)
        for row in conn.execute(
            select(
                totp_devices.c.id, totp_devices.c.name, totp_devices.c.confirmed, totp_devices.c.created_at
            )
            .where(totp_devices.c.user_id == user_id)
            .order_by(totp_devices.c.created_at)
        )
    ]
    devices += [
        MfaDevice(row.id, "WEBAUTHN", row.name, True, row.created_at, row.last_used_at)
        for row in conn.execute(
            select(
                webauthn_credentials.c.id,
                webauthn_credentials.c.name,
                webauthn_credentials.c.created_at,
                webauthn_credentials.c.last_used_at,
            )
            .where(webauthn_credentials.c.user_id == user_id)
            .order_by(webauthn_credentials.c.created_at)
        )
    ]
    return devices


def reset_mfa(
    conn: Connection, audit: AuditWriter, sessions: SessionService, actor: Actor, user: User
) -> int:
    """Delete every TOTP device and WebAuthn credential of ``user``, one audit record per device, and end
    their sessions (a lost authenticator may be in someone else's hands). Returns the devices removed."""
    devices = list_mfa_devices(conn, user.id)
    conn.execute(delete(totp_devices).where(totp_devices.c.user_id == user.id))
    conn.execute(delete(webauthn_credentials).where(webauthn_credentials.c.user_id == user.id))
    for device in devices:
        audit.record(
            conn,
            actor,
            AuditEvent(
                MFA_SOURCE,
                "DeleteMfaDeviceForUser",
                resource_type="MfaDevice",
                resource_id=device.id,
                request_parameters={"UserId": user.id, "UserName": user.user_name},
                additional_data={"CredentialType": device.kind, "Confirmed": device.confirmed},
            ),
        )
    sessions.revoke_all_for_user(conn, actor, user.id, reason="mfa-reset")
    return len(devices)


@dataclass(frozen=True)
class AuditFilters:
    event_name: str | None = None
    actor: str | None = None
    since: float | None = None
    text: str | None = None


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def query_audit_page(
    conn: Connection, filters: AuditFilters, *, before: tuple[float, int] | None, limit: int
) -> list[AuditRecord]:
    """Newest first, like ``query_events``, plus a text search on the resource and keyset paging
    (``before`` is the (event_time, seq) of the last record of the previous page)."""
    query = (
        select(audit_events)
        .order_by(audit_events.c.seq.desc())  # seq is commit order, and indexed with name and actor
        .limit(limit)
    )
    if filters.event_name:
        query = query.where(audit_events.c.event_name == filters.event_name)
    if filters.actor:
        query = query.where(
            or_(audit_events.c.actor_id == filters.actor, audit_events.c.actor_name == filters.actor)
        )
    if filters.since is not None:
        query = query.where(audit_events.c.event_time >= filters.since)
    if filters.text:
        pattern = _like(filters.text)
        query = query.where(
            or_(
                func.lower(audit_events.c.resource_id).like(pattern, escape="\\"),
                func.lower(audit_events.c.resource_type).like(pattern, escape="\\"),
            )
        )
    if before is not None:
        _moment, seq = before
        query = query.where(audit_events.c.seq < seq)
    return [AuditRecord.from_row(row) for row in conn.execute(query)]


# ---- dashboard -------------------------------------------------------------------------------------


@_admin_page
def dashboard(page: AdminPage) -> Response:
    """Counts of everything, the instance's security settings and the latest audit records."""
    c = page.container
    with c.db.read() as conn:
        instance = require_instance(conn)
        counts = {
            "users": directory_store.count_users(conn),
            "groups": len(c.directory.all_groups(conn)),
            "accounts": len(c.access.all_accounts(conn)),
            "permission_sets": len(c.access.all_permission_sets(conn)),
            "assignments": len(c.access.list_assignments(conn)),
        }
        recent = query_audit_page(conn, AuditFilters(), before=None, limit=8)
    return page.render(
        "admin/dashboard.html", section="dashboard", instance=instance, counts=counts, recent=recent
    )


# ---- users -----------------------------------------------------------------------------------------

_USER_FIELDS = {
    "UserName": "user_name",
    "DisplayName": "display_name",
    "Emails": "email",
}


def _matches(user: User, needle: str) -> bool:
    haystack = (user.user_name, user.display_name or "", user.primary_email or "", user.id)
    return any(needle in value.casefold() for value in haystack)


@_admin_page
def users(page: AdminPage) -> Response:
    """All users, or those whose name, display name, email or id contains the search text."""
    q = page.query("q", limit=128)
    with page.container.db.read() as conn:
        everyone = page.container.directory.all_users(conn)
    found = [u for u in everyone if _matches(u, q.casefold())] if q else everyone
    return page.render(
        "admin/users.html",
        section="users",
        q=q,
        users=found[:USER_LIST_LIMIT],
        total=len(found),
        truncated=len(found) > USER_LIST_LIMIT,
    )


def _user_values(page: AdminPage) -> dict[str, Any]:
    return {
        "user_name": page.text("user_name"),
        "display_name": page.text("display_name"),
        "given_name": page.text("given_name"),
        "family_name": page.text("family_name"),
        "email": page.text("email"),
        "is_admin": page.checked("is_admin"),
    }


@_admin_page
def user_new(page: AdminPage) -> Response:
    """Create a user with a generated one-time password, shown once on the next page."""
    if page.method == "GET":
        return page.render("admin/user_form.html", section="users", values={}, form_errors=FormErrors())
    values = _user_values(page)
    spec = UserSpec(
        values["user_name"],
        display_name=values["display_name"] or None,
        given_name=values["given_name"] or None,
        family_name=values["family_name"] or None,
        email=values["email"] or None,
        is_admin=values["is_admin"],
    )
    errors = FormErrors()
    errors.place(check_user_spec(spec), _USER_FIELDS)
    if errors:
        return page.render(
            "admin/user_form.html", status=400, section="users", values=values, form_errors=errors
        )
    password = generate_password()
    password_hash = page.container.hasher.hash(password)
    try:
        with page.container.db.write() as conn:
            user = page.container.directory.create_user(
                conn, page.actor(), spec, password_hash=password_hash, must_change_password=True
            )
    except ConflictError as error:
        errors.add("user_name", error.message)
        return page.render(
            "admin/user_form.html", status=409, section="users", values=values, form_errors=errors
        )
    except ValidationError as error:
        errors.place(error.problems, _USER_FIELDS)
        return page.render(
            "admin/user_form.html", status=400, section="users", values=values, form_errors=errors
        )
    return page.render(
        "admin/user_password.html", status=201, section="users", subject=user, password=password, created=True
    )


def _user_detail(
    page: AdminPage, user_id: str, *, form_errors: FormErrors | None = None, status: int = 200
) -> Response:
    c = page.container
    with c.db.read() as conn:
        user = c.directory.get_user(conn, user_id)
        groups = c.directory.groups_of(conn, user.id)
        devices = list_mfa_devices(conn, user.id)
        sessions = c.sessions.list_for_user(conn, user.id)
        assignments = c.access.list_assignments(conn, principal_type="USER", principal_id=user.id)
        names = _names(c, conn)
    return page.render(
        "admin/user.html",
        status=status,
        section="users",
        subject=user,
        groups=groups,
        devices=devices,
        sessions=sessions,
        assignments=assignments,
        names=names,
        is_self=user.id == page.admin.id,
        form_errors=form_errors or FormErrors(),
    )


@_admin_page
def user_detail(page: AdminPage) -> Response:
    """A user: attributes, groups, MFA devices, sessions, direct assignments, and what can be done."""
    return _user_detail(page, page.param("user_id"))


@_admin_page
def user_edit(page: AdminPage) -> Response:
    """Change a user's names, email and administrator flag."""
    user_id = page.param("user_id")
    values = _user_values(page)
    errors = FormErrors()
    if user_id == page.admin.id and not values["is_admin"]:
        errors.add(
            "is_admin", "You cannot take away your own administrator rights; ask another administrator."
        )
        return _user_detail(page, user_id, form_errors=errors, status=400)
    try:
        with page.container.db.write() as conn:
            page.container.directory.update_user(
                conn,
                page.actor(),
                user_id,
                user_name=values["user_name"] or None,
                display_name=values["display_name"] or None,
                given_name=values["given_name"] or None,
                family_name=values["family_name"] or None,
                email=values["email"] or None,
                is_admin=values["is_admin"],
            )
    except ValidationError as error:
        errors.place(error.problems or [Problem("", error.message)], _USER_FIELDS)
        return _user_detail(page, user_id, form_errors=errors, status=400)
    except ConflictError as error:
        errors.add("user_name", error.message)
        return _user_detail(page, user_id, form_errors=errors, status=409)
    return page.redirect(f"{PREFIX}/users/{user_id}", "user-updated")


@_admin_page
def user_status(page: AdminPage) -> Response:
    """Disable (sessions end at once, ASVS 7.4.2) or enable a user."""
    user_id = page.param("user_id")
    status = {"disable": "DISABLED", "enable": "ENABLED"}.get(page.text("action"))
    if status is None:
        return page.error("Choose Disable or Enable.")
    if status == "DISABLED" and user_id == page.admin.id:
        return page.error("You cannot disable yourself; ask another administrator.", section="users")
    with page.container.db.write() as conn:
        page.container.directory.set_status(conn, page.actor(), user_id, status)
    return page.redirect(
        f"{PREFIX}/users/{user_id}", "user-disabled" if status == "DISABLED" else "user-enabled"
    )


@_admin_page
def user_reset_password(page: AdminPage) -> Response:
    """A new one-time password (shown once, must be changed at sign-in); the user's sessions end."""
    user_id = page.param("user_id")
    password = generate_password()
    password_hash = page.container.hasher.hash(password)
    actor = page.actor()
    c = page.container
    with c.db.write() as conn:
        user = c.directory.get_user(conn, user_id)
        c.directory.set_password_hash(conn, actor, user.id, password_hash, must_change=True)
        c.sessions.revoke_all_for_user(conn, actor, user.id, reason="password-reset")
    return page.render(
        "admin/user_password.html", section="users", subject=user, password=password, created=False
    )


@_admin_page
def user_reset_mfa(page: AdminPage) -> Response:
    """Remove the user's TOTP devices and WebAuthn credentials (each audited); their sessions end."""
    user_id = page.param("user_id")
    c = page.container
    with c.db.write() as conn:
        user = c.directory.get_user(conn, user_id)
        reset_mfa(conn, c.audit, c.sessions, page.actor(), user)
    return page.redirect(f"{PREFIX}/users/{user_id}", "mfa-reset")


@_admin_page
def user_revoke_sessions(page: AdminPage) -> Response:
    """Sign the user out everywhere: browser and CLI sessions, and the credentials issued from them."""
    user_id = page.param("user_id")
    c = page.container
    with c.db.write() as conn:
        user = c.directory.get_user(conn, user_id)
        c.sessions.revoke_all_for_user(conn, page.actor(), user.id, reason="admin")
    return page.redirect(f"{PREFIX}/users/{user_id}", "sessions-ended")


@_admin_page
def user_delete(page: AdminPage) -> Response:
    """GET asks for confirmation; POST deletes the user, their memberships and assignments."""
    user_id = page.param("user_id")
    c = page.container
    if user_id == page.admin.id:
        return page.error("You cannot delete yourself; ask another administrator.", section="users")
    if page.method == "GET":
        with c.db.read() as conn:
            user = c.directory.get_user(conn, user_id)
            assignments = c.access.list_assignments(conn, principal_type="USER", principal_id=user.id)
            groups = c.directory.groups_of(conn, user.id)
        consequences = [
            f"{len(groups)} group membership(s) and {len(assignments)} direct assignment(s) are removed.",
            "Their sessions end, and credentials already issued from them stop working.",
            "The audit log keeps every record of what they did.",
        ]
        return page.render(
            "admin/confirm_delete.html",
            section="users",
            what=f"user {user.user_name}",
            consequences=consequences,
            action=f"{PREFIX}/users/{user.id}/delete",
            back=f"{PREFIX}/users/{user.id}",
        )
    with c.db.write() as conn:
        c.directory.delete_user(conn, page.actor(), user_id)
    return page.redirect(f"{PREFIX}/users", "user-deleted")


@_admin_page
def user_access(page: AdminPage) -> Response:
    """Effective access of a user: every (account, permission set) they reach, and how."""
    c = page.container
    with c.db.read() as conn:
        user = c.directory.get_user(conn, page.param("user_id"))
        entitlements = c.access.user_entitlements(conn, user.id)
        groups = c.directory.groups_of(conn, user.id)
    return page.render(
        "admin/user_access.html", section="users", subject=user, entitlements=entitlements, groups=groups
    )


# ---- groups ----------------------------------------------------------------------------------------

_GROUP_FIELDS = {"DisplayName": "display_name", "Description": "description"}


@_admin_page
def groups(page: AdminPage) -> Response:
    with page.container.db.read() as conn:
        found = page.container.directory.all_groups(conn)
    return page.render("admin/groups.html", section="groups", groups=found)


@_admin_page
def group_new(page: AdminPage) -> Response:
    """Create a group."""
    if page.method == "GET":
        return page.render("admin/group_form.html", section="groups", values={}, form_errors=FormErrors())
    values = {"display_name": page.text("display_name"), "description": page.text("description")}
    errors = FormErrors()
    try:
        with page.container.db.write() as conn:
            group = page.container.directory.create_group(
                conn, page.actor(), values["display_name"], values["description"] or None
            )
    except ValidationError as error:
        errors.place(error.problems, _GROUP_FIELDS)
        return page.render(
            "admin/group_form.html", status=400, section="groups", values=values, form_errors=errors
        )
    except ConflictError as error:
        errors.add("display_name", error.message)
        return page.render(
            "admin/group_form.html", status=409, section="groups", values=values, form_errors=errors
        )
    return page.redirect(f"{PREFIX}/groups/{group.id}", "group-created")


def _group_detail(
    page: AdminPage, group_id: str, *, form_errors: FormErrors | None = None, status: int = 200
) -> Response:
    c = page.container
    with c.db.read() as conn:
        group = c.directory.get_group(conn, group_id)
        members = c.directory.members(conn, group.id)
        member_ids = {m.id for m in members}
        candidates = [u for u in c.directory.all_users(conn) if u.id not in member_ids]
        assignments = c.access.list_assignments(conn, principal_type="GROUP", principal_id=group.id)
        names = _names(c, conn)
    return page.render(
        "admin/group.html",
        status=status,
        section="groups",
        group=group,
        members=members,
        candidates=candidates,
        assignments=assignments,
        names=names,
        form_errors=form_errors or FormErrors(),
    )


@_admin_page
def group_detail(page: AdminPage) -> Response:
    """A group: its members (add, remove), its name and description, its assignments."""
    return _group_detail(page, page.param("group_id"))


@_admin_page
def group_edit(page: AdminPage) -> Response:
    group_id = page.param("group_id")
    errors = FormErrors()
    try:
        with page.container.db.write() as conn:
            page.container.directory.update_group(
                conn,
                page.actor(),
                group_id,
                display_name=page.text("display_name"),
                description=page.text("description"),
            )
    except ValidationError as error:
        errors.place(error.problems, _GROUP_FIELDS)
        return _group_detail(page, group_id, form_errors=errors, status=400)
    except ConflictError as error:
        errors.add("display_name", error.message)
        return _group_detail(page, group_id, form_errors=errors, status=409)
    return page.redirect(f"{PREFIX}/groups/{group_id}", "group-updated")


@_admin_page
def group_add_member(page: AdminPage) -> Response:
    group_id = page.param("group_id")
    errors = FormErrors()
    try:
        with page.container.db.write() as conn:
            user = page.container.directory.resolve_user(conn, page.text("user_id"))
            page.container.directory.add_member(conn, page.actor(), group_id, user.id)
    except (ConflictError, NotFoundError) as error:
        if isinstance(error, NotFoundError) and error.resource_type == "GROUP":
            raise
        errors.add("user_id", error.message)
        return _group_detail(page, group_id, form_errors=errors, status=error.status)
    return page.redirect(f"{PREFIX}/groups/{group_id}", "member-added")


@_admin_page
def group_remove_member(page: AdminPage) -> Response:
    group_id = page.param("group_id")
    with page.container.db.write() as conn:
        page.container.directory.remove_member(conn, page.actor(), group_id, page.text("user_id"))
    return page.redirect(f"{PREFIX}/groups/{group_id}", "member-removed")


@_admin_page
def group_delete(page: AdminPage) -> Response:
    group_id = page.param("group_id")
    c = page.container
    if page.method == "GET":
        with c.db.read() as conn:
            group = c.directory.get_group(conn, group_id)
            members = c.directory.members(conn, group.id)
            assignments = c.access.list_assignments(conn, principal_type="GROUP", principal_id=group.id)
        consequences = [
            f"Its {len(members)} member(s) lose the access the group gave them.",
            f"Its {len(assignments)} assignment(s) are removed.",
        ]
        return page.render(
            "admin/confirm_delete.html",
            section="groups",
            what=f"group {group.display_name}",
            consequences=consequences,
            action=f"{PREFIX}/groups/{group.id}/delete",
            back=f"{PREFIX}/groups/{group.id}",
        )
    with c.db.write() as conn:
        c.directory.delete_group(conn, page.actor(), group_id)
    return page.redirect(f"{PREFIX}/groups", "group-deleted")


# ---- accounts --------------------------------------------------------------------------------------

_ACCOUNT_FIELDS = {
    "id": "id",
    "name": "name",
    "email": "email",
    "kind": "kind",
    "status": "status",
    "ou": "ou_path",
    "tags": "tags",
}


def parse_tags(text: str, errors: FormErrors, name: str = "tags") -> dict[str, str]:
    """``key=value`` lines; a line without ``=`` is a problem of the field."""
    tags: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            errors.add(name, f"Line {number}: write each tag as key=value")
            continue
        if key.strip() in tags:
            errors.add(name, f"Line {number}: the tag {key.strip()!r} is given twice")
        tags[key.strip()] = value.strip()
    return tags


def format_tags(tags: dict[str, str]) -> str:
    return "\n".join(f"{k}={v}" for k, v in tags.items())


def _account_values(page: AdminPage) -> dict[str, Any]:
    return {
        "id": page.text("id"),
        "name": page.text("name"),
        "email": page.text("email"),
        "kind": page.text("kind") or "local",
        "status": page.text("status") or "ACTIVE",
        "ou_path": page.text("ou_path"),
        "tags": page.text("tags", strip=False),
    }


def _account_spec(values: dict[str, Any], errors: FormErrors) -> AccountSpec:
    return AccountSpec(
        name=values["name"],
        email=values["email"],
        id=values["id"] or None,
        kind=values["kind"],
        status=values["status"],
        ou_path=values["ou_path"] or None,
        tags=parse_tags(values["tags"], errors),
    )


def _account_values_of(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "name": account.name,
        "email": account.email,
        "kind": account.kind,
        "status": account.status,
        "ou_path": account.ou_path or "",
        "tags": format_tags(account.tags),
    }


def _account_form(
    page: AdminPage, account: Account | None, values: dict[str, Any], errors: FormErrors, status: int = 200
) -> Response:
    return page.render(
        "admin/account_form.html",
        status=status,
        section="accounts",
        account=account,
        values=values,
        form_errors=errors,
    )


@_admin_page
def accounts(page: AdminPage) -> Response:
    with page.container.db.read() as conn:
        found = page.container.access.all_accounts(conn)
    return page.render("admin/accounts.html", section="accounts", accounts=found)


@_admin_page
def account_new(page: AdminPage) -> Response:
    """Register an account: ``local`` (Keyhall's own STS) or ``aws`` (a real AWS account)."""
    if page.method == "GET":
        values = {"kind": "local", "status": "ACTIVE"}
        return _account_form(page, None, values, FormErrors())
    values = _account_values(page)
    errors = FormErrors()
    spec = _account_spec(values, errors)
    try:
        if errors:
            raise ValidationError.from_problems(check_account_spec(spec))
        with page.container.db.write() as conn:
            account = page.container.access.create_account(conn, page.actor(), spec)
    except ValidationError as error:
        errors.place(error.problems, _ACCOUNT_FIELDS)
        return _account_form(page, None, values, errors, status=400)
    except ConflictError as error:
        errors.add("name" if "named" in error.message else "id", error.message)
        return _account_form(page, None, values, errors, status=409)
    return page.redirect(f"{PREFIX}/accounts/{account.id}", "account-created")


@_admin_page
def account_detail(page: AdminPage) -> Response:
    """An account and who can get in: with which permission set, directly or through which group."""
    c = page.container
    with c.db.read() as conn:
        account = c.access.get_account(conn, page.param("account_id"))
        access = c.access.account_access(conn, account.id)
        assignments = c.access.list_assignments(conn, account_id=account.id)
        names = _names(c, conn)
    return page.render(
        "admin/account.html",
        section="accounts",
        account=account,
        access=access,
        assignments=assignments,
        names=names,
    )


@_admin_page
def account_edit(page: AdminPage) -> Response:
    account_id = page.param("account_id")
    c = page.container
    if page.method == "GET":
        with c.db.read() as conn:
            account = c.access.get_account(conn, account_id)
        return _account_form(page, account, _account_values_of(account), FormErrors())
    values = _account_values(page)
    errors = FormErrors()
    spec = _account_spec(values, errors)
    with c.db.read() as conn:
        account = c.access.get_account(conn, account_id)
    try:
        if errors:
            raise ValidationError.from_problems(check_account_spec(spec))
        with c.db.write() as conn:
            c.access.update_account(conn, page.actor(), account.id, spec)
    except ValidationError as error:
        errors.place(error.problems, _ACCOUNT_FIELDS)
        return _account_form(page, account, values, errors, status=400)
    except ConflictError as error:
        errors.add("name", error.message)
        return _account_form(page, account, values, errors, status=409)
    return page.redirect(f"{PREFIX}/accounts/{account.id}", "account-updated")


@_admin_page
def account_status(page: AdminPage) -> Response:
    """Suspend (nobody gets credentials) or reactivate an account."""
    status = {"suspend": "SUSPENDED", "activate": "ACTIVE"}.get(page.text("action"))
    if status is None:
        return page.error("Choose Suspend or Activate.")
    c = page.container
    with c.db.write() as conn:
        account = c.access.get_account(conn, page.param("account_id"))
        spec = AccountSpec(
            name=account.name,
            email=account.email,
            id=account.id,
            kind=account.kind,
            status=status,
            ou_path=account.ou_path,
            tags=dict(account.tags),
        )
        c.access.update_account(conn, page.actor(), account.id, spec)
    notice = "account-suspended" if status == "SUSPENDED" else "account-activated"
    return page.redirect(f"{PREFIX}/accounts/{account.id}", notice)


@_admin_page
def account_delete(page: AdminPage) -> Response:
    account_id = page.param("account_id")
    c = page.container
    if page.method == "GET":
        with c.db.read() as conn:
            account = c.access.get_account(conn, account_id)
            assignments = c.access.list_assignments(conn, account_id=account.id)
        consequences = [
            f"Its {len(assignments)} assignment(s) are removed; nobody can get credentials for it here.",
            "For an aws account, nothing changes in AWS itself.",
        ]
        return page.render(
            "admin/confirm_delete.html",
            section="accounts",
            what=f"account {account.name} ({account.id})",
            consequences=consequences,
            action=f"{PREFIX}/accounts/{account.id}/delete",
            back=f"{PREFIX}/accounts/{account.id}",
        )
    with c.db.write() as conn:
        c.access.delete_account(conn, page.actor(), account_id)
    return page.redirect(f"{PREFIX}/accounts", "account-deleted")


# ---- permission sets -------------------------------------------------------------------------------

_PS_FIELDS = {
    "name": "name",
    "description": "description",
    "session_duration": "session_duration",
    "relay_state": "relay_state",
    "managed_policies": "managed_policies",
    "customer_managed_policies": "customer_managed",
    "permissions_boundary": "boundary",
    "tags": "tags",
}


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def split_policy_reference(text: str) -> dict[str, str]:
    """``/path/Name`` or ``Name`` into an IAM CustomerManagedPolicyReference."""
    path, _, name = text.rpartition("/")
    return {"Name": name, "Path": f"{path}/" if path else "/"}


def format_policy_reference(ref: dict[str, Any]) -> str:
    path = str(ref.get("Path") or "/")
    return f"{path}{ref.get('Name', '')}" if path != "/" else str(ref.get("Name", ""))


def _boundary(text: str) -> dict[str, Any] | None:
    if not text:
        return None
    if text.startswith("arn:"):
        return {"ManagedPolicyArn": text}
    return {"CustomerManagedPolicyReference": split_policy_reference(text)}


def _boundary_text(boundary: dict[str, Any] | None) -> str:
    if not boundary:
        return ""
    if boundary.get("ManagedPolicyArn"):
        return str(boundary["ManagedPolicyArn"])
    ref = boundary.get("CustomerManagedPolicyReference")
    return format_policy_reference(ref) if isinstance(ref, dict) else ""


def _ps_values(page: AdminPage) -> dict[str, Any]:
    return {
        "name": page.text("name"),
        "description": page.text("description"),
        "session_duration": page.text("session_duration") or "PT1H",
        "relay_state": page.text("relay_state"),
        "managed_policies": page.text("managed_policies", strip=False),
        "customer_managed": page.text("customer_managed", strip=False),
        "boundary": page.text("boundary"),
        "tags": page.text("tags", strip=False),
        "inline_policy": page.text("inline_policy", strip=False),
    }


def _ps_values_of(ps: PermissionSet) -> dict[str, Any]:
    inline = ""
    if ps.inline_policy:
        try:
            inline = json.dumps(json.loads(ps.inline_policy), indent=2)
        except ValueError:
            inline = ps.inline_policy
    return {
        "name": ps.name,
        "description": ps.description or "",
        "session_duration": ps.session_duration,
        "relay_state": ps.relay_state or "",
        "managed_policies": "\n".join(ps.managed_policy_arns),
        "customer_managed": "\n".join(format_policy_reference(r) for r in ps.customer_managed_policies),
        "boundary": _boundary_text(ps.permissions_boundary),
        "tags": format_tags(ps.tags),
        "inline_policy": inline,
    }


def _ps_spec(values: dict[str, Any], errors: FormErrors) -> PermissionSetSpec:
    return PermissionSetSpec(
        name=values["name"],
        description=values["description"] or None,
        session_duration=values["session_duration"],
        relay_state=values["relay_state"] or None,
        managed_policy_arns=_lines(values["managed_policies"]),
        customer_managed_policies=[split_policy_reference(x) for x in _lines(values["customer_managed"])],
        inline_policy=values["inline_policy"] if values["inline_policy"].strip() else None,
        permissions_boundary=_boundary(values["boundary"]),
        tags=parse_tags(values["tags"], errors),
    )


def _ps_form(
    page: AdminPage,
    ps: PermissionSet | None,
    values: dict[str, Any],
    errors: FormErrors,
    *,
    status: int = 200,
    used_by: int = 0,
) -> Response:
    return page.render(
        "admin/permission_set_form.html",
        status=status,
        section="permission_sets",
        ps=ps,
        values=values,
        form_errors=errors,
        session_choices=SESSION_CHOICES,
        used_by=used_by,
    )


@_admin_page
def permission_sets(page: AdminPage) -> Response:
    c = page.container
    with c.db.read() as conn:
        found = c.access.all_permission_sets(conn)
        usage: dict[str, int] = {}
        for assignment in c.access.list_assignments(conn):
            usage[assignment.permission_set_id] = usage.get(assignment.permission_set_id, 0) + 1
    return page.render("admin/permission_sets.html", section="permission_sets", sets=found, usage=usage)


@_admin_page
def permission_set_new(page: AdminPage) -> Response:
    """Create a permission set. Problems, inline policy ones included, are shown next to their field."""
    if page.method == "GET":
        values = {"session_duration": "PT1H"}
        return _ps_form(page, None, values, FormErrors())
    values = _ps_values(page)
    errors = FormErrors()
    spec = _ps_spec(values, errors)
    try:
        if errors:
            raise ValidationError.from_problems(check_permission_set_spec(spec)[0])
        with page.container.db.write() as conn:
            ps = page.container.access.create_permission_set(conn, page.actor(), spec)
    except ValidationError as error:
        errors.place(error.problems, _PS_FIELDS)
        return _ps_form(page, None, values, errors, status=400)
    except ConflictError as error:
        errors.add("name", error.message)
        return _ps_form(page, None, values, errors, status=409)
    return page.redirect(f"{PREFIX}/permission-sets/{ps.id}", "ps-created")


@_admin_page
def permission_set_edit(page: AdminPage) -> Response:
    """Show and change a permission set (its name is its role name in every account, so it is fixed)."""
    c = page.container
    with c.db.read() as conn:
        ps = c.access.get_permission_set(conn, page.param("ps_id"))
        used_by = len(c.access.list_assignments(conn, ps_id=ps.id))
    if page.method == "GET":
        return _ps_form(page, ps, _ps_values_of(ps), FormErrors(), used_by=used_by)
    values = {**_ps_values(page), "name": ps.name}
    errors = FormErrors()
    spec = _ps_spec(values, errors)
    try:
        if errors:
            raise ValidationError.from_problems(check_permission_set_spec(spec)[0])
        with c.db.write() as conn:
            c.access.update_permission_set(conn, page.actor(), ps.id, spec)
    except ValidationError as error:
        errors.place(error.problems or ([Problem("", error.message)] if error.message else []), _PS_FIELDS)
        return _ps_form(page, ps, values, errors, status=400, used_by=used_by)
    return page.redirect(f"{PREFIX}/permission-sets/{ps.id}", "ps-updated")


@_admin_page
def permission_set_delete(page: AdminPage) -> Response:
    ps_id = page.param("ps_id")
    c = page.container
    with c.db.read() as conn:
        ps = c.access.get_permission_set(conn, ps_id)
        used_by = len(c.access.list_assignments(conn, ps_id=ps.id))
    if page.method == "GET":
        consequences = (
            [f"It is used by {used_by} assignment(s): remove them first."]
            if used_by
            else ["Nobody uses it; its roles are no longer offered."]
        )
        return page.render(
            "admin/confirm_delete.html",
            section="permission_sets",
            what=f"permission set {ps.name}",
            consequences=consequences,
            action=f"{PREFIX}/permission-sets/{ps.id}/delete",
            back=f"{PREFIX}/permission-sets/{ps.id}",
            blocked=bool(used_by),
        )
    with c.db.write() as conn:
        c.access.delete_permission_set(conn, page.actor(), ps.id)
    return page.redirect(f"{PREFIX}/permission-sets", "ps-deleted")


# ---- assignments -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Names:
    """Display names of everything an assignment can point at, for tables and selects."""

    accounts: dict[str, Account]
    permission_sets: dict[str, PermissionSet]
    users: dict[str, User]
    groups: dict[str, Group]

    def principal(self, principal_type: str, principal_id: str) -> str:
        if principal_type == "USER":
            user = self.users.get(principal_id)
            return user.user_name if user else principal_id
        group = self.groups.get(principal_id)
        return group.display_name if group else principal_id


def _names(c: AdminContainer, conn: Connection) -> Names:
    return Names(
        accounts={a.id: a for a in c.access.all_accounts(conn)},
        permission_sets={p.id: p for p in c.access.all_permission_sets(conn)},
        users={u.id: u for u in c.directory.all_users(conn)},
        groups={g.id: g for g in c.directory.all_groups(conn)},
    )


def _principal(value: str) -> tuple[str, str] | None:
    kind, _, principal_id = value.partition(":")
    return (kind, principal_id) if kind in ("USER", "GROUP") and principal_id else None


@_admin_page
def assignments(page: AdminPage) -> Response:
    """Assignments, filtered by account, permission set and principal."""
    c = page.container
    filters = {
        "account": page.query("account", limit=12),
        "permission_set": page.query("permission_set", limit=40),
        "principal": page.query("principal", limit=60),
    }
    principal = _principal(filters["principal"])
    with c.db.read() as conn:
        names = _names(c, conn)
        found = c.access.list_assignments(
            conn,
            account_id=filters["account"] or None,
            ps_id=filters["permission_set"] or None,
            principal_type=principal[0] if principal else None,
            principal_id=principal[1] if principal else None,
        )
    return page.render(
        "admin/assignments.html",
        section="assignments",
        assignments=found,
        names=names,
        filters=filters,
        back=page.request.url.path + (f"?{page.request.url.query}" if page.request.url.query else ""),
    )


@_admin_page
def assignment_new(page: AdminPage) -> Response:
    """Give a user or a group a permission set in an account."""
    c = page.container
    if page.method == "GET":
        values = {
            "account": page.query("account", limit=12),
            "permission_set": page.query("permission_set", limit=40),
            "principal": page.query("principal", limit=60),
        }
    else:
        values = {
            "account": page.text("account"),
            "permission_set": page.text("permission_set"),
            "principal": page.text("principal"),
        }
    errors = FormErrors()
    if page.method == "POST":
        principal = _principal(values["principal"])
        if not values["account"]:
            errors.add("account", "Choose an account.")
        if not values["permission_set"]:
            errors.add("permission_set", "Choose a permission set.")
        if principal is None:
            errors.add("principal", "Choose a user or a group.")
        if not errors and principal is not None:
            try:
                with c.db.write() as conn:
                    c.access.create_assignment(
                        conn, page.actor(), values["account"], values["permission_set"], *principal
                    )
            except NotFoundError as error:
                field_name = {"ACCOUNT": "account", "PERMISSION_SET": "permission_set"}.get(
                    error.resource_type, "principal"
                )
                errors.add(field_name, error.message)
            except (ConflictError, ValidationError) as error:
                errors.general.append(error.message)
            else:
                return page.redirect(
                    f"{PREFIX}/assignments?" + urlencode({"account": values["account"]}), "assignment-created"
                )
    with c.db.read() as conn:
        names = _names(c, conn)
    return page.render(
        "admin/assignment_form.html",
        status=(409 if errors.general else 400) if errors else 200,
        section="assignments",
        values=values,
        names=names,
        form_errors=errors,
    )


@_admin_page
def assignment_delete(page: AdminPage) -> Response:
    principal = _principal(f"{page.text('principal_type')}:{page.text('principal_id')}")
    if principal is None:
        return page.error("The assignment to remove was not named.")
    with page.container.db.write() as conn:
        page.container.access.delete_assignment(
            conn, page.actor(), page.text("account_id"), page.text("permission_set_id"), *principal
        )
    back = safe_next(page.text("next"), default=f"{PREFIX}/assignments")
    if not back.startswith(f"{PREFIX}/"):
        back = f"{PREFIX}/assignments"
    return page.redirect(back, "assignment-deleted")


# ---- settings --------------------------------------------------------------------------------------


def _settings_values(instance: Instance) -> dict[str, Any]:
    return {
        "portal_session_minutes": str(instance.portal_session_minutes),
        "mfa_policy": instance.mfa_policy,
        "device_grant": "on" if instance.device_grant_enabled else "off",
    }


@_admin_page
def settings(page: AdminPage) -> Response:
    """Portal session length, MFA policy and the device grant, each explained."""
    c = page.container
    with c.db.read() as conn:
        instance = require_instance(conn)
    if page.method == "GET":
        return page.render(
            "admin/settings.html",
            section="settings",
            instance=instance,
            values=_settings_values(instance),
            form_errors=FormErrors(),
        )
    values = {
        "portal_session_minutes": page.text("portal_session_minutes"),
        "mfa_policy": page.text("mfa_policy"),
        "device_grant": page.text("device_grant"),
    }
    errors = FormErrors()
    minutes_text = values["portal_session_minutes"]
    minutes = int(minutes_text) if minutes_text.isdigit() and len(minutes_text) < 8 else None
    if minutes is None or not MIN_PORTAL_SESSION_MINUTES <= minutes <= MAX_PORTAL_SESSION_MINUTES:
        errors.add(
            "portal_session_minutes",
            f"Enter a whole number of minutes from {MIN_PORTAL_SESSION_MINUTES} to "
            f"{MAX_PORTAL_SESSION_MINUTES} (90 days).",
        )
    if values["mfa_policy"] not in MFA_POLICY_HELP:
        errors.add("mfa_policy", "Choose required, optional or off.")
    if values["device_grant"] not in ("on", "off"):
        errors.add("device_grant", "Choose on or off.")
    if errors:
        return page.render(
            "admin/settings.html",
            status=400,
            section="settings",
            instance=instance,
            values=values,
            form_errors=errors,
        )
    with c.db.write() as conn:
        update_instance_settings(
            conn,
            page.actor(),
            c.audit,
            portal_session_minutes=minutes,
            mfa_policy=values["mfa_policy"],
            device_grant_enabled=values["device_grant"] == "on",
        )
    return page.redirect(f"{PREFIX}/settings", "settings-saved")


# ---- audit log -------------------------------------------------------------------------------------


def _cursor(value: str) -> tuple[float, int] | None:
    match = _CURSOR_RE.fullmatch(value)
    return (float(match.group(1)), int(match.group(2))) if match else None


@_admin_page
def audit(page: AdminPage) -> Response:
    """The audit log, newest first: filter by event name, actor, start time and resource text."""
    c = page.container
    values = {
        "event": page.query("event", limit=128),
        "actor": page.query("actor", limit=255),
        "since": page.query("since", limit=64),
        "q": page.query("q", limit=255),
    }
    errors = FormErrors()
    since: float | None = None
    if values["since"]:
        try:
            since = parse_since(values["since"], now=c.clock.timestamp())
        except ValidationError as error:
            errors.add("since", error.message.removeprefix("since: "))
    filters = AuditFilters(
        event_name=values["event"] or None,
        actor=values["actor"] or None,
        since=since,
        text=values["q"] or None,
    )
    before = _cursor(page.query("before", limit=64))
    records: list[AuditRecord] = []
    if not errors:
        with c.db.read() as conn:
            records = query_audit_page(conn, filters, before=before, limit=AUDIT_PAGE_SIZE + 1)
    more = len(records) > AUDIT_PAGE_SIZE
    records = records[:AUDIT_PAGE_SIZE]
    query = {k: v for k, v in values.items() if v}
    older = None
    if more and records:
        last = records[-1]
        older = f"{PREFIX}/audit?" + urlencode({**query, "before": f"{last.event_time!r}_{last.seq}"})
    return page.render(
        "admin/audit.html",
        status=400 if errors else 200,
        section="audit",
        values=values,
        records=records,
        older=older,
        newest=f"{PREFIX}/audit?" + urlencode(query) if before else None,
        form_errors=errors,
    )


routes: list[BaseRoute] = [
    Route(PREFIX, dashboard, methods=["GET"]),
    Route(f"{PREFIX}/users", users, methods=["GET"]),
    Route(f"{PREFIX}/users/new", user_new, methods=["GET", "POST"]),
    Route(f"{PREFIX}/users/{{user_id}}", user_detail, methods=["GET"]),
    Route(f"{PREFIX}/users/{{user_id}}/edit", user_edit, methods=["POST"]),
    Route(f"{PREFIX}/users/{{user_id}}/status", user_status, methods=["POST"]),
    Route(f"{PREFIX}/users/{{user_id}}/reset-password", user_reset_password, methods=["POST"]),
    Route(f"{PREFIX}/users/{{user_id}}/reset-mfa", user_reset_mfa, methods=["POST"]),
    Route(f"{PREFIX}/users/{{user_id}}/revoke-sessions", user_revoke_sessions, methods=["POST"]),
    Route(f"{PREFIX}/users/{{user_id}}/delete", user_delete, methods=["GET", "POST"]),
    Route(f"{PREFIX}/users/{{user_id}}/access", user_access, methods=["GET"]),
    Route(f"{PREFIX}/groups", groups, methods=["GET"]),
    Route(f"{PREFIX}/groups/new", group_new, methods=["GET", "POST"]),
    Route(f"{PREFIX}/groups/{{group_id}}", group_detail, methods=["GET"]),
    Route(f"{PREFIX}/groups/{{group_id}}/edit", group_edit, methods=["POST"]),
    Route(f"{PREFIX}/groups/{{group_id}}/members", group_add_member, methods=["POST"]),
    Route(f"{PREFIX}/groups/{{group_id}}/members/remove", group_remove_member, methods=["POST"]),
    Route(f"{PREFIX}/groups/{{group_id}}/delete", group_delete, methods=["GET", "POST"]),
    Route(f"{PREFIX}/accounts", accounts, methods=["GET"]),
    Route(f"{PREFIX}/accounts/new", account_new, methods=["GET", "POST"]),
    Route(f"{PREFIX}/accounts/{{account_id}}", account_detail, methods=["GET"]),
    Route(f"{PREFIX}/accounts/{{account_id}}/edit", account_edit, methods=["GET", "POST"]),
    Route(f"{PREFIX}/accounts/{{account_id}}/status", account_status, methods=["POST"]),
    Route(f"{PREFIX}/accounts/{{account_id}}/delete", account_delete, methods=["GET", "POST"]),
    Route(f"{PREFIX}/permission-sets", permission_sets, methods=["GET"]),
    Route(f"{PREFIX}/permission-sets/new", permission_set_new, methods=["GET", "POST"]),
    Route(f"{PREFIX}/permission-sets/{{ps_id}}", permission_set_edit, methods=["GET", "POST"]),
    Route(f"{PREFIX}/permission-sets/{{ps_id}}/delete", permission_set_delete, methods=["GET", "POST"]),
    Route(f"{PREFIX}/assignments", assignments, methods=["GET"]),
    Route(f"{PREFIX}/assignments/new", assignment_new, methods=["GET", "POST"]),
    Route(f"{PREFIX}/assignments/delete", assignment_delete, methods=["POST"]),
    Route(f"{PREFIX}/settings", settings, methods=["GET", "POST"]),
    Route(f"{PREFIX}/audit", audit, methods=["GET"]),
]
