"""The device authorization grant (RFC 8628) as sso-oidc StartDeviceAuthorization and CreateToken.

The verification page only ever pre-fills the code (``verificationUriComplete`` never approves): the person
must compare the code and press Approve (RFC 8628 §5.4), and sees who asked, from where and when.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from keyhall.clock import Clock
from keyhall.crypto import token_hash
from keyhall.db.tables import device_authorizations, oauth_clients
from keyhall.errors import (
    AuthorizationPending,
    ExpiredToken,
    InvalidGrant,
    OAuthAccessDenied,
    OAuthError,
    SlowDown,
)
from keyhall.oauth.user_codes import display_user_code, new_user_code, normalise_user_code

DEVICE_CODE_SECONDS = 600  # the default; the AWS CLI assumes "currently only 10 minutes"
SLOW_DOWN_STEP = 5  # RFC 8628 §3.5


@dataclass(frozen=True)
class DeviceStart:
    device_code: str
    user_code: str  # XXXX-XXXX
    expires_in: int
    interval: int


@dataclass(frozen=True)
class PendingDevice:
    """What the verification page shows the person before they approve."""

    id: str
    user_code: str
    client_id: str
    client_name: str
    status: str
    created_at: float
    expires_at: float
    initiator_ip: str | None
    initiator_user_agent: str | None


def start(
    conn: Connection,
    clock: Clock,
    *,
    client_id: str,
    start_url: str | None,
    interval: int,
    source_ip: str | None,
    user_agent: str | None,
    lifetime: int = DEVICE_CODE_SECONDS,
) -> DeviceStart:
    now = clock.timestamp()
    device_code = secrets.token_urlsafe(32)
    for _ in range(5):  # a collision among live codes is possible in theory; draw again
        user_code = new_user_code()
        taken = conn.execute(
            select(device_authorizations.c.id).where(device_authorizations.c.user_code == user_code)
        ).first()
        if taken is None:
            break
    conn.execute(
        insert(device_authorizations).values(
            id=str(uuid.uuid4()),
            device_code_hash=token_hash(device_code),
            user_code=user_code,
            client_id=client_id,
            start_url=start_url,
            status="PENDING",
            user_id=None,
            approved_session_id=None,
            interval=interval,
            created_at=now,
            expires_at=now + lifetime,
            last_polled_at=None,
            initiator_ip=source_ip,
            initiator_user_agent=(user_agent or "")[:512] or None,
            approver_ip=None,
            failed_lookups=0,
        )
    )
    return DeviceStart(device_code, display_user_code(user_code), lifetime, interval)


@dataclass(frozen=True)
class ApprovedDevice:
    id: str
    user_id: str
    approved_session_id: str | None
    initiator_ip: str | None  # who started the request (StartDeviceAuthorization)
    approver_ip: str | None  # who approved it in the browser


def poll(conn: Connection, clock: Clock, *, client_id: str, device_code: str) -> ApprovedDevice | OAuthError:
    """One CreateToken poll: the approval exactly once, or the RFC 8628 §3.5 error to answer. Errors are
    returned, not raised, because the poll's bookkeeping (last poll time, slowed interval) must commit."""
    now = clock.timestamp()
    row = conn.execute(
        select(device_authorizations)
        .where(device_authorizations.c.device_code_hash == token_hash(device_code))
        .with_for_update()
    ).first()
    if row is None or row.client_id != client_id:
        return InvalidGrant("Unknown device code")
    if row.status == "REDEEMED":
        return InvalidGrant("The device code was already used")
    if row.expires_at <= now:
        return ExpiredToken("The device code has expired; start again")
    if row.status == "DENIED":
        return OAuthAccessDenied("The request was denied")
    if row.status == "APPROVED":
        conn.execute(
            update(device_authorizations)
            .where(device_authorizations.c.id == row.id)
            .values(status="REDEEMED")
        )
        return ApprovedDevice(row.id, row.user_id, row.approved_session_id, row.initiator_ip, row.approver_ip)
    too_soon = row.last_polled_at is not None and now - row.last_polled_at < row.interval
    values: dict[str, object] = {"last_polled_at": now}
    if too_soon:
        values["interval"] = row.interval + SLOW_DOWN_STEP
    conn.execute(update(device_authorizations).where(device_authorizations.c.id == row.id).values(**values))
    if too_soon:
        return SlowDown(f"Poll at most every {row.interval + SLOW_DOWN_STEP} seconds")
    return AuthorizationPending("The request has not been approved yet")


def find_pending(conn: Connection, clock: Clock, user_code_text: str) -> PendingDevice | None:
    """A live, pending request by the code the person typed (case and dashes ignored)."""
    code = normalise_user_code(user_code_text)
    if code is None:
        return None
    row = conn.execute(
        select(device_authorizations, oauth_clients.c.name.label("client_name"))
        .join(oauth_clients, oauth_clients.c.id == device_authorizations.c.client_id)
        .where(device_authorizations.c.user_code == code)
    ).first()
    if row is None or row.status != "PENDING" or row.expires_at <= clock.timestamp():
        return None
    return PendingDevice(
        row.id,
        display_user_code(row.user_code),
        row.client_id,
        row.client_name,
        row.status,
        row.created_at,
        row.expires_at,
        row.initiator_ip,
        row.initiator_user_agent,
    )


def decide(
    conn: Connection,
    clock: Clock,
    *,
    device_id: str,
    approve: bool,
    user_id: str,
    browser_session_id: str,
    approver_ip: str | None,
) -> bool:
    """Approve or deny a pending request; False if it is no longer pending (decided, expired)."""
    result = conn.execute(
        update(device_authorizations)
        .where(
            device_authorizations.c.id == device_id,
            device_authorizations.c.status == "PENDING",
            device_authorizations.c.expires_at > clock.timestamp(),
        )
        .values(
            status="APPROVED" if approve else "DENIED",
            user_id=user_id,
            approved_session_id=browser_session_id,
            approver_ip=approver_ip,
        )
    )
    return result.rowcount == 1
