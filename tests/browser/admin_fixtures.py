"""Fixtures of the admin console's browser tests: a real `keyhall serve` and Debian's Chromium under
Playwright (testing-recipes.md §1; `playwright install` is never run: it would download a browser).

Imported by the test module (``from browser.admin_fixtures import …``) rather than put in a conftest, so
they stay independent of the portal's browser fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, ViewportSize

from dbs import DATABASES, drop_postgres, fresh_postgres
from e2e.harness import RunningServer, serve_keyhall

CHROMIUM = "/usr/bin/chromium"
#: no DNS lookups of Google hosts from Chromium's background services (testing-recipes.md §1, pitfalls)
HOST_RULES = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}


def _serve(root: Path, database_url: str) -> Iterator[RunningServer]:
    """`keyhall init --demo`, the MFA policy set to optional, then `keyhall serve` on a free port.

    MFA "optional": with the default "required", the first sign-in of a person without an authenticator
    stops at the portal's forced enrolment; these tests are about the admin console, so they set the
    policy as an administrator would, with `keyhall settings set`, before anyone signs in."""
    yield from serve_keyhall(
        root, database_url, before_serve=[("settings", "set", "--mfa-policy", "optional")]
    )


@pytest.fixture(scope="module", params=DATABASES)
def console_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One server per test module and database."""
    root = tmp_path_factory.mktemp("admin-console")
    if request.param == "sqlite":
        yield from _serve(root, f"sqlite:///{root}/keyhall.db")
        return
    server_url = request.getfixturevalue("postgres_template")
    name, database_url = fresh_postgres(server_url)
    try:
        yield from _serve(root, database_url)
    finally:
        drop_postgres(server_url, name)


@pytest.fixture(scope="module")
def chromium(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, launched through pytest-playwright's shared Playwright instance."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[HOST_RULES])
    yield browser
    browser.close()
