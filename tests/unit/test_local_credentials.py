"""Role credentials for `local` accounts: minting, sealing and opening session tokens."""

from __future__ import annotations

import base64
import dataclasses
import re

import pytest

from keyhall.credentials.errors import InvalidClientTokenId, InvalidSessionToken
from keyhall.credentials.local import (
    ACCESS_KEY_ID_RE,
    LocalCredentialIssuer,
    RoleCredentials,
    SessionClaims,
    reserved_role_name,
    role_id,
)

MASTER = bytes(range(32))
OTHER_MASTER = bytes(range(1, 33))
NOW = 1_800_000_000.0
ROLE = "AWSReservedSSO_ReadOnly_0123456789abcdef"


def _issue(issuer: LocalCredentialIssuer, *, duration: float = 3600) -> tuple[RoleCredentials, SessionClaims]:
    return issuer.issue(
        account_id="111122223333",
        role_name=ROLE,
        permission_set_id="ps-0123456789abcdef",
        user_id="8f1c2d3e-0000-4000-8000-000000000001",
        user_name="alice@example.com",
        session_id="5b6c7d8e-0000-4000-8000-000000000002",
        now=NOW,
        duration_seconds=duration,
    )


def _flip(token: str, index: int) -> str:
    """The token with one character changed to another valid one."""
    replacement = "A" if token[index] != "A" else "B"
    return token[:index] + replacement + token[index + 1 :]


def test_round_trip_returns_every_claim() -> None:
    issuer = LocalCredentialIssuer(MASTER)
    credentials, claims = _issue(issuer)
    opened = issuer.open(credentials.access_key_id, credentials.session_token)
    assert opened == claims
    assert opened == SessionClaims(
        access_key_id=credentials.access_key_id,
        account_id="111122223333",
        role_name=ROLE,
        permission_set_id="ps-0123456789abcdef",
        user_id="8f1c2d3e-0000-4000-8000-000000000001",
        user_name="alice@example.com",
        session_id="5b6c7d8e-0000-4000-8000-000000000002",
        issued_at=NOW,
        expires_at=NOW + 3600,
        key_version=1,
    )
    assert credentials.expiration == NOW + 3600


def test_claims_answer_get_caller_identity() -> None:
    _, claims = _issue(LocalCredentialIssuer(MASTER))
    assert claims.arn == f"arn:aws:sts::111122223333:assumed-role/{ROLE}/alice@example.com"
    assert re.fullmatch(r"AROA[A-Z2-7]{17}:alice@example\.com", claims.user_id_for_sts)
    assert claims.user_id_for_sts.split(":")[0] == role_id("111122223333", ROLE)
    assert not claims.expired(NOW + 3599.9)
    assert claims.expired(NOW + 3600)


def test_access_key_id_has_the_aws_temporary_key_format_and_is_random() -> None:
    issuer = LocalCredentialIssuer(MASTER)
    ids = {_issue(issuer)[0].access_key_id for _ in range(200)}
    assert len(ids) == 200
    for access_key_id in ids:
        assert re.fullmatch(r"^ASIA[A-Z2-7]{16}$", access_key_id)
        assert ACCESS_KEY_ID_RE.fullmatch(access_key_id)


def test_secret_is_derived_deterministically_and_never_stored() -> None:
    issuer = LocalCredentialIssuer(MASTER)
    credentials, _ = _issue(issuer)
    assert len(credentials.secret_access_key) == 40
    assert issuer.secret_for(credentials.access_key_id) == credentials.secret_access_key
    assert (
        LocalCredentialIssuer(MASTER).secret_for(credentials.access_key_id) == credentials.secret_access_key
    )
    assert LocalCredentialIssuer(OTHER_MASTER).secret_for(credentials.access_key_id) != (
        credentials.secret_access_key
    )
    other, _ = _issue(issuer)
    assert other.secret_access_key != credentials.secret_access_key


def test_token_is_url_safe_and_compact() -> None:
    credentials, _ = _issue(LocalCredentialIssuer(MASTER))
    assert re.fullmatch(r"[A-Za-z0-9_-]+", credentials.session_token)
    assert len(credentials.session_token) < 600
    assert credentials.session_token[0] == "A"  # version byte 0x01 → base64 "A…"


@pytest.mark.parametrize("index", [0, 1, 10, 30, 100, -1])
def test_tampered_token_is_refused(index: int) -> None:
    issuer = LocalCredentialIssuer(MASTER)
    credentials, _ = _issue(issuer)
    tampered = _flip(credentials.session_token, index % len(credentials.session_token))
    with pytest.raises(InvalidSessionToken):
        issuer.open(credentials.access_key_id, tampered)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "A",
        "AAAA",
        "not a token!",
        "A" * 5000,
        "ASIA" + "=" * 8,
        base64.urlsafe_b64encode(b"\x02" * 64).decode(),
    ],
)
def test_garbage_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidSessionToken):
        LocalCredentialIssuer(MASTER).open("ASIAAAAAAAAAAAAAAAAA", token)


def test_truncated_token_is_refused() -> None:
    issuer = LocalCredentialIssuer(MASTER)
    credentials, _ = _issue(issuer)
    with pytest.raises(InvalidSessionToken):
        issuer.open(credentials.access_key_id, credentials.session_token[:-4])


