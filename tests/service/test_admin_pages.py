"""The admin console through the ASGI app, on SQLite and PostgreSQL: who may use it (administrators only,
checked from the database on every request), CSRF on every form, the changes it makes through the services
and the audit records it writes with the administrator as the actor."""

from __future__ import annotations

import html
import re
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning
from starlette.routing import Route

from keyhall.access.models import AccountSpec, PermissionSetSpec
from keyhall.app import RequestContextMiddleware
from keyhall.audit.events import Actor
from keyhall.clock import FrozenClock
from keyhall.container import Container
from keyhall.db.tables import (
    account_assignments,
    accounts,
    audit_events,
    instance,
    permission_sets,
    portal_sessions,
    totp_devices,
    users,
    webauthn_credentials,
)
from keyhall.directory.models import User, UserSpec
from keyhall.instance import create_instance, update_instance_settings
from keyhall.signin import totp
from keyhall.web import admin_pages, pages, portal_pages

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

PASSWORD = "correct horse battery staple"
BAD_POLICY = (
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Maybe", "Action": "s3:GetObject", "Resource": "*"}]}'
)
GOOD_POLICY = (
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}'
)


@dataclass
class Console:
    container: Container
    client: TestClient
    admin: User
    bob: User
    clock: FrozenClock

    def rows(self, table: Any, *where: Any) -> list[dict[str, Any]]:
        with self.container.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(select(table).where(*where))]

    def count(self, table: Any) -> int:
        with self.container.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    def audit(self, event_name: str) -> list[dict[str, Any]]:
        return self.rows(audit_events, audit_events.c.event_name == event_name)


@pytest.fixture
def console(container: Container, clock: FrozenClock, actor: Actor) -> Iterator[Console]:
    with container.db.write() as conn:
        create_instance(conn, actor, container.audit, clock, "Example Corp")
        # sign-in may ask for MFA enrolment under "required"; these tests are about the console
        update_instance_settings(conn, actor, container.audit, mfa_policy="optional")
        admin = container.directory.create_user(
            conn,
            actor,
            UserSpec("ada", display_name="Ada Admin", is_admin=True),
            password_hash=container.hasher.hash(PASSWORD),
        )
        bob = container.directory.create_user(
            conn,
            actor,
            UserSpec("bob", display_name="Bob Builder"),
            password_hash=container.hasher.hash(PASSWORD),
        )
    app = Starlette(routes=portal_pages.routes + pages.routes + admin_pages.routes)
    app.state.container = container
    app.add_middleware(RequestContextMiddleware)
    with TestClient(app, follow_redirects=False) as client:
        yield Console(container, client, admin, bob, clock)


# ---- helpers ---------------------------------------------------------------------------------------


def csrf_of(response: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', response.text)
    assert found, response.text[:2000]
    return found.group(1)


def sign_in(console: Console, user_name: str = "ada", password: str = PASSWORD) -> None:
    page = console.client.get("/login")
    response = console.client.post(
        "/login", data={"csrf": csrf_of(page), "user_name": user_name, "password": password, "next": "/start"}
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/start"


def post(
    console: Console, path: str, data: dict[str, str], *, form_page: str | None = None
) -> httpx.Response:
    """Submit a console form the way a browser does: with the CSRF token of a console page."""
    token = csrf_of(console.client.get(form_page or "/admin/settings"))
    response: httpx.Response = console.client.post(path, data={"csrf": token, **data})
    return response


def text_of(response: httpx.Response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.text)))


def assert_by_admin(console: Console, record: dict[str, Any]) -> None:
    assert record["actor_type"] == "IdentityCenterUser"
    assert record["actor_id"] == console.admin.id
    assert record["actor_name"] == "ada"
    assert record["source_ip"] == "testclient"
    assert record["user_agent"] == "testclient"
    assert record["request_id"] and len(record["request_id"]) == 32


