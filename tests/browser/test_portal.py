"""The access portal in Chromium: sign-in with a forced MFA enrolment, TOTP and WebAuthn (Chromium's virtual
authenticator), passkey sign-in, access keys that work with the AWS CLI, approving `aws sso login`, sessions
and password change. Each test also saves screenshots of the pages it passes (see conftest.screenshot)."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, CDPSession, Page, expect

from browser.conftest import DESKTOP, PHONE, AuthenticatorApp, TestUser, screenshot
from e2e.aws_env import AWS_CLI
from e2e.clients import Workstation
from e2e.harness import RunningServer

pytestmark = pytest.mark.e2e

UserFactory = Callable[..., TestUser]
ARN = r"arn:aws:sts::{account}:assumed-role/AWSReservedSSO_{role}_[0-9a-f]{{16}}/{user}"


# ---- what a person does --------------------------------------------------------------------------------


def submit_password(
    page: Page, server: RunningServer, user: TestUser, *, password: str | None = None
) -> None:
    if "/login" not in page.url:
        page.goto(f"{server.url}/login")
    page.get_by_label("User name").fill(user.user_name)
    page.get_by_label("Password", exact=True).fill(password or user.password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def enrol_totp_at_sign_in(page: Page, server: RunningServer, user: TestUser) -> None:
    """On the forced enrolment page: read the setup key, as a person types it into their app, and confirm."""
    expect(page).to_have_url(f"{server.url}/login/enrol")
    user.app = AuthenticatorApp(page.locator("#totp-secret").inner_text().strip())
    page.get_by_label("Code from the app").fill(user.app.code())
    page.get_by_role("button", name="Verify and add").click()
    expect(page).to_have_url(f"{server.url}/start")


def sign_up_with_totp(page: Page, server: RunningServer, user: TestUser) -> None:
    page.goto(f"{server.url}/start")
    submit_password(page, server, user)
    enrol_totp_at_sign_in(page, server, user)


def sign_out(page: Page, server: RunningServer) -> None:
    page.get_by_role("button", name="Sign out", exact=True).first.click()
    expect(page).to_have_url(re.compile(re.escape(f"{server.url}/login")))


def virtual_authenticator(context: BrowserContext, page: Page) -> tuple[CDPSession, str]:
    """Chromium's virtual authenticator (CTAP2, resident keys, user verification), answering at once."""
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )
    return cdp, str(added["authenticatorId"])


def stored_credentials(cdp: CDPSession, authenticator_id: str) -> list[dict[str, Any]]:
    found = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})
    return list(found["credentials"])


def fits_a_small_phone(page: Page) -> None:
    """At 360 CSS pixels wide (the smallest common phone) the page needs no sideways scrolling."""
    page.set_viewport_size({"width": 360, "height": 740})
    width = page.evaluate("document.documentElement.scrollWidth")
    page.set_viewport_size(DESKTOP)
    assert width <= 360, (page.url, width)


