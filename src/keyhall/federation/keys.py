"""Keyhall's own signing keys as a SAML identity provider and as an OIDC issuer that AWS trusts.

Each purpose (``saml``, ``oidc``) has at most one ``active`` key, which signs, and at most one ``next``
key, which is published but does not sign yet. Rotation publishes before it signs, so AWS already trusts
the new key when it starts being used::

    rotate    a new ``next`` key: SAML metadata lists both certificates, the JWKS both keys; re-upload
              the metadata (`keyhall aws apply`) before promoting
    promote   ``next`` becomes ``active``; the old active key is ``retired``, still published for the
              overlap period (assertions and tokens it signed may be in flight, AWS may cache the JWKS)
    prune     retired keys past the overlap are deleted (rotate and promote prune as they go)

Keys are RSA-2048 with a self-signed X.509 certificate valid for ten years (IAM reads the public key from the
certificate and does not check its dates or issuer). The private key is stored as PKCS#8 PEM sealed with
``SecretBox(derive_key(master_key, "signing-keys"))``, bound to the key's id, so a row copied onto another
key's id does not open. The kid is the SHA-256 thumbprint of the certificate (hex, first 32 characters).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import Connection, Row, delete, insert, select, update

from keyhall.access.portal import FederationNotConfiguredError
from keyhall.audit.events import Actor, AuditEvent
from keyhall.audit.writer import AuditWriter
from keyhall.clock import Clock
from keyhall.crypto import SecretBox
from keyhall.db.tables import signing_keys
from keyhall.errors import ConflictError
from keyhall.keys import derive_key

Purpose = Literal["saml", "oidc"]
KeyStatus = Literal["next", "active", "retired"]
PURPOSES: tuple[Purpose, ...] = ("saml", "oidc")
ALGORITHM = "RS256"
RSA_BITS = 2048
CERTIFICATE_DAYS = 3652
#: How long a retired key stays published after promotion: long enough for any assertion or token it signed
#: (5 minutes) and for a cached JWKS to be refreshed.
DEFAULT_OVERLAP_SECONDS = 24 * 3600
KID_LENGTH = 32

SOURCE = "sso.amazonaws.com"
_COMMON_NAMES = {"saml": "Keyhall SAML signing key", "oidc": "Keyhall OIDC signing key"}


@dataclass(frozen=True)
class SigningKey:
    """The public half of a key and its place in the lifecycle: what metadata and the JWKS publish."""

    kid: str
    purpose: Purpose
    algorithm: str
    certificate_pem: str
    status: KeyStatus
    created_at: float
    activated_at: float | None
    retired_at: float | None

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate_pem.encode("ascii"))

    @property
    def certificate_base64(self) -> str:
        """The DER certificate in base64 on one line, as ``ds:X509Certificate`` carries it."""
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return base64.b64encode(der).decode("ascii")

    def public_jwk(self) -> dict[str, Any]:
        """The RFC 7517 JWK of the public key (RSA ``n``/``e``), with ``kid``, ``alg`` and ``use``."""
        public = self.certificate.public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        numbers = public.public_numbers()
        return {
            "kty": "RSA",
            "kid": self.kid,
            "use": "sig",
            "alg": self.algorithm,
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
        }


@dataclass(frozen=True)
class ActiveSigningKey:
    """The key that signs now, with its private half opened (never printed)."""

    kid: str
    purpose: Purpose
    certificate_pem: str
    private_key_pem: bytes = field(repr=False)
    private_key: rsa.RSAPrivateKey = field(repr=False)


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def certificate_kid(certificate: x509.Certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()[:KID_LENGTH]


def generate_key_material(purpose: Purpose, now: float) -> tuple[str, bytes, str]:
    """(kid, private key PEM, certificate PEM) of a fresh RSA-2048 key with a self-signed certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, _COMMON_NAMES[purpose]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Keyhall"),
        ]
    )
    start = dt.datetime.fromtimestamp(now, dt.UTC) - dt.timedelta(minutes=5)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=CERTIFICATE_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return certificate_kid(certificate), private_pem, certificate_pem


