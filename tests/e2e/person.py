"""A person at a browser, over plain HTTP: reads the server's pages and submits their forms.

It knows only what a person sees (form fields, buttons), so the tests exercise the real pages, CSRF
tokens and cookies included. Chromium-driven tests of the same pages come with the portal.
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx

from keyhall.signin import totp


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").lower()))
        elif self.forms and tag == "input" and a.get("name"):
            if a.get("type") != "submit":
                self.forms[-1].fields[a["name"]] = a.get("value", "")
        elif self.forms and tag == "button" and a.get("name"):
            self.forms[-1].buttons.append((a["name"], a.get("value", "")))


def forms_of(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


class Person:
    def __init__(
        self, base_url: str, user_name: str, password: str, *, new_password: str | None = None
    ) -> None:
        self.base_url = base_url
        self.user_name = user_name
        self.password = password
        self.new_password = new_password or password + "-Changed-2026"
        self.http = httpx.Client(base_url=base_url, follow_redirects=True, timeout=10)
        self.totp_secret: bytes | None = None
        self.last_step = 0

    def close(self) -> None:
        self.http.close()

    def submit(
        self,
        page: httpx.Response,
        *,
        where: str,
        values: dict[str, str],
        button: tuple[str, str] | None = None,
    ) -> httpx.Response:
        """Fill and send the form whose action contains ``where``."""
        for form in forms_of(page.text):
            if where in form.action:
                data = {**form.fields, **values}
                if button:
                    assert button in form.buttons, f"no button {button} in {form.buttons}"
                    data[button[0]] = button[1]
                return self.http.post(urljoin(str(page.url), form.action), data=data)
        raise AssertionError(f"no form posting to {where!r} on {page.url}: {page.text[:500]}")

    def totp_code(self) -> str:
        """A code for a later 30-second step than the last one used: each code is accepted once."""
        assert self.totp_secret is not None
        step = max(totp.time_step(time.time()), self.last_step + 1)
        while totp.time_step(time.time()) + 1 < step:  # the server accepts one step either side
            time.sleep(0.5)
        self.last_step = step
        return totp.totp_code(self.totp_secret, step)

    def sign_in_if_asked(self, page: httpx.Response) -> httpx.Response:
        """Answer whatever sign-in step the server shows, in whatever order, until none is left."""
        for _ in range(6):
            path = page.url.path
            if path == "/login":
                values = {"user_name": self.user_name, "password": self.password}
                page = self.submit(page, where="/login", values=values)
            elif path == "/login/change-password":
                values = {"new_password": self.new_password, "confirm_password": self.new_password}
                page = self.submit(page, where="/login/change-password", values=values)
                self.password = self.new_password
            elif path == "/login/enrol":  # MFA is required and this person has none yet: add an app
                found = re.search(r'id="totp-secret"[^>]*>([A-Z2-7]+)<', page.text)
                assert found, page.text[:500]
                self.totp_secret = base64.b32decode(found.group(1) + "=" * (-len(found.group(1)) % 8))
                page = self.submit(page, where="/login/enrol/totp", values={"code": self.totp_code()})
            elif path == "/login/totp":
                page = self.submit(page, where="/login/totp", values={"code": self.totp_code()})
            else:
                return page
        raise AssertionError(f"sign-in did not finish: stuck at {page.url}")

    def approve_device(self, verification_uri_complete: str, *, approve: bool = True) -> httpx.Response:
        page = self.sign_in_if_asked(self.http.get(verification_uri_complete))
        if "/device" not in page.url.path:  # signed in, sent elsewhere: go back to the link
            page = self.http.get(verification_uri_complete)
        page = self.submit(page, where="/device", values={})
        decision = ("decision", "approve" if approve else "deny")
        return self.submit(page, where="/device/confirm", values={}, button=decision)
