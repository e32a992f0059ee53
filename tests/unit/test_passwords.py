"""Password hashing (argon2id) and the password policy (ASVS 5.0 V6.2, Appendix C)."""

from __future__ import annotations

import re
import unicodedata
from importlib import resources
from typing import Any

import argon2
import pytest

from keyhall.signin.passwords import (
    MIN_MEMORY_COST_KIB,
    MIN_TIME_COST,
    PasswordHasher,
    PasswordPolicy,
    check_password,
    generate_password,
)

# The ASVS minimum, so the suite stays fast; production defaults are exercised once below.
FAST = {"time_cost": MIN_TIME_COST, "memory_cost": MIN_MEMORY_COST_KIB}


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher(**FAST)


class _SpyArgon2:
    """Wraps the real argon2 hasher and records which hashes ``verify`` was asked to check."""

    def __init__(self, real: argon2.PasswordHasher) -> None:
        self._real = real
        self.verified: list[str] = []

    def verify(self, stored_hash: str, password: str) -> bool:
        self.verified.append(stored_hash)
        return self._real.verify(stored_hash, password)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _spy_on(hasher: PasswordHasher) -> _SpyArgon2:
    spy = _SpyArgon2(hasher._argon2)
    hasher._argon2 = spy  # type: ignore[assignment]
    return spy


# --- PasswordHasher -----------------------------------------------------------------------------


def test_hash_is_argon2id_with_configured_parameters(hasher: PasswordHasher) -> None:
    stored = hasher.hash("correct horse battery staple")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_default_parameters_are_m64mib_t3_p1() -> None:
    stored = PasswordHasher().hash("correct horse battery staple")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=1$")


def test_hashes_are_salted(hasher: PasswordHasher) -> None:
    assert hasher.hash("same password") != hasher.hash("same password")


def test_verify_accepts_the_right_password(hasher: PasswordHasher) -> None:
    stored = hasher.hash("correct horse battery staple")
    assert hasher.verify(stored, "correct horse battery staple") is True


@pytest.mark.parametrize(
    "attempt",
    [
        "correct horse battery stapl",
        "Correct horse battery staple",
        "correct horse battery staple ",
        "",
    ],
)
def test_verify_refuses_a_wrong_password(hasher: PasswordHasher, attempt: str) -> None:
    stored = hasher.hash("correct horse battery staple")
    assert hasher.verify(stored, attempt) is False


def test_verify_does_not_truncate_long_passwords(hasher: PasswordHasher) -> None:
    long_password = "x" * 200
    stored = hasher.hash(long_password)
    assert hasher.verify(stored, long_password) is True
    assert hasher.verify(stored, "x" * 199 + "y") is False
    assert hasher.verify(stored, "x" * 72) is False


def test_verify_does_not_normalise_unicode(hasher: PasswordHasher) -> None:
    composed = unicodedata.normalize("NFC", "caf\u00e9-au-lait")
    decomposed = unicodedata.normalize("NFD", composed)
    stored = hasher.hash(composed)
    assert hasher.verify(stored, composed) is True
    assert hasher.verify(stored, decomposed) is False


@pytest.mark.parametrize(
    "stored",
    ["", "not a hash", "$argon2id$v=19$m=19456,t=2,p=1$garbage", "$2b$12$" + "a" * 53, "$argon2id$"],
)
def test_verify_never_raises_on_an_invalid_hash(hasher: PasswordHasher, stored: str) -> None:
    assert hasher.verify(stored, "whatever password") is False


def test_unknown_user_returns_false_and_still_runs_argon2() -> None:
    hasher = PasswordHasher(**FAST)
    spy = _spy_on(hasher)

    assert hasher.verify(None, "any password at all") is False
    assert hasher.verify(None, "another password") is False

    assert len(spy.verified) == 2
    dummy = spy.verified[0]
    # A real argon2id hash with this hasher's own parameters, so it costs what a real one does.
    assert dummy.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    # Computed once per hasher and reused.
    assert spy.verified[1] == dummy


def test_dummy_hash_is_computed_lazily() -> None:
    hasher = PasswordHasher(**FAST)
    assert hasher._dummy_hash is None
    hasher.verify(hasher.hash("a real password"), "a real password")
    assert hasher._dummy_hash is None
    hasher.verify(None, "x")
    assert hasher._dummy_hash is not None


def test_dummy_hash_differs_between_hashers() -> None:
    first, second = PasswordHasher(**FAST), PasswordHasher(**FAST)
    first.verify(None, "x")
    second.verify(None, "x")
    assert first._dummy_hash != second._dummy_hash


def test_needs_rehash(hasher: PasswordHasher) -> None:
    current = hasher.hash("correct horse battery staple")
    assert hasher.needs_rehash(current) is False
    stronger = PasswordHasher(time_cost=3, memory_cost=MIN_MEMORY_COST_KIB)
    assert stronger.needs_rehash(current) is True
    assert hasher.needs_rehash("not a hash") is True