def seed_access(console: Console) -> dict[str, str]:
    c = console.container
    actor = Actor(type="LocalOperator", id="seed", name="seed")
    with c.db.write() as conn:
        account = c.access.create_account(
            conn, actor, AccountSpec("Sandbox", "sandbox@example.com", id="111111111111")
        )
        ps = c.access.create_permission_set(
            conn, actor, PermissionSetSpec("Developer", session_duration="PT4H")
        )
        group = c.directory.create_group(conn, actor, "Developers")
        c.directory.add_member(conn, actor, group.id, console.bob.id)
        c.access.create_assignment(conn, actor, account.id, ps.id, "GROUP", group.id)
    return {"account_id": account.id, "ps_id": ps.id, "group_id": group.id, "user_id": console.bob.id}


def all_route_calls(ids: dict[str, str]) -> list[tuple[str, str]]:
    calls = []
    for route in admin_pages.routes:
        assert isinstance(route, Route)
        path = route.path.format(**ids)
        calls += [(method, path) for method in sorted(route.methods or ()) if method != "HEAD"]
    return calls


# ---- who may use the console -----------------------------------------------------------------------


def test_every_route_refuses_a_signed_in_non_administrator(console: Console) -> None:
    ids = seed_access(console)
    sign_in(console, "bob")
    token = csrf_of(console.client.get("/start"))
    before = console.count(audit_events)
    calls = all_route_calls(ids)
    assert len(calls) > 30
    for method, path in calls:
        response = console.client.request(method, path, data={"csrf": token} if method == "POST" else None)
        assert response.status_code == 403, (method, path, response.status_code)
        assert "for Keyhall administrators only" in response.text
        assert response.headers["x-frame-options"] == "DENY"
    assert console.count(audit_events) == before  # nothing was changed, nothing recorded


def test_signed_out_get_goes_to_sign_in_and_post_is_refused(console: Console) -> None:
    ids = seed_access(console)
    for method, path in all_route_calls(ids):
        response = console.client.request(method, path, data={"csrf": "x"} if method == "POST" else None)
        if method == "GET":
            assert response.status_code == 303
            assert response.headers["location"].startswith("/login?next=%2Fadmin")
        else:
            assert response.status_code == 403, (method, path)


def test_the_role_is_read_from_the_database_on_every_request(console: Console) -> None:
    sign_in(console)
    assert console.client.get("/admin").status_code == 200
    actor = Actor(type="LocalOperator", id="op", name="op")
    with console.container.db.write() as conn:  # another administrator takes the role away
        console.container.directory.update_user(conn, actor, console.admin.id, is_admin=False)
    assert console.client.get("/admin").status_code == 403
    with console.container.db.write() as conn:
        console.container.directory.update_user(conn, actor, console.admin.id, is_admin=True)
    assert console.client.get("/admin").status_code == 200
    with console.container.db.write() as conn:  # disabled: the session is gone with it
        console.container.directory.set_status(conn, actor, console.admin.id, "DISABLED")
    assert console.client.get("/admin/users").status_code == 303


def test_a_form_without_the_console_csrf_token_changes_nothing(console: Console) -> None:
    sign_in(console)
    users_before = console.count(users)
    missing = console.client.post("/admin/users/new", data={"user_name": "mallory"})
    assert missing.status_code == 403 and "expired or was not sent from this site" in missing.text
    wrong = console.client.post("/admin/users/new", data={"csrf": "A" * 43, "user_name": "mallory"})
    assert wrong.status_code == 403
    # the portal's token is bound to the same session but to another purpose: no good here
    portal_token = csrf_of(console.client.get("/start"))
    crossed = console.client.post("/admin/users/new", data={"csrf": portal_token, "user_name": "mallory"})
    assert crossed.status_code == 403
    settings = console.client.post("/admin/settings", data={"mfa_policy": "off", "device_grant": "on"})
    assert settings.status_code == 403
    assert console.count(users) == users_before
    assert console.rows(instance)[0]["mfa_policy"] == "optional"