def audit(server: RunningServer, event: str) -> list[dict[str, Any]]:
    result = server.keyhall("audit", "list", "--event", event, "--json", "--limit", "200", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return list(json.loads(result.stdout))


def session_cookie(context: BrowserContext) -> dict[str, Any] | None:
    for cookie in context.cookies():
        if cookie["name"] == "kh_session":
            return dict(cookie)
    return None


@pytest.fixture
def mfa_optional(portal_server: RunningServer) -> Iterator[None]:
    """The instance's MFA policy set to optional for one test (the default, required, comes back after)."""
    portal_server.keyhall("settings", "set", "--mfa-policy", "optional")
    try:
        yield
    finally:
        portal_server.keyhall("settings", "set", "--mfa-policy", "required")


# ---- sign-in and MFA ---------------------------------------------------------------------------------


def test_required_mfa_forces_totp_enrolment_then_totp_signs_in(
    page: Page, portal_server: RunningServer, make_user: UserFactory, tmp_path: Path
) -> None:
    server = portal_server
    user = make_user("alice", display_name="Alice Liddell")
    page.goto(f"{server.url}/start")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fstart$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "sign-in", tmp_path)

    submit_password(page, server, user)
    # right password, no second factor, MFA required: enrol first, and no session exists until then
    expect(page).to_have_url(f"{server.url}/login/enrol")
    expect(page.get_by_role("heading", name="Set up multi-factor authentication")).to_be_visible()
    assert session_cookie(page.context) is None
    blocked = page.request.get(f"{server.url}/start", max_redirects=0)
    assert blocked.status == 303 and blocked.headers["location"].startswith("/login")
    expect(page.get_by_role("img", name=re.compile("QR code"))).to_be_visible()
    screenshot(page, "mfa-enrolment", tmp_path)
    fits_a_small_phone(page)

    page.get_by_label("Code from the app").fill("000000")
    page.get_by_role("button", name="Verify and add").click()
    expect(page.get_by_role("alert")).to_contain_text("That code is not right")
    expect(page.get_by_role("link", name="Start again with a new key")).to_be_visible()
    page.get_by_role("link", name="Start again with a new key").click()
    enrol_totp_at_sign_in(page, server, user)

    cookie = session_cookie(page.context)
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    expect(page.get_by_role("heading", name="Sandbox")).to_be_visible()
    expect(page.get_by_role("heading", name="Production")).to_be_visible()
    expect(page.get_by_role("heading", name="Management")).to_have_count(0)  # not assigned
    screenshot(page, "portal-home", tmp_path)
    page.set_viewport_size(PHONE)
    screenshot(page, "portal-home-phone", tmp_path)
    fits_a_small_phone(page)

    sign_out(page, server)
    submit_password(page, server, user)
    expect(page).to_have_url(f"{server.url}/login/totp")
    page.get_by_label("Verification code").fill("123456")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_contain_text("incorrect")
    assert user.app is not None
    page.get_by_label("Verification code").fill(user.app.code())
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(f"{server.url}/start")

    # a second authenticator app, and no third (IAM Identity Center's limit of two)
    page.get_by_role("link", name="MFA devices").click()
    page.get_by_label("Name for this app").fill("Spare phone")
    page.get_by_role("button", name="Add authenticator app").click()
    spare = AuthenticatorApp(page.locator("#totp-secret").inner_text().strip())
    page.get_by_label("Code from the app").fill(spare.code())
    page.get_by_role("button", name="Verify and add").click()
    expect(page.locator(".device strong", has_text="Spare phone")).to_be_visible()
    expect(page.get_by_text("You have the most authenticator apps allowed")).to_be_visible()
    expect(page.get_by_role("button", name="Add authenticator app")).to_have_count(0)
    third = page.evaluate(
        """async () => {
            const csrf = document.querySelector('input[name="csrf"]').value;
            const response = await fetch("/mfa/totp", {method: "POST", body: new URLSearchParams({csrf})});
            return response.status;
        }"""
    )
    assert third == 409

    enabled = [r for r in audit(server, "EnableMfaDevice") if r["actor_name"] == user.user_name]
    assert [r["additional_data"]["CredentialType"] for r in enabled] == ["TOTP", "TOTP"]
    signed_in = [r for r in audit(server, "UserAuthentication") if r["actor_name"] == user.user_name]
    assert len(signed_in) == 2 and all(r["additional_data"]["MFAUsed"] for r in signed_in)


