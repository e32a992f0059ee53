"""Directory records, shaped after the identitystore API (User, Group, GroupMembership)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Literal

from keyhall.errors import Problem

UserStatus = Literal["ENABLED", "DISABLED"]
RESERVED_USER_NAMES = frozenset({"administrator", "awsadministrators"})
_CONTROL_OR_SPACE = re.compile(r"[\s\x00-\x1f\x7f]")
#: identitystore User attributes we keep verbatim in the attributes column
USER_ATTRIBUTES = (
    "Name",
    "NickName",
    "ProfileUrl",
    "Emails",
    "Addresses",
    "PhoneNumbers",
    "UserType",
    "Title",
    "PreferredLanguage",
    "Locale",
    "Timezone",
    "Photos",
    "Website",
    "Birthdate",
    "Roles",
    "Extensions",
)


def name_key(value: str) -> str:
    """The case-insensitive uniqueness key of a user or group name (NFKC + casefold)."""
    return unicodedata.normalize("NFKC", value).casefold()


@dataclass(frozen=True)
class User:
    id: str
    user_name: str
    display_name: str | None
    status: UserStatus
    source: str
    is_admin: bool
    attributes: dict[str, Any]
    external_ids: list[dict[str, str]]
    has_password: bool
    must_change_password: bool
    managed: bool
    created_at: float
    updated_at: float
    created_by: str | None = None
    updated_by: str | None = None

    @property
    def enabled(self) -> bool:
        return self.status == "ENABLED"

    @property
    def emails(self) -> list[dict[str, Any]]:
        value = self.attributes.get("Emails") or []
        return list(value)

    @property
    def primary_email(self) -> str | None:
        emails = self.emails
        for email in emails:
            if email.get("Primary"):
                return str(email.get("Value"))
        return str(emails[0].get("Value")) if emails else None

    @property
    def given_name(self) -> str | None:
        name = self.attributes.get("Name") or {}
        return name.get("GivenName")

    @property
    def family_name(self) -> str | None:
        name = self.attributes.get("Name") or {}
        return name.get("FamilyName")


@dataclass(frozen=True)
class Group:
    id: str
    display_name: str
    description: str | None
    external_ids: list[dict[str, str]]
    managed: bool
    created_at: float
    updated_at: float
    member_count: int | None = None


@dataclass(frozen=True)
class Membership:
    id: str
    group_id: str
    user_id: str
    created_at: float


@dataclass
class UserSpec:
    """What an administrator (or a provisioning source) says a user is."""

    user_name: str
    display_name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    email: str | None = None
    status: UserStatus = "ENABLED"
    is_admin: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)

    def full_attributes(self) -> dict[str, Any]:
        attrs = {k: v for k, v in self.attributes.items() if v is not None}
        if self.given_name or self.family_name:
            name = dict(attrs.get("Name") or {})
            if self.given_name:
                name["GivenName"] = self.given_name
            if self.family_name:
                name["FamilyName"] = self.family_name
            name.setdefault("Formatted", " ".join(p for p in (self.given_name, self.family_name) if p))
            attrs["Name"] = name
        if self.email:
            attrs["Emails"] = [{"Value": self.email, "Type": "work", "Primary": True}]
        return attrs


def check_user_name(user_name: str, location: str = "UserName") -> list[Problem]:
    problems = []
    if not 1 <= len(user_name) <= 128:
        problems.append(Problem(location, "must be 1 to 128 characters"))
    elif _CONTROL_OR_SPACE.search(user_name):
        problems.append(Problem(location, "must not contain spaces or control characters"))
    elif name_key(user_name) in RESERVED_USER_NAMES:
        problems.append(Problem(location, f"{user_name!r} is a reserved name"))
    return problems


def check_user_spec(spec: UserSpec) -> list[Problem]:
    problems = check_user_name(spec.user_name)
    if spec.display_name is not None and not 1 <= len(spec.display_name) <= 1024:
        problems.append(Problem("DisplayName", "must be 1 to 1024 characters"))
    if spec.status not in ("ENABLED", "DISABLED"):
        problems.append(Problem("UserStatus", f'must be "ENABLED" or "DISABLED", got {spec.status!r}'))
    if spec.email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+", spec.email):
        problems.append(Problem("Emails", f"{spec.email!r} is not an email address"))
    unknown = sorted(set(spec.attributes) - set(USER_ATTRIBUTES))
    if unknown:
        problems.append(Problem("attributes", f"unknown attributes: {', '.join(unknown)}"))
    return problems


def check_group_name(display_name: str, location: str = "DisplayName") -> list[Problem]:
    if not 1 <= len(display_name) <= 1024 or not display_name.strip():
        return [Problem(location, "must be 1 to 1024 characters and not blank")]
    return []
