"""User commands: `keyhall login`, `logout`, `whoami`, `ls`, `configure`, `credential-process`, `exec`,
`env` and `console`. Each parses its options, calls ``keyhall.client`` and prints the result.

The library is imported inside each command, so `keyhall --help` does not load httpx; nothing here touches
the server side (database, settings): these commands run on people's laptops.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from keyhall.client import ini

if TYPE_CHECKING:
    from datetime import datetime

    from keyhall.client.config import ProfileConfig, SessionConfig
    from keyhall.client.credential_cache import CredentialCache, RoleCredentials
    from keyhall.client.paths import AwsPaths
    from keyhall.client.token_cache import TokenCache


def register(app: typer.Typer) -> None:
    app.command("login")(login)
    app.command("logout")(logout)
    app.command("whoami")(whoami)
    app.command("ls")(ls)
    app.command("configure")(configure)
    app.command("credential-process")(credential_process)
    app.command("exec", context_settings={"ignore_unknown_options": True})(exec_command)
    app.command("env")(env_command)
    app.command("console")(console)


# --- shared plumbing --------------------------------------------------------------------------------------


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    """The library's errors as one red message on stderr and exit code 1."""
    import httpx

    from keyhall.client.errors import ClientError
    from keyhall.errors import KeyhallError

    try:
        yield
    except ClientError as exc:
        _fail(exc.message)
    except KeyhallError as exc:
        _fail(f"the server refused the request: {exc.message} ({exc.aws_code})")
    except httpx.HTTPError as exc:
        _fail(f"cannot reach Keyhall: {exc}")


def _echo_err(text: str) -> None:
    typer.echo(text, err=True)


def _paths() -> AwsPaths:
    from keyhall.client.paths import AwsPaths

    return AwsPaths.from_environment()


def _session(
    paths: AwsPaths, *, url: str | None = None, sso_session: str | None = None, region: str | None = None
) -> SessionConfig:
    from keyhall.client.config import resolve_session

    return resolve_session(paths=paths, url=url, sso_session=sso_session, region=region)


def _caches(paths: AwsPaths) -> tuple[TokenCache, CredentialCache]:
    from keyhall.client.credential_cache import CredentialCache
    from keyhall.client.token_cache import TokenCache

    return TokenCache(paths.sso_cache_dir), CredentialCache(paths.cli_cache_dir)


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _keyhall_command() -> str:
    """How an SDK should start Keyhall: this executable when we know it, else `keyhall` from PATH."""
    import shutil
    from pathlib import Path

    argv0 = Path(sys.argv[0])
    if argv0.stem == "keyhall" and argv0.is_file():
        return str(argv0.absolute())
    return shutil.which("keyhall") or "keyhall"


def _profile_credentials(profile_name: str) -> tuple[ProfileConfig, RoleCredentials]:
    from keyhall.client.config import resolve_profile
    from keyhall.client.credentials import get_role_credentials

    paths = _paths()
    profile = resolve_profile(profile_name, paths=paths)
    session = _session(paths, sso_session=profile.session_name)
    token_cache, credential_cache = _caches(paths)
    credentials = get_role_credentials(
        session=session,
        account_id=profile.account_id,
        role_name=profile.role_name,
        token_cache=token_cache,
        credential_cache=credential_cache,
    )
    return profile, credentials


_URL_HELP = "Keyhall URL, e.g. http://127.0.0.1:8080 (default: KEYHALL_URL, then ~/.aws/config)."
_SESSION_HELP = "sso-session name (default: KEYHALL_SSO_SESSION, then AWS_PROFILE's, then `keyhall`)."
_REGION_HELP = "Region for the sso-session and the profiles (default: the configured one, else us-east-1)."


# --- commands --------------------------------------------------------------------------------------------