def test_only_a_post_with_its_token_changes_anything(console: Console) -> None:
    sign_in(console)
    for path in (f"/admin/users/{console.bob.id}/delete", "/admin/settings", "/admin/users/new"):
        assert console.client.head(path).status_code == 200
    assert console.rows(users, users.c.id == console.bob.id) != []
    assert console.count(audit_events) == len(console.rows(audit_events))
    assert console.audit("DeleteUser") == [] and console.audit("UpdateInstanceSettings")[1:] == []


def test_pages_are_locked_down_and_free_of_inline_code(console: Console) -> None:
    ids = seed_access(console)
    sign_in(console)
    for method, path in all_route_calls(ids):
        if method != "GET":
            continue
        response = console.client.get(path)
        assert response.status_code == 200, path
        csp = response.headers["content-security-policy"]
        assert "unsafe-inline" not in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["cache-control"] == "no-store"
        assert " style=" not in response.text
        assert re.search(r"<script(?![^>]*\bsrc=)", response.text) is None
        assert re.search(r"\son[a-z]+=", response.text) is None  # no inline event handlers
        assert 'class="skip-link" href="#admin-main"' in response.text
        for form in re.findall(r'<form method="post".*?</form>', response.text, flags=re.S):
            assert 'name="csrf"' in form, (path, form[:200])
        for control_id in re.findall(r'<(?:input|select|textarea)[^>]*\sid="([^"]+)"', response.text):
            assert f'for="{control_id}"' in response.text, (path, control_id)


# ---- users -----------------------------------------------------------------------------------------


def test_create_user_shows_a_one_time_password_once(console: Console) -> None:
    sign_in(console)
    form = console.client.get("/admin/users/new")
    response = console.client.post(
        "/admin/users/new",
        data={
            "csrf": csrf_of(form),
            "user_name": "carol",
            "display_name": "Carol Coder",
            "given_name": "Carol",
            "family_name": "Coder",
            "email": "carol@example.com",
        },
    )
    assert response.status_code == 201, text_of(response)
    password = re.search(r'id="one-time-password">([^<]+)<', response.text)
    assert password is not None
    [row] = console.rows(users, users.c.user_name == "carol")
    assert row["must_change_password"] and not row["is_admin"] and row["display_name"] == "Carol Coder"
    assert row["attributes"]["Emails"][0]["Value"] == "carol@example.com"
    [record] = console.audit("CreateUser")[-1:]
    assert record["resource_id"] == row["id"]
    assert_by_admin(console, record)
    assert password.group(1) not in str(console.rows(audit_events))
    detail = console.client.get(f"/admin/users/{row['id']}")
    assert password.group(1) not in detail.text
    # the password works, and must be changed first
    console.client.cookies.clear()
    page = console.client.get("/login")
    signed = console.client.post(
        "/login",
        data={"csrf": csrf_of(page), "user_name": "carol", "password": password.group(1), "next": ""},
    )
    assert signed.headers["location"] == "/login/change-password"


def test_create_user_problems_are_shown_next_to_the_fields(console: Console) -> None:
    sign_in(console)
    bad = post(
        console, "/admin/users/new", {"user_name": "has space", "email": "nope"}, form_page="/admin/users/new"
    )
    assert bad.status_code == 400
    assert 'id="user_name-errors"' in bad.text and "must not contain spaces" in bad.text
    assert 'id="email-errors"' in bad.text and "is not an email address" in bad.text
    assert 'aria-invalid="true"' in bad.text
    taken = post(console, "/admin/users/new", {"user_name": "BOB"}, form_page="/admin/users/new")
    assert taken.status_code == 409 and "already exists" in taken.text
    assert console.count(users) == 2


