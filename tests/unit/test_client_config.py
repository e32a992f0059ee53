"""Which Keyhall and sso-session: args > env > ~/.aws/config > token cache, all problems reported at once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from keyhall.client import ini
from keyhall.client.config import (
    ProfileConfig,
    resolve_profile,
    resolve_session,
    resolve_session_name,
    resolve_target,
)
from keyhall.client.errors import ConfigError
from keyhall.client.paths import AwsPaths
from keyhall.client.token_cache import SSOToken, TokenCache

CONFIG = """\
# my own settings
[default]
region = eu-west-1

[profile work]
sso_session = corp
sso_account_id = 999999999999
sso_role_name = Admin

[sso-session corp]
sso_start_url = https://d-1234567890.awsapps.com/start
sso_region = eu-west-1

[sso-session keyhall]
sso_start_url = http://127.0.0.1:8080/start
sso_region = local-1
sso_registration_scopes = sso:account:access, extra:scope
keyhall_url = http://127.0.0.1:8080

[sso-session staging]
sso_start_url = http://staging.example:8080/start
sso_region = us-west-2
keyhall_url = http://staging.example:8080

[services keyhall]
sts =
  endpoint_url = http://127.0.0.1:8080
sso_oidc =
    endpoint_url = http://127.0.0.1:8080

[profile sandbox.ReadOnly]
sso_session = keyhall
sso_account_id = 111111111111
sso_role_name = ReadOnly
region = local-1
services = keyhall

