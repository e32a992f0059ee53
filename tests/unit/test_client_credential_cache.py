"""Role credentials cached in the AWS CLI's cache: botocore's key and format, and the 5-minute window."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest
from botocore.credentials import SSOCredentialFetcher
from botocore.utils import JSONFileCache

from keyhall.client.credential_cache import (
    EXPIRY_WINDOW_SECONDS,
    CredentialCache,
    RoleCredentials,
    cache_key,
    format_expiration,
    parse_expiration,
)

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def _creds(expiration: float = NOW + 3600) -> RoleCredentials:
    return RoleCredentials(
        access_key_id="ASIAEXAMPLE",
        secret_access_key="secret",
        session_token="token",
        expiration=expiration,
        account_id="111111111111",
    )


def test_cache_key_is_botocores() -> None:
    fetcher = SSOCredentialFetcher(
        "http://127.0.0.1:8080/start",
        "us-east-1",
        "ReadOnly",
        "111111111111",
        client_creator=None,
        sso_session_name="keyhall",
    )
    assert cache_key(account_id="111111111111", role_name="ReadOnly", session_name="keyhall") == (
        fetcher._create_cache_key()
    )


@pytest.mark.parametrize("role", ["ReadOnly", 'we"ird\\role', "rôle ✓"])
def test_cache_key_is_compact_sorted_json(role: str) -> None:
    import hashlib

    args = json.dumps(
        {"roleName": role, "accountId": "1", "sessionName": "s"}, sort_keys=True, separators=(",", ":")
    )
    expected = hashlib.sha1(args.encode()).hexdigest()  # noqa: S324
    assert cache_key(account_id="1", role_name=role, session_name="s") == expected


def test_round_trip_and_format(tmp_path: Path) -> None:
    cache = CredentialCache(str(tmp_path / "cli" / "cache"))
    key = cache_key(account_id="111111111111", role_name="ReadOnly", session_name="keyhall")
    cache.store(key, _creds(), session_name="keyhall")

    path = Path(cache.path(key))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {
        "ProviderType": "sso",
        "Credentials": {
            "AccessKeyId": "ASIAEXAMPLE",
            "SecretAccessKey": "secret",
            "SessionToken": "token",
            "Expiration": "2027-01-15T09:00:00Z",
            "AccountId": "111111111111",
        },
        "KeyhallSession": "keyhall",
    }
    assert cache.load(key, now=NOW) == _creds()


def test_the_aws_cli_reads_what_keyhall_cached(tmp_path: Path) -> None:
    """botocore's own cache reader accepts the file (so `aws --profile x` reuses it)."""
    cache = CredentialCache(str(tmp_path))
    fetcher = SSOCredentialFetcher(
        "u",
        "us-east-1",
        "ReadOnly",
        "111111111111",
        client_creator=None,
        cache=JSONFileCache(str(tmp_path)),
        sso_session_name="keyhall",
    )
    cache.store(fetcher._create_cache_key(), _creds(time.time() + 3600), session_name="keyhall")
    loaded = fetcher._load_from_cache()
    assert loaded is not None
    assert loaded["Credentials"]["AccessKeyId"] == "ASIAEXAMPLE"


def test_keyhall_reads_what_the_aws_cli_cached(tmp_path: Path) -> None:
    JSONFileCache(str(tmp_path))["k"] = {
        "ProviderType": "sso",
        "Credentials": {
            "AccessKeyId": "ASIACLI",
            "SecretAccessKey": "s",
            "SessionToken": "t",
            "Expiration": "2027-01-15T09:00:00Z",
            "AccountId": "111111111111",
        },
    }
    loaded = CredentialCache(str(tmp_path)).load("k", now=NOW)
    assert loaded is not None
    assert loaded.access_key_id == "ASIACLI"
    assert loaded.expiration == NOW + 3600


@pytest.mark.parametrize(
    ("seconds_left", "served"),
    [
        (3600, True),
        (EXPIRY_WINDOW_SECONDS + 1, True),
        (EXPIRY_WINDOW_SECONDS, False),
        (60, False),
        (-5, False),
    ],
)
def test_five_minute_window(tmp_path: Path, seconds_left: float, served: bool) -> None:
    cache = CredentialCache(str(tmp_path))
    cache.store("k", _creds(expiration=NOW + 3600), session_name="keyhall")
    now = NOW + 3600 - seconds_left
    assert (cache.load("k", now=now) is not None) is served


def test_window_is_configurable(tmp_path: Path) -> None:
    cache = CredentialCache(str(tmp_path), window_seconds=900)
    cache.store("k", _creds(expiration=NOW + 600), session_name="keyhall")
    assert cache.load("k", now=NOW) is None


@pytest.mark.parametrize(
    "body",
    [
        "garbage",
        "{}",
        '{"ProviderType": "assume-role", "Credentials": {"AccessKeyId": "a", "SecretAccessKey": "s",'
        ' "SessionToken": "t", "Expiration": "2099-01-01T00:00:00Z"}}',
        '{"ProviderType": "sso", "Credentials": {"AccessKeyId": "", "SecretAccessKey": "s",'
        ' "SessionToken": "t", "Expiration": "2099-01-01T00:00:00Z"}}',
        '{"ProviderType": "sso", "Credentials": {"AccessKeyId": "a", "SecretAccessKey": "s",'
        ' "SessionToken": "t", "Expiration": "tomorrow"}}',
    ],
)
def test_unusable_entries_are_misses(tmp_path: Path, body: str) -> None:
    (tmp_path / "k.json").write_text(body)
    assert CredentialCache(str(tmp_path)).load("k", now=NOW) is None


def test_delete_session_removes_only_that_sessions_files(tmp_path: Path) -> None:
    cache = CredentialCache(str(tmp_path))
    cache.store("mine", _creds(), session_name="keyhall")
    cache.store("other", _creds(), session_name="elsewhere")
    (tmp_path / "cli-written.json").write_text('{"ProviderType": "sso", "Credentials": {}}')
    (tmp_path / "unrelated.json").write_text('{"ProviderType": "sso", "Credentials": {}}')
    assert cache.delete_session("keyhall", keys=["cli-written", "absent"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.json", "unrelated.json"]
    assert CredentialCache(str(tmp_path / "missing")).delete_session("keyhall") == 0


def test_expiration_formats() -> None:
    assert format_expiration(NOW) == "2027-01-15T08:00:00Z"
    assert parse_expiration("2027-01-15T08:00:00Z") == NOW
    assert parse_expiration("2027-01-15T08:00:00.000Z") == NOW
    assert parse_expiration("2027-01-15T09:00:00+01:00") == NOW


def test_repr_hides_secrets() -> None:
    text = repr(_creds())
    assert "secret" not in text
    assert "token" not in text
    assert "ASIAEXAMPLE" in text
