"""`keyhall console`: a sign-in URL for the AWS Management Console of a real AWS account, as a role.

The steps of AWS's "custom identity broker" console access, run on the user's machine:

1. decide whether the account has a console at all. A profile whose STS endpoint is Keyhall is a local
   account (`keyhall configure` routes STS to Keyhall exactly for the accounts Keyhall emulates): refused
   at once, before anything is fetched. Otherwise Keyhall is asked (``GET /federation/console``, a Keyhall
   extension of the portal API with the same bearer token, since the portal's ListAccounts does not say an
   account's kind): the kind, the partition, and where the console should open (the permission set's
   relay state, else the console home);
2. get the role credentials as every other command does (GetRoleCredentials, cached);
3. exchange them at the partition's federation endpoint for a sign-in token (``Action=getSigninToken``);
4. build ``…/federation?Action=login&Issuer=<Keyhall start URL>&Destination=…&SigninToken=…``.

The credentials go to AWS sign-in only, over https, to the host of the partition Keyhall named. The URL
works once, for 15 minutes, and signs in whoever opens it: it is printed for the person, never logged.
Transports (to Keyhall, to AWS sign-in) are injectable for tests; the session and caches default to the
ones the other commands use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx

from keyhall import errors as wire
from keyhall.client._http import json_or_raise, make_client, require_str
from keyhall.client.config import ProfileConfig, SessionConfig
from keyhall.client.credential_cache import CredentialCache, RoleCredentials
from keyhall.client.credentials import get_role_credentials
from keyhall.client.errors import ConsoleNotAvailableError, NotLoggedInError, ServiceError
from keyhall.client.portal import BEARER_HEADER
from keyhall.client.session import UnreachableError, get_valid_token
from keyhall.client.token_cache import TokenCache
from keyhall.clock import Clock, SystemClock
from keyhall.federation.naming import SIGNIN_HOSTS

CONSOLE_TARGET_PATH = "/federation/console"
SIGNIN_TIMEOUT = 10.0
HTTP_NOT_FOUND = 404
MIN_CONSOLE_SECONDS = 900
MAX_CONSOLE_SECONDS = 43200
_SYSTEM_CLOCK = SystemClock()


@dataclass(frozen=True)
class ConsoleTarget:
    """What Keyhall says about an account and role for console sign-in."""

    account_id: str
    role_name: str
    account_kind: str
    partition: str
    destination: str

    @property
    def federation_url(self) -> str:
        return f"https://{SIGNIN_HOSTS[self.partition]}/federation"


def is_local_account(profile: ProfileConfig) -> bool:
    """`keyhall configure` routes STS to Keyhall exactly for the accounts Keyhall emulates."""
    return "sts" in profile.endpoints


def _local_error(account_id: str, profile_name: str) -> ConsoleNotAvailableError:
    return ConsoleNotAvailableError(
        f"Account {account_id} (profile {profile_name}) is a local account: it is emulated by Keyhall and "
        "has no AWS Management Console. Use it with the AWS CLI or an SDK instead, e.g. "
        f"`aws sts get-caller-identity --profile {profile_name}`."
    )


def fetch_console_target(
    *,
    session: SessionConfig,
    access_token: str,
    account_id: str,
    role_name: str,
    transport: httpx.BaseTransport | None = None,
) -> ConsoleTarget:
    """Step 1: Keyhall's answer for (account, role); the portal's errors as ``keyhall.errors`` classes."""
    with make_client(session.base_url, transport=transport) as http:
        response = http.get(
            CONSOLE_TARGET_PATH,
            params={"account_id": account_id, "role_name": role_name},
            headers={BEARER_HEADER: access_token},
        )
    body = json_or_raise(response, oauth=False)
    operation = "console target"
    partition = require_str(body, "partition", operation=operation)
    if partition not in SIGNIN_HOSTS:
        raise ServiceError(f"{operation}: unknown AWS partition {partition!r}", status=response.status_code)
    return ConsoleTarget(
        account_id=require_str(body, "accountId", operation=operation),
        role_name=require_str(body, "roleName", operation=operation),
        account_kind=require_str(body, "accountKind", operation=operation),
        partition=partition,
        destination=require_str(body, "destination", operation=operation),
    )


def console_session_seconds(credentials: RoleCredentials, now: float) -> int | None:
    """What is left of the credentials, within AWS's 900..43200 for ``SessionDuration``; None below 15 min."""
    remaining = int(credentials.remaining(now))
    if remaining < MIN_CONSOLE_SECONDS:
        return None
    return min(remaining, MAX_CONSOLE_SECONDS)


