"""Password storage (argon2id) and the password policy, per OWASP ASVS 5.0 V6.2 and Appendix C.

Passwords are hashed and verified exactly as received: no truncation, case folding or Unicode
normalisation (ASVS 6.2.8), so what the user typed is what is checked.

``common-passwords.txt`` holds the 20,000 most common passwords compiled by Royce Williams from
breach corpora, lowercased, in order of frequency, as shipped with Django (BSD-3-Clause) in
``django/contrib/auth/common-passwords.txt.gz``. ASVS 6.2.4 asks for at least the top 3,000.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from importlib import resources

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

#: ASVS Appendix C: argon2id with t=2 needs m >= 19 MiB. Lower settings are refused outright, so a
#: misconfiguration cannot silently weaken every stored hash.
MIN_TIME_COST = 2
MIN_MEMORY_COST_KIB = 19 * 1024

DEFAULT_TIME_COST = 3
DEFAULT_MEMORY_COST_KIB = 64 * 1024
DEFAULT_PARALLELISM = 1

_HASH_LEN = 32
_SALT_LEN = 16

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256
#: ASVS 6.2.9: passwords of at least 64 characters must be accepted, so no policy may cap lower.
_MIN_ALLOWED_MAX_LENGTH = 64

_COMMON_PASSWORDS_RESOURCE = "common-passwords.txt"

#: Lowercase letters and digits without the look-alikes 0/o, 1/l/i, so a password read aloud or
#: copied off a screen is typed correctly the first time.
_GENERATED_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_GENERATED_GROUPS = 5
_GENERATED_GROUP_LEN = 4


class PasswordHasher:
    """Hashes and verifies passwords with argon2id, never leaking through timing whether a user exists.

    Parameters below the ASVS minimum are refused with ``ValueError`` rather than clamped: a
    deployment that asks for weaker hashing has a configuration error that should surface at start-up.
    """

    __slots__ = ("_argon2", "_dummy_hash")

    def __init__(
        self,
        *,
        time_cost: int = DEFAULT_TIME_COST,
        memory_cost: int = DEFAULT_MEMORY_COST_KIB,
        parallelism: int = DEFAULT_PARALLELISM,
    ) -> None:
        if time_cost < MIN_TIME_COST:
            raise ValueError(f"argon2 time_cost must be at least {MIN_TIME_COST}, got {time_cost}")
        if memory_cost < MIN_MEMORY_COST_KIB:
            raise ValueError(
                f"argon2 memory_cost must be at least {MIN_MEMORY_COST_KIB} KiB (19 MiB), got {memory_cost}"
            )
        if parallelism < 1:
            raise ValueError(f"argon2 parallelism must be at least 1, got {parallelism}")
        self._argon2 = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            hash_len=_HASH_LEN,
            salt_len=_SALT_LEN,
            type=argon2.Type.ID,
        )
        # Computed on first use, not here: building a hasher (e.g. in settings or tests) should not
        # cost a full argon2 run when no one signs in.
        self._dummy_hash: str | None = None

    def hash(self, password: str) -> str:
        """Return an encoded argon2id hash (with its own random salt and parameters) of ``password``."""
        return self._argon2.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """Say whether ``password`` matches ``stored_hash``; never raises for a wrong or malformed hash.

        ``stored_hash`` is None for an unknown user or a user without a password. Then a dummy hash
        is verified anyway, so such a sign-in costs the same time as a wrong password for a real
        user, and the answer is False.
        """
        if stored_hash is None:
            self._verify_quietly(self._get_dummy_hash(), password)
            return False
        return self._verify_quietly(stored_hash, password)

    def needs_rehash(self, stored_hash: str) -> bool:
        """Say whether ``stored_hash`` was made with other parameters and should be replaced.

        Call after a successful ``verify``, the only moment the cleartext is at hand. An unparseable
        hash also answers True: whatever it is, it is not what this hasher would store.
        """
        try:
            return self._argon2.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True

    def _verify_quietly(self, stored_hash: str, password: str) -> bool:
        try:
            return self._argon2.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def _get_dummy_hash(self) -> str:
        # Two threads racing here each compute a hash and one wins; both are equally good.
        if self._dummy_hash is None:
            self._dummy_hash = self._argon2.hash(secrets.token_urlsafe(32))
        return self._dummy_hash


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """What a new password must satisfy (ASVS 6.2): length bounds and not a known or guessable one.

    There are deliberately no composition rules (ASVS 6.2.5): they push users towards predictable
    patterns like ``Password1!`` without adding strength. Length counts the characters of the
    string as given, with no normalisation, to match how the password is hashed.
    """

    min_length: int = MIN_PASSWORD_LENGTH
    max_length: int = MAX_PASSWORD_LENGTH

    def __post_init__(self) -> None:
        if self.min_length < MIN_PASSWORD_LENGTH:
            raise ValueError(f"min_length must be at least {MIN_PASSWORD_LENGTH} (ASVS 6.2.1)")
        if self.max_length < _MIN_ALLOWED_MAX_LENGTH:
            raise ValueError(f"max_length must be at least {_MIN_ALLOWED_MAX_LENGTH} (ASVS 6.2.9)")
        if self.max_length < self.min_length:
            raise ValueError("max_length must not be below min_length")

    def check(
        self, password: str, *, user_name: str | None = None, display_name: str | None = None
    ) -> list[str]:
        """Return human-readable problems with ``password``; an empty list means it is acceptable.

        All problems are reported at once so a user fixes them in one go.
        """
        problems: list[str] = []
        if len(password) < self.min_length:
            problems.append(f"Password must be at least {self.min_length} characters long.")
        elif len(password) > self.max_length:
            problems.append(f"Password must be at most {self.max_length} characters long.")
        if password and not password.strip():
            problems.append("Password must not consist only of spaces.")
        # Whitespace around the password is kept when hashing, but ignored here so that "alice " is
        # as unacceptable as "alice".
        folded = password.strip().casefold()
        if folded:
            names = (name for name in (user_name, display_name) if name)
            if any(folded == name.strip().casefold() for name in names):
                problems.append("Password must not be the same as your user name or display name.")
            if password.strip().lower() in _common_passwords():
                problems.append("Password is too common; it appears in lists of frequently used passwords.")
        return problems


DEFAULT_PASSWORD_POLICY = PasswordPolicy()


def check_password(
    password: str, *, user_name: str | None = None, display_name: str | None = None
) -> list[str]:
    """Check ``password`` against the default policy; see ``PasswordPolicy.check``."""
    return DEFAULT_PASSWORD_POLICY.check(password, user_name=user_name, display_name=display_name)


def generate_password() -> str:
    """Return a random one-time password like ``abcd-efgh-jkmn-pqrs-tuvw``.

    20 characters from a 31-letter alphabet give about 99 bits, far beyond guessing, and the
    grouping and the absence of look-alike characters make it easy to pass on and type. The loop
    only guards against a future policy change making a generated password unacceptable.
    """
    while True:
        groups = (
            "".join(secrets.choice(_GENERATED_ALPHABET) for _ in range(_GENERATED_GROUP_LEN))
            for _ in range(_GENERATED_GROUPS)
        )
        password = "-".join(groups)
        if not check_password(password):
            return password


@functools.cache
def _common_passwords() -> frozenset[str]:
    """Load the common-password list once, on first use, so importing this module stays cheap."""
    text = resources.files("keyhall.signin").joinpath(_COMMON_PASSWORDS_RESOURCE).read_text(encoding="utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())
