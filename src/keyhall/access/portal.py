"""The access portal API (sso ListAccounts, ListAccountRoles, GetRoleCredentials, Logout).

Access is evaluated on every call from current data: a disabled user, an ended session, a removed
assignment or membership stops new credentials at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection, select
from starlette.concurrency import run_in_threadpool

from keyhall.access import hot_path, store
from keyhall.access.models import Account
from keyhall.audit.events import Actor, AuditEvent
from keyhall.audit.writer import AuditWriter
from keyhall.clock import Clock
from keyhall.db.database import Database
from keyhall.db.fast import Cursor
from keyhall.db.tables import account_assignments, accounts, permission_sets
from keyhall.directory.models import name_key
from keyhall.errors import AccessDeniedError, KeyhallError, UnauthorizedError, ValidationError
from keyhall.ids import is_account_id
from keyhall.instance import require_instance
from keyhall.oauth.tokens import TokenContext, resolve_access_token
from keyhall.pagination import Page, check_limit, decode_token, encode_token
from keyhall.signin.sessions import SessionService

SOURCE = "sso.amazonaws.com"
#: Account kinds whose issuer calls out over the network (aws: AWS STS). Their issuer is never called inside a
#: database transaction: on SQLite a write transaction holds the one write lock of the whole database.
ISSUED_OUTSIDE_TRANSACTIONS = frozenset({"aws"})

log = logging.getLogger("keyhall.portal")


class ForbiddenError(AccessDeniedError):
    """What the AWS portal answers for a role the caller is not assigned ("No access")."""

    aws_code = "ForbiddenException"


class FederationNotConfiguredError(KeyhallError):
    status = 400
    aws_code = "InvalidRequestException"


class CredentialIssueError(KeyhallError):
    """An issuer that calls out (AWS STS) was refused or got no answer; ``upstream_code`` is what the upstream
    said (e.g. STS ``AccessDenied``), recorded as the audit record's error code."""

    status = 400
    aws_code = "InvalidRequestException"
    query_type = "Sender"

    def __init__(self, message: str, *, upstream_code: str | None = None) -> None:
        super().__init__(message)
        self.upstream_code = upstream_code


@dataclass(frozen=True)
class IssuedRoleCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: float  # epoch seconds
    #: non-secret facts for the audit record (e.g. the role ARN STS assumed); None for local accounts
    details: dict[str, str] | None = None


@dataclass(frozen=True)
class IssueRequest:
    """What an issuer needs to mint one set of role credentials (no more, so the hot path stays lean)."""

    instance_id: str
    account_id: str
    permission_set_id: str
    permission_set_name: str
    user_id: str
    user_name: str
    session_id: str
    duration_seconds: int
    account_kind: str = "local"


@dataclass(frozen=True)
class _Checked:
    """A GetRoleCredentials request that passed its checks: what to mint, with which issuer, for whom."""

    request: IssueRequest
    issuer: CredentialIssuer
    user: Actor  # the audit record's actor: the signed-in user, from the caller's address
    access_token: str
    role_key: str  # the permission set's name key, for the re-check after a network issuer
    now: float


def grc_audit_event(request: IssueRequest, credentials: IssuedRoleCredentials | None = None) -> AuditEvent:
    """The GetRoleCredentials audit record, whichever way the credentials were asked for (API or browser);
    ``credentials`` once issued (their access key id, never a secret)."""
    event = AuditEvent(
        SOURCE,
        "GetRoleCredentials",
        resource_type="Account",
        resource_id=request.account_id,
        request_parameters={"accountId": request.account_id, "roleName": request.permission_set_name},
        additional_data={"SessionId": request.session_id, "PermissionSetId": request.permission_set_id},
    )
    if credentials is not None:
        event.response_elements = {
            "accessKeyId": credentials.access_key_id,
            "expiration": credentials.expiration,
        }
    return event


class CredentialIssuer(Protocol):
    """Mints credentials for one kind of account (local: Keyhall's STS; aws: federation)."""

    def issue(self, request: IssueRequest, *, now: float) -> IssuedRoleCredentials: ...