def test_search_lists_matching_users(console: Console) -> None:
    sign_in(console)
    found = console.client.get("/admin/users", params={"q": "builder"})
    assert f'href="/admin/users/{console.bob.id}"' in found.text
    assert f'href="/admin/users/{console.admin.id}"' not in found.text
    assert "1 user match" in text_of(found)


def test_disable_enable_and_self_protection(console: Console) -> None:
    sign_in(console)
    bob = console.bob.id
    response = post(console, f"/admin/users/{bob}/status", {"action": "disable"})
    assert (
        response.status_code == 303
        and response.headers["location"] == f"/admin/users/{bob}?notice=user-disabled"
    )
    assert console.rows(users, users.c.id == bob)[0]["status"] == "DISABLED"
    assert_by_admin(console, console.audit("DisableUser")[-1])
    page = console.client.get(response.headers["location"])
    assert "The user is disabled" in page.text
    post(console, f"/admin/users/{bob}/status", {"action": "enable"})
    assert console.rows(users, users.c.id == bob)[0]["status"] == "ENABLED"
    refused = post(console, f"/admin/users/{console.admin.id}/status", {"action": "disable"})
    assert refused.status_code == 400 and "cannot disable yourself" in refused.text
    demote = post(console, f"/admin/users/{console.admin.id}/edit", {"user_name": "ada"})
    assert demote.status_code == 400 and "your own administrator rights" in demote.text
    assert console.rows(users, users.c.id == console.admin.id)[0]["is_admin"]


def test_edit_user(console: Console) -> None:
    sign_in(console)
    response = post(
        console,
        f"/admin/users/{console.bob.id}/edit",
        {"user_name": "bob", "display_name": "Robert", "email": "rob@example.com", "is_admin": "on"},
    )
    assert response.status_code == 303
    [row] = console.rows(users, users.c.id == console.bob.id)
    assert row["display_name"] == "Robert" and row["is_admin"]
    assert_by_admin(console, console.audit("UpdateUser")[-1])


def test_reset_password_shows_a_new_one_and_ends_sessions(console: Console) -> None:
    c = console.container
    with c.db.write() as conn:
        c.sessions.create(conn, user_id=console.bob.id, kind="cli", lifetime_seconds=3600)
    sign_in(console)
    response = post(console, f"/admin/users/{console.bob.id}/reset-password", {})
    assert response.status_code == 200
    password = re.search(r'id="one-time-password">([^<]+)<', response.text)
    assert password is not None
    [row] = console.rows(users, users.c.id == console.bob.id)
    assert row["must_change_password"]
    assert c.hasher.verify(row["password_hash"], password.group(1))
    assert all(
        s["revoked_at"] is not None
        for s in console.rows(portal_sessions, portal_sessions.c.user_id == console.bob.id)
    )
    assert_by_admin(console, console.audit("ResetPassword")[-1])
    assert console.audit("RevokeUserSessions")[-1]["resource_id"] == console.bob.id


def test_reset_mfa_removes_every_device(console: Console) -> None:
    c = console.container
    actor = Actor(type="LocalOperator", id="op", name="op")
    with c.db.write() as conn:
        enrolment = c.signin.begin_totp_enrolment(conn, console.bob.id)
    code = totp.totp_code(enrolment.secret, totp.time_step(console.clock.timestamp()))
    with c.db.write() as conn:
        assert c.signin.confirm_totp_enrolment(conn, console.bob.id, enrolment.device_id, code, actor=actor)
        conn.execute(
            insert(webauthn_credentials).values(
                id=str(uuid.uuid4()),
                user_id=console.bob.id,
                credential_id=b"cred-1",
                public_key=b"key",
                sign_count=0,
                name="YubiKey",
                transports=["usb"],
                aaguid=None,
                backup_eligible=False,
                created_at=console.clock.timestamp(),
                last_used_at=None,
            )
        )
        c.sessions.create(conn, user_id=console.bob.id, kind="cli", lifetime_seconds=3600)
    sign_in(console)
    detail = console.client.get(f"/admin/users/{console.bob.id}")
    assert "Authenticator app (TOTP)" in detail.text and "YubiKey" in detail.text
    response = post(console, f"/admin/users/{console.bob.id}/reset-mfa", {})
    assert response.status_code == 303
    assert console.rows(totp_devices, totp_devices.c.user_id == console.bob.id) == []
    assert console.rows(webauthn_credentials, webauthn_credentials.c.user_id == console.bob.id) == []
    records = console.audit("DeleteMfaDeviceForUser")
    assert sorted(r["additional_data"]["CredentialType"] for r in records) == ["TOTP", "WEBAUTHN"]
    for record in records:
        assert_by_admin(console, record)
        assert record["request_parameters"]["UserId"] == console.bob.id
    assert all(
        s["revoked_at"] is not None
        for s in console.rows(portal_sessions, portal_sessions.c.user_id == console.bob.id)
    )
    assert "No MFA devices" in console.client.get(response.headers["location"]).text


