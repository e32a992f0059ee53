"""The SSO token cache in the AWS CLI's format, which the AWS CLI, boto3 and the JS SDK all read.

``~/.aws/sso/cache/<sha1(sso-session name)>.json`` holds the access token (real-clients.md §2.1,
aws-wire.md §2.3)::

    {"startUrl", "region", "accessToken", "expiresAt": "YYYY-MM-DDTHH:MM:SSZ",
     "clientId", "clientSecret", "registrationExpiresAt", "refreshToken"}

and ``<sha1(json.dumps({"region","scopes","session_name","startUrl","tool":"botocore"}, sort_keys=True))>``
``.json`` the client registration (``{"clientId","clientSecret","expiresAt","scopes"[,"grantTypes"]}``), so a
login by either Keyhall or `aws sso login` serves both. Files the JS SDK rewrote (indented, with
milliseconds) read fine.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keyhall.client._files import write_json_atomic

_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_timestamp(value: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` in UTC, as botocore's ``_serialize_utc_timestamp`` writes it."""
    return value.astimezone(UTC).strftime(_FORMAT)


def parse_timestamp(value: str) -> datetime:
    """Accepts ``…Z``, ``….260Z`` (JS) and ``…+00:00``; a time without a zone is taken as UTC."""
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@dataclass(frozen=True)
class SSOToken:
    """One sso-session's access token, with what is needed to refresh it."""

    start_url: str
    region: str
    access_token: str = field(repr=False)
    expires_at: datetime
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    registration_expires_at: datetime | None = None
    refresh_token: str | None = field(default=None, repr=False)

    def remaining(self, now: datetime) -> float:
        """Seconds until the access token expires (negative once it has)."""
        return (self.expires_at - now).total_seconds()

    def can_refresh(self, now: datetime) -> bool:
        """botocore's rule: a refresh token, the client's id and secret, and a registration still valid."""
        return bool(
            self.refresh_token
            and self.client_id
            and self.client_secret
            and self.registration_expires_at is not None
            and self.registration_expires_at > now
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "startUrl": self.start_url,
            "region": self.region,
            "accessToken": self.access_token,
            "expiresAt": format_timestamp(self.expires_at),
        }
        if self.client_id is not None:
            data["clientId"] = self.client_id
        if self.client_secret is not None:
            data["clientSecret"] = self.client_secret
        if self.registration_expires_at is not None:
            data["registrationExpiresAt"] = format_timestamp(self.registration_expires_at)
        if self.refresh_token is not None:
            data["refreshToken"] = self.refresh_token
        return data

    @classmethod
    def from_json(cls, data: Any) -> SSOToken:
        """Raises ValueError for a file botocore would also reject (no accessToken or expiresAt)."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        access_token, expires_at = data.get("accessToken"), data.get("expiresAt")
        if not isinstance(access_token, str) or not access_token or not isinstance(expires_at, str):
            raise ValueError("no accessToken or expiresAt")
        registration = data.get("registrationExpiresAt")
        return cls(
            start_url=str(data.get("startUrl") or ""),
            region=str(data.get("region") or ""),
            access_token=access_token,
            expires_at=parse_timestamp(expires_at),
            client_id=_optional_str(data.get("clientId")),
            client_secret=_optional_str(data.get("clientSecret")),
            registration_expires_at=parse_timestamp(registration) if isinstance(registration, str) else None,
            refresh_token=_optional_str(data.get("refreshToken")),
        )


@dataclass(frozen=True)
class ClientRegistration:
    """A RegisterClient result, reused until 15 minutes before it expires (as the AWS CLI does)."""

    client_id: str
    client_secret: str = field(repr=False)
    expires_at: datetime
    scopes: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = ()

    @property
    def is_pkce(self) -> bool:
        """Registered for the authorization-code grant; the CLI keeps device and PKCE registrations apart."""
        return "authorization_code" in self.grant_types

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "clientId": self.client_id,
            "clientSecret": self.client_secret,
            "expiresAt": format_timestamp(self.expires_at),
        }
        if self.scopes:
            data["scopes"] = list(self.scopes)
        if self.grant_types:
            data["grantTypes"] = list(self.grant_types)
        return data

    @classmethod
    def from_json(cls, data: Any) -> ClientRegistration:
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        client_id, client_secret, expires_at = (
            data.get("clientId"),
            data.get("clientSecret"),
            data.get("expiresAt"),
        )
        if not (
            isinstance(client_id, str) and isinstance(client_secret, str) and isinstance(expires_at, str)
        ):
            raise ValueError("no clientId, clientSecret or expiresAt")
        return cls(
            client_id=client_id,
            client_secret=client_secret,
            expires_at=parse_timestamp(expires_at),
            scopes=tuple(str(s) for s in data.get("scopes") or ()),
            grant_types=tuple(str(g) for g in data.get("grantTypes") or ()),
        )


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def token_cache_key(session_name: str) -> str:
    """``sha1(sso-session name)``: the file name botocore and the JS SDK look for."""
    return hashlib.sha1(session_name.encode("utf-8")).hexdigest()  # noqa: S324 (a file name, as AWS names it)


def registration_cache_key(
    *, start_url: str, region: str, scopes: list[str] | None, session_name: str
) -> str:
    """The AWS CLI v2's ``_registration_cache_key`` (default ``json.dumps`` separators, sorted keys)."""
    args = {
        "tool": "botocore",
        "startUrl": start_url,
        "region": region,
        "scopes": scopes,
        "session_name": session_name,
    }
    return hashlib.sha1(json.dumps(args, sort_keys=True).encode("utf-8")).hexdigest()  # noqa: S324


class TokenCache:
    """``~/.aws/sso/cache``: tokens by sso-session name, registrations by the CLI's key."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def token_path(self, session_name: str) -> Path:
        return self.directory / f"{token_cache_key(session_name)}.json"

    def load_token(self, session_name: str) -> SSOToken | None:
        """The cached token, or None when there is none or the file is not a valid token."""
        data = self._read(self.token_path(session_name))
        if data is None:
            return None
        try:
            return SSOToken.from_json(data)
        except ValueError:
            return None

    def store_token(self, session_name: str, token: SSOToken) -> None:
        write_json_atomic(self.token_path(session_name), token.to_json())

    def delete_token(self, session_name: str) -> bool:
        path = self.token_path(session_name)
        existed = path.exists()
        path.unlink(missing_ok=True)
        return existed

    def registration_path(
        self, *, start_url: str, region: str, scopes: list[str] | None, session_name: str
    ) -> Path:
        key = registration_cache_key(
            start_url=start_url, region=region, scopes=scopes, session_name=session_name
        )
        return self.directory / f"{key}.json"

    def load_registration(
        self, *, start_url: str, region: str, scopes: list[str] | None, session_name: str
    ) -> ClientRegistration | None:
        path = self.registration_path(
            start_url=start_url, region=region, scopes=scopes, session_name=session_name
        )
        data = self._read(path)
        if data is None:
            return None
        try:
            return ClientRegistration.from_json(data)
        except ValueError:
            return None

    def store_registration(
        self,
        registration: ClientRegistration,
        *,
        start_url: str,
        region: str,
        scopes: list[str] | None,
        session_name: str,
    ) -> None:
        path = self.registration_path(
            start_url=start_url, region=region, scopes=scopes, session_name=session_name
        )
        write_json_atomic(path, registration.to_json())

    @staticmethod
    def _read(path: Path) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
