"""User codes for the device grant (RFC 8628 §6.1): 8 characters of a 20-consonant alphabet, shown as
XXXX-XXXX, about 34.6 bits; typed case-insensitively with punctuation ignored."""

from __future__ import annotations

import re
import secrets

ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
LENGTH = 8
_NOT_CODE = re.compile(r"[^A-Z]")


def new_user_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalise_user_code(text: str) -> str | None:
    code = _NOT_CODE.sub("", text.upper())
    if len(code) != LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def display_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"
