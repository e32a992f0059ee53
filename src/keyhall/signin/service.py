"""Sign-in as a sequence of steps (password, then TOTP when enrolled, then a forced password change), with
throttling, single-use TOTP codes and CloudTrail-style audit records, all on the caller's transaction.

Nothing here raises for a wrong credential: a refusal is returned as a ``SignInStep``, so the failure
counters and the audit records it wrote commit with the request (security.md §0.8, §0.15, ASVS 16.3.1).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, case, delete, insert, select, update

from keyhall.audit.events import Actor, AuditEvent, mask_user_name
from keyhall.audit.writer import AuditWriter
from keyhall.clock import Clock
from keyhall.crypto import SecretBox, sha256_hex
from keyhall.db.tables import rate_limits, totp_devices
from keyhall.directory import store as directory_store
from keyhall.directory.models import User, name_key
from keyhall.directory.service import DirectoryService
from keyhall.errors import AccessDeniedError, ServiceUnavailableError
from keyhall.instance import require_instance
from keyhall.keys import derive_key
from keyhall.signin import totp
from keyhall.signin.passwords import PasswordHasher, check_password
from keyhall.signin.sessions import PortalSession, SessionService

SOURCE = "signin.amazonaws.com"
PASSWORD = "PASSWORD"  # noqa: S105 - a CloudTrail CredentialType name, not a password
TOTP = "TOTP"

#: What a person sees after any wrong name, wrong password, unknown or disabled user: the same words.
GENERIC_FAILURE = "The user name or password is incorrect."
TOTP_FAILURE = "The code is incorrect or was already used."
#: Longest user name or password we look at; longer input is treated as wrong (after the same work).
_MAX_INPUT = 1024

StepKind = Literal["refused", "totp", "change_password", "done"]


def too_many_attempts(seconds: int) -> str:
    return f"Too many attempts, try again in {seconds} seconds."


@dataclass(frozen=True)
class SignInStep:
    """Where a sign-in stands: refused (with a message safe to show), or the next step to take."""

    next: StepKind
    workflow_id: str
    user_id: str | None = None
    mfa_method: str | None = None
    message: str | None = None
    retry_after: int | None = None

    @property
    def refused(self) -> bool:
        return self.next == "refused"


@dataclass(frozen=True)
class TotpEnrolment:
    """A new, unconfirmed TOTP device and what the person's authenticator app needs (shown once)."""

    device_id: str
    secret_base32: str
    provisioning_uri: str
    secret: bytes = field(repr=False)


# ---- throttling ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThrottlePolicy:
    """Fixed-window failure counting. From ``threshold`` failures within ``window_seconds`` on, each further
    failure blocks for twice as long as the last (2, 4, 8 … seconds, capped), or, without ``escalate``,
    until the window ends. A block always ends: there is no permanent lockout (ASVS 6.1.1/6.3.1)."""

    threshold: int
    window_seconds: float = 900.0
    max_delay_seconds: float = 900.0
    escalate: bool = True

    def delay(self, failures: int, window_start: float, now: float) -> float:
        if failures < self.threshold:
            return 0.0
        if not self.escalate:
            return max(0.0, window_start + self.window_seconds - now)
        return float(min(2 ** (failures - self.threshold + 1), self.max_delay_seconds))


#: 5 failures per account in 15 minutes, then 2 s, 4 s … 15 min: at most ~14 guesses per 15 minutes, well
#: under ASVS 4.0.3 2.2.1's 100 an hour.
ACCOUNT_POLICY = ThrottlePolicy(threshold=5)
#: Looser per address, so people behind one NAT do not block each other, but a spray across accounts stops.
ADDRESS_POLICY = ThrottlePolicy(threshold=20)
#: RFC 8628 §5.1: user-code guessing; about 10 wrong codes per address per 15 minutes, then wait.
DEVICE_LOOKUP_POLICY = ThrottlePolicy(threshold=10, escalate=False)