@pytest.mark.parametrize(
    "params",
    [
        {"time_cost": 1, "memory_cost": 65536},
        {"time_cost": 1, "memory_cost": 47104},
        {"time_cost": 2, "memory_cost": 19455},
        {"time_cost": 3, "memory_cost": 12 * 1024},
        {"time_cost": 0, "memory_cost": 19456},
        {"time_cost": 2, "memory_cost": 19456, "parallelism": 0},
    ],
)
def test_parameters_below_the_minimum_are_refused(params: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be at least"):
        PasswordHasher(**params)


def test_minimum_parameters_are_allowed() -> None:
    PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


# --- Password policy ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    [
        "kettle-orbit-violet",
        "abcd-efgh",
        "8 chars!",
        "x" * 64,
        "correct horse battery staple " * 8,  # 232 characters
        "y" * 256,
        "пароль-для-входа",
        "パスワードは秘密です",
        "🔑🔑🔑🔑🔑🔑🔑🔑",
        "   leading and trailing spaces   ",
    ],
)
def test_acceptable_passwords(password: str) -> None:
    assert check_password(password) == []


@pytest.mark.parametrize("password", ["", "a", "short", "1234567", "abcdefg"])
def test_short_passwords_are_refused(password: str) -> None:
    problems = check_password(password)
    assert any("at least 8 characters" in p for p in problems)


def test_257_characters_are_refused() -> None:
    problems = check_password("z" * 257)
    assert problems == ["Password must be at most 256 characters long."]


def test_length_counts_characters_as_given() -> None:
    # Seven code points composed; eight when the accent is a combining character. No normalisation.
    composed = "caf\u00e9-ab"
    assert len(composed) == 7
    assert any("at least 8" in p for p in check_password(composed))
    decomposed = unicodedata.normalize("NFD", composed)
    assert len(decomposed) == 8
    assert check_password(decomposed) == []


@pytest.mark.parametrize("password", [" " * 8, "\t" * 10, " \u00a0 \u3000    ", " " * 300])
def test_all_whitespace_is_refused(password: str) -> None:
    assert any("spaces" in p for p in check_password(password))


@pytest.mark.parametrize(
    "password",
    ["password", "PASSWORD", "Password1", "12345678", "qwertyuiop", "iloveyou", "letmein1", "sunshine"],
)
def test_common_passwords_are_refused(password: str) -> None:
    assert any("too common" in p for p in check_password(password))


def test_common_check_ignores_surrounding_whitespace() -> None:
    assert any("too common" in p for p in check_password("  password  "))


@pytest.mark.parametrize(
    ("password", "user_name", "display_name"),
    [
        ("alice.smith", "alice.smith", None),
        ("Alice.Smith", "alice.smith", None),
        ("ALICE.SMITH ", "alice.smith", None),
        ("alice smith", "asmith", "Alice Smith"),
        ("STRASSE-KING", "strasse-king", None),
        ("straße-king", "STRASSE-KING", None),
    ],
)
def test_password_equal_to_names_is_refused(password: str, user_name: str, display_name: str | None) -> None:
    problems = check_password(password, user_name=user_name, display_name=display_name)
    assert any("user name or display name" in p for p in problems)


def test_password_merely_containing_the_name_is_allowed() -> None:
    assert check_password("alice.smith-rides-bikes", user_name="alice.smith") == []


def test_empty_names_are_ignored() -> None:
    assert check_password("kettle-orbit-violet", user_name="", display_name="") == []


def test_all_problems_are_reported_at_once() -> None:
    problems = check_password("admin", user_name="admin")
    assert len(problems) == 3


def test_no_composition_rules() -> None:
    assert check_password("alllowercaselettersonly") == []
    assert check_password("9183746502917364") == []


def test_policy_refuses_weaker_settings() -> None:
    with pytest.raises(ValueError, match="min_length"):
        PasswordPolicy(min_length=6)
    with pytest.raises(ValueError, match="max_length"):
        PasswordPolicy(max_length=63)


def test_stricter_policy() -> None:
    policy = PasswordPolicy(min_length=15)
    assert any("at least 15" in p for p in policy.check("fourteen-chars"))
    assert policy.check("fifteen-chars!!") == []


# --- Common-password list -----------------------------------------------------------------------


def _shipped_list() -> list[str]:
    text = resources.files("keyhall.signin").joinpath("common-passwords.txt").read_text(encoding="utf-8")
    return text.splitlines()


def test_shipped_list_has_at_least_the_top_3000() -> None:
    entries = _shipped_list()
    assert len(entries) >= 3000
    assert len(set(entries)) == len(entries)
    assert all(entry == entry.strip().lower() and entry for entry in entries)
    for obvious in ("password", "123456", "12345678", "qwerty", "letmein", "iloveyou", "admin", "welcome"):
        assert obvious in entries
    assert "password1" in entries[:3000]


# --- generate_password --------------------------------------------------------------------------


def test_generated_password_shape_and_policy() -> None:
    for _ in range(50):
        password = generate_password()
        assert re.fullmatch(r"[a-z2-9]{4}(-[a-z2-9]{4}){4}", password)
        assert not set(password) & set("01ilo")
        assert check_password(password) == []


def test_generated_passwords_differ() -> None:
    assert len({generate_password() for _ in range(100)}) == 100
