"""The admin console in Debian's Chromium against a real `keyhall serve`: the administrator from
`keyhall init --demo` signs in (changing the one-time password), creates a user, a group, an account, a
permission set (first with a policy error, shown in place, then fixed) and an assignment; the new user then
signs in in a fresh browser, sees the account on the portal home and gets access keys there, approves a
device code, and gets role credentials with boto3 that STS and the real AWS CLI accept. Screenshots of the
main pages go to docs/screenshots/admin-*.png.

The server's MFA policy is set to "optional" before anyone signs in (see ``admin_fixtures._serve``): under
"required" the portal forces MFA enrolment at first sign-in, which is not what these tests are about.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from playwright.sync_api import Browser, Page, expect

from browser.admin_fixtures import SCREENSHOTS, VIEWPORT, chromium, console_server  # noqa: F401
from e2e.aws_env import AWS_CLI, REGION, client_env
from e2e.harness import RunningServer

ADMIN_PASSWORD = "Admin-Console-Passphrase-2026"
ERIN_PASSWORD = "Erin-Analyst-Passphrase-2026"
ACCOUNT_ID = "555555555555"
BAD_POLICY = """{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Permit", "Action": "s3:GetObject", "Resource": "*"}
  ]
}"""
GOOD_POLICY = BAD_POLICY.replace('"Permit"', '"Allow"')


@pytest.fixture(autouse=True)
def no_csp_violations() -> None:
    """Replaces the portal conftest's autouse check of the same name for this module: that one watches
    pytest-playwright's ``context`` fixture, which these tests do not use (they open their own contexts
    on ``chromium`` and watch for CSP reports themselves)."""


def _sign_in(page: Page, user_name: str, one_time_password: str, new_password: str) -> None:
    """The sign-in form, then the forced change of an administrator-set password."""
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.locator("#user_name").fill(user_name)
    page.locator("#password").fill(one_time_password)
    page.locator("#password").press("Enter")
    expect(page).to_have_url(re.compile(r"/login/change-password$"))
    page.locator("#new_password").fill(new_password)
    page.locator("#confirm_password").fill(new_password)
    page.locator("#confirm_password").press("Enter")


def _shot(page: Page, name: str, folder: Path) -> None:
    """docs/screenshots/admin-<name>.png with KEYHALL_SCREENSHOTS=1 (as the portal's tests do), else the
    test's temporary directory, so an ordinary run leaves the tree alone."""
    target = SCREENSHOTS if os.environ.get("KEYHALL_SCREENSHOTS") == "1" else folder
    target.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target / f"admin-{name}.png"), animations="disabled", caret="hide")


def _id_from_url(page: Page, kind: str) -> str:
    match = re.search(rf"/admin/{kind}/([^/?#]+)", page.url)
    assert match, page.url
    return match.group(1)


def _no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], (page.url, width)  # type: ignore[index]