class Throttle:
    """Failure counters in ``rate_limits``, shared by every server process.

    Race-proof (Keycloak CVE-2024-4629): a failure is counted by one UPDATE … RETURNING, and a check made
    with ``lock=True`` holds the row (FOR UPDATE on PostgreSQL; SQLite write transactions are already
    serial) until the transaction ends, so concurrent attempts are decided one after another.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def wait(self, conn: Connection, bucket: str, *, lock: bool = False) -> int:
        """Seconds until ``bucket`` may try again; 0 when it may now."""
        if lock:
            self._ensure(conn, bucket)
        query = select(rate_limits.c.blocked_until).where(rate_limits.c.bucket == bucket)
        if lock:
            query = query.with_for_update()
        blocked_until = conn.execute(query).scalar()
        now = self._clock.timestamp()
        if blocked_until is None or float(blocked_until) <= now:
            return 0
        return max(1, math.ceil(float(blocked_until) - now))

    def fail(self, conn: Connection, bucket: str, policy: ThrottlePolicy) -> int:
        """Count one failure; returns the seconds the bucket is now blocked for (0 if not blocked)."""
        now = self._clock.timestamp()
        self._ensure(conn, bucket)
        expired = rate_limits.c.window_start <= now - policy.window_seconds
        count, window_start = conn.execute(
            update(rate_limits)
            .where(rate_limits.c.bucket == bucket)
            .values(
                count=case((expired, 1), else_=rate_limits.c.count + 1),
                window_start=case((expired, now), else_=rate_limits.c.window_start),
            )
            .returning(rate_limits.c.count, rate_limits.c.window_start)
        ).one()
        delay = policy.delay(int(count), float(window_start), now)
        if delay <= 0:
            return 0
        conn.execute(
            update(rate_limits).where(rate_limits.c.bucket == bucket).values(blocked_until=now + delay)
        )
        return max(1, math.ceil(delay))

    def clear(self, conn: Connection, bucket: str) -> None:
        conn.execute(
            update(rate_limits)
            .where(rate_limits.c.bucket == bucket)
            .values(count=0, window_start=self._clock.timestamp(), blocked_until=None)
        )

    def _ensure(self, conn: Connection, bucket: str) -> None:
        """Create the bucket's row if it is missing, without failing when another request just did."""
        values = {
            "bucket": bucket,
            "window_start": self._clock.timestamp(),
            "count": 0,
            "blocked_until": None,
        }
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            conn.execute(
                pg_insert(rate_limits).values(**values).on_conflict_do_nothing(index_elements=["bucket"])
            )
        elif conn.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            conn.execute(
                sqlite_insert(rate_limits).values(**values).on_conflict_do_nothing(index_elements=["bucket"])
            )
        else:  # pragma: no cover - only SQLite and PostgreSQL are supported
            raise ServiceUnavailableError(f"Unsupported database {conn.dialect.name!r}")


def account_bucket(user_name: str) -> str:
    """Per typed name, known or not (so throttling tells nothing about which names exist); hashed so a
    password typed into the name field is never stored."""
    return f"signin:account:{sha256_hex(name_key(user_name))[:40]}"


def address_bucket(prefix: str, source_ip: str | None) -> str | None:
    return f"{prefix}:ip:{source_ip[:64]}" if source_ip else None


# ---- the service -----------------------------------------------------------------------------------


