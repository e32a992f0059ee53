"""Fixtures of the admin console's browser tests: a real `keyhall serve` and Debian's Chromium under
Playwright (testing-recipes.md §1; `playwright install` is never run: it would download a browser).

Imported by the test module (``from browser.admin_fixtures import …``) rather than put in a conftest, so
they stay independent of the portal's browser fixtures.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, ViewportSize

import keyhall.app
from dbs import DATABASES, drop_postgres, fresh_postgres
from e2e.harness import KEYHALL, RunningServer, clean_env, free_port, run_keyhall, wait_ready

CHROMIUM = "/usr/bin/chromium"
#: no DNS lookups of Google hosts from Chromium's background services (testing-recipes.md §1, pitfalls)
HOST_RULES = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}


def _app_mounts_console_and_portal() -> bool:
    """Whether `keyhall serve` mounts the admin console and the portal yet (app.py imports both)."""
    source = Path(keyhall.app.__file__).read_text()
    return "admin_pages" in source and "portal_pages" in source


#: Until app.py mounts the console (and the portal), the same app `keyhall serve` builds, with the missing
#: routes put in front; the server is still a separate process reached over HTTP.
_WRAPPED_APP = """
from keyhall.asgi import create_from_env
from keyhall.web import admin_pages


def create():
    app = create_from_env()
    mounted = {getattr(route, "path", None) for route in app.router.routes}
    extra = [] if "/admin" in mounted else list(admin_pages.routes)
    if "/mfa" not in mounted:
        try:
            from keyhall.signin.webauthn import WebAuthnService
            from keyhall.web import portal_pages
        except ImportError:
            pass
        else:
            container = app.state.container
            if getattr(container, "webauthn", None) is None:
                container.webauthn = WebAuthnService.for_public_url(
                    container.clock, container.audit, container.settings.effective_public_url
                )
            extra += portal_pages.routes
    app.router.routes[0:0] = extra
    return app
"""

_GRANIAN = (
    "import os\n"
    "from granian.constants import Interfaces\n"
    "from granian.server import Server\n"
    "Server('kh_admin_app:create', address='127.0.0.1', port=int(os.environ['KEYHALL_PORT']),"
    " interface=Interfaces.ASGI, workers=1, factory=True, log_access=False).serve()\n"
)


def _serve(root: Path, database_url: str) -> Iterator[RunningServer]:
    """`keyhall init --demo`, the MFA policy set to optional, then `keyhall serve` on a free port.

    MFA "optional": with the default "required", the first sign-in of a person without an authenticator
    stops at the portal's forced enrolment; these tests are about the admin console, so they set the
    policy as an administrator would, with `keyhall settings set`, before anyone signs in."""
    data_dir = root / "keyhall-data"
    init = run_keyhall(data_dir, database_url, "init", "--demo")
    run_keyhall(data_dir, database_url, "settings", "set", "--mfa-policy", "optional")
    port = free_port()
    env = {**clean_env(), "KEYHALL_DEVICE_POLL_INTERVAL": "1"}
    if _app_mounts_console_and_portal():
        command = [KEYHALL, "--data-dir", str(data_dir), "--database-url", database_url, "serve"]
        command += ["--port", str(port)]
    else:
        (root / "kh_admin_app.py").write_text(_WRAPPED_APP)
        command = [sys.executable, "-c", _GRANIAN]
        env |= {
            "PYTHONPATH": str(root),
            "KEYHALL_DATA_DIR": str(data_dir.resolve()),
            "KEYHALL_DATABASE_URL": database_url,
            "KEYHALL_HOST": "127.0.0.1",
            "KEYHALL_PORT": str(port),
        }
    log = (root / "serve.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield RunningServer(url, data_dir, database_url, process, init.stdout, root / "serve.log")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


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
