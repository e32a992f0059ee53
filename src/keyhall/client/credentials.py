"""Role credentials for an account and role: cached, fetched with GetRoleCredentials, exported or exec'd."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import httpx

from keyhall import errors as wire
from keyhall.client.config import ProfileConfig, SessionConfig
from keyhall.client.credential_cache import CredentialCache, RoleCredentials, cache_key
from keyhall.client.errors import ClientError, NotLoggedInError
from keyhall.client.portal import PortalClient
from keyhall.client.session import UnreachableError, get_valid_token, list_access
from keyhall.client.sts import CallerIdentity, get_caller_identity
from keyhall.client.token_cache import SSOToken, TokenCache
from keyhall.clock import Clock, SystemClock

_SYSTEM_CLOCK = SystemClock()

#: Removed from the environment of `keyhall exec` (and unset by `keyhall env`): with them the SDK would go
#: back to the profile instead of using the exported credentials.
REMOVED_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")
SHELLS = ("sh", "fish", "powershell")


def get_role_credentials(
    *,
    session: SessionConfig,
    account_id: str,
    role_name: str,
    token_cache: TokenCache,
    credential_cache: CredentialCache,
    transport: httpx.BaseTransport | None = None,
    clock: Clock = _SYSTEM_CLOCK,
    use_cache: bool = True,
) -> RoleCredentials:
    """From the cache while more than 5 minutes are left, else from GetRoleCredentials (then cached)."""
    key = cache_key(account_id=account_id, role_name=role_name, session_name=session.name)
    if use_cache:
        cached = credential_cache.load(key, now=clock.timestamp())
        if cached is not None:
            return cached
    token = get_valid_token(session=session, token_cache=token_cache, transport=transport, clock=clock)
    try:
        with PortalClient(session.base_url, transport=transport) as portal:
            credentials = portal.get_role_credentials(
                token.access_token, account_id=account_id, role_name=role_name
            )
    except wire.UnauthorizedError as exc:
        raise NotLoggedInError(session.name, "the server no longer accepts this session") from exc
    except httpx.HTTPError as exc:
        raise UnreachableError(session.base_url, exc) from exc
    credential_cache.store(key, credentials, session_name=session.name)
    return credentials


def credential_environment(
    credentials: RoleCredentials, *, region: str | None = None, endpoints: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``AWS_*`` variables for *credentials*, plus the region and the profile's endpoint overrides
    (``[services]`` ``sts`` → ``AWS_ENDPOINT_URL_STS``), so a local account's calls still reach Keyhall."""
    variables = {
        "AWS_ACCESS_KEY_ID": credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key,
        "AWS_SESSION_TOKEN": credentials.session_token,
        "AWS_CREDENTIAL_EXPIRATION": credentials.expiration_iso,
    }
    if region:
        # CLI v2 and JS read AWS_REGION, botocore AWS_DEFAULT_REGION (real-clients.md §4.4).
        variables["AWS_REGION"] = region
        variables["AWS_DEFAULT_REGION"] = region
    for service, url in sorted((endpoints or {}).items()):
        variables[f"AWS_ENDPOINT_URL_{service.upper().replace('-', '_')}"] = url
    return variables


def _fish_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _powershell_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def format_exports(variables: Mapping[str, str], *, syntax: str = "sh") -> str:
    """Lines to ``eval``: ``export K='v'`` (sh), ``set -gx K 'v'`` (fish), ``$Env:K = 'v'`` (PowerShell)."""
    lines: list[str] = []
    if syntax == "sh":
        lines.append("unset " + " ".join(REMOVED_VARIABLES))
        lines.extend(f"export {name}={shlex.quote(value)}" for name, value in variables.items())
    elif syntax == "fish":
        lines.extend(f"set -e {name};" for name in REMOVED_VARIABLES)
        lines.extend(f"set -gx {name} {_fish_quote(value)};" for name, value in variables.items())
    elif syntax == "powershell":
        lines.extend(f"Remove-Item Env:{name} -ErrorAction SilentlyContinue" for name in REMOVED_VARIABLES)
        lines.extend(f"$Env:{name} = {_powershell_quote(value)}" for name, value in variables.items())
    else:
        raise ValueError(f"unknown shell {syntax!r}; choose one of {', '.join(SHELLS)}")
    return "\n".join(lines) + "\n"


def run_with_credentials(
    command: Sequence[str],
    *,
    variables: Mapping[str, str],
    base_env: Mapping[str, str] | None = None,
    popen: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen,
) -> int:
    """Run *command* with *variables* set and ``AWS_PROFILE`` removed; its exit code (128+N for signal N)."""
    if not command:
        raise ClientError("no command to run: keyhall exec PROFILE -- COMMAND [ARGS...]")
    env = dict(os.environ if base_env is None else base_env)
    for name in REMOVED_VARIABLES:
        env.pop(name, None)
    env.update(variables)
    try:
        process = popen(list(command), env=env)
    except FileNotFoundError as exc:
        raise ClientError(f"command not found: {command[0]}") from exc
    while True:
        try:
            code = process.wait()
        except KeyboardInterrupt:
            continue  # the child got the same SIGINT; its exit code decides
        return 128 - code if code < 0 else code


@dataclass(frozen=True)
class WhoAmI:
    session_name: str
    start_url: str
    token_expires_at: datetime
    account_id: str | None = None
    role_name: str | None = None
    identity: CallerIdentity | None = None


def whoami(
    *,
    session: SessionConfig,
    profile: ProfileConfig | None,
    token_cache: TokenCache,
    credential_cache: CredentialCache,
    transport: httpx.BaseTransport | None = None,
    clock: Clock = _SYSTEM_CLOCK,
) -> WhoAmI:
    """The session, and who STS says the caller is in *profile*'s account (or the first account and role)."""
    token: SSOToken = get_valid_token(
        session=session, token_cache=token_cache, transport=transport, clock=clock
    )
    base = WhoAmI(session_name=session.name, start_url=session.start_url, token_expires_at=token.expires_at)
    if profile is not None:
        account_id, role_name = profile.account_id, profile.role_name
        endpoint = profile.endpoints.get("sts", session.base_url)
        region = profile.region or session.region
    else:
        access = [
            (a, roles)
            for a, roles in list_access(
                session=session, token_cache=token_cache, transport=transport, clock=clock
            )
            if roles
        ]
        if not access:
            return base
        account_id, role_name = access[0][0].account_id, access[0][1][0].role_name
        endpoint, region = session.base_url, session.region
    credentials = get_role_credentials(
        session=session,
        account_id=account_id,
        role_name=role_name,
        token_cache=token_cache,
        credential_cache=credential_cache,
        transport=transport,
        clock=clock,
    )
    try:
        identity = get_caller_identity(
            endpoint_url=endpoint,
            region=region,
            credentials=credentials,
            now=clock.now(),
            transport=transport,
        )
    except httpx.HTTPError as exc:
        raise UnreachableError(endpoint, exc) from exc
    return WhoAmI(
        session_name=session.name,
        start_url=session.start_url,
        token_expires_at=token.expires_at,
        account_id=account_id,
        role_name=role_name,
        identity=identity,
    )