def test_admin_sets_up_access_and_the_new_user_gets_keys(
    console_server: RunningServer,  # noqa: F811
    chromium: Browser,  # noqa: F811
    tmp_path: Path,
) -> None:
    server = console_server
    context = chromium.new_context(viewport=VIEWPORT, base_url=server.url)
    page = context.new_page()
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)

    # ---- the administrator's first sign-in ---------------------------------------------------------
    page.goto("/admin")
    _sign_in(page, "admin", server.one_time_password("admin"), ADMIN_PASSWORD)
    expect(page).to_have_url(f"{server.url}/admin")
    expect(page.get_by_role("heading", level=1)).to_contain_text("administration")

    # keyboard: the skip link is among the first stops, shows itself, and moves focus past the navigation
    for _ in range(5):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.className") == "skip-link":
            break
    skip = page.locator(".skip-link")
    expect(skip).to_be_focused()
    box = skip.bounding_box()
    assert box is not None and box["y"] >= 0
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "admin-main"

    # ---- a user, shown their one-time password once ------------------------------------------------
    page.get_by_role("navigation", name="Admin console").get_by_role("link", name="Users").click()
    page.get_by_role("link", name="Create user").click()
    page.get_by_label("User name", exact=True).fill("erin")
    page.locator("#f-display_name").fill("Erin Example")
    page.locator("#f-email").fill("erin@example.com")
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("User erin created")
    erin_otp = page.locator("#one-time-password").inner_text().strip()
    assert re.fullmatch(r"[a-z0-9]{4}(-[a-z0-9]{4}){4}", erin_otp), erin_otp
    page.get_by_role("link", name="Go to erin").click()
    erin_id = _id_from_url(page, "users")
    page.goto("/admin/users")
    expect(page.get_by_role("link", name="erin")).to_be_visible()
    _shot(page, "users", tmp_path)

    # ---- a group with erin in it -------------------------------------------------------------------
    page.goto("/admin/groups/new")
    page.get_by_label("Name", exact=True).fill("Analysts")
    page.locator("#f-description").fill("Read-only data people")
    page.get_by_role("button", name="Create group").click()
    expect(page.get_by_role("status").first).to_contain_text("The group was created")
    group_id = _id_from_url(page, "groups")
    page.get_by_label("Add a member").select_option(label="erin (Erin Example)")
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_role("table")).to_contain_text("erin")

    # ---- an account --------------------------------------------------------------------------------
    page.goto("/admin/accounts/new")
    page.get_by_label("Account id").fill(ACCOUNT_ID)
    page.get_by_label("Name", exact=True).fill("Research")
    page.get_by_label("Email", exact=True).fill("research@example.com")
    page.get_by_role("button", name="Add account").click()
    expect(page).to_have_url(re.compile(rf"/admin/accounts/{ACCOUNT_ID}\?notice=account-created$"))

    # ---- a permission set: a policy error shown in place, then fixed --------------------------------
    page.goto("/admin/permission-sets/new")
    page.get_by_label("Name", exact=True).fill("Analyst")
    page.locator("#f-description").fill("Read the data lake")
    page.locator("#f-session_duration").fill("PT2H")
    page.locator("#f-managed_policies").fill("arn:aws:iam::aws:policy/ReadOnlyAccess")
    editor = page.locator("#f-inline_policy")
    hint = page.locator("#inline_policy-live")
    editor.fill('{"Version": "2012-10-17",\n  "Statement": [')  # the live hint reads the JSON as it is typed
    expect(hint).to_contain_text("JSON syntax error at line")
    editor.fill(BAD_POLICY)
    expect(hint).to_have_text("JSON syntax looks right.")
    # Tab indents inside the editor; Esc then Tab leaves it (no keyboard trap)
    editor.press("End")
    before = editor.input_value()
    editor.press("Tab")
    assert editor.input_value() == before + "  "
    editor.press("Escape")
    page.keyboard.press("Tab")
    expect(editor).not_to_be_focused()
    editor.fill(BAD_POLICY)
    page.get_by_role("button", name="Create permission set").click()
    errors = page.locator("#inline_policy-errors")
    expect(errors).to_contain_text("Statement[0].Effect")
    expect(errors.locator("code.json-path")).to_have_text("Statement[0].Effect")
    expect(page.locator("#error-summary")).to_contain_text("Inline policy: Statement[0].Effect")
    expect(page.locator("#f-inline_policy")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-inline_policy")).to_have_value(BAD_POLICY)
    errors.scroll_into_view_if_needed()
    page.evaluate("window.scrollBy(0, -120)")
    _shot(page, "permission-set-error", tmp_path)
    page.locator("#f-inline_policy").fill(GOOD_POLICY)
    page.get_by_role("button", name="Create permission set").click()
    expect(page.get_by_role("status").first).to_contain_text("The permission set was created")
    ps_id = _id_from_url(page, "permission-sets")
    assert ps_id.startswith("ps-")

    # ---- the assignment: the group gets Analyst in Research ----------------------------------------
    page.goto(f"/admin/assignments/new?account={ACCOUNT_ID}")
    expect(page.get_by_label("Account")).to_have_value(ACCOUNT_ID)
    page.get_by_label("Permission set").select_option(ps_id)
    page.get_by_label("User or group").select_option(f"GROUP:{group_id}")
    page.get_by_role("button", name="Assign").click()
    expect(page.get_by_role("status").first).to_contain_text("The assignment was created")

    # ---- effective access, from the user and from the account ---------------------------------------
    page.goto(f"/admin/users/{erin_id}/access")
    access = page.locator("#effective-access")
    expect(access).to_contain_text("Research")
    expect(access).to_contain_text("Analyst")
    expect(access).to_contain_text("group Analysts")
    _shot(page, "effective-access", tmp_path)
    page.goto(f"/admin/accounts/{ACCOUNT_ID}")
    expect(page.locator("#account-access")).to_contain_text("erin")

    # ---- settings and the audit log ----------------------------------------------------------------
    page.goto("/admin/settings")
    expect(page.get_by_label("Required")).to_be_visible()
    _shot(page, "settings", tmp_path)
    page.goto("/admin/audit?actor=admin")
    rows = page.locator("table.audit-table tbody tr")
    expect(rows.first).to_contain_text("CreateAccountAssignment")
    rows.first.locator("summary").click()
    expect(rows.first.locator("pre.json").first).to_contain_text(ACCOUNT_ID)
    _shot(page, "audit-log", tmp_path)

    # ---- on a phone (360 px): nothing scrolls sideways ---------------------------------------------
    phone = context.new_page()
    phone.set_viewport_size({"width": 360, "height": 740})
    for path in (
        "/admin/users",
        f"/admin/users/{erin_id}",
        "/admin/audit",
        f"/admin/permission-sets/{ps_id}",
    ):
        phone.goto(path)
        _no_sideways_scroll(phone)
    phone.goto("/admin/users")
    _shot(phone, "users-phone", tmp_path)
    phone.close()
    assert blocked == []  # the CSP blocked nothing: no inline script or style anywhere

    # ---- erin, in a fresh browser: first sign-in, then a device code approved in the browser ----------
    erin_context = chromium.new_context(viewport=VIEWPORT, base_url=server.url)
    erin = erin_context.new_page()
    erin.goto("/start")
    _sign_in(erin, "erin", erin_otp, ERIN_PASSWORD)
    expect(erin).to_have_url(f"{server.url}/start")
    # the portal home lists the account; its access keys are a click away
    expect(erin.get_by_role("heading", name="Research")).to_be_visible()
    erin.get_by_role("button", name="Access keys for Analyst in Research").click()
    expect(erin.locator("body")).to_contain_text(re.compile(r"ASIA[A-Z0-9]{16}"))

    oidc = boto3.client(
        "sso-oidc", endpoint_url=server.url, region_name=REGION, config=Config(signature_version=UNSIGNED)
    )
    client = oidc.register_client(clientName="admin-console-test", clientType="public")
    started = oidc.start_device_authorization(
        clientId=client["clientId"], clientSecret=client["clientSecret"], startUrl=f"{server.url}/start"
    )
    erin.goto(started["verificationUriComplete"])
    erin.get_by_role("button", name="Next").click()
    expect(erin.locator("body")).to_contain_text(started["userCode"])
    erin.get_by_role("button", name="Approve").click()
    expect(erin.get_by_role("heading", level=1)).to_have_text("Device approved")
    erin_context.close()

    token = oidc.create_token(
        clientId=client["clientId"],
        clientSecret=client["clientSecret"],
        grantType="urn:ietf:params:oauth:grant-type:device_code",
        deviceCode=started["deviceCode"],
    )["accessToken"]
    portal = boto3.client(
        "sso", endpoint_url=server.url, region_name=REGION, config=Config(signature_version=UNSIGNED)
    )
    assert [a["accountId"] for a in portal.list_accounts(accessToken=token)["accountList"]] == [ACCOUNT_ID]
    roles = portal.list_account_roles(accessToken=token, accountId=ACCOUNT_ID)["roleList"]
    assert [r["roleName"] for r in roles] == ["Analyst"]
    keys = portal.get_role_credentials(accessToken=token, accountId=ACCOUNT_ID, roleName="Analyst")[
        "roleCredentials"
    ]
    assert keys["accessKeyId"].startswith("ASIA")
    sts = boto3.client(
        "sts",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=keys["accessKeyId"],
        aws_secret_access_key=keys["secretAccessKey"],
        aws_session_token=keys["sessionToken"],
    )
    arn = sts.get_caller_identity()["Arn"]
    assert re.fullmatch(
        rf"arn:aws:sts::{ACCOUNT_ID}:assumed-role/AWSReservedSSO_Analyst_[0-9a-f]{{16}}/erin", arn
    )

    # the stock AWS CLI accepts the same keys
    env = {
        **client_env(tmp_path / "home", server.url),
        "AWS_ACCESS_KEY_ID": keys["accessKeyId"],
        "AWS_SECRET_ACCESS_KEY": keys["secretAccessKey"],
        "AWS_SESSION_TOKEN": keys["sessionToken"],
    }
    result = subprocess.run(
        [AWS_CLI, "sts", "get-caller-identity", "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Arn"] == arn

    # and the administrator sees it in the audit log, attributed to erin
    page.goto("/admin/audit?event=GetRoleCredentials")
    expect(page.locator("table.audit-table tbody tr").first).to_contain_text("erin")
    context.close()


def test_the_console_refuses_people_who_are_not_administrators(
    console_server: RunningServer,  # noqa: F811
    chromium: Browser,  # noqa: F811
) -> None:
    server = console_server
    context = chromium.new_context(viewport=VIEWPORT, base_url=server.url)
    page = context.new_page()
    page.goto("/admin/users")
    _sign_in(page, "demo", server.one_time_password("demo"), "Demo-User-Passphrase-2026")
    expect(page).to_have_url(f"{server.url}/admin/users")
    expect(page.locator("body")).to_contain_text("This page is for Keyhall administrators only.")
    assert page.evaluate("document.querySelector('.admin-nav')") is None
    response = page.request.post(f"{server.url}/admin/users/new", form={"user_name": "mallory"})
    assert response.status == 403
    context.close()
