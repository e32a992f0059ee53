"""credential_process: the JSON shape, the stdlib-only warm path, and its hand-over to the full CLI."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from keyhall.cli.fast import maybe_fast_path
from keyhall.cli.user_commands import register
from keyhall.client.credential_cache import CredentialCache, RoleCredentials, cache_key
from keyhall.client.paths import AwsPaths
from keyhall.client.process import process_output

NOW = 1_800_000_000.0
ACCOUNT, ROLE = "111111111111", "ReadOnly"


def _creds(expiration: float = NOW + 3600) -> RoleCredentials:
    return RoleCredentials(
        access_key_id="ASIAEXAMPLE",
        secret_access_key="se/cr+et",
        session_token="to+ken",
        expiration=expiration,
        account_id=ACCOUNT,
    )


def _seed(home: Path, *, session: str = "keyhall", expiration: float = NOW + 3600) -> None:
    cache = CredentialCache(AwsPaths(home=str(home)).cli_cache_dir)
    cache.store(
        cache_key(account_id=ACCOUNT, role_name=ROLE, session_name=session),
        _creds(expiration),
        session_name=session,
    )


def _run(argv: list[str], home: Path, **env: str) -> tuple[int | None, str]:
    out = io.StringIO()
    code = maybe_fast_path(argv, env={"HOME": str(home), **env}, now=NOW, stdout=out)
    return code, out.getvalue()


def test_process_output_shape() -> None:
    assert json.loads(process_output(_creds())) == {
        "Version": 1,
        "AccessKeyId": "ASIAEXAMPLE",
        "SecretAccessKey": "se/cr+et",
        "SessionToken": "to+ken",
        "Expiration": "2027-01-15T09:00:00Z",
    }


def test_process_output_is_byte_identical_to_json_dumps() -> None:
    creds = _creds()
    assert process_output(creds) == json.dumps(
        {
            "Version": 1,
            "AccessKeyId": creds.access_key_id,
            "SecretAccessKey": creds.secret_access_key,
            "SessionToken": creds.session_token,
            "Expiration": creds.expiration_iso,
        }
    )


def test_warm_path_serves_from_the_cache(tmp_path: Path) -> None:
    _seed(tmp_path)
    code, out = _run(["credential-process", "--account", ACCOUNT, "--role", ROLE], tmp_path)
    assert code == 0
    assert json.loads(out) == json.loads(process_output(_creds()))


def test_equals_form_and_explicit_session(tmp_path: Path) -> None:
    _seed(tmp_path, session="staging")
    argv = ["credential-process", f"--account={ACCOUNT}", f"--role={ROLE}", "--sso-session=staging"]
    assert _run(argv, tmp_path)[0] == 0
    assert (
        _run(
            ["credential-process", "--account", ACCOUNT, "--role", ROLE],
            tmp_path,
            KEYHALL_SSO_SESSION="staging",
        )[0]
        == 0
    )
    assert _run(["credential-process", "--account", ACCOUNT, "--role", ROLE], tmp_path)[0] is None


def test_profile_is_read_from_the_config_file(tmp_path: Path) -> None:
    _seed(tmp_path)
    config = tmp_path / "custom-config"
    config.write_text(
        f"# mine\n[profile dev]\nsso_session = keyhall\nsso_account_id = {ACCOUNT}\nsso_role_name = {ROLE}\n"
        "region = us-east-1\n"
    )
    code, out = _run(["credential-process", "--profile", "dev"], tmp_path, AWS_CONFIG_FILE=str(config))
    assert code == 0
    assert json.loads(out)["AccessKeyId"] == "ASIAEXAMPLE"
    assert (
        _run(["credential-process", "--profile", "other"], tmp_path, AWS_CONFIG_FILE=str(config))[0] is None
    )


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["ls"],
        ["credential-process"],
        ["credential-process", "--help"],
        ["credential-process", "--account", ACCOUNT],
        ["credential-process", "--account", ACCOUNT, "--role", ROLE, "--verbose"],
        ["credential-process", "--account", ACCOUNT, "--role"],
        ["credential-process", "--account", ACCOUNT, "--account", ACCOUNT, "--role", ROLE],
        ["credential-process", "--profile", "dev", "--account", ACCOUNT, "--role", ROLE],
        ["--data-dir", "x", "credential-process", "--account", ACCOUNT, "--role", ROLE],
    ],
)
def test_anything_unusual_goes_to_the_full_cli(tmp_path: Path, argv: list[str]) -> None:
    _seed(tmp_path)
    assert _run(argv, tmp_path) == (None, "")


def test_cache_miss_and_expiry_window_go_to_the_full_cli(tmp_path: Path) -> None:
    argv = ["credential-process", "--account", ACCOUNT, "--role", ROLE]
    assert _run(argv, tmp_path)[0] is None
    _seed(tmp_path, expiration=NOW + 299)
    assert _run(argv, tmp_path)[0] is None
    _seed(tmp_path, expiration=NOW + 301)
    assert _run(argv, tmp_path)[0] == 0


def test_full_cli_prints_the_same_json_from_a_warm_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("AWS_CONFIG_FILE", raising=False)
    monkeypatch.setenv("KEYHALL_URL", "http://127.0.0.1:9")  # never called: the cache is warm
    _seed(tmp_path, expiration=time.time() + 3600)
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["credential-process", "--account", ACCOUNT, "--role", ROLE])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert list(body) == ["Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"]
    assert body["Expiration"].endswith("Z")


def _python(code: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHALL_"))}
    env["HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False, timeout=60
    )


def test_warm_path_imports_only_the_stdlib(tmp_path: Path) -> None:
    """Timing-free check of the warm path's cost: which modules a real process ends up importing."""
    _seed(tmp_path, expiration=time.time() + 3600)
    code = (
        "import sys, json\n"
        "baseline = set(sys.modules)\n"
        "from keyhall.cli.fast import maybe_fast_path\n"
        "import io\n"
        "rc = maybe_fast_path(sys.argv[1:], stdout=io.StringIO())\n"
        "print(json.dumps({'rc': rc, 'baseline': sorted(baseline), 'modules': sorted(sys.modules)}))\n"
    )
    result = _python(code, tmp_path, "credential-process", "--account", ACCOUNT, "--role", ROLE)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["rc"] == 0, "the warm path answered"
    loaded = set(report["modules"]) - set(report["baseline"])
    heavy = {
        "typer",
        "click",
        "httpx",
        "httpcore",
        "pydantic",
        "sqlalchemy",
        "rich",
        "orjson",
        "typing",
        "dataclasses",
        "pathlib",
        "tempfile",
        "configparser",
        "inspect",
        "asyncio",
        "ssl",
        # not even these: keyhall.client._lean does their work with the C accelerators
        "json",
        "re",
        "enum",
        "hashlib",
        "datetime",
    }
    assert not loaded & heavy
    assert not {
        m
        for m in loaded
        if m.startswith(("keyhall.cli.main", "keyhall.cli.context", "keyhall.client.config"))
    }


def test_entry_point_answers_and_exits_zero(tmp_path: Path) -> None:
    _seed(tmp_path, expiration=time.time() + 3600)
    code = "import sys; sys.argv = ['keyhall', *sys.argv[1:]]\nfrom keyhall.cli.fast import main\nmain()\n"
    result = _python(code, tmp_path, "credential-process", "--account", ACCOUNT, "--role", ROLE)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["AccessKeyId"] == "ASIAEXAMPLE"
