"""Which Keyhall, which sso-session and which account/role a command is about.

Precedence is args > environment > ``~/.aws/config`` (then the token cache, for a URL a login already
used), and every missing or invalid setting is reported in one ``ConfigError``:

- sso-session: ``--sso-session`` > ``KEYHALL_SSO_SESSION`` > the ``sso_session`` of ``AWS_PROFILE``'s profile
  when that session is a Keyhall one (it has ``keyhall_url``; a real AWS SSO session is never picked up by
  accident) > ``keyhall``.
- URL: ``--url`` > ``KEYHALL_URL`` > the session's ``keyhall_url`` (or ``sso_start_url`` without ``/start``)
  > the ``startUrl`` of the cached token.
- region: ``--region`` > the session's ``sso_region`` > the cached token's > ``us-east-1``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from keyhall.client import ini
from keyhall.client.errors import ConfigError
from keyhall.client.paths import AwsPaths
from keyhall.client.token_cache import TokenCache

DEFAULT_SSO_SESSION = "keyhall"
DEFAULT_REGION = "us-east-1"
DEFAULT_SCOPES: tuple[str, ...] = ("sso:account:access",)
#: Key Keyhall adds to its ``[sso-session]`` (AWS clients ignore unknown keys): marks it and names the server.
KEYHALL_URL_KEY = "keyhall_url"


@dataclass(frozen=True)
class SessionConfig:
    """An sso-session served by one Keyhall: where, in which region, with which registration scopes."""

    name: str
    base_url: str
    region: str = DEFAULT_REGION
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    start_url: str = ""

    def __post_init__(self) -> None:
        if not self.start_url:
            object.__setattr__(self, "start_url", start_url_for(self.base_url))


@dataclass(frozen=True)
class ProfileConfig:
    """What a profile says about SSO: session, account, role, region and endpoint overrides."""

    name: str
    session_name: str
    account_id: str
    role_name: str
    region: str | None = None
    services_name: str | None = None
    endpoints: dict[str, str] = field(default_factory=dict)


def start_url_for(base_url: str) -> str:
    return base_url.rstrip("/") + "/start"


def base_url_from_start_url(start_url: str) -> str:
    """``http://host:8080/start`` → ``http://host:8080``; another path keeps only scheme and host."""
    trimmed = start_url.rstrip("/")
    if trimmed.endswith("/start"):
        return trimmed[: -len("/start")]
    parts = urlsplit(trimmed)
    return f"{parts.scheme}://{parts.netloc}"


def check_url(url: str, *, source: str) -> str | None:
    """A problem with *url* (from *source*), or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"{source}: {url!r} is not an http(s) URL such as http://127.0.0.1:8080"
    if parts.query or parts.fragment:
        return f"{source}: {url!r} must not have a query or fragment"
    return None


def _check_region(region: str, *, source: str) -> str | None:
    label = region.replace("-", "")
    if not region or not label.isalnum() or not region.isascii() or region.lower() != region:
        return (
            f"{source}: {region!r} is not a region name such as us-east-1 (lower-case letters, digits, '-')"
        )
    return None


def keyhall_session_of_profile(config: dict[str, ini.Section], profile_name: str) -> str | None:
    """The profile's sso_session, if it names an sso-session that Keyhall wrote (it has ``keyhall_url``)."""
    name = ini.text_value(ini.profile(config, profile_name), "sso_session")
    if name is None or ini.text_value(ini.sso_session(config, name), KEYHALL_URL_KEY) is None:
        return None
    return name


def _session_name(config: dict[str, ini.Section], *, sso_session: str | None, env: Mapping[str, str]) -> str:
    name = sso_session or env.get("KEYHALL_SSO_SESSION") or None
    if name is None and env.get("AWS_PROFILE"):
        name = keyhall_session_of_profile(config, env["AWS_PROFILE"])
    return name or DEFAULT_SSO_SESSION


def resolve_session_name(
    *, paths: AwsPaths, sso_session: str | None = None, env: Mapping[str, str] | None = None
) -> str:
    """Only the sso-session name (for logout, which needs no URL)."""
    env = os.environ if env is None else env
    return _session_name(ini.read_config(paths.config_file), sso_session=sso_session, env=env)