[profile staging.Dev]
sso_session = staging
sso_account_id = 222222222222
sso_role_name = Dev
"""


@pytest.fixture
def paths(tmp_path: Path) -> AwsPaths:
    config = tmp_path / ".aws" / "config"
    config.parent.mkdir()
    config.write_text(CONFIG)
    return AwsPaths(home=str(tmp_path))


def test_file_settings(paths: AwsPaths) -> None:
    session = resolve_session(paths=paths, env={})
    assert session.name == "keyhall"
    assert session.base_url == "http://127.0.0.1:8080"
    assert session.start_url == "http://127.0.0.1:8080/start"
    assert session.region == "local-1"
    assert session.scopes == ("sso:account:access", "extra:scope")


def test_args_beat_env_beat_file(paths: AwsPaths) -> None:
    env = {"KEYHALL_URL": "http://env.example:1", "KEYHALL_SSO_SESSION": "staging"}
    assert resolve_session(paths=paths, env=env).base_url == "http://env.example:1"
    assert resolve_session(paths=paths, env=env).name == "staging"
    assert resolve_session(paths=paths, env=env).region == "us-west-2"
    chosen = resolve_session(
        paths=paths, env=env, url="http://arg.example:2/", sso_session="keyhall", region="ap-south-1"
    )
    assert (chosen.name, chosen.base_url, chosen.region) == ("keyhall", "http://arg.example:2", "ap-south-1")
    assert chosen.start_url == "http://arg.example:2/start"


def test_aws_profile_picks_its_keyhall_session_only(paths: AwsPaths) -> None:
    assert resolve_session(paths=paths, env={"AWS_PROFILE": "staging.Dev"}).name == "staging"
    # A real AWS SSO profile is never taken for a Keyhall session.
    assert resolve_session(paths=paths, env={"AWS_PROFILE": "work"}).name == "keyhall"
    assert resolve_session(paths=paths, env={"AWS_PROFILE": "absent"}).name == "keyhall"
    assert resolve_session_name(paths=paths, env={"AWS_PROFILE": "staging.Dev"}) == "staging"
    assert (
        resolve_session_name(paths=paths, env={"KEYHALL_SSO_SESSION": "x", "AWS_PROFILE": "staging.Dev"})
        == "x"
    )


def test_url_from_the_token_cache_when_nothing_else(tmp_path: Path) -> None:
    paths = AwsPaths(home=str(tmp_path))
    TokenCache(paths.sso_cache_dir).store_token(
        "keyhall",
        SSOToken(
            start_url="http://cached.example:8080/start",
            region="local-1",
            access_token="a",
            expires_at=datetime(2030, 1, 1, tzinfo=UTC),
        ),
    )
    session = resolve_session(paths=paths, env={})
    assert (session.base_url, session.region) == ("http://cached.example:8080", "local-1")


def test_every_problem_at_once(tmp_path: Path) -> None:
    paths = AwsPaths(home=str(tmp_path))
    with pytest.raises(ConfigError) as caught:
        resolve_session(paths=paths, env={}, sso_session="bad name", region="US_EAST")
    problems = caught.value.problems
    assert len(problems) == 3
    assert any("spaces" in p for p in problems)
    assert any("no Keyhall URL" in p and "--url" in p and "KEYHALL_URL" in p for p in problems)
    assert any("region" in p for p in problems)
    assert "not configured" in caught.value.message


@pytest.mark.parametrize("url", ["127.0.0.1:8080", "ftp://x", "http://", "http://h/?q=1"])
def test_bad_urls(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match="--url"):
        resolve_session(paths=AwsPaths(home=str(tmp_path)), env={}, url=url)


def test_profile(paths: AwsPaths) -> None:
    assert resolve_profile("sandbox.ReadOnly", paths=paths) == ProfileConfig(
        name="sandbox.ReadOnly",
        session_name="keyhall",
        account_id="111111111111",
        role_name="ReadOnly",
        region="local-1",
        services_name="keyhall",
        endpoints={"sts": "http://127.0.0.1:8080", "sso_oidc": "http://127.0.0.1:8080"},
    )


def test_profile_problems_are_listed_together(paths: AwsPaths) -> None:
    Path(paths.config_file).write_text("[profile half]\nregion = x\n")
    with pytest.raises(ConfigError) as caught:
        resolve_profile("half", paths=paths)
    assert [p.rsplit(" ", 1)[-1] for p in caught.value.problems] == [
        "sso_session",
        "sso_account_id",
        "sso_role_name",
    ]
    with pytest.raises(ConfigError, match="no profile 'nope'"):
        resolve_profile("nope", paths=paths)


def test_target(paths: AwsPaths) -> None:
    assert resolve_target(paths=paths, profile="staging.Dev", env={}).session_name == "staging"
    target = resolve_target(
        paths=paths, account_id="1", role_name="R", env={"KEYHALL_SSO_SESSION": "s", "AWS_PROFILE": "x"}
    )
    assert (target.session_name, target.account_id, target.role_name) == ("s", "1", "R")
    with pytest.raises(ConfigError) as caught:
        resolve_target(paths=paths, env={})
    assert len(caught.value.problems) == 2
    with pytest.raises(ConfigError, match="contradicts"):
        resolve_target(paths=paths, profile="staging.Dev", sso_session="keyhall", env={})
    with pytest.raises(ConfigError, match="not both"):
        resolve_target(paths=paths, profile="staging.Dev", account_id="1", env={})


def test_ini_reader_matches_botocore(paths: AwsPaths) -> None:
    """The stdlib reader sees the same profiles, sessions and services as botocore's own loader."""
    from botocore.configloader import load_config

    theirs = load_config(paths.config_file)
    ours = ini.read_config(paths.config_file)
    for name, values in theirs["profiles"].items():
        assert ini.profile(ours, name) == values
    for name, values in theirs["sso_sessions"].items():
        assert ini.sso_session(ours, name) == values
    for name, values in theirs["services"].items():
        assert ini.services(ours, name) == values


def test_ini_reader_details() -> None:
    parsed = ini.parse_config(
        "top = ignored\n[profile  spaced ]\nRegion: eu-west-1\n; comment\nmulti = a\n  b\n"
        "[profile default]\nx=1\n"
    )
    assert ini.profile(parsed, "spaced") == {"region": "eu-west-1", "multi": "a\nb"}
    assert ini.profile(parsed, "default") == {"x": "1"}
    assert ini.read_config("/nonexistent/config") == {}
