"""RFC 6238 TOTP: published test vectors, the acceptance window, and single use of codes."""

from __future__ import annotations

import base64
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest

from keyhall.signin.totp import (
    SECRET_BYTES,
    TIME_STEP_SECONDS,
    new_totp_secret,
    provisioning_uri,
    time_step,
    totp_code,
    totp_secret_to_base32,
    verify_totp,
)

# RFC 6238 Appendix B and RFC 4226 Appendix D use this ASCII seed for HMAC-SHA-1.
RFC_SECRET = b"12345678901234567890"

# A moment well inside a time step, so "now" and its neighbours are unambiguous.
NOW = 1_700_000_010.0
STEP = time_step(NOW)


@pytest.mark.parametrize(
    ("unix_time", "expected"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ],
)
def test_rfc6238_appendix_b_sha1_vectors(unix_time: int, expected: str) -> None:
    assert totp_code(RFC_SECRET, time_step(unix_time), digits=8) == expected


@pytest.mark.parametrize(
    ("counter", "expected"),
    list(
        enumerate(
            [
                "755224",
                "287082",
                "359152",
                "969429",
                "338314",
                "254676",
                "287922",
                "162583",
                "399871",
                "520489",
            ]
        )
    ),
)
def test_rfc4226_appendix_d_hotp_vectors(counter: int, expected: str) -> None:
    assert totp_code(RFC_SECRET, counter) == expected


def test_rfc6238_time_steps() -> None:
    assert time_step(59) == 1
    assert time_step(1111111109) == 0x23523EC
    assert time_step(20000000000) == 0x27BC86AA


def test_code_is_accepted_and_returns_its_step() -> None:
    code = totp_code(RFC_SECRET, STEP)
    assert verify_totp(RFC_SECRET, code, now=NOW, last_used_step=None) == STEP


def test_code_accepted_once_is_refused_on_reuse() -> None:
    code = totp_code(RFC_SECRET, STEP)
    used = verify_totp(RFC_SECRET, code, now=NOW, last_used_step=None)
    assert used == STEP
    assert verify_totp(RFC_SECRET, code, now=NOW, last_used_step=used) is None
    # Still refused later in the window, when the code would otherwise still be valid.
    assert verify_totp(RFC_SECRET, code, now=NOW + TIME_STEP_SECONDS, last_used_step=used) is None


def test_older_code_is_refused_after_a_newer_one_was_used() -> None:
    previous = totp_code(RFC_SECRET, STEP - 1)
    assert verify_totp(RFC_SECRET, previous, now=NOW, last_used_step=STEP) is None


def test_next_code_is_accepted_after_the_current_one_was_used() -> None:
    following = totp_code(RFC_SECRET, STEP + 1)
    assert verify_totp(RFC_SECRET, following, now=NOW, last_used_step=STEP) == STEP + 1


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_codes_within_one_step_of_now_are_accepted(offset: int) -> None:
    code = totp_code(RFC_SECRET, STEP + offset)
    assert verify_totp(RFC_SECRET, code, now=NOW, last_used_step=None) == STEP + offset


@pytest.mark.parametrize("offset", [-3, -2, 2, 3])
def test_codes_outside_the_window_are_refused(offset: int) -> None:
    code = totp_code(RFC_SECRET, STEP + offset)
    assert verify_totp(RFC_SECRET, code, now=NOW, last_used_step=None) is None


def test_window_edges_follow_step_boundaries() -> None:
    start = STEP * TIME_STEP_SECONDS
    code = totp_code(RFC_SECRET, STEP)
    # Accepted from the start of the previous step to the last instant of the next one.
    assert verify_totp(RFC_SECRET, code, now=start - TIME_STEP_SECONDS, last_used_step=None) == STEP
    assert verify_totp(RFC_SECRET, code, now=start - TIME_STEP_SECONDS - 0.001, last_used_step=None) is None
    assert (
        verify_totp(RFC_SECRET, code, now=start + 2 * TIME_STEP_SECONDS - 0.001, last_used_step=None) == STEP
    )
    assert verify_totp(RFC_SECRET, code, now=start + 2 * TIME_STEP_SECONDS, last_used_step=None) is None


def test_window_zero_accepts_only_the_current_step() -> None:
    assert (
        verify_totp(RFC_SECRET, totp_code(RFC_SECRET, STEP), now=NOW, last_used_step=None, window=0) == STEP
    )
    previous = totp_code(RFC_SECRET, STEP - 1)
    assert verify_totp(RFC_SECRET, previous, now=NOW, last_used_step=None, window=0) is None


