"""Security keys and passkeys (W3C Web Authentication Level 2) as a second factor, or as the whole sign-in
for a passkey that verifies its user: registration and assertion checked with py_webauthn, credentials
stored in ``webauthn_credentials``, every change and verification audited on the caller's transaction.

Also here: which second-factor step a sign-in takes after the password (``second_factor_stage``), since
that decision is where WebAuthn joins the colleague-built password and TOTP steps.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import Connection, delete, func, insert, select, update
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import options_to_json_dict, parse_authentication_credential_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from keyhall.audit.events import Actor, AuditEvent, mask_user_name
from keyhall.audit.writer import AuditWriter
from keyhall.clock import Clock
from keyhall.db.tables import rate_limits, totp_devices, users, webauthn_credentials
from keyhall.directory import store as directory_store
from keyhall.directory.models import User
from keyhall.errors import ConflictError, ValidationError
from keyhall.instance import require_instance
from keyhall.signin.service import (
    ACCOUNT_POLICY,
    ADDRESS_POLICY,
    SOURCE,
    SignInStep,
    Throttle,
    ThrottlePolicy,
    account_bucket,
    address_bucket,
    too_many_attempts,
)

WEBAUTHN = "WEBAUTHN"
#: IAM Identity Center's limits per user: 6 security keys or passkeys, 2 authenticator apps.
MAX_WEBAUTHN_DEVICES = 6
MAX_TOTP_DEVICES = 2
#: How long a ceremony (options, then the browser's answer) may take; the browser is told a little less.
CEREMONY_SECONDS = 300
_BROWSER_TIMEOUT_MS = 180_000
_MAX_NAME = 64
_SPENT_PREFIX = "webauthn:spent:"
#: A presented challenge blocks its own bucket for the ceremony's lifetime: a second presentation (a
#: replayed answer) is refused. Reuses the throttle's race-proof counters instead of another table.
_SPENT = ThrottlePolicy(threshold=1, window_seconds=CEREMONY_SECONDS, escalate=False)
_TRANSPORTS = frozenset(t.value for t in AuthenticatorTransport)

WEBAUTHN_FAILURE = "That security key or passkey was not accepted. Try again, or use another one."
#: What the sign-in does after a correct password, besides the colleague's "totp" step.
SecondFactorStage = Literal["webauthn", "enrol"]


@dataclass(frozen=True)
class RelyingParty:
    """Who credentials are bound to: the host of the public URL (``localhost`` in tests; never an IP
    address, which browsers refuse as an RP ID) and the exact origin pages are served from."""

    id: str
    name: str
    origin: str

    @classmethod
    def for_public_url(cls, public_url: str, *, name: str = "Keyhall") -> RelyingParty:
        parts = urlsplit(public_url)
        if not parts.hostname or not parts.scheme:
            raise ValueError(f"The public URL {public_url!r} has no host")
        return cls(id=parts.hostname, name=name, origin=f"{parts.scheme}://{parts.netloc}")


@dataclass(frozen=True)
class WebAuthnCredential:
    id: str
    user_id: str
    credential_id: bytes
    public_key: bytes
    sign_count: int
    name: str
    transports: list[str]
    aaguid: str | None
    backup_eligible: bool
    created_at: float
    last_used_at: float | None


@dataclass(frozen=True)
class Ceremony:
    """The options for ``navigator.credentials.create/get`` (JSON-ready) and the challenge to keep."""

    options: dict[str, Any]
    challenge: bytes


def _from_row(m: Any) -> WebAuthnCredential:
    return WebAuthnCredential(
        id=m["id"],
        user_id=m["user_id"],
        credential_id=bytes(m["credential_id"]),
        public_key=bytes(m["public_key"]),
        sign_count=int(m["sign_count"]),
        name=m["name"],
        transports=[t for t in (m["transports"] or []) if isinstance(t, str)],
        aaguid=m["aaguid"],
        backup_eligible=bool(m["backup_eligible"]),
        created_at=m["created_at"],
        last_used_at=m["last_used_at"],
    )


def has_webauthn(conn: Connection, user_id: str) -> bool:
    found = conn.execute(
        select(webauthn_credentials.c.id).where(webauthn_credentials.c.user_id == user_id).limit(1)
    ).first()
    return found is not None


def count_totp_devices(conn: Connection, user_id: str) -> int:
    query = select(func.count()).where(totp_devices.c.user_id == user_id, totp_devices.c.confirmed.is_(True))
    return int(conn.execute(query).scalar_one())


def lock_user(conn: Connection, user_id: str) -> None:
    """Serialise one user's MFA changes (FOR UPDATE on PostgreSQL; SQLite writers are serial already), so
    two concurrent enrolments cannot both pass the device limit."""
    conn.execute(select(users.c.id).where(users.c.id == user_id).with_for_update()).first()


def second_factor_stage(
    conn: Connection, audit: AuditWriter, step: SignInStep, actor: Actor
) -> SecondFactorStage | None:
    """The step after a correct password, when it is not the one ``verify_password`` chose.

    A user with a security key is asked for it (their authenticator app stays one click away); a user with
    no second factor under the ``required`` policy must enrol one before any session exists. ``None``
    keeps the password step's own answer (TOTP, a forced password change, or done)."""
    if step.refused or step.user_id is None:
        return None
    policy = require_instance(conn).mfa_policy
    if policy == "off":
        return None
    if has_webauthn(conn, step.user_id):
        user = directory_store.get_user(conn, step.user_id)
        _record(audit, conn, actor, user, "CredentialChallenge", step.workflow_id, True)
        return "webauthn"
    if step.next == "totp" or policy != "required":
        return None
    return "enrol"