def test_delete_user_asks_first(console: Console) -> None:
    sign_in(console)
    confirm = console.client.get(f"/admin/users/{console.bob.id}/delete")
    assert confirm.status_code == 200 and "Delete user bob?" in text_of(confirm)
    assert console.count(users) == 2
    deleted = post(console, f"/admin/users/{console.bob.id}/delete", {})
    assert deleted.status_code == 303 and deleted.headers["location"] == "/admin/users?notice=user-deleted"
    assert console.rows(users, users.c.id == console.bob.id) == []
    assert_by_admin(console, console.audit("DeleteUser")[-1])
    assert console.client.get(f"/admin/users/{console.admin.id}/delete").status_code == 400


# ---- groups, accounts, permission sets, assignments ----------------------------------------------------


def test_create_the_pieces_of_an_assignment_through_forms(console: Console) -> None:
    sign_in(console)
    group = post(console, "/admin/groups/new", {"display_name": "Data", "description": "Analysts"})
    assert group.status_code == 303
    group_id = group.headers["location"].split("/")[3].split("?")[0]
    added = post(console, f"/admin/groups/{group_id}/members", {"user_id": console.bob.id})
    assert added.status_code == 303
    assert "bob" in console.client.get(f"/admin/groups/{group_id}").text

    account = post(
        console,
        "/admin/accounts/new",
        {
            "id": "444444444444",
            "name": "Analytics",
            "email": "analytics@example.com",
            "kind": "local",
            "status": "ACTIVE",
            "ou_path": "/Root/Data",
            "tags": "team=data\nenv=prod",
        },
    )
    assert account.status_code == 303, text_of(account)
    [account_row] = console.rows(accounts, accounts.c.id == "444444444444")
    assert account_row["tags"] == {"team": "data", "env": "prod"} and account_row["ou_path"] == "/Root/Data"

    ps = post(
        console,
        "/admin/permission-sets/new",
        {
            "name": "DataReader",
            "description": "Read the lake",
            "session_duration": "PT2H",
            "relay_state": "https://console.aws.amazon.com/s3/home",
            "managed_policies": "arn:aws:iam::aws:policy/ReadOnlyAccess\n\n"
            "arn:aws:iam::aws:policy/AmazonAthenaFullAccess",
            "customer_managed": "/data/LakeRead\nQueryResults",
            "boundary": "arn:aws:iam::aws:policy/PowerUserAccess",
            "tags": "team=data",
            "inline_policy": GOOD_POLICY,
        },
    )
    assert ps.status_code == 303, text_of(ps)
    [ps_row] = console.rows(permission_sets, permission_sets.c.name == "DataReader")
    assert ps_row["session_seconds"] == 7200
    assert ps_row["managed_policy_arns"] == [
        "arn:aws:iam::aws:policy/ReadOnlyAccess",
        "arn:aws:iam::aws:policy/AmazonAthenaFullAccess",
    ]
    assert ps_row["customer_managed_policies"] == [
        {"Name": "LakeRead", "Path": "/data/"},
        {"Name": "QueryResults", "Path": "/"},
    ]
    assert ps_row["permissions_boundary"] == {"ManagedPolicyArn": "arn:aws:iam::aws:policy/PowerUserAccess"}
    assert ps_row["inline_policy"] is not None

    assigned = post(
        console,
        "/admin/assignments/new",
        {"account": "444444444444", "permission_set": ps_row["id"], "principal": f"GROUP:{group_id}"},
    )
    assert assigned.status_code == 303, text_of(assigned)
    [assignment] = console.rows(account_assignments)
    assert (assignment["principal_type"], assignment["principal_id"]) == ("GROUP", group_id)
    again = post(
        console,
        "/admin/assignments/new",
        {"account": "444444444444", "permission_set": ps_row["id"], "principal": f"GROUP:{group_id}"},
    )
    assert again.status_code == 409 and "already exists" in again.text

    for name in (
        "CreateGroup",
        "CreateGroupMembership",
        "CreateAccount",
        "CreatePermissionSet",
        "CreateAccountAssignment",
    ):
        [record] = console.audit(name)
        assert_by_admin(console, record)

    # effective access, from both ends
    user_access = text_of(console.client.get(f"/admin/users/{console.bob.id}/access"))
    assert "Analytics" in user_access and "DataReader" in user_access and "group Data" in user_access
    account_access = text_of(console.client.get("/admin/accounts/444444444444"))
    assert "bob DataReader group Data" in account_access
    listed = console.client.get("/admin/assignments", params={"account": "444444444444"})
    assert "DataReader" in listed.text and "1 assignment." in text_of(listed)