def test_wider_window_is_honoured() -> None:
    code = totp_code(RFC_SECRET, STEP - 2)
    assert verify_totp(RFC_SECRET, code, now=NOW, last_used_step=None, window=2) == STEP - 2


def test_negative_window_is_refused() -> None:
    with pytest.raises(ValueError, match="window"):
        verify_totp(RFC_SECRET, "000000", now=NOW, last_used_step=None, window=-1)


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        verify_totp(b"short", "000000", now=NOW, last_used_step=None)


def test_wrong_code_is_refused() -> None:
    valid = {totp_code(RFC_SECRET, STEP + offset) for offset in (-1, 0, 1)}
    wrong = next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in valid)
    assert verify_totp(RFC_SECRET, wrong, now=NOW, last_used_step=None) is None


def test_code_for_another_secret_is_refused() -> None:
    other = new_totp_secret()
    code = totp_code(other, STEP)
    if code in {totp_code(RFC_SECRET, STEP + offset) for offset in (-1, 0, 1)}:
        pytest.skip("one-in-a-million collision between two random secrets")
    assert verify_totp(RFC_SECRET, code, now=NOW, last_used_step=None) is None


@pytest.mark.parametrize(
    "transform",
    [
        lambda c: f"{c[:3]} {c[3:]}",
        lambda c: f" {c} ",
        lambda c: f"{c[:2]} {c[2:4]} {c[4:]}",
        lambda c: f"{c[:3]}\u00a0{c[3:]}",
    ],
)
def test_spaces_in_the_code_are_ignored(transform: Callable[[str], str]) -> None:
    code = transform(totp_code(RFC_SECRET, STEP))
    assert verify_totp(RFC_SECRET, code, now=NOW, last_used_step=None) == STEP


@pytest.mark.parametrize("bad", ["", "12345", "1234567", "12345a", "abcdef", "-12345", "١٢٣٤٥٦", "123-456"])
def test_malformed_codes_are_refused(bad: str) -> None:
    assert verify_totp(RFC_SECRET, bad, now=NOW, last_used_step=None) is None


def test_eight_digit_code_is_refused() -> None:
    code = totp_code(RFC_SECRET, STEP, digits=8)
    assert verify_totp(RFC_SECRET, code, now=NOW, last_used_step=None) is None


def test_near_epoch_does_not_compute_negative_steps() -> None:
    code = totp_code(RFC_SECRET, 0)
    assert verify_totp(RFC_SECRET, code, now=5.0, last_used_step=None) == 0


def test_totp_code_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="negative"):
        totp_code(RFC_SECRET, -1)
    with pytest.raises(ValueError, match="digits"):
        totp_code(RFC_SECRET, 1, digits=10)


def test_new_secret_is_random_160_bits() -> None:
    first, second = new_totp_secret(), new_totp_secret()
    assert len(first) == SECRET_BYTES == 20
    assert first != second


def test_base32_is_unpadded_and_round_trips() -> None:
    secret = new_totp_secret()
    text = totp_secret_to_base32(secret)
    assert "=" not in text
    assert len(text) == 32
    assert base64.b32decode(text) == secret
    assert totp_secret_to_base32(b"12345") == "GEZDGNBV"
    assert totp_secret_to_base32(b"1") == "GE"


def test_provisioning_uri_follows_key_uri_format() -> None:
    uri = provisioning_uri(RFC_SECRET, account_name="alice@example.com", issuer="Acme Corp")
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth"
    assert parts.netloc == "totp"
    assert parts.path == "/Acme%20Corp:alice%40example.com"
    query = parse_qs(parts.query, strict_parsing=True)
    assert query == {
        "secret": [totp_secret_to_base32(RFC_SECRET)],
        "issuer": ["Acme Corp"],
        "algorithm": ["SHA1"],
        "digits": ["6"],
        "period": ["30"],
    }
    assert "issuer=Acme%20Corp" in parts.query


def test_provisioning_uri_default_issuer() -> None:
    uri = provisioning_uri(RFC_SECRET, account_name="bob")
    assert uri.startswith("otpauth://totp/Keyhall:bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&")
    assert "issuer=Keyhall" in uri


@pytest.mark.parametrize(("account", "issuer"), [("a:b", "Keyhall"), ("bob", "Key:hall"), ("", "Keyhall")])
def test_provisioning_uri_refuses_bad_labels(account: str, issuer: str) -> None:
    with pytest.raises(ValueError):
        provisioning_uri(RFC_SECRET, account_name=account, issuer=issuer)