def test_webauthn_enrolment_second_factor_and_passkey_sign_in(
    page: Page, context: BrowserContext, portal_server: RunningServer, make_user: UserFactory, tmp_path: Path
) -> None:
    server = portal_server
    cdp, authenticator = virtual_authenticator(context, page)
    user = make_user("bob", display_name="Bob Builder")

    page.goto(f"{server.url}/login")
    submit_password(page, server, user)
    expect(page).to_have_url(f"{server.url}/login/enrol")
    page.get_by_label("Name for this key").fill("Laptop passkey")
    page.get_by_role("button", name="Use a security key or passkey").click()
    expect(page).to_have_url(f"{server.url}/start")
    [credential] = stored_credentials(cdp, authenticator)
    assert credential["isResidentCredential"] and credential["rpId"] == "localhost"

    # the security key is now the second factor after the password
    sign_out(page, server)
    submit_password(page, server, user)
    expect(page).to_have_url(f"{server.url}/login/webauthn")
    screenshot(page, "security-key-step", tmp_path)
    page.get_by_role("button", name="Use security key or passkey").click()
    expect(page).to_have_url(f"{server.url}/start")
    [credential] = stored_credentials(cdp, authenticator)
    assert credential["signCount"] >= 1

    # a passkey alone: no user name, no password
    sign_out(page, server)
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page).to_have_url(f"{server.url}/start")
    expect(page.get_by_text(f"Signed in as {user.user_name}")).to_be_visible()

    kinds = [
        r["additional_data"]["CredentialType"]
        for r in audit(server, "CredentialVerification")
        if r["actor_name"] == user.user_name
    ]
    assert kinds.count("WEBAUTHN") == 2  # the second factor once, the passkey once

    # the MFA page: the key is listed; add an authenticator app; remove the key with the password again
    page.get_by_role("link", name="MFA devices").click()
    expect(page.locator(".device strong", has_text="Laptop passkey")).to_be_visible()
    page.get_by_role("button", name="Add authenticator app").click()
    user.app = AuthenticatorApp(page.locator("#totp-secret").inner_text().strip())
    page.get_by_label("Code from the app").fill(user.app.code())
    page.get_by_role("button", name="Verify and add").click()
    expect(page.get_by_role("status").filter(has_text="Authenticator app added.")).to_be_visible()
    screenshot(page, "mfa-devices", tmp_path)
    fits_a_small_phone(page)

    page.locator("summary", has_text="Remove").first.click()
    page.get_by_label("Your password, to confirm").first.fill("not my password")
    page.get_by_role("button", name="Remove Laptop passkey").click()
    expect(page.get_by_role("alert")).to_contain_text("The password is incorrect.")
    page.locator("summary", has_text="Remove").first.click()
    page.get_by_label("Your password, to confirm").first.fill(user.password)
    page.get_by_role("button", name="Remove Laptop passkey").click()
    expect(page.get_by_role("status").filter(has_text="Device removed.")).to_be_visible()
    expect(page.locator(".device strong", has_text="Laptop passkey")).to_have_count(0)

    # with MFA required the last device stays
    page.locator("summary", has_text="Remove").first.click()
    page.get_by_label("Your password, to confirm").first.fill(user.password)
    page.get_by_role("button", name="Remove Authenticator app").click()
    expect(page.get_by_role("alert")).to_contain_text("add another device before you remove")
    removed = [r for r in audit(server, "DeactivateMfaDevice") if r["actor_name"] == user.user_name]
    assert [r["additional_data"]["CredentialType"] for r in removed] == ["WEBAUTHN"]

    # and a removed passkey no longer signs anyone in
    sign_out(page, server)
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.get_by_role("status").filter(has_text="not accepted")).to_be_visible()
    assert session_cookie(page.context) is None


# ---- accounts and access keys ------------------------------------------------------------------------


