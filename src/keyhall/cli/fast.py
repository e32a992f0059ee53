"""`keyhall credential-process` served from the cache before the real CLI is imported.

Every AWS SDK process start runs credential_process, so the warm path (credentials cached and more than
five minutes from expiry) must import little and call nothing: ``os``, ``sys``, ``time`` and the C
accelerators ``_json`` and ``_sha1`` (not even ``json``, ``hashlib`` or ``datetime``; see
``keyhall.client._lean``), plus Keyhall's modules written for this path. Anything it does not fully
understand (other commands, unknown options, ``--help``, a cache miss, an unreadable file) returns None
so the full typer CLI handles it and reports errors properly.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import TextIO

COMMAND = "credential-process"
DEFAULT_SSO_SESSION = "keyhall"
_OPTIONS = ("--profile", "--account", "--role", "--sso-session")


def _parse_options(args: list[str]) -> dict[str, str] | None:
    """``--name value`` and ``--name=value`` for the four known options; None for anything else."""
    options: dict[str, str] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        name, sep, value = arg.partition("=")
        if name not in _OPTIONS or name in options:
            return None
        if not sep:
            index += 1
            if index >= len(args):
                return None
            value = args[index]
        if not value:
            return None
        options[name] = value
        index += 1
    return options


def _target(options: dict[str, str], env: Mapping[str, str], config_file: str) -> tuple[str, str, str] | None:
    """(sso-session, account id, role name), the same resolution as the full command."""
    profile_name = options.get("--profile")
    if profile_name is not None:
        if "--account" in options or "--role" in options:
            return None
        from keyhall.client import ini

        section = ini.profile(ini.read_config(config_file), profile_name)
        session = ini.text_value(section, "sso_session")
        account = ini.text_value(section, "sso_account_id")
        role = ini.text_value(section, "sso_role_name")
        if session is None or account is None or role is None:
            return None
        if options.get("--sso-session", session) != session:
            return None
        return session, account, role
    account = options.get("--account")
    role = options.get("--role")
    if account is None or role is None:
        return None
    session = options.get("--sso-session") or env.get("KEYHALL_SSO_SESSION") or DEFAULT_SSO_SESSION
    return session, account, role


def maybe_fast_path(
    argv: list[str],
    *,
    env: Mapping[str, str] | None = None,
    now: float | None = None,
    stdout: TextIO | None = None,
) -> int | None:
    """Serve ``credential-process …`` (*argv* without the program name) from the cache.

    Returns the exit code when it answered, None when the full CLI must run.
    """
    if not argv or argv[0] != COMMAND:
        return None
    options = _parse_options(argv[1:])
    if options is None:
        return None
    env = os.environ if env is None else env
    try:
        from keyhall.client.credential_cache import CredentialCache
        from keyhall.client.paths import AwsPaths
        from keyhall.client.process import cached_output

        paths = AwsPaths.from_environment(env)
        target = _target(options, env, paths.config_file)
        if target is None:
            return None
        session, account, role = target
        output = cached_output(
            cache=CredentialCache(paths.cli_cache_dir),
            session_name=session,
            account_id=account,
            role_name=role,
            now=time.time() if now is None else now,
        )
    except (OSError, ValueError):
        return None
    if output is None:
        return None
    (stdout or sys.stdout).write(output + "\n")
    return 0


def main() -> None:
    """Console-script entry point: the fast path first, then the full CLI (``keyhall.cli.main``)."""
    code = maybe_fast_path(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from keyhall.cli.main import main as full_main

    full_main()