def _from_row(row: Row[Any]) -> SigningKey:
    m = row._mapping
    return SigningKey(
        kid=m["kid"],
        purpose=m["purpose"],
        algorithm=m["algorithm"],
        certificate_pem=m["certificate_pem"],
        status=m["status"],
        created_at=m["created_at"],
        activated_at=m["activated_at"],
        retired_at=m["retired_at"],
    )


class SigningKeys:
    """The lifecycle of the signing keys, on the caller's connection (changes commit with their audit record).

    Opened private keys are cached by kid: a kid names one key for ever, so the cache never goes stale,
    while which key is active is read from the database on every call (a promotion on one node is seen by
    every node at once).
    """

    def __init__(
        self,
        master_key: bytes,
        clock: Clock,
        audit: AuditWriter,
        *,
        overlap_seconds: float = DEFAULT_OVERLAP_SECONDS,
    ) -> None:
        self._box = SecretBox(derive_key(master_key, "signing-keys"))
        self._clock = clock
        self._audit = audit
        self.overlap_seconds = overlap_seconds
        self._opened: dict[str, ActiveSigningKey] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "SigningKeys(<keys hidden>)"

    # ---- reading -----------------------------------------------------------------------------------

    def keys(self, conn: Connection, purpose: Purpose) -> list[SigningKey]:
        """Every stored key of *purpose*, published or not, newest first."""
        rows = conn.execute(
            select(signing_keys)
            .where(signing_keys.c.purpose == purpose)
            .order_by(signing_keys.c.created_at.desc(), signing_keys.c.kid)
        )
        return [_from_row(r) for r in rows]

    def published_keys(self, conn: Connection, purpose: Purpose) -> list[SigningKey]:
        """What metadata and the JWKS publish: the active key first, then the next one, then retired keys
        still inside the overlap period."""
        now = self._clock.timestamp()
        order = {"active": 0, "next": 1, "retired": 2}
        published = [
            key
            for key in self.keys(conn, purpose)
            if key.status != "retired" or (key.retired_at or 0) + self.overlap_seconds > now
        ]
        return sorted(published, key=lambda k: order[k.status])

    def active_key(self, conn: Connection, purpose: Purpose) -> SigningKey | None:
        row = conn.execute(
            select(signing_keys)
            .where(signing_keys.c.purpose == purpose, signing_keys.c.status == "active")
            .order_by(signing_keys.c.activated_at.desc())
            .limit(1)
        ).first()
        return _from_row(row) if row else None

    def active_signing_key(self, conn: Connection, purpose: Purpose) -> ActiveSigningKey:
        """The key that signs now, opened; FederationNotConfiguredError when there is none."""
        row = conn.execute(
            select(signing_keys)
            .where(signing_keys.c.purpose == purpose, signing_keys.c.status == "active")
            .order_by(signing_keys.c.activated_at.desc())
            .limit(1)
        ).first()
        if row is None:
            raise FederationNotConfiguredError(
                f"Keyhall has no active {purpose.upper()} signing key: run `keyhall aws configure` "
                "(it creates one), then `keyhall aws apply` to publish it to your AWS accounts"
            )
        kid: str = row.kid
        with self._lock:
            opened = self._opened.get(kid)
        if opened is not None:
            return opened
        pem = self._box.decrypt(row.private_key_encrypted, context=kid.encode("ascii"))
        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        opened = ActiveSigningKey(
            kid=kid,
            purpose=row.purpose,
            certificate_pem=row.certificate_pem,
            private_key_pem=pem,
            private_key=key,
        )
        with self._lock:
            self._opened[kid] = opened
        return opened

    # ---- the lifecycle ------------------------------------------------------------------------------

    def ensure_active_key(self, conn: Connection, actor: Actor, purpose: Purpose) -> SigningKey:
        """The active key of *purpose*, created (and audited) when there is none yet; safe to repeat."""
        current = self.active_key(conn, purpose)
        if current is not None:
            return current
        return self._create(conn, actor, purpose, status="active", event="CreateSigningKey")

    def rotate(self, conn: Connection, actor: Actor, purpose: Purpose) -> SigningKey:
        """Create the ``next`` key, published alongside the active one. With no active key yet, the new key
        simply becomes active. Refused while a next key waits to be promoted."""
        self.prune(conn, actor, purpose)
        if self.active_key(conn, purpose) is None:
            return self._create(conn, actor, purpose, status="active", event="CreateSigningKey")
        waiting = [k for k in self.keys(conn, purpose) if k.status == "next"]
        if waiting:
            raise ConflictError(
                f"The {purpose.upper()} key {waiting[0].kid} is already waiting to be promoted: "
                "publish it (`keyhall aws apply`) and run `keyhall aws keys promote` first"
            )
        return self._create(conn, actor, purpose, status="next", event="RotateSigningKey")

    def promote(self, conn: Connection, actor: Actor, purpose: Purpose) -> SigningKey:
        """Make the ``next`` key active and retire the active one (still published for the overlap)."""
        waiting = [k for k in self.keys(conn, purpose) if k.status == "next"]
        if not waiting:
            raise ConflictError(
                f"There is no {purpose.upper()} key to promote: run `keyhall aws keys rotate` first"
            )
        new = waiting[0]
        now = self._clock.timestamp()
        old = self.active_key(conn, purpose)
        if old is not None:
            conn.execute(
                update(signing_keys)
                .where(signing_keys.c.kid == old.kid)
                .values(status="retired", retired_at=now)
            )
        conn.execute(
            update(signing_keys)
            .where(signing_keys.c.kid == new.kid)
            .values(status="active", activated_at=now)
        )
        self._audit.record(
            conn,
            actor,
            AuditEvent(
                SOURCE,
                "PromoteSigningKey",
                resource_type="SigningKey",
                resource_id=new.kid,
                request_parameters={"purpose": purpose, "kid": new.kid},
                additional_data={"RetiredKid": old.kid if old else None},
            ),
        )
        self.prune(conn, actor, purpose)
        promoted = self.active_key(conn, purpose)
        assert promoted is not None
        return promoted

    def prune(self, conn: Connection, actor: Actor, purpose: Purpose) -> list[str]:
        """Delete retired keys past the overlap period; the kids deleted."""
        limit = self._clock.timestamp() - self.overlap_seconds
        expired = [
            k.kid
            for k in self.keys(conn, purpose)
            if k.status == "retired" and k.retired_at is not None and k.retired_at <= limit
        ]
        for kid in expired:
            conn.execute(delete(signing_keys).where(signing_keys.c.kid == kid))
            self._audit.record(
                conn,
                actor,
                AuditEvent(
                    SOURCE,
                    "DeleteSigningKey",
                    resource_type="SigningKey",
                    resource_id=kid,
                    request_parameters={"purpose": purpose, "kid": kid},
                ),
            )
        return expired

    def _create(
        self, conn: Connection, actor: Actor, purpose: Purpose, *, status: KeyStatus, event: str
    ) -> SigningKey:
        if purpose not in PURPOSES:
            raise ValueError(f"purpose must be one of {', '.join(PURPOSES)}")
        now = self._clock.timestamp()
        kid, private_pem, certificate_pem = generate_key_material(purpose, now)
        conn.execute(
            insert(signing_keys).values(
                kid=kid,
                purpose=purpose,
                algorithm=ALGORITHM,
                private_key_encrypted=self._box.encrypt(private_pem, context=kid.encode("ascii")),
                certificate_pem=certificate_pem,
                status=status,
                created_at=now,
                activated_at=now if status == "active" else None,
                retired_at=None,
            )
        )
        self._audit.record(
            conn,
            actor,
            AuditEvent(
                SOURCE,
                event,
                resource_type="SigningKey",
                resource_id=kid,
                request_parameters={"purpose": purpose, "kid": kid},
                response_elements={"status": status, "algorithm": ALGORITHM},
            ),
        )
        row = conn.execute(select(signing_keys).where(signing_keys.c.kid == kid)).one()
        return _from_row(row)