def test_accounts_search_and_access_keys_that_work_with_the_aws_cli(
    page: Page, context: BrowserContext, portal_server: RunningServer, make_user: UserFactory, tmp_path: Path
) -> None:
    server = portal_server
    user = make_user("carol", display_name="Carol Danvers")
    sign_up_with_totp(page, server, user)

    # filter as you type (script), then the same search on the server (?q=)
    page.get_by_label("Search accounts and roles").fill("readonly")
    expect(page.locator(".account-card:visible")).to_have_count(1)
    expect(page.get_by_role("heading", name="Production")).to_be_visible()
    expect(page.get_by_role("heading", name="Sandbox")).to_be_hidden()
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page).to_have_url(f"{server.url}/start?q=readonly")
    expect(page.locator(".account-card")).to_have_count(1)
    page.goto(f"{server.url}/start?q=nothing-like-this")
    expect(page.get_by_text("No account or role matches")).to_be_visible()
    page.goto(f"{server.url}/start")

    page.get_by_role("button", name="Access keys for Developer in Sandbox").click()
    expect(page.get_by_role("heading", name="Get credentials for Developer")).to_be_visible()
    expect(page.get_by_role("heading", name="IAM Identity Center credentials (recommended)")).to_be_visible()
    expect(page.get_by_text(f"{server.url}/start", exact=True).first).to_be_visible()
    page.locator("#keys-title").evaluate("heading => heading.scrollIntoView({block: 'start'})")
    screenshot(page, "access-keys", tmp_path)
    fits_a_small_phone(page)

    shell = page.locator("#snippet-shell").inner_text()
    variables = dict(re.findall(r'^export (\w+)="([^"]+)"$', shell, flags=re.MULTILINE))
    assert variables["AWS_ACCESS_KEY_ID"].startswith("ASIA")
    assert variables["AWS_ENDPOINT_URL_STS"] == server.url
    powershell = page.locator("#snippet-powershell").inner_text()
    assert f"$Env:AWS_ACCESS_KEY_ID='{variables['AWS_ACCESS_KEY_ID']}'" in powershell
    profile = page.locator("#snippet-file").inner_text()
    assert profile.startswith("[111111111111_Developer]\n")
    assert f"aws_session_token={variables['AWS_SESSION_TOKEN']}" in profile

    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page.get_by_role("button", name="Copy").nth(2).click()  # the shell snippet (after the two set-up ones)
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == shell

    station = Workstation(server, tmp_path / "home")
    result = subprocess.run(
        [AWS_CLI, "sts", "get-caller-identity", "--output", "json"],
        capture_output=True,
        text=True,
        env={**station.env, **variables},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    arn = json.loads(result.stdout)["Arn"]
    assert re.fullmatch(ARN.format(account="111111111111", role="Developer", user=user.user_name), arn)
    [issued] = [r for r in audit(server, "GetRoleCredentials") if r["actor_name"] == user.user_name]
    assert issued["response_elements"]["accessKeyId"] == variables["AWS_ACCESS_KEY_ID"]

    # a role the person does not have is refused, even when the form is forged
    page.goto(f"{server.url}/start")
    forged = page.evaluate(
        """async () => {
            const csrf = document.querySelector('input[name="csrf"]').value;
            const body = new URLSearchParams(
                {csrf, account_id: "333333333333", role_name: "AdministratorAccess"});
            const response = await fetch("/start/credentials", {method: "POST", body});
            return [response.status, await response.text()];
        }"""
    )
    assert forged[0] == 403 and "You do not have access" in forged[1]


# ---- the AWS CLI's device flow, approved in the browser ------------------------------------------------


def test_aws_sso_login_device_code_approved_in_the_browser(
    page: Page, portal_server: RunningServer, make_user: UserFactory, tmp_path: Path
) -> None:
    server = portal_server
    user = make_user("dave", display_name="Dave Lister")
    sign_up_with_totp(page, server, user)
    station = Workstation(server, tmp_path / "home")
    station.configure({"sandbox-dev": ("111111111111", "Developer")})

    # `aws sso login` waits in its own thread and calls back from another; Playwright's sync API must stay
    # on this thread, so the callback only hands the link over
    links: queue.Queue[str] = queue.Queue()
    outcome: dict[str, subprocess.CompletedProcess[str]] = {}
    login = threading.Thread(target=lambda: outcome.update(result=station.sso_login(links.put)), daemon=True)
    login.start()
    link = links.get(timeout=90)

    page.goto(link)
    expect(page.get_by_role("heading", name="Authorize a device")).to_be_visible()
    user_code = page.get_by_label("Code").input_value()
    assert user_code and user_code.replace("-", "") in link.replace("-", "")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_role("heading", name="Is this the code shown on your device?")).to_be_visible()
    expect(page.get_by_label("Code", exact=True)).to_have_text(re.compile(r"[A-Z]{4}-?[A-Z]{4}"))
    screenshot(page, "device-approval", tmp_path)
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("heading", name="Device approved")).to_be_visible()

    login.join(timeout=120)
    result = outcome["result"]
    assert result.returncode == 0, result.stderr
    assert "Successfully logged into Start URL" in result.stdout
    identity = station.aws_json("sts", "get-caller-identity", "--profile", "sandbox-dev")
    expected = ARN.format(account="111111111111", role="Developer", user=user.user_name)
    assert re.fullmatch(expected, str(identity["Arn"]))

    # the CLI session is on the sessions page; signing it out there stops the CLI at once
    page.goto(f"{server.url}/sessions")
    cli_row = page.locator('tr[data-kind="cli"]')
    expect(cli_row).to_have_count(1)
    cli_row.get_by_role("button", name=re.compile("^Sign out")).click()
    expect(page.get_by_role("status").filter(has_text="Session signed out.")).to_be_visible()
    expect(page.locator('tr[data-kind="cli"]')).to_have_count(0)
    refused = station.aws("sts", "get-caller-identity", "--profile", "sandbox-dev", check=False)
    assert refused.returncode != 0


