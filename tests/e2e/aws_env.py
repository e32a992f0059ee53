"""Pointing the real AWS clients at a local `keyhall serve` (real-clients.md recipes A, B, C).

The Debian AWS CLI 2.9 ignores AWS_ENDPOINT_URL_*: it needs an AWS_DATA_PATH holding one endpoint rule set
per service that answers the local URL. boto3 and the JS SDK take the AWS_ENDPOINT_URL_* variables.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

AWS_CLI = "/usr/bin/aws"  # never the pip CLI v1 that may come first on PATH
SERVICES = {
    "sso": "2019-06-10",
    "sso-oidc": "2019-06-10",
    "sts": "2011-06-15",
    "identitystore": "2020-06-15",
    "sso-admin": "2020-07-20",
}
REGION = "us-east-1"
SESSION_NAME = "keyhall"


def _rule_set(url: str) -> dict[str, object]:
    return {
        "version": "1.0",
        "parameters": {
            "Region": {"builtIn": "AWS::Region", "required": False, "documentation": ".", "type": "String"},
            "UseDualStack": {
                "builtIn": "AWS::UseDualStack",
                "required": True,
                "default": False,
                "documentation": ".",
                "type": "Boolean",
            },
            "UseFIPS": {
                "builtIn": "AWS::UseFIPS",
                "required": True,
                "default": False,
                "documentation": ".",
                "type": "Boolean",
            },
            "Endpoint": {
                "builtIn": "SDK::Endpoint",
                "required": False,
                "documentation": ".",
                "type": "String",
            },
        },
        "rules": [
            {
                "conditions": [{"fn": "isSet", "argv": [{"ref": "Endpoint"}]}],
                "endpoint": {"url": {"ref": "Endpoint"}, "properties": {}, "headers": {}},
                "type": "endpoint",
            },
            {"conditions": [], "endpoint": {"url": url, "properties": {}, "headers": {}}, "type": "endpoint"},
        ],
    }


def write_data_path(root: Path, url: str) -> Path:
    for service, version in SERVICES.items():
        folder = root / service / version
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "endpoint-rule-set-1.json").write_text(json.dumps(_rule_set(url)))
    return root


def write_config(home: Path, url: str, profiles: dict[str, tuple[str, str]]) -> Path:
    """An sso-session named `keyhall` and one profile per (account id, role name)."""
    aws = home / ".aws"
    aws.mkdir(parents=True, exist_ok=True)
    lines = [
        f"[sso-session {SESSION_NAME}]",
        f"sso_start_url = {url}/start",
        f"sso_region = {REGION}",
        "sso_registration_scopes = sso:account:access",
        "",
    ]
    for name, (account_id, role) in profiles.items():
        lines += [
            f"[profile {name}]",
            f"sso_session = {SESSION_NAME}",
            f"sso_account_id = {account_id}",
            f"sso_role_name = {role}",
            f"region = {REGION}",
            "output = json",
            "",
        ]
    config = aws / "config"
    config.write_text("\n".join(lines))
    return config


def client_env(home: Path, url: str) -> dict[str, str]:
    """The environment for all three clients: a private HOME, endpoints, region; no inherited AWS_*."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYHALL_")) and k != "PYTHONPATH"
    }
    env.update(
        HOME=str(home),
        AWS_CONFIG_FILE=str(home / ".aws" / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / ".aws" / "credentials"),
        AWS_DATA_PATH=str(write_data_path(home / "aws-data-path", url)),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_PAGER="",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_ENDPOINT_URL_SSO=url,
        AWS_ENDPOINT_URL_SSO_OIDC=url,
        AWS_ENDPOINT_URL_STS=url,
        AWS_ENDPOINT_URL_IDENTITYSTORE=url,
        AWS_ENDPOINT_URL_SSO_ADMIN=url,
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED="true",
        BROWSER="true",
    )
    return env