def test_token_from_another_master_key_is_refused() -> None:
    credentials, _ = _issue(LocalCredentialIssuer(OTHER_MASTER))
    with pytest.raises(InvalidSessionToken):
        LocalCredentialIssuer(MASTER).open(credentials.access_key_id, credentials.session_token)


def test_token_is_bound_to_its_access_key_id() -> None:
    issuer = LocalCredentialIssuer(MASTER)
    first, _ = _issue(issuer)
    second, _ = _issue(issuer)
    with pytest.raises(InvalidSessionToken):
        issuer.open(second.access_key_id, first.session_token)


def test_invalid_session_token_is_the_aws_invalid_client_token_id() -> None:
    error = InvalidSessionToken()
    assert isinstance(error, InvalidClientTokenId)
    assert (error.status, error.wire_query_code, error.query_type) == (403, "InvalidClientTokenId", "Sender")
    assert error.message == "The security token included in the request is invalid."


def test_key_rotation_keeps_tokens_of_retired_keys_working() -> None:
    old = LocalCredentialIssuer(MASTER)
    old_credentials, _ = _issue(old)
    rotated = LocalCredentialIssuer(OTHER_MASTER, key_version=2, retired_master_keys={1: MASTER})
    new_credentials, new_claims = _issue(rotated)
    assert new_claims.key_version == 2
    assert new_credentials.session_token[0] == "A"  # 0x02 still encodes to "A…"; the byte is what counts

    opened_old = rotated.open(old_credentials.access_key_id, old_credentials.session_token)
    assert opened_old.key_version == 1
    assert (
        rotated.secret_for(old_credentials.access_key_id, key_version=1) == old_credentials.secret_access_key
    )
    assert rotated.secret_for(new_credentials.access_key_id) == new_credentials.secret_access_key
    # A node that never learnt version 2 refuses its tokens.
    with pytest.raises(InvalidSessionToken):
        old.open(new_credentials.access_key_id, new_credentials.session_token)
    with pytest.raises(InvalidSessionToken):
        old.secret_for(new_credentials.access_key_id, key_version=2)


def test_key_versions_are_checked() -> None:
    with pytest.raises(ValueError, match="between 1 and 255"):
        LocalCredentialIssuer(MASTER, key_version=0)
    with pytest.raises(ValueError, match="both current and retired"):
        LocalCredentialIssuer(MASTER, key_version=2, retired_master_keys={2: OTHER_MASTER})


def test_duration_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        _issue(LocalCredentialIssuer(MASTER), duration=0)


def test_secrets_never_appear_in_reprs() -> None:
    issuer = LocalCredentialIssuer(MASTER)
    credentials, claims = _issue(issuer)
    shown = repr(credentials) + repr(issuer) + repr(claims) + str(credentials)
    assert credentials.secret_access_key not in shown
    assert credentials.session_token not in shown
    assert credentials.access_key_id in repr(credentials)
    assert MASTER.hex() not in shown
    assert "secret_access_key" not in repr(credentials)
    hidden = {f.name for f in dataclasses.fields(RoleCredentials) if not f.repr}
    assert hidden == {"secret_access_key", "session_token"}


def test_reserved_role_name_is_deterministic_per_instance_account_and_permission_set() -> None:
    name = reserved_role_name("ReadOnly", "ssoins-0123456789abcdef", "111122223333", "ps-0123456789abcdef")
    assert re.fullmatch(r"AWSReservedSSO_ReadOnly_[0-9a-f]{16}", name)
    assert name == reserved_role_name(
        "ReadOnly", "ssoins-0123456789abcdef", "111122223333", "ps-0123456789abcdef"
    )
    others = {
        reserved_role_name("ReadOnly", "ssoins-ffffffffffffffff", "111122223333", "ps-0123456789abcdef"),
        reserved_role_name("ReadOnly", "ssoins-0123456789abcdef", "444455556666", "ps-0123456789abcdef"),
        reserved_role_name("ReadOnly", "ssoins-0123456789abcdef", "111122223333", "ps-ffffffffffffffff"),
    }
    assert name not in others
    assert len(others) == 3


def test_reserved_role_name_fits_iam_limits() -> None:
    longest = reserved_role_name("P" * 32, "ssoins-0123456789abcdef", "111122223333", "ps-0123456789abcdef")
    assert len(longest) == 64
    with pytest.raises(ValueError, match="permission set name"):
        reserved_role_name("has space", "ssoins-0123456789abcdef", "111122223333", "ps-0123456789abcdef")
    with pytest.raises(ValueError, match="permission set name"):
        reserved_role_name("P" * 33, "ssoins-0123456789abcdef", "111122223333", "ps-0123456789abcdef")


def test_role_id_is_stable_and_per_role() -> None:
    assert role_id("111122223333", ROLE) == role_id("111122223333", ROLE)
    assert role_id("111122223333", ROLE) != role_id("444455556666", ROLE)
    assert re.fullmatch(r"AROA[A-Z2-7]{17}", role_id("111122223333", ROLE))
