"""Encryption of small stored secrets (e.g. TOTP seeds) under the master key, and hashing of tokens.

Secrets that must be read back are sealed with AES-256-GCM; tokens that only need to be recognised
are stored as SHA-256 hashes, so a database dump yields neither.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keyhall.errors import KeyhallError

MASTER_KEY_BYTES = 32
#: 96-bit random nonces, the size GCM is specified for (NIST SP 800-38D §8.2.2). With random
#: nonces one key stays safe for far more than the number of secrets Keyhall will ever store.
_NONCE_BYTES = 12
_TAG_BYTES = 16
#: First byte of every sealed blob, so the format (or the key scheme) can change later while
#: older blobs remain readable.
_VERSION_1 = b"\x01"
_MIN_BLOB_BYTES = len(_VERSION_1) + _NONCE_BYTES + _TAG_BYTES
_URLSAFE_B64 = re.compile(r"[A-Za-z0-9_-]+={0,2}")


class SecretBoxError(KeyhallError):
    """A sealed secret could not be opened: wrong key, wrong context, tampered or truncated data.

    The cause is deliberately not told apart, and the message carries nothing secret: callers
    treat every case the same way, by failing closed.
    """

    def __init__(self, message: str = "A stored secret could not be decrypted") -> None:
        super().__init__(message)


class SecretBox:
    """Seals and opens small secrets with AES-256-GCM under one 32-byte master key.

    ``context`` is authenticated as associated data, so a blob sealed for one row or purpose
    (say ``b"totp:user:42"``) cannot be copied into another and still open.
    """

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != MASTER_KEY_BYTES:
            raise ValueError(f"master key must be exactly {MASTER_KEY_BYTES} bytes")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    def encrypt(self, plaintext: bytes, *, context: bytes) -> bytes:
        """Return ``version || nonce || ciphertext+tag`` for ``plaintext`` bound to ``context``."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return _VERSION_1 + nonce + self._aead.encrypt(nonce, plaintext, _VERSION_1 + context)

    def decrypt(self, blob: bytes, *, context: bytes) -> bytes:
        """Open a blob from ``encrypt`` sealed under the same ``context``, or raise ``SecretBoxError``."""
        if len(blob) < _MIN_BLOB_BYTES or blob[:1] != _VERSION_1:
            raise SecretBoxError
        nonce = blob[1 : 1 + _NONCE_BYTES]
        ciphertext = blob[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, ciphertext, _VERSION_1 + context)
        except InvalidTag:
            raise SecretBoxError from None


def generate_master_key() -> bytes:
    """Return a new random 256-bit master key."""
    return secrets.token_bytes(MASTER_KEY_BYTES)


def master_key_to_text(key: bytes) -> str:
    """Encode ``key`` as unpadded URL-safe base64 (43 characters), safe in env vars and YAML."""
    if len(key) != MASTER_KEY_BYTES:
        raise ValueError(f"master key must be exactly {MASTER_KEY_BYTES} bytes")
    return base64.urlsafe_b64encode(key).decode("ascii").rstrip("=")


def master_key_from_text(text: str) -> bytes:
    """Decode a master key from URL-safe base64, with or without ``=`` padding.

    Anything else is refused with a ``ValueError`` that explains the expected form but never
    repeats the value, which may be a real key. A key of one repeated byte (such as all zeros) is
    refused too: it is a placeholder, not a secret.
    """
    expected = (
        f"the master key must be {MASTER_KEY_BYTES} random bytes in URL-safe base64 "
        "(43 characters of A-Z, a-z, 0-9, '-' and '_', optionally followed by '=')"
    )
    value = text.strip()
    if not _URLSAFE_B64.fullmatch(value):
        raise ValueError(f"Invalid master key: {expected}")
    unpadded = value.rstrip("=")
    try:
        key = base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except binascii.Error:
        raise ValueError(f"Invalid master key: {expected}") from None
    if len(key) != MASTER_KEY_BYTES:
        raise ValueError(f"Invalid master key: it decodes to {len(key)} bytes; {expected}")
    if len(set(key)) == 1:
        raise ValueError("Invalid master key: it is a placeholder (one repeated byte); generate a random one")
    return key


def sha256_hex(value: str) -> str:
    """Return the hex SHA-256 of ``value`` (UTF-8), e.g. to name a token in an audit record."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def token_hash(token: str) -> bytes:
    """Return the SHA-256 digest under which a bearer token is stored and looked up.

    A plain hash suffices (no salt or KDF) because tokens carry >=128 random bits: there is
    nothing to brute-force, and a deterministic hash allows an indexed lookup.
    """
    return hashlib.sha256(token.encode("utf-8")).digest()


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    """Compare two secrets without leaking through timing where they first differ.

    Strings are compared as UTF-8 so non-ASCII input works (``hmac.compare_digest`` refuses
    non-ASCII ``str``), and a ``str`` equals the ``bytes`` of its UTF-8 encoding.
    """
    return hmac.compare_digest(_as_bytes(a), _as_bytes(b))


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value
