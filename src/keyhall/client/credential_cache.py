"""Role credentials on disk, in the AWS CLI's own cache (``~/.aws/cli/cache``), same key and same format.

Sharing the CLI's cache rather than keeping a Keyhall-only directory means: `aws sso logout` also wipes what
`keyhall credential-process` cached (logout means logout), the AWS CLI reuses credentials Keyhall fetched
and the other way round (one GetRoleCredentials call instead of two), and there is one place to look.
The key is botocore's ``SSOCredentialFetcher`` key for an sso-session profile; the body is its
``{"ProviderType": "sso", "Credentials": {…}}`` plus a ``KeyhallSession`` field (ignored by the CLI) so
`keyhall logout` removes only its own session's files.

The read side uses only the stdlib's C accelerators (``keyhall.client._lean``): the credential_process
fast path imports this on every AWS SDK process start.
"""

# ruff: noqa: PTH107, PTH118, PTH123, PTH208

from __future__ import annotations

import os

from keyhall.client import _lean

#: Serve cached credentials until this many seconds before they expire (the issue's 5-minute rule).
EXPIRY_WINDOW_SECONDS = 300.0


def format_expiration(timestamp: float) -> str:
    """Epoch seconds as ``YYYY-MM-DDTHH:MM:SSZ``, the form every AWS client parses."""
    return _lean.format_utc(timestamp)


def parse_expiration(value: str) -> float:
    """``…Z``, ``….mmmZ`` or ``…+00:00`` to epoch seconds; a time without a zone is UTC."""
    return _lean.parse_utc(value)


class RoleCredentials:
    """What GetRoleCredentials returns. ``expiration`` is epoch seconds; the repr never shows secrets."""

    __slots__ = ("access_key_id", "account_id", "expiration", "secret_access_key", "session_token")

    def __init__(
        self,
        *,
        access_key_id: str,
        secret_access_key: str,
        session_token: str,
        expiration: float,
        account_id: str | None = None,
    ) -> None:
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.session_token = session_token
        self.expiration = expiration
        self.account_id = account_id

    @property
    def expiration_iso(self) -> str:
        return format_expiration(self.expiration)

    def remaining(self, now: float) -> float:
        return self.expiration - now

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RoleCredentials):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __hash__(self) -> int:
        return hash((self.access_key_id, self.expiration))

    def __repr__(self) -> str:
        return f"RoleCredentials(access_key_id={self.access_key_id!r}, expiration={self.expiration_iso!r})"


def cache_key(*, account_id: str, role_name: str, session_name: str) -> str:
    """botocore ``SSOCredentialFetcher._create_cache_key`` for an sso-session profile (compact JSON)."""
    # json.dumps({...}, sort_keys=True, separators=(",", ":")), written out so no json import is needed.
    args = (
        f'{{"accountId":{_lean.string(account_id)},"roleName":{_lean.string(role_name)},'
        f'"sessionName":{_lean.string(session_name)}}}'
    )
    return _lean.sha1_hex(args.encode("utf-8"))


class CredentialCache:
    """Role credentials by cache key; an entry is served only while it has more than *window* seconds left."""

    def __init__(self, directory: str, *, window_seconds: float = EXPIRY_WINDOW_SECONDS) -> None:
        self.directory = directory
        self.window_seconds = window_seconds

    def path(self, key: str) -> str:
        return os.path.join(self.directory, key + ".json")

    def load(self, key: str, *, now: float) -> RoleCredentials | None:
        """Fresh credentials for *key*, or None (missing, unreadable, not SSO, or inside the window)."""
        try:
            with open(self.path(key), encoding="utf-8") as handle:
                data = _lean.loads(handle.read())
            if not isinstance(data, dict):
                return None
            creds = data["Credentials"]
            result = RoleCredentials(
                access_key_id=creds["AccessKeyId"],
                secret_access_key=creds["SecretAccessKey"],
                session_token=creds["SessionToken"],
                expiration=parse_expiration(creds["Expiration"]),
                account_id=creds.get("AccountId"),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        if data.get("ProviderType") != "sso" or not all(
            isinstance(v, str) and v
            for v in (result.access_key_id, result.secret_access_key, result.session_token)
        ):
            return None
        if result.remaining(now) <= self.window_seconds:
            return None
        return result

    def store(self, key: str, credentials: RoleCredentials, *, session_name: str) -> None:
        from keyhall.client._files import write_json_atomic

        body: dict[str, object] = {
            "ProviderType": "sso",
            "Credentials": {
                "AccessKeyId": credentials.access_key_id,
                "SecretAccessKey": credentials.secret_access_key,
                "SessionToken": credentials.session_token,
                "Expiration": credentials.expiration_iso,
                **({"AccountId": credentials.account_id} if credentials.account_id else {}),
            },
            "KeyhallSession": session_name,
        }
        write_json_atomic(self.path(key), body)

    def delete(self, key: str) -> bool:
        try:
            os.remove(self.path(key))
        except FileNotFoundError:
            return False
        return True

    def delete_session(self, session_name: str, *, keys: list[str] | None = None) -> int:
        """Remove this session's files: those Keyhall tagged, and *keys* (e.g. the CLI's, from the config)."""
        import json

        removed = 0
        for key in keys or []:
            removed += self.delete(key)
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return removed
        for name in names:
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(self.directory, name), encoding="utf-8") as handle:
                    data = json.load(handle)
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and data.get("KeyhallSession") == session_name:
                removed += self.delete(name[: -len(".json")])
        return removed
