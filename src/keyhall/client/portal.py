"""The SSO portal API, the client side: ListAccounts, ListAccountRoles, GetRoleCredentials, Logout.

Unsigned rest-json at the root of the Keyhall URL; the bearer token travels in ``x-amz-sso_bearer_token``
(aws-wire.md §1.1 "sso operations", real-clients.md §2.2). ``expiration`` is epoch milliseconds; list
operations page with ``next_token``/``max_result`` and this client follows ``nextToken`` to the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from keyhall.client._http import json_or_raise, make_client, require_int, require_str
from keyhall.client.credential_cache import RoleCredentials
from keyhall.client.errors import ServiceError

BEARER_HEADER = "x-amz-sso_bearer_token"
#: Stop following nextToken after this many pages: a server that always answers with one is broken.
MAX_PAGES = 1000


@dataclass(frozen=True)
class AccountInfo:
    account_id: str
    account_name: str
    email_address: str | None = None
    kind: str = "local"  # local (Keyhall's own STS) or aws (a real account)


@dataclass(frozen=True)
class RoleInfo:
    role_name: str
    account_id: str


class PortalClient:
    def __init__(self, base_url: str, *, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = make_client(self.base_url, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PortalClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _get(self, path: str, access_token: str, params: dict[str, str]) -> dict[str, Any]:
        response = self._http.get(path, params=params, headers={BEARER_HEADER: access_token})
        return json_or_raise(response, oauth=False)

    def _pages(
        self, path: str, access_token: str, params: dict[str, str], list_key: str, page_size: int | None
    ) -> Iterator[dict[str, Any]]:
        token: str | None = None
        for _ in range(MAX_PAGES):
            query = dict(params)
            if page_size is not None:
                query["max_result"] = str(page_size)
            if token:
                query["next_token"] = token
            body = self._get(path, access_token, query)
            items = body.get(list_key) or []
            if not isinstance(items, list):
                raise ServiceError(f"{path}: {list_key!r} is not a list", status=200)
            yield from (item for item in items if isinstance(item, dict))
            next_token = body.get("nextToken")
            if not isinstance(next_token, str) or not next_token:
                return
            token = next_token
        raise ServiceError(f"{path}: more than {MAX_PAGES} pages; giving up", status=200)

    def list_accounts(self, access_token: str, *, page_size: int | None = None) -> list[AccountInfo]:
        """ListAccounts: ``GET /assignment/accounts``, every page."""
        return [
            AccountInfo(
                account_id=require_str(item, "accountId", operation="ListAccounts"),
                account_name=str(item.get("accountName") or ""),
                email_address=item.get("emailAddress") if isinstance(item.get("emailAddress"), str) else None,
                kind="aws" if item.get("keyhallAccountKind") == "aws" else "local",
            )
            for item in self._pages("/assignment/accounts", access_token, {}, "accountList", page_size)
        ]

    def list_account_roles(
        self, access_token: str, *, account_id: str, page_size: int | None = None
    ) -> list[RoleInfo]:
        """ListAccountRoles: ``GET /assignment/roles?account_id=``, every page."""
        return [
            RoleInfo(
                role_name=require_str(item, "roleName", operation="ListAccountRoles"),
                account_id=str(item.get("accountId") or account_id),
            )
            for item in self._pages(
                "/assignment/roles", access_token, {"account_id": account_id}, "roleList", page_size
            )
        ]

    def get_role_credentials(self, access_token: str, *, account_id: str, role_name: str) -> RoleCredentials:
        """GetRoleCredentials: ``GET /federation/credentials?role_name=&account_id=``."""
        body = self._get(
            "/federation/credentials", access_token, {"role_name": role_name, "account_id": account_id}
        )
        creds = body.get("roleCredentials")
        op = "GetRoleCredentials"
        if not isinstance(creds, dict):
            raise ServiceError(f"{op}: the response has no 'roleCredentials'", status=200)
        return RoleCredentials(
            access_key_id=require_str(creds, "accessKeyId", operation=op),
            secret_access_key=require_str(creds, "secretAccessKey", operation=op),
            session_token=require_str(creds, "sessionToken", operation=op),
            expiration=require_int(creds, "expiration", operation=op) / 1000.0,
            account_id=account_id,
        )

    def logout(self, access_token: str) -> None:
        """Logout: ``POST /logout`` with no body; ends the server-side session of this token."""
        response = self._http.post("/logout", headers={BEARER_HEADER: access_token})
        json_or_raise(response, oauth=False)
