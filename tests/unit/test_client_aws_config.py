"""`keyhall configure` edits ~/.aws/config: the user's content survives, a second run changes nothing,
and botocore reads the result as intended."""

from __future__ import annotations

import shlex
import stat
from pathlib import Path

import pytest

from keyhall.client.aws_config import begin_marker, configure, end_marker, plan_profiles, sanitise
from keyhall.client.config import SessionConfig
from keyhall.client.errors import ConfigError
from keyhall.client.portal import AccountInfo, RoleInfo

BASE = "http://127.0.0.1:8080"
SESSION = SessionConfig(name="keyhall", base_url=BASE, region="us-east-1")
ACCESS = [
    (
        AccountInfo("111111111111", "Sandbox", "sandbox@example.com"),
        [RoleInfo("Developer", "111111111111"), RoleInfo("AdministratorAccess", "111111111111")],
    ),
    (AccountInfo("222222222222", "Production", None), [RoleInfo("ReadOnly", "222222222222")]),
]

USER_CONTENT = """\
# My AWS config. Do not lose this comment.
[default]
region = eu-west-1
output = json   ; no inline comments in AWS config, this stays verbatim

[profile work]
sso_session = corp
sso_account_id = 999999999999
sso_role_name = Admin

[sso-session corp]
sso_start_url = https://d-1234567890.awsapps.com/start
sso_region = eu-west-1"""


def _botocore_config(path: Path) -> dict[str, dict[str, dict[str, object]]]:
    from botocore.configloader import load_config

    return load_config(str(path))  # type: ignore[no-any-return]


def test_fresh_file(tmp_path: Path) -> None:
    path = tmp_path / ".aws" / "config"
    result = configure(session=SESSION, access=ACCESS, config_file=path)
    assert result.written
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = _botocore_config(path)
    assert sorted(config["profiles"]) == [
        "production.ReadOnly",
        "sandbox.AdministratorAccess",
        "sandbox.Developer",
    ]
    assert config["profiles"]["sandbox.Developer"] == {
        "sso_session": "keyhall",
        "sso_account_id": "111111111111",
        "sso_role_name": "Developer",
        "region": "us-east-1",
        "services": "keyhall",
    }
    assert config["sso_sessions"]["keyhall"] == {
        "sso_start_url": f"{BASE}/start",
        "sso_region": "us-east-1",
        "sso_registration_scopes": "sso:account:access",
        "keyhall_url": BASE,
    }
    assert config["services"]["keyhall"] == {
        service: {"endpoint_url": BASE}
        for service in ("sso", "sso_oidc", "sts", "identitystore", "sso_admin")
    }