def _record(
    audit: AuditWriter,
    conn: Connection,
    actor: Actor,
    user: User | None,
    event_name: str,
    workflow_id: str,
    success: bool,
    error_code: str | None = None,
) -> None:
    """A sign-in event in the shape ``SignInService`` writes (CloudTrail's signin events), for WEBAUTHN.
    A failure is recorded under the masked user name and without the name on the actor."""
    who = actor
    name = "HIDDEN_DUE_TO_SECURITY_REASONS"
    if user is not None:
        name = user.user_name if success else mask_user_name(user.user_name)
        who = Actor(
            type="IdentityCenterUser",
            id=user.id,
            name=user.user_name if success else None,
            source_ip=actor.source_ip,
            user_agent=actor.user_agent,
            request_id=actor.request_id,
        )
    data = {
        "AuthWorkflowID": workflow_id,
        "CredentialType": WEBAUTHN,
        "UserName": name,
        event_name: "Success" if success else "Failure",
    }
    audit.record(conn, who, AuditEvent(SOURCE, event_name, additional_data=data, error_code=error_code))


class WebAuthnService:
    """Registration and assertion ceremonies for one relying party; every method runs on the caller's
    transaction, and no method trusts the browser for anything the signature does not cover."""

    def __init__(self, clock: Clock, audit: AuditWriter, relying_party: RelyingParty) -> None:
        self._clock = clock
        self._audit = audit
        self.relying_party = relying_party
        self._throttle = Throttle(clock)

    @classmethod
    def for_public_url(cls, clock: Clock, audit: AuditWriter, public_url: str) -> WebAuthnService:
        return cls(clock, audit, RelyingParty.for_public_url(public_url))

    # ---- storage -------------------------------------------------------------------------------

    def credentials(self, conn: Connection, user_id: str) -> list[WebAuthnCredential]:
        rows = conn.execute(
            select(webauthn_credentials)
            .where(webauthn_credentials.c.user_id == user_id)
            .order_by(webauthn_credentials.c.created_at)
        ).all()
        return [_from_row(r._mapping) for r in rows]

    def remove(self, conn: Connection, actor: Actor, user_id: str, credential_row_id: str) -> bool:
        """Delete one of the user's credentials; False when it is not theirs or already gone."""
        removed = conn.execute(
            delete(webauthn_credentials)
            .where(webauthn_credentials.c.id == credential_row_id, webauthn_credentials.c.user_id == user_id)
            .returning(webauthn_credentials.c.name)
        ).first()
        if removed is None:
            return False
        self._audit.record(
            conn,
            actor,
            AuditEvent(
                SOURCE,
                "DeactivateMfaDevice",
                resource_type="MfaDevice",
                resource_id=credential_row_id,
                additional_data={"CredentialType": WEBAUTHN, "UserId": user_id, "DeviceName": removed.name},
            ),
        )
        return True

    # ---- registration (WebAuthn §7.1) ----------------------------------------------------------

    def registration_options(self, conn: Connection, user: User) -> Ceremony:
        """Options for a new credential: the user's existing ones excluded (§5.4.3 excludeCredentials), a
        discoverable credential preferred so it can serve as a passkey, no attestation asked for."""
        existing = self.credentials(conn, user.id)
        if len(existing) >= MAX_WEBAUTHN_DEVICES:
            raise ConflictError(
                f"You already have {MAX_WEBAUTHN_DEVICES} security keys or passkeys; remove one first."
            )
        options = generate_registration_options(
            rp_id=self.relying_party.id,
            rp_name=self.relying_party.name,
            # the user handle (§14.6.1) is the opaque user id: no name or email inside the authenticator
            user_id=user.id.encode("utf-8"),
            user_name=user.user_name,
            user_display_name=user.display_name or user.user_name,
            timeout=_BROWSER_TIMEOUT_MS,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=[_descriptor(c) for c in existing],
        )
        return Ceremony(options_to_json_dict(options), options.challenge)

    def register(
        self,
        conn: Connection,
        actor: Actor,
        user: User,
        response: dict[str, Any],
        *,
        challenge: bytes,
        name: str,
    ) -> WebAuthnCredential:
        """Verify the browser's ``create()`` answer against the challenge we issued and store the credential.

        Raises ``ValidationError`` (with a message for the person) when it does not verify."""
        self._spend(conn, challenge)
        lock_user(conn, user.id)
        if len(self.credentials(conn, user.id)) >= MAX_WEBAUTHN_DEVICES:
            raise ConflictError(
                f"You already have {MAX_WEBAUTHN_DEVICES} security keys or passkeys; remove one first."
            )
        try:
            verified = verify_registration_response(
                credential=response,
                expected_challenge=challenge,
                expected_rp_id=self.relying_party.id,
                expected_origin=self.relying_party.origin,
            )
        except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
            raise ValidationError("The security key's answer could not be verified. Try again.") from exc
        taken = conn.execute(
            select(webauthn_credentials.c.id).where(
                webauthn_credentials.c.credential_id == verified.credential_id
            )
        ).first()
        if taken is not None:
            raise ConflictError("This security key or passkey is already registered.")
        row_id = str(uuid.uuid4())
        label = " ".join(name.split())[:_MAX_NAME] or "Security key"
        now = self._clock.timestamp()
        conn.execute(
            insert(webauthn_credentials).values(
                id=row_id,
                user_id=user.id,
                credential_id=verified.credential_id,
                public_key=verified.credential_public_key,
                sign_count=verified.sign_count,
                name=label,
                transports=_transports(response),
                aaguid=verified.aaguid or None,
                backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
                created_at=now,
                last_used_at=None,
            )
        )
        self._audit.record(
            conn,
            actor,
            AuditEvent(
                SOURCE,
                "EnableMfaDevice",
                resource_type="MfaDevice",
                resource_id=row_id,
                additional_data={
                    "CredentialType": WEBAUTHN,
                    "UserId": user.id,
                    "DeviceName": label,
                    "Aaguid": verified.aaguid,
                    "UserVerified": verified.user_verified,
                },
            ),
        )
        found = conn.execute(select(webauthn_credentials).where(webauthn_credentials.c.id == row_id)).one()
        return _from_row(found._mapping)

    # ---- authentication (WebAuthn §7.2) --------------------------------------------------------

    def authentication_options(self, conn: Connection, user_id: str | None) -> Ceremony:
        """Options for ``get()``: the user's credentials as the second factor, or none at all for a passkey
        sign-in (the authenticator offers its discoverable credentials, and must verify the user)."""
        allowed = [_descriptor(c) for c in self.credentials(conn, user_id)] if user_id else []
        options = generate_authentication_options(
            rp_id=self.relying_party.id,
            timeout=_BROWSER_TIMEOUT_MS,
            allow_credentials=allowed,
            user_verification=(
                UserVerificationRequirement.PREFERRED if user_id else UserVerificationRequirement.REQUIRED
            ),
        )
        return Ceremony(options_to_json_dict(options), options.challenge)

    def authenticate(
        self,
        conn: Connection,
        actor: Actor,
        response: dict[str, Any],
        *,
        challenge: bytes,
        user_id: str | None,
        workflow_id: str,
    ) -> tuple[WebAuthnCredential | None, str | None, int | None]:
        """Check a ``get()`` answer: (credential, None, None) when it verifies, else (None, message,
        seconds to wait or None). With ``user_id`` it is the second factor of that user; without, a passkey
        sign-in, which must carry the user handle and user verification.

        The stored sign count is compared and advanced with a guard, so a cloned authenticator or two
        concurrent uses of one answer cannot both succeed (§6.1.1)."""
        user = directory_store.get_user(conn, user_id) if user_id else None
        own_bucket = account_bucket(user.user_name) if user is not None else None
        ip_bucket = address_bucket("signin", actor.source_ip)
        wait = self._wait(conn, own_bucket, ip_bucket)
        if wait:
            _record(self._audit, conn, actor, user, "CredentialVerification", workflow_id, False, "Throttled")
            return None, too_many_attempts(wait), wait

        stored = self._verify_assertion(
            conn, response, challenge=challenge, user=user, passkey=user_id is None
        )
        if stored is None:
            self._fail(conn, own_bucket, ip_bucket)
            _record(
                self._audit,
                conn,
                actor,
                user,
                "CredentialVerification",
                workflow_id,
                False,
                "AuthenticationFailed",
            )
            return None, WEBAUTHN_FAILURE, None
        owner = user or directory_store.get_user(conn, stored.user_id)
        if user_id is None:
            _record(self._audit, conn, actor, owner, "CredentialChallenge", workflow_id, True)
        _record(self._audit, conn, actor, owner, "CredentialVerification", workflow_id, True)
        return stored, None, None

    def _verify_assertion(
        self,
        conn: Connection,
        response: dict[str, Any],
        *,
        challenge: bytes,
        user: User | None,
        passkey: bool,
    ) -> WebAuthnCredential | None:
        if not self._spend(conn, challenge, quiet=True):
            return None
        try:
            parsed = parse_authentication_credential_json(response)
        except (WebAuthnException, ValueError, TypeError, KeyError):
            return None
        row = conn.execute(
            select(webauthn_credentials).where(webauthn_credentials.c.credential_id == parsed.raw_id)
        ).first()
        if row is None:
            return None
        stored = _from_row(row._mapping)
        owner = user or directory_store.get_user(conn, stored.user_id)
        if owner is None or not owner.enabled or stored.user_id != owner.id:
            return None
        handle = parsed.response.user_handle
        if passkey and (handle is None or handle != stored.user_id.encode("utf-8")):
            return None  # §7.2 step 6: the user handle must name the credential's owner
        if handle is not None and handle != stored.user_id.encode("utf-8"):
            return None
        try:
            verified = verify_authentication_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self.relying_party.id,
                expected_origin=self.relying_party.origin,
                credential_public_key=stored.public_key,
                credential_current_sign_count=stored.sign_count,
                require_user_verification=passkey,
            )
        except (WebAuthnException, ValueError, TypeError, KeyError):
            return None
        advanced = conn.execute(
            update(webauthn_credentials)
            .where(
                webauthn_credentials.c.id == stored.id,
                webauthn_credentials.c.sign_count == stored.sign_count,
            )
            .values(sign_count=verified.new_sign_count, last_used_at=self._clock.timestamp())
        )
        return stored if advanced.rowcount == 1 else None

    # ---- internals -----------------------------------------------------------------------------

    def _spend(self, conn: Connection, challenge: bytes, *, quiet: bool = False) -> bool:
        """Mark a challenge used; a second use is refused (ValidationError, or False when ``quiet``)."""
        now = self._clock.timestamp()
        conn.execute(
            delete(rate_limits).where(
                rate_limits.c.bucket.startswith(_SPENT_PREFIX, autoescape=True),
                rate_limits.c.blocked_until < now,
            )
        )
        bucket = _SPENT_PREFIX + hashlib.sha256(challenge).hexdigest()[:40]
        if self._throttle.wait(conn, bucket, lock=True):
            if quiet:
                return False
            raise ValidationError("This request was already used. Reload the page and try again.")
        self._throttle.fail(conn, bucket, _SPENT)
        return True

    def _wait(self, conn: Connection, own_bucket: str | None, ip_bucket: str | None) -> int:
        wait = self._throttle.wait(conn, own_bucket, lock=True) if own_bucket else 0
        if ip_bucket:
            wait = max(wait, self._throttle.wait(conn, ip_bucket))
        return wait

    def _fail(self, conn: Connection, own_bucket: str | None, ip_bucket: str | None) -> None:
        if own_bucket:
            self._throttle.fail(conn, own_bucket, ACCOUNT_POLICY)
        if ip_bucket:
            self._throttle.fail(conn, ip_bucket, ADDRESS_POLICY)


def _descriptor(credential: WebAuthnCredential) -> PublicKeyCredentialDescriptor:
    transports = [AuthenticatorTransport(t) for t in credential.transports if t in _TRANSPORTS]
    return PublicKeyCredentialDescriptor(id=credential.credential_id, transports=transports or None)


def _transports(response: dict[str, Any]) -> list[str]:
    """The transports the browser reported (a hint for later ``get()`` calls; nothing relies on it)."""
    inner = response.get("response")
    values = inner.get("transports") if isinstance(inner, dict) else None
    if not isinstance(values, list):
        return []
    return sorted({v for v in values if isinstance(v, str) and v in _TRANSPORTS})
