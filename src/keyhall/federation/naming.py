"""Names and ARNs of what Keyhall provisions in a real AWS account, computed the same way everywhere.

A role is ``/keyhall/KeyhallReserved_<PermissionSet>_<16 hex>``, in the style of IAM Identity Center's
``/aws-reserved/sso.amazonaws.com/AWSReservedSSO_<PermissionSet>_<16 hex>``; the suffix is derived from
(instance, account, permission set), so the server and `keyhall aws apply` agree without storing it.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

ROLE_PATH = "/keyhall/"
ROLE_PREFIX = "KeyhallReserved_"
MAX_ROLE_NAME = 64  # IAM's limit
PARTITIONS = ("aws", "aws-us-gov", "aws-cn")
SIGNIN_HOSTS = {
    "aws": "signin.aws.amazon.com",
    "aws-us-gov": "signin.amazonaws-us-gov.com",
    "aws-cn": "signin.amazonaws.cn",
}
CONSOLE_HOSTS = {
    "aws": "console.aws.amazon.com",
    "aws-us-gov": "console.amazonaws-us-gov.com",
    "aws-cn": "console.amazonaws.cn",
}


def role_suffix(instance_id: str, account_id: str, permission_set_id: str) -> str:
    digest = hashlib.sha256(f"{instance_id}\x00{account_id}\x00{permission_set_id}".encode()).hexdigest()
    return digest[:16]


def role_name(permission_set_name: str, instance_id: str, account_id: str, permission_set_id: str) -> str:
    """``KeyhallReserved_<name>_<16 hex>``; a 32-character permission set name is shortened by one
    character to stay within IAM's 64 (the suffix keeps the name unique)."""
    suffix = role_suffix(instance_id, account_id, permission_set_id)
    room = MAX_ROLE_NAME - len(ROLE_PREFIX) - 1 - len(suffix)
    return f"{ROLE_PREFIX}{permission_set_name[:room]}_{suffix}"


def role_arn(partition: str, account_id: str, name: str) -> str:
    return f"arn:{partition}:iam::{account_id}:role{ROLE_PATH}{name}"


def saml_provider_arn(partition: str, account_id: str, provider_name: str) -> str:
    return f"arn:{partition}:iam::{account_id}:saml-provider/{provider_name}"


def oidc_provider_arn(partition: str, account_id: str, issuer_url: str) -> str:
    """IAM names an OIDC provider after its issuer URL without the scheme."""
    parts = urlsplit(issuer_url)
    return f"arn:{partition}:iam::{account_id}:oidc-provider/{parts.netloc}{parts.path.rstrip('/')}"


def saml_audience(partition: str) -> str:
    """The SAML audience and recipient AWS sign-in expects (``SAML:aud`` in trust policies)."""
    return f"https://{SIGNIN_HOSTS[partition]}/saml"


def sts_endpoint(partition: str, region: str) -> str:
    suffix = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return f"https://sts.{region}.{suffix}"
