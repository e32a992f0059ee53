"""SecretBox (AES-256-GCM), master-key text form, and token hashing helpers."""

from __future__ import annotations

import base64
import hashlib

import pytest

from keyhall.crypto import (
    SecretBox,
    SecretBoxError,
    constant_time_equals,
    generate_master_key,
    master_key_from_text,
    master_key_to_text,
    sha256_hex,
    token_hash,
)
from keyhall.errors import KeyhallError

CONTEXT = b"totp:user:42"


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(generate_master_key())


@pytest.mark.parametrize("plaintext", [b"", b"x", b"\x00" * 20, bytes(range(256)) * 4])
def test_round_trip(box: SecretBox, plaintext: bytes) -> None:
    blob = box.encrypt(plaintext, context=CONTEXT)
    assert box.decrypt(blob, context=CONTEXT) == plaintext


def test_blob_layout_is_version_nonce_ciphertext_tag(box: SecretBox) -> None:
    blob = box.encrypt(b"0123456789", context=CONTEXT)
    assert blob[0] == 1
    assert len(blob) == 1 + 12 + 10 + 16
    assert b"0123456789" not in blob


def test_nonces_are_random(box: SecretBox) -> None:
    blobs = {box.encrypt(b"same", context=CONTEXT) for _ in range(50)}
    assert len(blobs) == 50
    assert len({blob[1:13] for blob in blobs}) == 50


def test_wrong_context_is_refused(box: SecretBox) -> None:
    blob = box.encrypt(b"seed", context=b"totp:user:42")
    with pytest.raises(SecretBoxError):
        box.decrypt(blob, context=b"totp:user:43")
    with pytest.raises(SecretBoxError):
        box.decrypt(blob, context=b"")


def test_wrong_key_is_refused(box: SecretBox) -> None:
    blob = box.encrypt(b"seed", context=CONTEXT)
    with pytest.raises(SecretBoxError):
        SecretBox(generate_master_key()).decrypt(blob, context=CONTEXT)


def test_every_tampered_byte_is_detected(box: SecretBox) -> None:
    blob = box.encrypt(b"a small secret", context=CONTEXT)
    for index in range(len(blob)):
        tampered = bytearray(blob)
        tampered[index] ^= 0x01
        with pytest.raises(SecretBoxError):
            box.decrypt(bytes(tampered), context=CONTEXT)


@pytest.mark.parametrize("length", [0, 1, 13, 28])
def test_truncated_blobs_are_refused(box: SecretBox, length: int) -> None:
    blob = box.encrypt(b"", context=CONTEXT)
    assert len(blob) == 29
    with pytest.raises(SecretBoxError):
        box.decrypt(blob[:length], context=CONTEXT)


def test_appended_bytes_are_refused(box: SecretBox) -> None:
    blob = box.encrypt(b"seed", context=CONTEXT)
    with pytest.raises(SecretBoxError):
        box.decrypt(blob + b"\x00", context=CONTEXT)


def test_unknown_version_is_refused(box: SecretBox) -> None:
    blob = box.encrypt(b"seed", context=CONTEXT)
    with pytest.raises(SecretBoxError):
        box.decrypt(b"\x02" + blob[1:], context=CONTEXT)


def test_error_is_part_of_the_hierarchy_and_says_nothing_secret(box: SecretBox) -> None:
    with pytest.raises(SecretBoxError) as caught:
        box.decrypt(b"\x01" + b"\x00" * 40, context=CONTEXT)
    assert isinstance(caught.value, KeyhallError)
    assert caught.value.status == 500
    assert str(caught.value) == "A stored secret could not be decrypted"


@pytest.mark.parametrize("length", [0, 16, 24, 31, 33])
def test_key_must_be_32_bytes(length: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SecretBox(b"k" * length)


def test_repr_hides_the_key() -> None:
    key = generate_master_key()
    assert key.hex() not in repr(SecretBox(key))
    assert repr(SecretBox(key)) == "SecretBox(<key hidden>)"


# --- master key text form -----------------------------------------------------------------------


def test_generated_keys_are_random_32_bytes() -> None:
    keys = {generate_master_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(key) == 32 for key in keys)


def test_master_key_text_round_trip() -> None:
    key = generate_master_key()
    text = master_key_to_text(key)
    assert len(text) == 43
    assert "=" not in text
    assert master_key_from_text(text) == key


def test_master_key_accepts_padding_and_surrounding_whitespace() -> None:
    key = generate_master_key()
    padded = base64.urlsafe_b64encode(key).decode()
    assert padded.endswith("=")
    assert master_key_from_text(padded) == key
    assert master_key_from_text(f"  {padded}\n") == key


def test_master_key_accepts_urlsafe_characters() -> None:
    key = bytes([0xFB, 0xFF] * 16)
    text = master_key_to_text(key)
    assert "-" in text
    assert "_" in text
    assert master_key_from_text(text) == key


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a key",
        "changeme",
        master_key_to_text(bytes(range(32)))[:-1],
        master_key_to_text(bytes(range(32))) + "AA",
        base64.b64encode(bytes([0xFB, 0xFF] * 16)).decode(),  # standard alphabet: '+' and '/'
        bytes(range(32)).hex(),
        master_key_to_text(bytes(range(32))) + "===",
    ],
)
def test_master_key_refuses_malformed_text(text: str) -> None:
    with pytest.raises(ValueError, match="URL-safe base64") as caught:
        master_key_from_text(text)
    if text.strip():
        assert text.strip() not in str(caught.value)


def test_master_key_refuses_placeholder_keys() -> None:
    with pytest.raises(ValueError, match="placeholder"):
        master_key_from_text(master_key_to_text(bytes(32)))
    with pytest.raises(ValueError, match="placeholder"):
        master_key_from_text("A" * 43)


def test_master_key_to_text_checks_length() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        master_key_to_text(b"short")


# --- hashing and comparison ---------------------------------------------------------------------


def test_sha256_hex() -> None:
    assert sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_hex("é") == hashlib.sha256("é".encode()).hexdigest()


def test_token_hash() -> None:
    digest = token_hash("abc")
    assert isinstance(digest, bytes)
    assert digest.hex() == sha256_hex("abc")
    assert token_hash("abd") != digest


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ("secret", "secret", True),
        ("secret", "secreT", False),
        ("secret", "secret2", False),
        ("", "", True),
        (b"\x00\xff", b"\x00\xff", True),
        (b"\x00\xff", b"\x00\xfe", False),
        ("tōken", "tōken", True),
        ("tōken", "token", False),
        ("tōken", "tōken".encode(), True),
        ("abc", b"abd", False),
    ],
)
def test_constant_time_equals(a: str | bytes, b: str | bytes, equal: bool) -> None:
    assert constant_time_equals(a, b) is equal