def login(
    *,
    url: str | None = typer.Option(None, "--url", help=_URL_HELP),
    device: bool = typer.Option(False, "--device", help="Device code flow: for machines without a browser."),
    no_browser: bool = typer.Option(
        False, "--no-browser", help="Print the URL instead of opening a browser."
    ),
    sso_session: str | None = typer.Option(None, "--sso-session", help=_SESSION_HELP),
    region: str | None = typer.Option(None, "--region", help=_REGION_HELP),
    force: bool = typer.Option(
        False, "--force", help="Sign in again (and register anew) even with a valid token."
    ),
) -> None:
    """Sign in (browser + PKCE, or --device) and write the AWS-format token cache (~/.aws/sso/cache)."""
    import webbrowser

    from keyhall.client import session as session_lib

    with _errors():
        paths = _paths()
        session = _session(paths, url=url, sso_session=sso_session, region=region)
        token_cache, _ = _caches(paths)
        result = session_lib.login(
            session=session,
            token_cache=token_cache,
            echo=_echo_err,
            device=device,
            open_browser=None if no_browser else webbrowser.open,
            force=force,
        )
    until = _when(result.token.expires_at)
    if result.reused:
        typer.echo(f"Already signed in to {session.start_url} until {until} (--force signs in again).")
    else:
        typer.echo(
            f"Signed in to {session.start_url} (sso-session {session.name}); token valid until {until}."
        )
    if ini.sso_session(ini.read_config(paths.config_file), session.name) is None:
        flag = "" if session.name == "keyhall" else f" --sso-session {session.name}"
        typer.echo(
            f"Next: `keyhall configure{flag}` writes a profile per account and role to {paths.config_file}."
        )


def logout(sso_session: str | None = typer.Option(None, "--sso-session", help=_SESSION_HELP)) -> None:
    """End the session on the server and delete its token and cached role credentials."""
    from keyhall.client import session as session_lib
    from keyhall.client.config import resolve_session_name
    from keyhall.client.credential_cache import cache_key

    with _errors():
        paths = _paths()
        name = resolve_session_name(paths=paths, sso_session=sso_session)
        config = ini.read_config(paths.config_file)
        keys = []
        for section in config.values():
            account, role = (
                ini.text_value(section, "sso_account_id"),
                ini.text_value(section, "sso_role_name"),
            )
            if ini.text_value(section, "sso_session") == name and account and role:
                keys.append(cache_key(account_id=account, role_name=role, session_name=name))
        token_cache, credential_cache = _caches(paths)
        result = session_lib.logout(
            session_name=name,
            token_cache=token_cache,
            credential_cache=credential_cache,
            credential_keys=keys,
        )
    if result.warning:
        typer.secho(f"Warning: {result.warning}", fg=typer.colors.YELLOW, err=True)
    state = "Signed out of" if result.had_token else "Was not signed in to"
    typer.echo(f"{state} sso-session {name}; removed {result.credentials_removed} cached credential file(s).")


def _resolve_whoami_profile(paths: AwsPaths, profile_name: str | None) -> ProfileConfig | None:
    import os

    from keyhall.client.config import keyhall_session_of_profile, resolve_profile

    if profile_name is None:
        candidate = os.environ.get("AWS_PROFILE")
        if candidate and keyhall_session_of_profile(ini.read_config(paths.config_file), candidate):
            profile_name = candidate
    return None if profile_name is None else resolve_profile(profile_name, paths=paths)