def resolve_session(
    *,
    paths: AwsPaths,
    url: str | None = None,
    sso_session: str | None = None,
    region: str | None = None,
    env: Mapping[str, str] | None = None,
    token_cache: TokenCache | None = None,
) -> SessionConfig:
    """The sso-session to use, by the precedence in the module docstring; ConfigError lists every problem."""
    env = os.environ if env is None else env
    config = ini.read_config(paths.config_file)
    problems: list[str] = []

    name = _session_name(config, sso_session=sso_session, env=env)
    if any(c.isspace() for c in name) or "[" in name or "]" in name:
        problems.append(f"sso-session name {name!r} must not contain spaces or brackets")

    section = ini.sso_session(config, name)
    cached = (token_cache or TokenCache(paths.sso_cache_dir)).load_token(name)

    base_url: str | None = None
    start_url = ""
    if url:
        problem = check_url(url, source="--url")
        problems.extend([problem] if problem else [])
        base_url = url.rstrip("/")
    elif env.get("KEYHALL_URL"):
        problem = check_url(env["KEYHALL_URL"], source="KEYHALL_URL")
        problems.extend([problem] if problem else [])
        base_url = env["KEYHALL_URL"].rstrip("/")
    elif section is not None and (
        ini.text_value(section, KEYHALL_URL_KEY) or ini.text_value(section, "sso_start_url")
    ):
        configured = ini.text_value(section, KEYHALL_URL_KEY)
        start_url = ini.text_value(section, "sso_start_url") or ""
        base_url = (configured or base_url_from_start_url(start_url)).rstrip("/")
        problem = check_url(base_url, source=f"[sso-session {name}] in {paths.config_file}")
        problems.extend([problem] if problem else [])
    elif cached is not None and cached.start_url:
        start_url = cached.start_url
        base_url = base_url_from_start_url(start_url)
    else:
        problems.append(
            f"no Keyhall URL for sso-session {name!r}: pass --url URL, set KEYHALL_URL, "
            "or run `keyhall configure --url URL`"
        )

    chosen_region = (
        region
        or ini.text_value(section, "sso_region")
        or (cached.region if cached is not None and cached.region else None)
        or DEFAULT_REGION
    )
    problem = _check_region(chosen_region, source="--region" if region else "sso_region")
    problems.extend([problem] if problem else [])

    raw_scopes = ini.text_value(section, "sso_registration_scopes")
    scopes = tuple(s.strip() for s in raw_scopes.split(",") if s.strip()) if raw_scopes else DEFAULT_SCOPES

    if problems or base_url is None:
        raise ConfigError(problems)
    if start_url and base_url_from_start_url(start_url) != base_url:
        start_url = ""
    return SessionConfig(
        name=name, base_url=base_url, region=chosen_region, scopes=scopes, start_url=start_url
    )


def resolve_profile(name: str, *, paths: AwsPaths) -> ProfileConfig:
    """A profile's SSO settings; ConfigError names every missing key at once."""
    config = ini.read_config(paths.config_file)
    section = ini.profile(config, name)
    if section is None:
        raise ConfigError([f"no profile {name!r} in {paths.config_file} (run `keyhall configure`)"])
    values = {key: ini.text_value(section, key) for key in ("sso_session", "sso_account_id", "sso_role_name")}
    missing = [key for key, value in values.items() if value is None]
    if missing:
        raise ConfigError([f"profile {name!r} in {paths.config_file} has no {key}" for key in missing])
    services_name = ini.text_value(section, "services")
    endpoints: dict[str, str] = {}
    if services_name is not None:
        for service, value in (ini.services(config, services_name) or {}).items():
            if isinstance(value, dict) and value.get("endpoint_url"):
                endpoints[service] = value["endpoint_url"]
    return ProfileConfig(
        name=name,
        session_name=str(values["sso_session"]),
        account_id=str(values["sso_account_id"]),
        role_name=str(values["sso_role_name"]),
        region=ini.text_value(section, "region"),
        services_name=services_name,
        endpoints=endpoints,
    )


def resolve_target(
    *,
    paths: AwsPaths,
    profile: str | None = None,
    account_id: str | None = None,
    role_name: str | None = None,
    sso_session: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ProfileConfig:
    """The account and role for credential-process: ``--profile`` or ``--account`` + ``--role``.

    ``AWS_PROFILE`` is deliberately not consulted: an SDK that runs credential_process has it set to the
    profile being resolved, which may be this very credential_process profile.
    """
    env = os.environ if env is None else env
    if profile is not None:
        if account_id or role_name:
            raise ConfigError(["give either --profile or --account and --role, not both"])
        resolved = resolve_profile(profile, paths=paths)
        if sso_session and sso_session != resolved.session_name:
            problem = f"--sso-session {sso_session} contradicts profile {profile!r}"
            raise ConfigError([f"{problem} (sso_session = {resolved.session_name})"])
        return resolved
    problems = []
    if not account_id:
        problems.append("missing --account (or give --profile)")
    if not role_name:
        problems.append("missing --role (or give --profile)")
    if problems:
        raise ConfigError(problems)
    session = sso_session or env.get("KEYHALL_SSO_SESSION") or DEFAULT_SSO_SESSION
    return ProfileConfig(
        name=f"{account_id}/{role_name}",
        session_name=session,
        account_id=str(account_id),
        role_name=str(role_name),
    )