def test_user_content_is_kept_and_second_run_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(USER_CONTENT)
    path.chmod(0o644)
    first = configure(session=SESSION, access=ACCESS, config_file=path)
    text = path.read_text()
    assert first.written
    assert text.startswith(USER_CONTENT + "\n\n" + begin_marker("keyhall") + "\n")
    assert text.endswith(end_marker("keyhall") + "\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644, "the user's file mode is kept"
    config = _botocore_config(path)
    assert config["profiles"]["work"]["sso_session"] == "corp"
    assert (
        config["profiles"]["default"]["output"]
        == "json   ; no inline comments in AWS config, this stays verbatim"
    )

    before = path.stat().st_mtime_ns
    second = configure(session=SESSION, access=ACCESS, config_file=path)
    assert not second.written
    assert not second.changed
    assert path.read_text() == text
    assert path.stat().st_mtime_ns == before


def test_block_is_replaced_in_place(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(USER_CONTENT + "\n")
    configure(session=SESSION, access=ACCESS, config_file=path)
    path.write_text(
        path.read_text() + "\n# added by the user after the block\n[profile later]\nregion = ap-south-1\n"
    )

    changed = [(ACCESS[0][0], [RoleInfo("Developer", "111111111111"), RoleInfo("Billing", "111111111111")])]
    result = configure(session=SESSION, access=changed, config_file=path, region="eu-central-1")
    text = path.read_text()
    assert result.written
    assert text.startswith(USER_CONTENT + "\n\n" + begin_marker("keyhall"))
    assert text.endswith("# added by the user after the block\n[profile later]\nregion = ap-south-1\n")
    config = _botocore_config(path)
    assert "production.ReadOnly" not in config["profiles"], "access that is gone loses its profile"
    assert config["profiles"]["sandbox.Billing"]["region"] == "eu-central-1"
    assert config["profiles"]["later"] == {"region": "ap-south-1"}
    assert text.count(begin_marker("keyhall")) == 1


def test_existing_user_profile_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("[profile sandbox.Developer]\nregion = mine\n")
    result = configure(session=SESSION, access=ACCESS, config_file=path)
    assert result.skipped == ["sandbox.Developer"]
    config = _botocore_config(path)  # botocore would refuse a duplicated section
    assert config["profiles"]["sandbox.Developer"] == {"region": "mine"}
    assert "sandbox.AdministratorAccess" in config["profiles"]


@pytest.mark.parametrize("section", ["[sso-session keyhall]", "[services keyhall]"])
def test_conflicting_session_is_an_error(tmp_path: Path, section: str) -> None:
    path = tmp_path / "config"
    path.write_text(f"{section}\nx = 1\n")
    with pytest.raises(ConfigError, match="--sso-session"):
        configure(session=SESSION, access=ACCESS, config_file=path)
    assert path.read_text() == f"{section}\nx = 1\n"


def test_broken_markers_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(begin_marker("keyhall") + "\n[profile x]\n")
    with pytest.raises(ConfigError, match="BEGIN"):
        configure(session=SESSION, access=ACCESS, config_file=path)


def test_sessions_have_their_own_blocks(tmp_path: Path) -> None:
    path = tmp_path / "config"
    staging = SessionConfig(name="staging", base_url="http://staging.example:8080")
    configure(session=SESSION, access=ACCESS[:1], config_file=path)
    configure(
        session=staging,
        access=[(AccountInfo("333333333333", "QA"), [RoleInfo("Dev", "333333333333")])],
        config_file=path,
    )
    configure(session=SESSION, access=ACCESS, config_file=path)
    config = _botocore_config(path)
    assert config["profiles"]["qa.Dev"]["sso_session"] == "staging"
    assert config["profiles"]["production.ReadOnly"]["sso_session"] == "keyhall"


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "config"
    result = configure(session=SESSION, access=ACCESS, config_file=path, dry_run=True)
    assert result.changed
    assert not result.written
    assert not path.exists()


def test_credential_process_profiles(tmp_path: Path) -> None:
    path = tmp_path / "config"
    command = ["/opt/my tools/keyhall"]
    configure(session=SESSION, access=ACCESS, config_file=path, process_command=command)
    config = _botocore_config(path)
    profile = config["profiles"]["sandbox.Developer.process"]
    assert "sso_session" not in profile, "Go SDK v1 rejects a profile with both sso_* and credential_process"
    assert shlex.split(str(profile["credential_process"])) == [
        "/opt/my tools/keyhall",
        "credential-process",
        "--sso-session",
        "keyhall",
        "--account",
        "111111111111",
        "--role",
        "Developer",
    ]
    assert profile["services"] == "keyhall"


def test_boto3_resolves_keyhall_endpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    path = tmp_path / "config"
    configure(session=SESSION, access=ACCESS, config_file=path)
    for name in [n for n in __import__("os").environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(path))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    session = boto3.Session(profile_name="sandbox.Developer")
    for service in ("sts", "sso", "sso-oidc", "identitystore", "sso-admin"):
        assert session.client(service).meta.endpoint_url == BASE, service


def test_profile_names() -> None:
    assert sanitise("My Account (prod)", lower=True) == "my-account-prod"
    assert sanitise("Admin+Ops@x", lower=False) == "Admin-Ops-x"
    plans = plan_profiles(
        [
            (AccountInfo("111111111111", "Team A"), [RoleInfo("Dev", "111111111111")]),
            (AccountInfo("222222222222", "team a"), [RoleInfo("Dev", "222222222222")]),
            (AccountInfo("333333333333", "!!!"), [RoleInfo("Dev", "333333333333")]),
        ]
    )
    assert [p.name for p in plans] == [
        "333333333333.Dev",
        "team-a-111111111111.Dev",
        "team-a-222222222222.Dev",
    ]
