"""Builds the long-lived objects of a Keyhall process once, from Settings, and hands them out."""

from __future__ import annotations

from dataclasses import dataclass, field

from keyhall.access.portal import CredentialIssuer, PortalService
from keyhall.access.service import AccessService
from keyhall.audit.writer import AuditWriter
from keyhall.clock import Clock, SystemClock
from keyhall.credentials.local import LocalCredentialIssuer
from keyhall.credentials.portal_issuer import LocalPortalIssuer
from keyhall.db.database import Database
from keyhall.directory.service import DirectoryService
from keyhall.federation.console import ConsoleService
from keyhall.federation.issuer import AwsFederationIssuer, FederationMetadata
from keyhall.federation.keys import SigningKeys
from keyhall.oauth.service import OidcService
from keyhall.settings import Settings
from keyhall.signin.passwords import PasswordHasher
from keyhall.signin.service import SignInService
from keyhall.signin.sessions import SessionService
from keyhall.signin.webauthn import WebAuthnService


@dataclass
class Container:
    settings: Settings
    db: Database
    clock: Clock
    audit: AuditWriter
    directory: DirectoryService
    access: AccessService
    sessions: SessionService
    oidc: OidcService
    portal: PortalService
    master_key: bytes | None
    local_sts: LocalCredentialIssuer | None
    signin: SignInService
    webauthn: WebAuthnService
    hasher: PasswordHasher = field(default_factory=PasswordHasher)
    # federation with real AWS accounts: needs the master key (signing keys are encrypted under it)
    signing_keys: SigningKeys | None = None
    federation_issuer: AwsFederationIssuer | None = None
    federation_metadata: FederationMetadata | None = None
    console: ConsoleService | None = None

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        db: Database | None = None,
        hasher: PasswordHasher | None = None,
        master_key: bytes | None = None,
    ) -> Container:
        """Everything a process needs. Without a master key (admin commands that never mint anything) the
        credential issuers are left out."""
        clock = clock or SystemClock()
        hasher = hasher or PasswordHasher()
        db = db or Database(settings.effective_database_url)
        audit = AuditWriter(clock)
        sessions = SessionService(clock, audit)
        issuers: dict[str, CredentialIssuer] = {}
        local_sts = LocalCredentialIssuer(master_key) if master_key is not None else None
        if local_sts is not None:
            issuers["local"] = LocalPortalIssuer(local_sts)
        signing_keys = federation_issuer = federation_metadata = console = None
        if master_key is not None:
            public_url = settings.effective_public_url
            signing_keys = SigningKeys(master_key, clock, audit)
            federation_issuer = AwsFederationIssuer(db, signing_keys, public_url=public_url)
            federation_metadata = FederationMetadata(signing_keys, public_url=public_url)
            console = ConsoleService(db, clock, audit, federation_issuer, public_url=public_url)
            issuers["aws"] = federation_issuer
        return cls(
            settings=settings,
            db=db,
            clock=clock,
            audit=audit,
            directory=DirectoryService(clock, audit),
            access=AccessService(clock, audit),
            sessions=sessions,
            oidc=OidcService(
                db,
                clock,
                audit,
                sessions,
                device_interval=settings.device_poll_interval,
                device_code_seconds=settings.device_code_seconds,
            ),
            portal=PortalService(db, clock, audit, sessions, issuers),
            master_key=master_key,
            local_sts=local_sts,
            signin=SignInService(clock, audit, hasher, sessions, master_key=master_key),
            webauthn=WebAuthnService.for_public_url(clock, audit, settings.effective_public_url),
            hasher=hasher,
            signing_keys=signing_keys,
            federation_issuer=federation_issuer,
            federation_metadata=federation_metadata,
            console=console,
        )
