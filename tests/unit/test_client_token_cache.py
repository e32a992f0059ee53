"""The SSO token cache is the AWS CLI's file, byte for byte: name, keys, timestamp format, mode."""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from keyhall.client.token_cache import (
    ClientRegistration,
    SSOToken,
    TokenCache,
    format_timestamp,
    parse_timestamp,
    registration_cache_key,
    token_cache_key,
)

EXPIRES = datetime(2026, 11, 25, 15, 27, 27, tzinfo=UTC)
REGISTRATION_EXPIRES = datetime(2027, 2, 23, 7, 27, 26, tzinfo=UTC)


def _token() -> SSOToken:
    return SSOToken(
        start_url="http://127.0.0.1:8080/start",
        region="us-east-1",
        access_token="at-1",
        expires_at=EXPIRES,
        client_id="cid",
        client_secret="csecret",
        registration_expires_at=REGISTRATION_EXPIRES,
        refresh_token="rt-1",
    )


def test_file_name_is_sha1_of_the_session_name() -> None:
    # aws-wire.md §2.3: sha1("my-sso") = 0ad374308c5a4e22f723adf10145eafad7c4031c
    assert token_cache_key("my-sso") == "0ad374308c5a4e22f723adf10145eafad7c4031c"


def test_round_trip_writes_the_cli_format(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path / ".aws" / "sso" / "cache")
    cache.store_token("keyhall", _token())

    path = tmp_path / ".aws" / "sso" / "cache" / (hashlib.sha1(b"keyhall").hexdigest() + ".json")  # noqa: S324
    raw = json.loads(path.read_text())
    assert list(raw) == [
        "startUrl",
        "region",
        "accessToken",
        "expiresAt",
        "clientId",
        "clientSecret",
        "registrationExpiresAt",
        "refreshToken",
    ]
    assert raw["expiresAt"] == "2026-11-25T15:27:27Z"
    assert raw["registrationExpiresAt"] == "2027-02-23T07:27:26Z"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cache.load_token("keyhall") == _token()
    assert not list(path.parent.glob("*.tmp")), "no temporary file is left behind"


def test_reads_a_file_the_js_sdk_rewrote(tmp_path: Path) -> None:
    """JS rewrites the file indented and with milliseconds (real-clients.md §2.1)."""
    cache = TokenCache(tmp_path)
    cache.token_path("keyhall").write_text(
        json.dumps(
            {
                "startUrl": "http://127.0.0.1:8080/start",
                "region": "us-east-1",
                "accessToken": "at-js",
                "expiresAt": "2026-11-25T15:30:17.260Z",
                "clientId": "cid",
                "clientSecret": "csecret",
                "registrationExpiresAt": "2027-02-23T07:27:26.000Z",
                "refreshToken": "rt-js",
            },
            indent=2,
        )
    )
    token = cache.load_token("keyhall")
    assert token is not None
    assert token.access_token == "at-js"
    assert token.expires_at == datetime(2026, 11, 25, 15, 30, 17, 260000, tzinfo=UTC)
    assert token.refresh_token == "rt-js"


def test_reads_a_legacy_token_without_refresh_fields(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path)
    cache.token_path("x").write_text(
        '{"startUrl": "s", "region": "r", "accessToken": "a", "expiresAt": "2026-01-01T00:00:00Z"}'
    )
    token = cache.load_token("x")
    assert token is not None
    assert token.refresh_token is None
    assert not token.can_refresh(datetime(2025, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    "content",
    [
        "",
        "not json",
        "[]",
        '{"accessToken": "a"}',
        '{"expiresAt": "2026-01-01T00:00:00Z"}',
        '{"accessToken": "a", "expiresAt": "soon"}',
    ],
)
def test_an_invalid_file_is_no_token(tmp_path: Path, content: str) -> None:
    cache = TokenCache(tmp_path)
    cache.token_path("x").write_text(content)
    assert cache.load_token("x") is None


def test_a_missing_file_is_no_token(tmp_path: Path) -> None:
    assert TokenCache(tmp_path / "nowhere").load_token("x") is None
    assert TokenCache(tmp_path).delete_token("x") is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T15:27:27Z", datetime(2026, 11, 25, 15, 27, 27, tzinfo=UTC)),
        ("2026-11-25T15:27:27.5Z", datetime(2026, 11, 25, 15, 27, 27, 500000, tzinfo=UTC)),
        ("2026-11-25T16:27:27+01:00", datetime(2026, 11, 25, 15, 27, 27, tzinfo=UTC)),
        ("2026-11-25T15:27:27", datetime(2026, 11, 25, 15, 27, 27, tzinfo=UTC)),
    ],
)
def test_timestamps(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected
    assert format_timestamp(parse_timestamp(text)) == format_timestamp(expected)


def test_registration_key_is_the_aws_cli_one() -> None:
    """Derived here from the CLI's algorithm (awscli/botocore/utils.py ``_registration_cache_key``)."""
    args = {
        "tool": "botocore",
        "startUrl": "http://127.0.0.1:8080/start",
        "region": "us-east-1",
        "scopes": ["sso:account:access"],
        "session_name": "keyhall",
    }
    expected = hashlib.sha1(json.dumps(args, sort_keys=True).encode()).hexdigest()  # noqa: S324
    assert (
        registration_cache_key(
            start_url="http://127.0.0.1:8080/start",
            region="us-east-1",
            scopes=["sso:account:access"],
            session_name="keyhall",
        )
        == expected
    )


def test_registration_round_trip(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path)
    registration = ClientRegistration(
        client_id="cid",
        client_secret="cs",
        expires_at=REGISTRATION_EXPIRES,
        scopes=("sso:account:access",),
        grant_types=("authorization_code", "refresh_token"),
    )
    where = {"start_url": "u", "region": "r", "scopes": ["sso:account:access"], "session_name": "keyhall"}
    cache.store_registration(registration, **where)  # type: ignore[arg-type]
    path = cache.registration_path(**where)  # type: ignore[arg-type]
    assert json.loads(path.read_text()) == {
        "clientId": "cid",
        "clientSecret": "cs",
        "expiresAt": "2027-02-23T07:27:26Z",
        "scopes": ["sso:account:access"],
        "grantTypes": ["authorization_code", "refresh_token"],
    }
    loaded = cache.load_registration(**where)  # type: ignore[arg-type]
    assert loaded == registration
    assert loaded.is_pkce


def test_secrets_are_not_in_the_repr() -> None:
    text = repr(_token())
    assert "at-1" not in text
    assert "rt-1" not in text
    assert "csecret" not in text
