"""The credential_process answer: JSON on stdout, served from the credential cache when it can be.

Stdlib C accelerators only (see ``keyhall.client._lean``): `keyhall.cli.fast` calls ``cached_output``
before typer, httpx or even ``json`` is imported, because every AWS SDK process start runs it.
"""

from __future__ import annotations

from keyhall.client import _lean
from keyhall.client.credential_cache import CredentialCache, RoleCredentials, cache_key


def process_output(credentials: RoleCredentials) -> str:
    """``{"Version": 1, "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration": "…Z"}``.

    The shape the AWS SDKs' process credential provider expects (AWS SDKs and Tools reference guide,
    "Process credential provider"); JS rejects an ``Expiration`` without a zone, so it always ends in ``Z``.
    """
    # json.dumps of that dict, written out with json's own string encoder (no json import).
    return (
        f'{{"Version": 1, "AccessKeyId": {_lean.string(credentials.access_key_id)}, '
        f'"SecretAccessKey": {_lean.string(credentials.secret_access_key)}, '
        f'"SessionToken": {_lean.string(credentials.session_token)}, '
        f'"Expiration": {_lean.string(credentials.expiration_iso)}}}'
    )


def cached_output(
    *, cache: CredentialCache, session_name: str, account_id: str, role_name: str, now: float
) -> str | None:
    """The answer from the cache, or None when the full command has to fetch credentials."""
    credentials = cache.load(
        cache_key(account_id=account_id, role_name=role_name, session_name=session_name), now=now
    )
    return None if credentials is None else process_output(credentials)