class SignInService:
    """Password and TOTP verification, forced password change, TOTP enrolment and the browser session."""

    def __init__(
        self,
        clock: Clock,
        audit: AuditWriter,
        hasher: PasswordHasher,
        sessions: SessionService,
        *,
        master_key: bytes | None,
    ) -> None:
        self._clock = clock
        self._audit = audit
        self._hasher = hasher
        self._sessions = sessions
        self._directory = DirectoryService(clock, audit)
        self._totp_box = SecretBox(derive_key(master_key, "totp")) if master_key is not None else None
        self.throttle = Throttle(clock)

    # ---- step 1: password ----------------------------------------------------------------------

    def verify_password(self, conn: Connection, user_name: str, password: str, *, actor: Actor) -> SignInStep:
        """Check a user name and password. Unknown, password-less and disabled users cost the same argon2
        run as a wrong password and get the same answer."""
        workflow_id = str(uuid.uuid4())
        typed = user_name.strip()[:_MAX_INPUT]
        masked = mask_user_name(typed)
        own_bucket = account_bucket(typed)
        ip_bucket = address_bucket("signin", actor.source_ip)
        wait = self._wait(conn, own_bucket, ip_bucket)
        if wait:
            self._record(
                conn, actor, "CredentialVerification", workflow_id, PASSWORD, masked, False, "Throttled"
            )
            return SignInStep("refused", workflow_id, message=too_many_attempts(wait), retry_after=wait)

        user = directory_store.get_user_by_name_key(conn, name_key(typed)) if typed else None
        stored = directory_store.get_password_hash(conn, user.id) if user is not None else None
        if len(password) > _MAX_INPUT:
            self._hasher.verify(None, password[:_MAX_INPUT])
            matches = False
        else:
            matches = self._hasher.verify(stored, password)
        if user is None or not matches or not user.enabled:
            self._fail(conn, own_bucket, ip_bucket)
            self._record(conn, actor, "CredentialChallenge", workflow_id, PASSWORD, masked, True)
            self._record(
                conn,
                actor,
                "CredentialVerification",
                workflow_id,
                PASSWORD,
                masked,
                False,
                "AuthenticationFailed",
            )
            return SignInStep("refused", workflow_id, message=GENERIC_FAILURE)

        assert stored is not None
        if self._hasher.needs_rehash(stored):
            directory_store.update_user(conn, user.id, {"password_hash": self._hasher.hash(password)})
        who = _as_user(actor, user)
        self._record(conn, who, "CredentialChallenge", workflow_id, PASSWORD, user.user_name, True)
        self._record(conn, who, "CredentialVerification", workflow_id, PASSWORD, user.user_name, True)
        if require_instance(conn).mfa_policy != "off" and self.has_totp(conn, user.id):
            self._record(conn, who, "CredentialChallenge", workflow_id, TOTP, user.user_name, True)
            return SignInStep("totp", workflow_id, user.id)
        return SignInStep(_after_factors(user), workflow_id, user.id)

    # ---- step 2: TOTP --------------------------------------------------------------------------

    def verify_totp(
        self, conn: Connection, user_id: str, code: str, *, actor: Actor, workflow_id: str
    ) -> SignInStep:
        """Check a TOTP code from any of the user's confirmed devices. The matched time step is stored with a
        guard (``last_used_step < step``), so of two concurrent requests with one code only one succeeds,
        and a code accepted once is refused afterwards (ASVS 6.5.1)."""
        user = directory_store.get_user(conn, user_id)
        if user is None or not user.enabled:
            return SignInStep("refused", workflow_id, message=GENERIC_FAILURE)
        who = _as_user(actor, user)
        masked_who = Actor(who.type, who.id, None, who.source_ip, who.user_agent, who.request_id)
        masked = mask_user_name(user.user_name)
        own_bucket = account_bucket(user.user_name)
        ip_bucket = address_bucket("signin", actor.source_ip)
        wait = self._wait(conn, own_bucket, ip_bucket)
        if wait:
            self._record(
                conn, masked_who, "CredentialVerification", workflow_id, TOTP, masked, False, "Throttled"
            )
            return SignInStep("refused", workflow_id, message=too_many_attempts(wait), retry_after=wait)

        if self._accept_totp(conn, user.id, code[:64]) is None:
            self._fail(conn, own_bucket, ip_bucket)
            self._record(
                conn,
                masked_who,
                "CredentialVerification",
                workflow_id,
                TOTP,
                masked,
                False,
                "AuthenticationFailed",
            )
            return SignInStep("refused", workflow_id, user.id, message=TOTP_FAILURE)
        self._record(conn, who, "CredentialVerification", workflow_id, TOTP, user.user_name, True)
        return SignInStep(_after_factors(user), workflow_id, user.id, mfa_method="totp")

    def has_totp(self, conn: Connection, user_id: str) -> bool:
        found = conn.execute(
            select(totp_devices.c.id).where(
                totp_devices.c.user_id == user_id, totp_devices.c.confirmed.is_(True)
            )
        ).first()
        return found is not None

    def _accept_totp(self, conn: Connection, user_id: str, code: str) -> int | None:
        now = self._clock.timestamp()
        devices = conn.execute(
            select(totp_devices.c.id, totp_devices.c.secret_encrypted, totp_devices.c.last_used_step).where(
                totp_devices.c.user_id == user_id, totp_devices.c.confirmed.is_(True)
            )
        ).all()
        for device in devices:
            secret = self._box().decrypt(bytes(device.secret_encrypted), context=device.id.encode())
            step = totp.verify_totp(secret, code, now=now, last_used_step=device.last_used_step)
            if step is not None and self._claim_step(conn, device.id, step):
                return step
        return None

    def _claim_step(self, conn: Connection, device_id: str, step: int) -> bool:
        claimed = conn.execute(
            update(totp_devices)
            .where(
                totp_devices.c.id == device_id,
                (totp_devices.c.last_used_step.is_(None)) | (totp_devices.c.last_used_step < step),
            )
            .values(last_used_step=step)
        )
        return claimed.rowcount == 1

    # ---- step 3: forced password change --------------------------------------------------------

    def change_password(
        self, conn: Connection, user_id: str, new_password: str, *, actor: Actor
    ) -> list[str]:
        """Set a new password that meets the policy (ASVS 6.2); returns the problems, empty on success.

        Only call this once every factor has been verified (the forced change after an administrator's
        reset is step 3 of the sign-in, ASVS 6.4.3)."""
        user = directory_store.get_user(conn, user_id)
        if user is None or not user.enabled:
            raise AccessDeniedError("This user cannot sign in")
        problems = check_password(new_password, user_name=user.user_name, display_name=user.display_name)
        if problems:
            return problems
        current = directory_store.get_password_hash(conn, user.id)
        if current is not None and self._hasher.verify(current, new_password):
            return ["Choose a password different from the current one."]
        self._directory.set_password_hash(
            conn, _as_user(actor, user), user.id, self._hasher.hash(new_password), must_change=False
        )
        return []

    # ---- done: the browser session -------------------------------------------------------------

    def create_browser_session(
        self, conn: Connection, user_id: str, *, actor: Actor, workflow_id: str, mfa_method: str | None
    ) -> tuple[PortalSession, str]:
        """The portal session of a completed sign-in and its cookie value (returned once); writes
        ``UserAuthentication`` and clears the account's failure counter."""
        user = directory_store.get_user(conn, user_id)
        if user is None or not user.enabled:
            raise AccessDeniedError("This user cannot sign in")
        instance = require_instance(conn)
        who = _as_user(actor, user)
        session, cookie = self._sessions.create(
            conn,
            user_id=user.id,
            kind="browser",
            lifetime_seconds=instance.portal_session_minutes * 60,
            mfa_method=mfa_method,
            source_ip=actor.source_ip,
            user_agent=actor.user_agent,
        )
        assert cookie is not None
        self.throttle.clear(conn, account_bucket(user.user_name))
        self._audit.record(
            conn,
            who,
            AuditEvent(
                SOURCE,
                "UserAuthentication",
                resource_type="Session",
                resource_id=session.id,
                additional_data={
                    "AuthWorkflowID": workflow_id,
                    "UserName": user.user_name,
                    "CredentialType": _credential_types(mfa_method),
                    "MFAUsed": mfa_method is not None,
                    "UserAuthentication": "Success",
                },
            ),
        )
        return session, cookie

    # ---- TOTP enrolment (the portal's MFA page builds on these) --------------------------------

    def begin_totp_enrolment(
        self, conn: Connection, user_id: str, *, name: str = "Authenticator app", issuer: str = "Keyhall"
    ) -> TotpEnrolment:
        """Store a new unconfirmed device (secret sealed under the master key, bound to the device id);
        earlier unconfirmed attempts of the user are discarded."""
        user = directory_store.get_user(conn, user_id)
        if user is None:
            raise AccessDeniedError("This user cannot enrol a device")
        conn.execute(
            delete(totp_devices).where(totp_devices.c.user_id == user.id, totp_devices.c.confirmed.is_(False))
        )
        device_id = str(uuid.uuid4())
        secret = totp.new_totp_secret()
        conn.execute(
            insert(totp_devices).values(
                id=device_id,
                user_id=user.id,
                name=name[:64],
                secret_encrypted=self._box().encrypt(secret, context=device_id.encode()),
                last_used_step=None,
                confirmed=False,
                created_at=self._clock.timestamp(),
            )
        )
        account = user.user_name.replace(":", "_")
        return TotpEnrolment(
            device_id,
            totp.totp_secret_to_base32(secret),
            totp.provisioning_uri(secret, account_name=account, issuer=issuer),
            secret,
        )

    def confirm_totp_enrolment(
        self, conn: Connection, user_id: str, device_id: str, code: str, *, actor: Actor
    ) -> bool:
        """Confirm a device with a first valid code (which is then used up); False when the code is wrong."""
        row = conn.execute(
            select(totp_devices.c.secret_encrypted).where(
                totp_devices.c.id == device_id,
                totp_devices.c.user_id == user_id,
                totp_devices.c.confirmed.is_(False),
            )
        ).first()
        if row is None:
            return False
        secret = self._box().decrypt(bytes(row.secret_encrypted), context=device_id.encode())
        step = totp.verify_totp(secret, code, now=self._clock.timestamp(), last_used_step=None)
        if step is None:
            return False
        confirmed = conn.execute(
            update(totp_devices)
            .where(totp_devices.c.id == device_id, totp_devices.c.confirmed.is_(False))
            .values(confirmed=True, last_used_step=step)
        )
        if confirmed.rowcount != 1:
            return False
        user = directory_store.get_user(conn, user_id)
        self._audit.record(
            conn,
            _as_user(actor, user) if user is not None else actor,
            AuditEvent(
                SOURCE,
                "EnableMfaDevice",
                resource_type="MfaDevice",
                resource_id=device_id,
                additional_data={"CredentialType": TOTP, "UserId": user_id},
            ),
        )
        return True

    # ---- device-code lookups (RFC 8628 §5.1) ---------------------------------------------------

    def device_lookup_wait(self, conn: Connection, source_ip: str | None) -> int:
        bucket = address_bucket("device", source_ip)
        return self.throttle.wait(conn, bucket, lock=True) if bucket else 0

    def record_failed_device_lookup(self, conn: Connection, source_ip: str | None) -> int:
        bucket = address_bucket("device", source_ip)
        return self.throttle.fail(conn, bucket, DEVICE_LOOKUP_POLICY) if bucket else 0

    # ---- internals -----------------------------------------------------------------------------

    def _wait(self, conn: Connection, own_bucket: str, ip_bucket: str | None) -> int:
        # The account row is locked for the rest of the transaction: attempts on one account queue up.
        wait = self.throttle.wait(conn, own_bucket, lock=True)
        if ip_bucket:
            wait = max(wait, self.throttle.wait(conn, ip_bucket))
        return wait

    def _fail(self, conn: Connection, own_bucket: str, ip_bucket: str | None) -> None:
        self.throttle.fail(conn, own_bucket, ACCOUNT_POLICY)
        if ip_bucket:
            self.throttle.fail(conn, ip_bucket, ADDRESS_POLICY)

    def _box(self) -> SecretBox:
        if self._totp_box is None:
            raise ServiceUnavailableError("TOTP needs the master key, which this process was not given")
        return self._totp_box

    def _record(
        self,
        conn: Connection,
        actor: Actor,
        event_name: str,
        workflow_id: str,
        credential_type: str,
        user_name: str,
        success: bool,
        error_code: str | None = None,
    ) -> None:
        data: dict[str, Any] = {
            "AuthWorkflowID": workflow_id,
            "CredentialType": credential_type,
            "UserName": user_name,
            event_name: "Success" if success else "Failure",
        }
        self._audit.record(
            conn, actor, AuditEvent(SOURCE, event_name, additional_data=data, error_code=error_code)
        )


def _after_factors(user: User) -> StepKind:
    return "change_password" if user.must_change_password else "done"


def _as_user(actor: Actor, user: User) -> Actor:
    """The same request, attributed to the user it now acts for (CloudTrail's userIdentity)."""
    return Actor(
        type="IdentityCenterUser",
        id=user.id,
        name=user.user_name,
        source_ip=actor.source_ip,
        user_agent=actor.user_agent,
        request_id=actor.request_id,
    )


def _credential_types(mfa_method: str | None) -> str:
    """CloudTrail's CredentialType list for a completed sign-in."""
    return {
        "totp": f"{PASSWORD},{TOTP}",
        "webauthn": f"{PASSWORD},WEBAUTHN",
        "passkey": "WEBAUTHN",
    }.get(mfa_method or "", PASSWORD)
