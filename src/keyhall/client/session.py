"""The SSO session's life: login (PKCE or device), a valid token on demand (refreshed), logout.

Refresh follows botocore and the AWS CLI (aws-wire.md §2.4): when fewer than 15 minutes are left, if the
token has a refresh token and an unexpired client registration; a failed refresh keeps using a token that
has not expired yet (as the JS SDK does). Registrations are reused, as the CLI reuses them, until 15
minutes before they expire, and a device-flow registration is never reused for PKCE or the other way round.
"""

from __future__ import annotations

import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from keyhall import errors as wire
from keyhall.client import oidc as oidc_flows
from keyhall.client.config import SessionConfig, base_url_from_start_url
from keyhall.client.credential_cache import CredentialCache
from keyhall.client.errors import ClientError, NotLoggedInError
from keyhall.client.oidc import OIDCClient
from keyhall.client.portal import AccountInfo, PortalClient, RoleInfo
from keyhall.client.token_cache import ClientRegistration, SSOToken, TokenCache
from keyhall.clock import Clock, SystemClock

#: botocore and the AWS CLI refresh when fewer than 15 minutes are left; Keyhall does the same.
REFRESH_WINDOW_SECONDS = 15 * 60
#: A cached client registration is reused until this close to its expiry (the AWS CLI's rule).
REGISTRATION_MARGIN_SECONDS = 15 * 60

_SYSTEM_CLOCK = SystemClock()


class UnreachableError(ClientError):
    """The Keyhall server could not be reached (connection refused, DNS, timeout)."""

    def __init__(self, base_url: str, exc: httpx.HTTPError) -> None:
        super().__init__(f"Cannot reach Keyhall at {base_url}: {exc}")


@dataclass(frozen=True)
class LoginResult:
    token: SSOToken
    reused: bool


def client_name(session_name: str) -> str:
    return f"keyhall-{session_name}"


def ensure_registration(
    *,
    session: SessionConfig,
    oidc: OIDCClient,
    token_cache: TokenCache,
    clock: Clock,
    pkce: bool,
    force: bool = False,
) -> ClientRegistration:
    """A client registration for this session: the cached one if still good for this flow, else a new one."""
    scopes = list(session.scopes)
    cached = (
        None
        if force
        else token_cache.load_registration(
            start_url=session.start_url, region=session.region, scopes=scopes, session_name=session.name
        )
    )
    if (
        cached is not None
        and cached.is_pkce == pkce
        and (cached.expires_at - clock.now()).total_seconds() > REGISTRATION_MARGIN_SECONDS
    ):
        return cached
    grant_types = [oidc_flows.GRANT_AUTHORIZATION_CODE, oidc_flows.GRANT_REFRESH_TOKEN] if pkce else None
    result = oidc.register_client(
        client_name=client_name(session.name),
        scopes=scopes,
        grant_types=grant_types,
        redirect_uris=[oidc_flows.REGISTERED_REDIRECT_URI] if pkce else None,
        issuer_url=session.start_url if pkce else None,
    )
    registration = ClientRegistration(
        client_id=result.client_id,
        client_secret=result.client_secret,
        expires_at=datetime.fromtimestamp(result.client_secret_expires_at, UTC),
        scopes=tuple(scopes),
        grant_types=tuple(grant_types or ()),
    )
    token_cache.store_registration(
        registration,
        start_url=session.start_url,
        region=session.region,
        scopes=scopes,
        session_name=session.name,
    )
    return registration


def login(
    *,
    session: SessionConfig,
    token_cache: TokenCache,
    echo: Callable[[str], None],
    device: bool = False,
    open_browser: Callable[[str], object] | None = webbrowser.open,
    force: bool = False,
    transport: httpx.BaseTransport | None = None,
    clock: Clock = _SYSTEM_CLOCK,
    sleep: Callable[[float], None] = time.sleep,
    timeout: float = 600.0,
) -> LoginResult:
    """Sign in and write the AWS-format token cache. A token with more than 15 minutes left is kept
    unless *force*, which also registers the client anew (for a server whose database was reset)."""
    if not force:
        existing = token_cache.load_token(session.name)
        if (
            existing is not None
            and _same_server(existing, session)
            and existing.remaining(clock.now()) > REFRESH_WINDOW_SECONDS
        ):
            return LoginResult(existing, reused=True)
    try:
        with OIDCClient(session.base_url, transport=transport) as oidc:
            registration = ensure_registration(
                session=session, oidc=oidc, token_cache=token_cache, clock=clock, pkce=not device, force=force
            )
            if device:
                try:
                    result = oidc_flows.device_authorization_flow(
                        oidc=oidc,
                        registration=registration,
                        start_url=session.start_url,
                        echo=echo,
                        open_browser=open_browser,
                        clock=clock,
                        sleep=sleep,
                    )
                except wire.InvalidClient:
                    # The server forgot the registration (e.g. a fresh database): register once more.
                    registration = ensure_registration(
                        session=session,
                        oidc=oidc,
                        token_cache=token_cache,
                        clock=clock,
                        pkce=False,
                        force=True,
                    )
                    result = oidc_flows.device_authorization_flow(
                        oidc=oidc,
                        registration=registration,
                        start_url=session.start_url,
                        echo=echo,
                        open_browser=open_browser,
                        clock=clock,
                        sleep=sleep,
                    )
            else:
                result = oidc_flows.authorization_code_flow(
                    oidc=oidc,
                    registration=registration,
                    scopes=list(session.scopes),
                    echo=echo,
                    open_browser=open_browser,
                    timeout=timeout,
                )
    except httpx.HTTPError as exc:
        raise UnreachableError(session.base_url, exc) from exc
    token = SSOToken(
        start_url=session.start_url,
        region=session.region,
        access_token=result.access_token,
        expires_at=clock.now() + timedelta(seconds=result.expires_in),
        client_id=registration.client_id,
        client_secret=registration.client_secret,
        registration_expires_at=registration.expires_at,
        refresh_token=result.refresh_token,
    )
    token_cache.store_token(session.name, token)
    return LoginResult(token, reused=False)