def whoami(
    profile: str | None = typer.Option(
        None, "--profile", help="Ask as this profile (default: AWS_PROFILE if it is Keyhall's)."
    ),
    url: str | None = typer.Option(None, "--url", help=_URL_HELP),
    sso_session: str | None = typer.Option(None, "--sso-session", help=_SESSION_HELP),
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Who you are signed in as: the session, and STS GetCallerIdentity in one of your accounts."""
    from keyhall.client.credentials import whoami as whoami_lib

    with _errors():
        paths = _paths()
        resolved = _resolve_whoami_profile(paths, profile)
        session = _session(paths, url=url, sso_session=resolved.session_name if resolved else sso_session)
        token_cache, credential_cache = _caches(paths)
        result = whoami_lib(
            session=session, profile=resolved, token_cache=token_cache, credential_cache=credential_cache
        )
    identity = result.identity
    if as_json:
        from keyhall.cli.output import print_json

        print_json(
            {
                "ssoSession": result.session_name,
                "startUrl": result.start_url,
                "tokenExpiresAt": _when(result.token_expires_at),
                "accountId": result.account_id,
                "roleName": result.role_name,
                "arn": identity.arn if identity else None,
                "userId": identity.user_id if identity else None,
            }
        )
        return
    typer.echo(
        f"Session   {result.session_name} at {result.start_url}, valid until {_when(result.token_expires_at)}"
    )
    if identity is None:
        typer.echo("Access    no account is assigned to you yet")
        return
    typer.echo(f"Account   {identity.account}, role {result.role_name}")
    typer.echo(f"ARN       {identity.arn}")


def ls(
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
    url: str | None = typer.Option(None, "--url", help=_URL_HELP),
    sso_session: str | None = typer.Option(None, "--sso-session", help=_SESSION_HELP),
) -> None:
    """The accounts you can use and your roles in each."""
    from keyhall.client.aws_config import plan_profiles
    from keyhall.client.session import list_access

    with _errors():
        paths = _paths()
        session = _session(paths, url=url, sso_session=sso_session)
        token_cache, _ = _caches(paths)
        access = list_access(session=session, token_cache=token_cache)
    profiles = {(p.account_id, p.role_name): p.name for p in plan_profiles(access)}
    if as_json:
        from keyhall.cli.output import print_json

        print_json(
            [
                {
                    "accountId": account.account_id,
                    "accountName": account.account_name,
                    "emailAddress": account.email_address,
                    "roles": [
                        {"roleName": r.role_name, "profile": profiles.get((account.account_id, r.role_name))}
                        for r in roles
                    ],
                }
                for account, roles in access
            ]
        )
        return
    from keyhall.cli.output import print_table

    print_table(
        "Accounts",
        ["Account", "Name", "Email", "Roles", "Profiles (after `keyhall configure`)"],
        [
            (
                account.account_id,
                account.account_name,
                account.email_address,
                ", ".join(r.role_name for r in roles),
                ", ".join(profiles.get((account.account_id, r.role_name), "") for r in roles),
            )
            for account, roles in access
        ],
    )


def configure(
    url: str | None = typer.Option(None, "--url", help=_URL_HELP),
    region: str | None = typer.Option(None, "--region", help=_REGION_HELP),
    sso_session: str | None = typer.Option(None, "--sso-session", help=_SESSION_HELP),
    credential_process: bool = typer.Option(
        False,
        "--credential-process",
        help="Also write a `<profile>.process` credential_process profile for each.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the change to ~/.aws/config; write nothing."),
) -> None:
    """Write the sso-session, the endpoints and one profile per account and role into ~/.aws/config."""
    from keyhall.client import aws_config
    from keyhall.client.session import list_access

    with _errors():
        paths = _paths()
        session = _session(paths, url=url, sso_session=sso_session, region=region)
        token_cache, _ = _caches(paths)
        access = list_access(session=session, token_cache=token_cache)
        result = aws_config.configure(
            session=session,
            access=access,
            config_file=paths.config_file,
            region=region,
            process_command=[_keyhall_command()] if credential_process else None,
            dry_run=dry_run,
        )
    for name in result.skipped:
        typer.secho(
            f"Warning: [profile {name}] exists outside Keyhall's block; left as it is.",
            fg=typer.colors.YELLOW,
            err=True,
        )
    if dry_run:
        if not result.changed:
            typer.echo(f"{result.path}: no change.")
            return
        import difflib

        diff = difflib.unified_diff(
            result.old_text.splitlines(keepends=True),
            result.new_text.splitlines(keepends=True),
            fromfile=str(result.path),
            tofile=f"{result.path} (after keyhall configure)",
        )
        sys.stdout.writelines(diff)
        return
    verb = "Wrote" if result.written else "Unchanged:"
    typer.echo(f"{verb} {result.path}: sso-session {session.name} and {len(result.profiles)} profile(s).")
    for plan in result.profiles:
        typer.echo(f"  {plan.name}")
    if result.profiles:
        typer.echo(f"Try: aws sts get-caller-identity --profile {result.profiles[0].name}")


def credential_process(
    profile: str | None = typer.Option(None, "--profile", help="A profile written by `keyhall configure`."),
    account: str | None = typer.Option(None, "--account", help="Account id (with --role)."),
    role: str | None = typer.Option(None, "--role", help="Role (permission set) name (with --account)."),
    sso_session: str | None = typer.Option(
        None, "--sso-session", help="sso-session (default: KEYHALL_SSO_SESSION, then `keyhall`)."
    ),
) -> None:
    """Print credential_process JSON for an account and role (cached until 5 minutes before expiry)."""
    from keyhall.client.config import resolve_target
    from keyhall.client.credentials import get_role_credentials
    from keyhall.client.process import process_output

    with _errors():
        paths = _paths()
        target = resolve_target(
            paths=paths, profile=profile, account_id=account, role_name=role, sso_session=sso_session
        )
        session = _session(paths, sso_session=target.session_name)
        token_cache, credential_cache = _caches(paths)
        credentials = get_role_credentials(
            session=session,
            account_id=target.account_id,
            role_name=target.role_name,
            token_cache=token_cache,
            credential_cache=credential_cache,
        )
    sys.stdout.write(process_output(credentials) + "\n")


def _environment_for(resolved: Any, credentials: Any) -> dict[str, str]:
    """The credentials, region and endpoints as AWS_* variables, plus AWS_DATA_PATH rule sets so that
    AWS CLIs older than 2.13 (which ignore AWS_ENDPOINT_URL_*) reach Keyhall for a local account too."""
    from keyhall.client.credentials import credential_environment
    from keyhall.client.legacy_endpoints import ensure_models, with_data_path

    variables = credential_environment(credentials, region=resolved.region, endpoints=resolved.endpoints)
    models = ensure_models(_paths(), resolved.endpoints or {})
    return with_data_path(variables, models, os.environ.get("AWS_DATA_PATH"))


def exec_command(
    profile: str = typer.Argument(..., help="Profile written by `keyhall configure`."),
    command: list[str] = typer.Argument(..., help="The command and its arguments, after `--`."),
) -> None:
    """Run COMMAND with the profile's credentials in AWS_* variables (AWS_PROFILE removed); its exit code."""
    from keyhall.client.credentials import run_with_credentials

    with _errors():
        resolved, credentials = _profile_credentials(profile)
        variables = _environment_for(resolved, credentials)
        code = run_with_credentials(command, variables=variables)
    raise typer.Exit(code)


def env_command(
    profile: str = typer.Argument(..., help="Profile written by `keyhall configure`."),
    shell: str = typer.Option("sh", "--shell", help="Output syntax: sh (bash, zsh …), fish or powershell."),
) -> None:
    """Print `export AWS_…` lines for the profile's credentials: eval "$(keyhall env PROFILE)"."""
    from keyhall.client.credentials import SHELLS, format_exports

    if shell not in SHELLS:
        _fail(f"--shell must be one of {', '.join(SHELLS)}, not {shell!r}", code=2)
    with _errors():
        resolved, credentials = _profile_credentials(profile)
        variables = _environment_for(resolved, credentials)
    sys.stdout.write(format_exports(variables, syntax=shell))


def console(profile: str = typer.Argument(..., help="Profile written by `keyhall configure`.")) -> None:
    """The AWS console sign-in URL for the profile's account and role (real AWS accounts only)."""
    from keyhall.client.config import resolve_profile
    from keyhall.client.console import console_sign_in_url

    with _errors():
        url = console_sign_in_url(profile=resolve_profile(profile, paths=_paths()))
    typer.echo(url)
