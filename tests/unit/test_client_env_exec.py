"""`keyhall env` survives a real shell, `keyhall exec` passes the exit code, `console` explains itself."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from keyhall.cli.user_commands import register
from keyhall.client.config import ProfileConfig
from keyhall.client.console import console_sign_in_url
from keyhall.client.credential_cache import CredentialCache, RoleCredentials, cache_key
from keyhall.client.credentials import credential_environment, format_exports, run_with_credentials
from keyhall.client.errors import ClientError, ConsoleNotAvailableError

NASTY = 'it\'s "quoted" $HOME `cmd` \\ ; & | * ? ~ \n second line'
CREDS = RoleCredentials(
    access_key_id="ASIAEXAMPLE",
    secret_access_key=NASTY,
    session_token="to+ken/==",
    expiration=1_800_000_000.0,
)


def test_environment_variables() -> None:
    variables = credential_environment(
        CREDS,
        region="eu-west-1",
        endpoints={"sts": "http://127.0.0.1:8080", "sso_oidc": "http://127.0.0.1:8080"},
    )
    assert variables == {
        "AWS_ACCESS_KEY_ID": "ASIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": NASTY,
        "AWS_SESSION_TOKEN": "to+ken/==",
        "AWS_CREDENTIAL_EXPIRATION": "2027-01-15T08:00:00Z",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL_SSO_OIDC": "http://127.0.0.1:8080",
        "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:8080",
    }


def test_sh_exports_are_shlex_quoted_and_eval_back_exactly() -> None:
    script = format_exports(credential_environment(CREDS), syntax="sh")
    assert script.splitlines()[0] == "unset AWS_PROFILE AWS_DEFAULT_PROFILE"
    assert "export AWS_ACCESS_KEY_ID=ASIAEXAMPLE" in script
    result = subprocess.run(
        [
            "/bin/sh",
            "-c",
            'eval "$1"; printf %s "$AWS_SECRET_ACCESS_KEY" "${AWS_PROFILE-unset}"',
            "sh",
            script,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"AWS_PROFILE": "old", "PATH": "/usr/bin:/bin"},
    )
    assert result.stdout == NASTY + "unset"


def test_fish_and_powershell_quoting() -> None:
    fish = format_exports({"K": "a'b\\c"}, syntax="fish")
    assert "set -e AWS_PROFILE;" in fish
    assert "set -gx K 'a\\'b\\\\c';" in fish
    powershell = format_exports({"K": "a'b"}, syntax="powershell")
    assert "Remove-Item Env:AWS_PROFILE -ErrorAction SilentlyContinue" in powershell
    assert "$Env:K = 'a''b'" in powershell
    with pytest.raises(ValueError, match="shell"):
        format_exports({}, syntax="tcsh")


@pytest.mark.parametrize("code", [0, 3, 42])
def test_exec_passes_the_exit_code_and_the_environment(code: int) -> None:
    check = (
        "import os, sys; e = os.environ; "
        f"ok = e['AWS_SECRET_ACCESS_KEY'] == {NASTY!r} and 'AWS_PROFILE' not in e and e['KEEP'] == 'me'; "
        f"sys.exit({code} if ok else 99)"
    )
    rc = run_with_credentials(
        [sys.executable, "-c", check],
        variables=credential_environment(CREDS),
        base_env={"AWS_PROFILE": "p", "AWS_DEFAULT_PROFILE": "p", "KEEP": "me"},
    )
    assert rc == code


def test_exec_reports_signals_and_missing_commands() -> None:
    rc = run_with_credentials(
        [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"], variables={}
    )
    assert rc == 128 + 15
    with pytest.raises(ClientError, match="command not found"):
        run_with_credentials(["/nonexistent/definitely-not-here"], variables={})
    with pytest.raises(ClientError, match="no command"):
        run_with_credentials([], variables={})


def _cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("AWS_CONFIG_FILE", raising=False)
    monkeypatch.delenv("KEYHALL_URL", raising=False)
    config = tmp_path / ".aws" / "config"
    config.parent.mkdir(parents=True)
    config.write_text(
        "[sso-session keyhall]\nsso_start_url = http://127.0.0.1:9/start\nsso_region = us-east-1\n"
        "keyhall_url = http://127.0.0.1:9\n\n[services keyhall]\nsts =\n  endpoint_url = http://127.0.0.1:9\n\n"
        "[profile dev]\nsso_session = keyhall\nsso_account_id = 111111111111\nsso_role_name = Dev\n"
        "region = us-east-1\nservices = keyhall\n"
    )
    cache = CredentialCache(str(tmp_path / ".aws" / "cli" / "cache"))
    warm = RoleCredentials(
        access_key_id="ASIAWARM", secret_access_key="s", session_token="t", expiration=time.time() + 3600
    )
    cache.store(
        cache_key(account_id="111111111111", role_name="Dev", session_name="keyhall"),
        warm,
        session_name="keyhall",
    )
    app = typer.Typer()
    register(app)
    return app


def test_exec_command_exit_code_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _cli_home(tmp_path, monkeypatch)
    check = "import os, sys; sys.exit(5 if os.environ['AWS_ACCESS_KEY_ID'] == 'ASIAWARM' else 1)"
    result = CliRunner().invoke(app, ["exec", "dev", "--", sys.executable, "-c", check])
    assert result.exit_code == 5, result.output


def test_env_command_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _cli_home(tmp_path, monkeypatch)
    result = CliRunner().invoke(app, ["env", "dev", "--shell", "powershell"])
    assert result.exit_code == 0, result.output
    assert "$Env:AWS_ACCESS_KEY_ID = 'ASIAWARM'" in result.stdout
    assert "$Env:AWS_ENDPOINT_URL_STS = 'http://127.0.0.1:9'" in result.stdout


def test_console_is_clear_about_local_accounts() -> None:
    local = ProfileConfig(
        name="dev",
        session_name="keyhall",
        account_id="111111111111",
        role_name="Dev",
        endpoints={"sts": "http://127.0.0.1:8080"},
    )
    with pytest.raises(ConsoleNotAvailableError, match="emulated by Keyhall") as caught:
        console_sign_in_url(profile=local)
    assert "no AWS Management Console" in caught.value.message