def _same_server(token: SSOToken, session: SessionConfig) -> bool:
    return not token.start_url or token.start_url.rstrip("/") == session.start_url.rstrip("/")


def get_valid_token(
    *,
    session: SessionConfig,
    token_cache: TokenCache,
    transport: httpx.BaseTransport | None = None,
    clock: Clock = _SYSTEM_CLOCK,
) -> SSOToken:
    """The session's access token, refreshed (and the rotated refresh token stored) when < 15 min are left."""
    token = token_cache.load_token(session.name)
    if token is None:
        raise NotLoggedInError(session.name)
    if not _same_server(token, session):
        raise NotLoggedInError(
            session.name, f"the cached token is for {token.start_url}, not {session.start_url}"
        )
    now = clock.now()
    if token.remaining(now) >= REFRESH_WINDOW_SECONDS:
        return token
    if token.can_refresh(now):
        try:
            with OIDCClient(session.base_url, transport=transport) as oidc:
                refreshed = oidc_flows.refresh(oidc=oidc, token=token, clock=clock)
        except httpx.HTTPError as exc:
            if token.remaining(now) > 0:
                return token
            raise UnreachableError(session.base_url, exc) from exc
        except (wire.KeyhallError, ClientError) as exc:
            if token.remaining(now) > 0:
                return token
            raise NotLoggedInError(
                session.name, "the session has expired and could not be refreshed"
            ) from exc
        token_cache.store_token(session.name, refreshed)
        return refreshed
    if token.remaining(now) > 0:
        return token
    raise NotLoggedInError(session.name, "the session has expired")


@dataclass(frozen=True)
class LogoutResult:
    had_token: bool
    server_notified: bool
    credentials_removed: int
    warning: str | None = None


def logout(
    *,
    session_name: str,
    token_cache: TokenCache,
    credential_cache: CredentialCache,
    credential_keys: list[str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> LogoutResult:
    """Tell the server (Logout), then delete the token and this session's cached role credentials.

    Like `aws sso logout` the registration is kept. Unlike it, an unreachable server does not stop the local
    clean-up: the files go either way, and the result says the server was not told.
    """
    token = token_cache.load_token(session_name)
    notified = False
    warning: str | None = None
    if token is not None and token.start_url:
        base_url = base_url_from_start_url(token.start_url)
        try:
            with PortalClient(base_url, transport=transport) as portal:
                portal.logout(token.access_token)
            notified = True
        except (wire.KeyhallError, ClientError):
            notified = True  # the server already does not know this token: nothing to end there
        except httpx.HTTPError as exc:
            warning = (
                f"could not reach {base_url} to end the session there ({exc}); local files removed anyway"
            )
    had_token = token_cache.delete_token(session_name)
    removed = credential_cache.delete_session(session_name, keys=credential_keys)
    return LogoutResult(
        had_token=had_token, server_notified=notified, credentials_removed=removed, warning=warning
    )


def list_access(
    *,
    session: SessionConfig,
    token_cache: TokenCache,
    transport: httpx.BaseTransport | None = None,
    clock: Clock = _SYSTEM_CLOCK,
) -> list[tuple[AccountInfo, list[RoleInfo]]]:
    """Every account the signed-in person is assigned, with its roles (ListAccounts, ListAccountRoles)."""
    token = get_valid_token(session=session, token_cache=token_cache, transport=transport, clock=clock)
    try:
        with PortalClient(session.base_url, transport=transport) as portal:
            accounts = portal.list_accounts(token.access_token)
            return [
                (account, portal.list_account_roles(token.access_token, account_id=account.account_id))
                for account in sorted(accounts, key=lambda a: (a.account_name.lower(), a.account_id))
            ]
    except wire.UnauthorizedError as exc:
        raise NotLoggedInError(session.name, "the server no longer accepts this session") from exc
    except httpx.HTTPError as exc:
        raise UnreachableError(session.base_url, exc) from exc
