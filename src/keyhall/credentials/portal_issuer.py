"""Connects the portal's GetRoleCredentials to Keyhall's own STS for accounts of kind ``local``."""

from __future__ import annotations

import functools

from keyhall.access.portal import IssuedRoleCredentials, IssueRequest
from keyhall.credentials.local import LocalCredentialIssuer, reserved_role_name


@functools.lru_cache(maxsize=65536)
def _role_name(permission_set_name: str, instance_id: str, account_id: str, permission_set_id: str) -> str:
    """Role names never change for an (instance, account, permission set): compute each once."""
    return reserved_role_name(permission_set_name, instance_id, account_id, permission_set_id)


class LocalPortalIssuer:
    def __init__(self, issuer: LocalCredentialIssuer) -> None:
        self.sts = issuer

    def issue(self, request: IssueRequest, *, now: float) -> IssuedRoleCredentials:
        role_name = _role_name(
            request.permission_set_name, request.instance_id, request.account_id, request.permission_set_id
        )
        credentials, _ = self.sts.issue(
            account_id=request.account_id,
            role_name=role_name,
            permission_set_id=request.permission_set_id,
            user_id=request.user_id,
            user_name=request.user_name,
            session_id=request.session_id,
            now=now,
            duration_seconds=request.duration_seconds,
        )
        return IssuedRoleCredentials(
            access_key_id=credentials.access_key_id,
            secret_access_key=credentials.secret_access_key,
            session_token=credentials.session_token,
            expiration=credentials.expiration,
        )
