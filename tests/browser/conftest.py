"""Browser tests: Playwright for Python drives Debian's Chromium (/usr/bin/chromium, never a downloaded
browser), headless, against `keyhall serve` run as a real process, as the end-to-end tests run it.

The server listens on 127.0.0.1 but is reached as ``http://localhost:<port>`` (its public URL): WebAuthn
refuses an IP address as the relying party id (testing-recipes.md §1). SQLite by default, since these tests
are about the pages; ``KEYHALL_TEST_DATABASES=postgresql`` (or ``sqlite,postgresql``) runs them on
PostgreSQL too.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page

from dbs import DATABASES, drop_postgres, fresh_postgres
from e2e.harness import RunningServer, serve_keyhall
from keyhall.signin import totp

CHROMIUM = "/usr/bin/chromium"
#: Chromium looks up Google hosts at start-up even with background networking off; this stops every lookup
#: that is not the server under test.
HOST_RULES = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PASSWORD = "a long and unguessable passphrase 42"

BROWSER_DATABASES = DATABASES if os.environ.get("KEYHALL_TEST_DATABASES") else ["sqlite"]


# ---- the browser -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def base_url() -> str | None:
    """Shadows pytest-playwright's fallback ``base_url``, a session fixture written as an instance method,
    which pytest 9 warns about (PytestRemovedIn10Warning, an error under ``filterwarnings = error``). Pages
    here are opened by full URL."""
    return None


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, object]) -> dict[str, object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (make system-deps)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": [HOST_RULES]}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, object]) -> dict[str, object]:
    return {**browser_context_args, "viewport": DESKTOP, "locale": "en-GB", "timezone_id": "UTC"}


@pytest.fixture
def csp_violations() -> list[str]:
    return []


@pytest.fixture
def new_context(
    new_context: Callable[..., BrowserContext], csp_violations: list[str]
) -> Callable[..., BrowserContext]:
    """pytest-playwright's ``new_context`` (and so ``context`` and ``page``), with every page watched for
    Content-Security-Policy violations."""

    def create(**kwargs: object) -> BrowserContext:
        context = new_context(**kwargs)

        def watch(page: Page) -> None:
            def on_console(message: ConsoleMessage) -> None:
                if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
                    csp_violations.append(f"{page.url}: {message.text}")

            page.on("console", on_console)

        context.on("page", watch)
        return context

    return create


@pytest.fixture(autouse=True)
def no_csp_violations(csp_violations: list[str]) -> Iterator[None]:
    """Every page of every test runs under the real CSP: any refused script, style or request fails it."""
    yield
    assert not csp_violations, csp_violations


# ---- the server --------------------------------------------------------------------------------------


def _serve(root: Path, database_url: str) -> Iterator[RunningServer]:
    yield from serve_keyhall(root, database_url, public_host="localhost")


@pytest.fixture(scope="module", params=BROWSER_DATABASES)
def portal_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """`keyhall init --demo`, then `keyhall serve` with a localhost public URL; one per test module."""
    root = tmp_path_factory.mktemp("portal-server")
    if request.param == "sqlite":
        yield from _serve(root, f"sqlite:///{root}/keyhall.db")
        return
    server_url = request.getfixturevalue("postgres_template")
    name, database_url = fresh_postgres(server_url)
    try:
        yield from _serve(root, database_url)
    finally:
        drop_postgres(server_url, name)


# ---- people ------------------------------------------------------------------------------------------


@dataclass
class AuthenticatorApp:
    """The person's phone: computes RFC 6238 codes from the key the enrolment page showed. Codes are single
    use, so each code is for a later time step than the last one given."""

    secret_base32: str
    last_step: int = -1

    def code(self) -> str:
        secret = base64.b32decode(self.secret_base32 + "=" * (-len(self.secret_base32) % 8))
        step = max(totp.time_step(time.time()), self.last_step + 1)
        # the server accepts one step ahead; a real server's clock cannot be frozen, so wait if needed
        while step > totp.time_step(time.time()) + 1:
            time.sleep(1)
        self.last_step = step
        return totp.totp_code(secret, step)


@dataclass
class TestUser:
    __test__ = False  # not a test class

    user_name: str
    password: str
    app: AuthenticatorApp | None = None
    extra: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def make_user(portal_server: RunningServer, request: pytest.FixtureRequest) -> Callable[..., TestUser]:
    """Create a user in the Developers group (Sandbox: Developer, Production: ReadOnly), with a password
    the user chose (no forced change) and no MFA device."""
    counter = iter(range(100))

    def create(prefix: str | None = None, *, display_name: str | None = None) -> TestUser:
        base = (prefix or request.node.name.removeprefix("test_"))[:24].replace("_", "-")
        number = next(counter)
        name = f"{base}-{number}" if number else base
        portal_server.keyhall(
            "users",
            "create",
            name,
            "--password-stdin",
            "--display-name",
            display_name or name.replace("-", " ").title(),
            "--email",
            f"{name}@example.com",
            input_text=PASSWORD + "\n",
        )
        portal_server.keyhall("groups", "add-member", "Developers", name)
        return TestUser(name, PASSWORD)

    return create


def screenshot(page: Page, name: str, tmp_path: Path) -> Path:
    """A PNG of what the person sees. Into docs/screenshots/ when KEYHALL_SCREENSHOTS=1 (`make
    screenshots`), else into the test's temporary directory, so ordinary runs leave the tree alone."""
    folder = SCREENSHOTS if os.environ.get("KEYHALL_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), animations="disabled", caret="hide")
    return path