def test_an_invalid_inline_policy_is_shown_in_place_and_changes_nothing(console: Console) -> None:
    sign_in(console)
    values = {"name": "Broken", "session_duration": "PT1H", "inline_policy": BAD_POLICY}
    bad = post(console, "/admin/permission-sets/new", values, form_page="/admin/permission-sets/new")
    assert bad.status_code == 400
    errors = re.search(r'<ul class="field-errors" id="inline_policy-errors">(.*?)</ul>', bad.text, re.S)
    assert errors is not None
    assert '<code class="json-path">Statement[0].Effect</code>' in errors.group(1)
    assert "Allow" in errors.group(1)
    assert 'aria-describedby="inline_policy-help inline_policy-errors" aria-invalid="true"' in bad.text
    kept = re.search(r'name="inline_policy"[^>]*>([^<]*)</textarea>', bad.text)
    assert kept is not None and html.unescape(kept.group(1)) == BAD_POLICY
    assert console.rows(permission_sets, permission_sets.c.name == "Broken") == []

    syntax = post(
        console,
        "/admin/permission-sets/new",
        {**values, "inline_policy": '{\n  "Version": "2012-10-17",\n  "Statement": [\n}'},
        form_page="/admin/permission-sets/new",
    )
    assert syntax.status_code == 400
    assert re.search(r"invalid JSON at line 4, column 1", syntax.text)

    several = post(
        console,
        "/admin/permission-sets/new",
        {
            "name": "bad name!",
            "session_duration": "PT13H",
            "managed_policies": "arn:aws:iam::aws:policy/X\nnope",
            "tags": "novalue",
        },
        form_page="/admin/permission-sets/new",
    )
    assert several.status_code == 400
    page = text_of(several)
    assert "Line 2: 'nope' is not an AWS managed policy ARN" in page
    assert "Line 1: write each tag as key=value" in page
    assert "must be between PT1H and PT12H" in page
    assert console.count(permission_sets) == 0

    # editing an existing set with a broken policy leaves it as it was
    ok = post(console, "/admin/permission-sets/new", {**values, "inline_policy": GOOD_POLICY})
    assert ok.status_code == 303
    ps_id = ok.headers["location"].split("/")[3].split("?")[0]
    [before] = console.rows(permission_sets, permission_sets.c.id == ps_id)
    edit = post(console, f"/admin/permission-sets/{ps_id}", {**values, "inline_policy": BAD_POLICY})
    assert edit.status_code == 400 and "Statement[0].Effect" in edit.text
    assert console.rows(permission_sets, permission_sets.c.id == ps_id) == [before]
    assert len(console.audit("UpdatePermissionSet")) == 0
    fixed = post(
        console,
        f"/admin/permission-sets/{ps_id}",
        {**values, "session_duration": "PT3H", "inline_policy": GOOD_POLICY},
    )
    assert fixed.status_code == 303
    assert console.rows(permission_sets, permission_sets.c.id == ps_id)[0]["session_seconds"] == 3 * 3600
    assert_by_admin(console, console.audit("UpdatePermissionSet")[-1])


