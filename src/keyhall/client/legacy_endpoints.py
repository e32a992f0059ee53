"""Endpoint rule sets for AWS CLIs older than 2.13, which ignore AWS_ENDPOINT_URL_* and ``[services]``.

Debian 12 ships AWS CLI 2.9. botocore's loader looks in AWS_DATA_PATH first, file by file, so a folder
holding only ``<service>/<api version>/endpoint-rule-set-1.json`` answering Keyhall's URL redirects that CLI
without touching its installation (real-clients.md, recipe A.1). ``keyhall exec`` and ``keyhall env`` point
AWS_DATA_PATH at such a folder for the one process (or shell) they prepare, never globally.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from keyhall.client.paths import AwsPaths

#: ``[services]`` key → botocore data folder (service name / API version)
DATA_FOLDERS = {
    "sso": "sso/2019-06-10",
    "sso_oidc": "sso-oidc/2019-06-10",
    "sts": "sts/2011-06-15",
    "identitystore": "identitystore/2020-06-15",
    "sso_admin": "sso-admin/2020-07-20",
}


def rule_set(url: str) -> dict[str, object]:
    """An endpoint rule set that honours an explicit ``--endpoint-url`` and otherwise answers ``url``."""
    flag = {"required": True, "default": False, "documentation": ".", "type": "Boolean"}
    return {
        "version": "1.0",
        "parameters": {
            "Region": {"builtIn": "AWS::Region", "required": False, "documentation": ".", "type": "String"},
            "UseDualStack": {"builtIn": "AWS::UseDualStack", **flag},
            "UseFIPS": {"builtIn": "AWS::UseFIPS", **flag},
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


def ensure_models(paths: AwsPaths, endpoints: Mapping[str, str]) -> str | None:
    """The folder of rule sets for these endpoints (written once, reused), or None when there are none."""
    known = {key: url for key, url in endpoints.items() if key in DATA_FOLDERS}
    if not known:
        return None
    digest = hashlib.sha256(json.dumps(sorted(known.items())).encode()).hexdigest()[:16]
    root = Path(paths.home) / ".aws" / "keyhall" / "models" / digest
    for key, url in known.items():
        target = root / DATA_FOLDERS[key] / "endpoint-rule-set-1.json"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(rule_set(url)), encoding="utf-8")
    return str(root)


def with_data_path(variables: dict[str, str], models: str | None, current: str | None) -> dict[str, str]:
    """Add AWS_DATA_PATH, keeping any the user already has after ours."""
    if models is None:
        return variables
    return {**variables, "AWS_DATA_PATH": models + (os.pathsep + current if current else "")}