class PortalService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        audit: AuditWriter,
        sessions: SessionService,
        issuers: dict[str, CredentialIssuer],
    ) -> None:
        self._db = db
        self._clock = clock
        self._audit = audit
        self._sessions = sessions
        self._issuers = issuers
        self._instance_id: str | None = None  # never changes: read once per process

    def issuer_for(self, kind: str) -> CredentialIssuer | None:
        """The issuer GetRoleCredentials uses for an account kind (the portal pages mint with the same)."""
        return self._issuers.get(kind)

    def authenticate(self, conn: Connection, access_token: str | None) -> TokenContext:
        context = resolve_access_token(conn, self._clock, access_token or "")
        if context is None:
            raise UnauthorizedError("Session token not found or invalid")
        return context

    def list_accounts(
        self, access_token: str | None, *, limit: int | None, next_token: str | None
    ) -> Page[Account]:
        size = check_limit(limit, maximum=100, default=20)
        after = decode_token(next_token)
        with self._db.read() as conn:
            context = self.authenticate(conn, access_token)
            query = (
                select(accounts)
                .where(
                    accounts.c.status == "ACTIVE",
                    accounts.c.id.in_(
                        select(account_assignments.c.account_id).where(store.principal_match(context.user_id))
                    ),
                )
                .order_by(accounts.c.id)
                .limit(size + 1)
            )
            if after:
                query = query.where(accounts.c.id > after)
            items = [store.account_from_row(r) for r in conn.execute(query)]
        more = len(items) > size
        items = items[:size]
        return Page(items, encode_token(items[-1].id) if more else None)

    def list_account_roles(
        self, access_token: str | None, account_id: str | None, *, limit: int | None, next_token: str | None
    ) -> Page[str]:
        if not account_id or not is_account_id(account_id):
            raise ValidationError("account_id must be a 12-digit account id")
        size = check_limit(limit, maximum=100, default=20)
        after = decode_token(next_token)
        with self._db.read() as conn:
            context = self.authenticate(conn, access_token)
            query = (
                select(permission_sets.c.name, permission_sets.c.name_key)
                .join(account_assignments, account_assignments.c.permission_set_id == permission_sets.c.id)
                .join(accounts, accounts.c.id == account_assignments.c.account_id)
                .where(
                    account_assignments.c.account_id == account_id,
                    accounts.c.status == "ACTIVE",
                    store.principal_match(context.user_id),
                )
                .distinct()
                .order_by(permission_sets.c.name_key)
                .limit(size + 1)
            )
            if after:
                query = query.where(permission_sets.c.name_key > after)
            rows = list(conn.execute(query))
        more = len(rows) > size
        rows = rows[:size]
        return Page([r.name for r in rows], encode_token(rows[-1].name_key) if more else None)

    def get_role_credentials(
        self, actor: Actor, access_token: str | None, account_id: str | None, role_name: str | None
    ) -> IssuedRoleCredentials:
        """GetRoleCredentials with its audit record committed in a transaction of its own, for callers off
        the event loop; the HTTP API uses ``get_role_credentials_async`` (group commit)."""
        checked = self._check(actor, access_token, account_id, role_name, on_event_loop=False)
        if checked.request.account_kind in ISSUED_OUTSIDE_TRANSACTIONS:
            return self._issue_outside_transaction(checked)
        credentials, record = self._mint(checked)
        fast = self._db.fast
        with fast.write() as cursor:
            hot_path.insert_audit(cursor, fast.is_sqlite, [record])
        return credentials

    async def get_role_credentials_async(
        self, actor: Actor, access_token: str | None, account_id: str | None, role_name: str | None
    ) -> IssuedRoleCredentials:
        """The hot path, as the SDKs call it: the token and entitlement are read (no lock), the credentials
        minted, and the audit record group-committed (keyhall.db.group_commit); the credentials are
        returned only once their record is committed. An issuer that calls out over the network (``aws``)
        runs on a worker thread, so the event loop goes on serving others while STS answers."""
        checked = self._check(actor, access_token, account_id, role_name, on_event_loop=True)
        if checked.request.account_kind in ISSUED_OUTSIDE_TRANSACTIONS:
            return await run_in_threadpool(self._issue_outside_transaction, checked)
        credentials, record = self._mint(checked)
        await self._db.fast.write_grouped(hot_path.AUDIT, record)
        return credentials

    def _check(
        self,
        actor: Actor,
        access_token: str | None,
        account_id: str | None,
        role_name: str | None,
        *,
        on_event_loop: bool,
    ) -> _Checked:
        """Who is asking and for what they are entitled, read from current data on the raw driver
        (keyhall.access.hot_path), in autocommit: a disabled user, an ended session, a removed assignment
        or membership committed before this read refuses the request. An event loop reads on its own
        long-lived connection; any other thread borrows one from the pool."""
        if not account_id or not is_account_id(account_id):
            raise ValidationError("account_id must be a 12-digit account id")
        if not role_name or len(role_name) > 32:
            raise ValidationError("role_name must name a permission set")
        instance_id = self._instance_id or self._load_instance_id()
        fast = self._db.fast
        now = self._clock.timestamp()
        role_key = name_key(role_name)

        def lookup(cursor: Cursor) -> tuple[hot_path.TokenOwner | None, hot_path.Entitlement | None]:
            owner = hot_path.token_owner(cursor, fast.is_sqlite, access_token or "", now)
            if owner is None:
                return None, None
            return owner, hot_path.entitlement(cursor, fast.is_sqlite, owner.user_id, account_id, role_key)

        if on_event_loop:
            owner, entitled = fast.run_read(lookup)
        else:
            with fast.read() as cursor:
                owner, entitled = lookup(cursor)
        if owner is None:
            raise UnauthorizedError("Session token not found or invalid")
        if entitled is None:
            raise ForbiddenError("No access")
        issuer = self._issuers.get(entitled.account_kind)
        if issuer is None:
            raise FederationNotConfiguredError(
                f"Account {account_id} is a real AWS account and federation is not configured"
                " on this instance"
            )
        request = IssueRequest(
            instance_id=instance_id,
            account_id=account_id,
            permission_set_id=entitled.permission_set_id,
            permission_set_name=entitled.permission_set_name,
            user_id=owner.user_id,
            user_name=owner.user_name,
            session_id=owner.session_id,
            duration_seconds=entitled.session_seconds,
            account_kind=entitled.account_kind,
        )
        user = Actor(
            type="IdentityCenterUser",
            id=owner.user_id,
            name=owner.user_name,
            source_ip=actor.source_ip,
            user_agent=actor.user_agent,
            request_id=actor.request_id,
        )
        return _Checked(request, issuer, user, access_token or "", role_key, now)

    def _mint(self, checked: _Checked) -> tuple[IssuedRoleCredentials, hot_path.AuditRecord]:
        credentials = checked.issuer.issue(checked.request, now=checked.now)
        event = grc_audit_event(checked.request, credentials)
        return credentials, hot_path.audit_record(checked.user, event, checked.now)

    def _issue_outside_transaction(self, checked: _Checked) -> IssuedRoleCredentials:
        """GetRoleCredentials for an issuer that calls out (AWS STS): the call happens outside any
        transaction. A short write transaction then re-checks the token and the entitlement (either may
        have ended while STS answered) and writes the audit record; if that fails, the credentials are not
        returned. A refusal is audited too, with the upstream error code."""
        request, user = checked.request, checked.user
        event = grc_audit_event(request)
        fast = self._db.fast
        try:
            credentials = checked.issuer.issue(request, now=self._clock.timestamp())
        except Exception as error:
            if isinstance(error, CredentialIssueError):
                event.error_code = error.upstream_code or error.aws_code
            elif isinstance(error, KeyhallError):
                event.error_code = error.aws_code
            else:
                log.exception("credential issuer failed", exc_info=error)
                event.error_code = "InternalFailure"
            event.additional_data = {**(event.additional_data or {}), "errorMessage": str(error)[:1024]}
            with fast.write() as cursor:
                hot_path.record_audit(cursor, fast.is_sqlite, user, event, self._clock.timestamp())
            raise
        now = self._clock.timestamp()
        with fast.write() as cursor:
            owner = hot_path.token_owner(cursor, fast.is_sqlite, checked.access_token, now)
            if owner is None or owner.session_id != request.session_id:
                raise UnauthorizedError("Session token not found or invalid")
            entitled = hot_path.entitlement(
                cursor, fast.is_sqlite, owner.user_id, request.account_id, checked.role_key
            )
            if entitled is None or entitled.permission_set_id != request.permission_set_id:
                raise ForbiddenError("No access")
            event.response_elements = {
                "accessKeyId": credentials.access_key_id,
                "expiration": credentials.expiration,
            }
            event.additional_data = {**(event.additional_data or {}), **(credentials.details or {})}
            hot_path.record_audit(cursor, fast.is_sqlite, user, event, now)
        return credentials

    def _load_instance_id(self) -> str:
        with self._db.read() as conn:
            self._instance_id = require_instance(conn).id
        return self._instance_id

    def logout(self, actor: Actor, access_token: str | None) -> None:
        with self._db.write() as conn:
            context = self.authenticate(conn, access_token)
            user_actor = Actor(
                type="IdentityCenterUser",
                id=context.user_id,
                name=context.user_name,
                source_ip=actor.source_ip,
                user_agent=actor.user_agent,
                request_id=actor.request_id,
            )
            self._sessions.revoke(conn, user_actor, context.session_id, reason="Logout")
            self._audit.record(
                conn,
                user_actor,
                AuditEvent(SOURCE, "Logout", resource_type="Session", resource_id=context.session_id),
            )