def test_group_account_and_permission_set_lifecycle(console: Console) -> None:
    ids = seed_access(console)
    sign_in(console)
    removed = post(console, f"/admin/groups/{ids['group_id']}/members/remove", {"user_id": console.bob.id})
    assert removed.status_code == 303
    assert console.audit("DeleteGroupMembership")
    renamed = post(
        console, f"/admin/groups/{ids['group_id']}/edit", {"display_name": "Engineers", "description": ""}
    )
    assert renamed.status_code == 303
    suspended = post(console, f"/admin/accounts/{ids['account_id']}/status", {"action": "suspend"})
    assert suspended.status_code == 303
    assert console.rows(accounts, accounts.c.id == ids["account_id"])[0]["status"] == "SUSPENDED"
    edited = post(
        console,
        f"/admin/accounts/{ids['account_id']}/edit",
        {
            "name": "Sandbox 2",
            "email": "sandbox@example.com",
            "kind": "local",
            "status": "ACTIVE",
            "tags": "a=b",
        },
    )
    assert edited.status_code == 303, text_of(edited)
    assert console.rows(accounts, accounts.c.id == ids["account_id"])[0]["name"] == "Sandbox 2"
    blocked = console.client.get(f"/admin/permission-sets/{ids['ps_id']}/delete")
    assert "remove them first" in blocked.text
    refused = post(console, f"/admin/permission-sets/{ids['ps_id']}/delete", {})
    assert refused.status_code == 409
    [assignment] = console.rows(account_assignments)
    gone = post(
        console,
        "/admin/assignments/delete",
        {
            "account_id": assignment["account_id"],
            "permission_set_id": assignment["permission_set_id"],
            "principal_type": "GROUP",
            "principal_id": assignment["principal_id"],
            "next": "https://evil.example/",
        },
    )
    assert (
        gone.status_code == 303 and gone.headers["location"] == "/admin/assignments?notice=assignment-deleted"
    )
    assert console.rows(account_assignments) == []
    assert post(console, f"/admin/permission-sets/{ids['ps_id']}/delete", {}).status_code == 303
    assert post(console, f"/admin/groups/{ids['group_id']}/delete", {}).status_code == 303
    assert post(console, f"/admin/accounts/{ids['account_id']}/delete", {}).status_code == 303
    for name in (
        "DeletePermissionSet",
        "DeleteGroup",
        "RemoveAccount",
        "DeleteAccountAssignment",
        "UpdateAccount",
    ):
        assert_by_admin(console, console.audit(name)[-1])
    assert console.client.get(f"/admin/groups/{ids['group_id']}").status_code == 404