# ---- sessions and password ---------------------------------------------------------------------------


def test_sessions_page_signs_out_one_others_or_all(
    new_context: Callable[..., BrowserContext],
    portal_server: RunningServer,
    make_user: UserFactory,
    mfa_optional: None,
    tmp_path: Path,
) -> None:
    server = portal_server
    user = make_user("erin", display_name="Erin Example")
    browsers = [new_context().new_page() for _ in range(3)]
    for browser in browsers:  # optional MFA and no device: the password alone signs in
        browser.goto(f"{server.url}/login")
        submit_password(browser, server, user)
        expect(browser).to_have_url(f"{server.url}/start")
    mine, second, third = browsers

    mine.get_by_role("link", name="Sessions").click()
    rows = mine.locator('tr[data-kind="browser"]')
    expect(rows).to_have_count(3)
    expect(mine.locator("tr.current")).to_have_count(1)
    screenshot(mine, "sessions", tmp_path)
    fits_a_small_phone(mine)

    other_row = mine.locator("tr[data-session-id]:not(.current)").first
    other_row.get_by_role("button", name=re.compile("^Sign out")).click()
    expect(mine.get_by_role("status").filter(has_text="Session signed out.")).to_be_visible()
    expect(mine.locator('tr[data-kind="browser"]')).to_have_count(2)
    still_in = []
    for other in (second, third):
        other.goto(f"{server.url}/start")
        still_in.append(other.url == f"{server.url}/start")
    assert sorted(still_in) == [False, True]  # exactly the one signed out has to sign in again

    mine.get_by_role("button", name="Sign out all other sessions").click()
    expect(mine.get_by_role("status").filter(has_text="Every other session is signed out.")).to_be_visible()
    expect(mine.locator('tr[data-kind="browser"]')).to_have_count(1)
    for other in (second, third):
        other.goto(f"{server.url}/start")
        expect(other).to_have_url(re.compile(r"/login\?next="))

    mine.get_by_role("button", name="Sign out everywhere").click()
    expect(mine).to_have_url(f"{server.url}/login")
    mine.goto(f"{server.url}/sessions")
    expect(mine).to_have_url(re.compile(r"/login\?next=%2Fsessions"))


def test_password_change_needs_the_current_one_and_signs_out_other_sessions(
    new_context: Callable[..., BrowserContext],
    portal_server: RunningServer,
    make_user: UserFactory,
    mfa_optional: None,
) -> None:
    server = portal_server
    user = make_user("frank")
    mine, other = (new_context().new_page() for _ in range(2))
    for browser in (mine, other):
        browser.goto(f"{server.url}/login")
        submit_password(browser, server, user)
        expect(browser).to_have_url(f"{server.url}/start")

    mine.get_by_role("link", name="Password").click()
    new_password = "another long passphrase for frank 7"

    def change(current: str, new: str, confirm: str) -> None:
        mine.get_by_label("Current password").fill(current)
        mine.get_by_label("New password", exact=True).fill(new)
        mine.get_by_label("New password again").fill(confirm)
        mine.get_by_role("button", name="Change password").click()

    change("wrong current password", new_password, new_password)
    expect(mine.get_by_role("alert")).to_contain_text("The current password is incorrect.")
    change(user.password, new_password, new_password + "x")
    expect(mine.get_by_role("alert")).to_contain_text("not the same")
    change(user.password, "password", "password")
    expect(mine.get_by_role("alert")).to_be_visible()
    expect(mine.get_by_label("Sign out my other sessions (browsers and command lines)")).to_be_checked()
    change(user.password, new_password, new_password)
    expect(mine.get_by_role("status")).to_contain_text(
        "Your password is changed. 1 other session signed out."
    )

    other.goto(f"{server.url}/start")
    expect(other).to_have_url(re.compile(r"/login\?next="))
    submit_password(other, server, user)
    expect(other.get_by_role("alert")).to_contain_text("The user name or password is incorrect.")
    submit_password(other, server, user, password=new_password)
    expect(other).to_have_url(f"{server.url}/start")
    assert [r["event_name"] for r in audit(server, "ChangePassword") if r["actor_name"] == user.user_name]
