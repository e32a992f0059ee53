"""`keyhall configure` sends a real AWS account's STS calls to AWS and a local account's to Keyhall."""

from __future__ import annotations

import configparser

from keyhall.client.aws_config import plan_profiles, render_block
from keyhall.client.config import SessionConfig
from keyhall.client.portal import AccountInfo, RoleInfo


def test_aws_accounts_get_a_services_section_without_sts() -> None:
    access = [
        (AccountInfo("111111111111", "Sandbox", kind="local"), [RoleInfo("Developer", "111111111111")]),
        (AccountInfo("222222222222", "Production", kind="aws"), [RoleInfo("ReadOnly", "222222222222")]),
    ]
    session = SessionConfig(name="keyhall", base_url="http://127.0.0.1:8080")
    block = render_block(session=session, profiles=plan_profiles(access), region="eu-west-1")
    parsed = configparser.ConfigParser()
    parsed.read_string(block)
    assert parsed["profile sandbox.Developer"]["services"] == "keyhall"
    assert parsed["profile production.ReadOnly"]["services"] == "keyhall-aws"
    assert "sts" in parsed["services keyhall"]
    assert set(parsed["services keyhall-aws"]) == {"sso", "sso_oidc"}


def test_no_aws_section_without_aws_accounts() -> None:
    access = [(AccountInfo("111111111111", "Sandbox"), [RoleInfo("Developer", "111111111111")])]
    session = SessionConfig(name="keyhall", base_url="http://127.0.0.1:8080")
    assert "keyhall-aws" not in render_block(
        session=session, profiles=plan_profiles(access), region="us-east-1"
    )