# ---- settings and audit log ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"portal_session_minutes": "14", "mfa_policy": "required", "device_grant": "on"},
            "from 15 to 129600",
        ),
        (
            {"portal_session_minutes": "129601", "mfa_policy": "required", "device_grant": "on"},
            "from 15 to 129600",
        ),
        ({"portal_session_minutes": "ten", "mfa_policy": "required", "device_grant": "on"}, "whole number"),
        (
            {"portal_session_minutes": "60", "mfa_policy": "sometimes", "device_grant": "on"},
            "required, optional or off",
        ),
        ({"portal_session_minutes": "60", "mfa_policy": "off", "device_grant": "maybe"}, "Choose on or off"),
    ],
)
def test_settings_validation(console: Console, values: dict[str, str], message: str) -> None:
    sign_in(console)
    response = post(console, "/admin/settings", values, form_page="/admin/settings")
    assert response.status_code == 400 and message in response.text
    [row] = console.rows(instance)
    assert (row["portal_session_minutes"], row["mfa_policy"], row["device_grant_enabled"]) == (
        480,
        "optional",
        True,
    )


def test_settings_are_saved_and_explained(console: Console) -> None:
    sign_in(console)
    page = console.client.get("/admin/settings")
    assert "Recommended" in page.text and "can be phished" in page.text
    response = post(
        console,
        "/admin/settings",
        {"portal_session_minutes": "720", "mfa_policy": "required", "device_grant": "off"},
    )
    assert response.status_code == 303
    [row] = console.rows(instance)
    assert (row["portal_session_minutes"], row["mfa_policy"], row["device_grant_enabled"]) == (
        720,
        "required",
        False,
    )
    record = console.audit("UpdateInstanceSettings")[-1]
    assert_by_admin(console, record)
    assert record["request_parameters"] == {
        "portal_session_minutes": 720,
        "mfa_policy": "required",
        "device_grant_enabled": False,
    }


ROW = '<span class="event-name">CreateGroup</span>'


def test_audit_log_filters_and_pages(console: Console) -> None:
    sign_in(console)
    for n in range(admin_pages.AUDIT_PAGE_SIZE + 5):
        console.clock.advance(1)
        post(console, "/admin/groups/new", {"display_name": f"team-{n:03d}"})
    everything = console.client.get("/admin/audit", params={"event": "CreateGroup"})
    assert everything.status_code == 200
    shown = re.findall(r"<code>([0-9a-f-]{36})</code>", everything.text)
    assert len(set(shown)) >= admin_pages.AUDIT_PAGE_SIZE  # resource ids and event ids
    older = re.search(r'<a href="([^"]+)" rel="next">', everything.text)
    assert older is not None
    second = console.client.get(html.unescape(older.group(1)))
    assert second.status_code == 200 and "Newest records" in second.text
    assert second.text.count(ROW) == 5
    by_actor = console.client.get("/admin/audit", params={"actor": "ada", "event": "UserAuthentication"})
    assert "UserAuthentication" in by_actor.text and "No records match" not in by_actor.text
    nobody = console.client.get("/admin/audit", params={"actor": "bob", "event": "CreateGroup"})
    assert "No records match" in nobody.text
    with console.container.db.read() as conn:
        group_id = (
            conn.execute(select(audit_events.c.resource_id).where(audit_events.c.event_name == "CreateGroup"))
            .scalars()
            .first()
        )
    assert group_id is not None
    by_resource = console.client.get("/admin/audit", params={"q": group_id[:13].upper()})
    assert group_id in by_resource.text
    like_chars = console.client.get("/admin/audit", params={"q": "%_"})
    assert "No records match" in like_chars.text
    recent = console.client.get("/admin/audit", params={"since": "30s", "event": "CreateGroup"})
    assert everything.text.count(ROW) == admin_pages.AUDIT_PAGE_SIZE
    assert 0 < recent.text.count(ROW) < admin_pages.AUDIT_PAGE_SIZE
    wrong = console.client.get("/admin/audit", params={"since": "last tuesday"})
    assert wrong.status_code == 400 and "neither a relative time" in wrong.text
    assert "2027" in console.client.get("/admin/audit", params={"since": "2027-01-01T00:00:00"}).text