def get_signin_token(
    *,
    target: ConsoleTarget,
    credentials: RoleCredentials,
    session_seconds: int | None,
    transport: httpx.BaseTransport | None = None,
) -> str:
    """Step 3: ``Action=getSigninToken`` with the credentials as the ``Session`` JSON."""
    params = {
        "Action": "getSigninToken",
        "Session": json.dumps(
            {
                "sessionId": credentials.access_key_id,
                "sessionKey": credentials.secret_access_key,
                "sessionToken": credentials.session_token,
            },
            separators=(",", ":"),
        ),
    }
    if session_seconds is not None:
        params["SessionDuration"] = str(session_seconds)
    try:
        with httpx.Client(transport=transport, timeout=SIGNIN_TIMEOUT, follow_redirects=False) as http:
            response = http.get(target.federation_url, params=params)
    except httpx.HTTPError as exc:
        raise ConsoleNotAvailableError(f"Cannot reach AWS sign-in at {target.federation_url}: {exc}") from exc
    token = None
    if response.status_code == 200:
        try:
            body = response.json()
        except ValueError:
            body = None
        token = body.get("SigninToken") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise ConsoleNotAvailableError(
            f"AWS sign-in refused the role credentials for account {target.account_id} "
            f"(HTTP {response.status_code} from {target.federation_url})."
        )
    return token


def login_url(*, target: ConsoleTarget, issuer: str, signin_token: str) -> str:
    """Step 4: the URL that signs a browser in to the console (once, within 15 minutes)."""
    query = urlencode(
        {"Action": "login", "Issuer": issuer, "Destination": target.destination, "SigninToken": signin_token}
    )
    return f"{target.federation_url}?{query}"


def console_sign_in_url(
    *,
    profile: ProfileConfig,
    session: SessionConfig | None = None,
    token_cache: TokenCache | None = None,
    credential_cache: CredentialCache | None = None,
    transport: httpx.BaseTransport | None = None,
    signin_transport: httpx.BaseTransport | None = None,
    clock: Clock = _SYSTEM_CLOCK,
) -> str:
    """The console sign-in URL for *profile*'s account and role (module docstring); ConsoleNotAvailableError
    for a local account, for a Keyhall without console sign-in, or when AWS sign-in refuses."""
    if is_local_account(profile):
        raise _local_error(profile.account_id, profile.name)
    if session is None or token_cache is None or credential_cache is None:
        from keyhall.client.config import resolve_session
        from keyhall.client.paths import AwsPaths

        paths = AwsPaths.from_environment()
        session = session or resolve_session(paths=paths, sso_session=profile.session_name)
        token_cache = token_cache or TokenCache(paths.sso_cache_dir)
        credential_cache = credential_cache or CredentialCache(paths.cli_cache_dir)
    token = get_valid_token(session=session, token_cache=token_cache, transport=transport, clock=clock)
    try:
        target = fetch_console_target(
            session=session,
            access_token=token.access_token,
            account_id=profile.account_id,
            role_name=profile.role_name,
            transport=transport,
        )
    except wire.UnauthorizedError as exc:
        raise NotLoggedInError(session.name, "the server no longer accepts this session") from exc
    except httpx.HTTPError as exc:
        raise UnreachableError(session.base_url, exc) from exc
    except ServiceError as exc:
        if exc.status != HTTP_NOT_FOUND:
            raise
        raise ConsoleNotAvailableError(
            f"The Keyhall server at {session.base_url} does not offer console sign-in (it has no "
            f"{CONSOLE_TARGET_PATH}); upgrade it, or use the portal's Console link."
        ) from exc
    if target.account_kind != "aws":
        raise _local_error(profile.account_id, profile.name)
    credentials = get_role_credentials(
        session=session,
        account_id=profile.account_id,
        role_name=profile.role_name,
        token_cache=token_cache,
        credential_cache=credential_cache,
        transport=transport,
        clock=clock,
    )
    signin_token = get_signin_token(
        target=target,
        credentials=credentials,
        session_seconds=console_session_seconds(credentials, clock.timestamp()),
        transport=signin_transport,
    )
    return login_url(target=target, issuer=session.start_url, signin_token=signin_token)
