"""OAuth clients registered through sso-oidc RegisterClient (public clients, like the AWS CLI).

The client secret is a registration credential (AWS issues one to public clients too); it is stored only
as a hash and compared in constant time.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select

from keyhall.clock import Clock
from keyhall.crypto import token_hash
from keyhall.db.tables import oauth_clients
from keyhall.errors import (
    InvalidClient,
    InvalidClientMetadata,
    InvalidRedirectUri,
    InvalidScope,
    UnsupportedGrantType,
)
from keyhall.oauth.redirects import is_loopback_redirect

REGISTRATION_SECONDS = 90 * 24 * 3600  # as observed on AWS; the CLI re-registers 15 min before expiry
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CODE_GRANT = "authorization_code"
REFRESH_GRANT = "refresh_token"
KNOWN_GRANTS = frozenset({DEVICE_GRANT, CODE_GRANT, REFRESH_GRANT})
DEFAULT_SCOPES = ("sso:account:access",)
ALLOWED_SCOPES = frozenset({"sso:account:access", "openid", "aws", "sts:identity_context"})


@dataclass(frozen=True)
class Client:
    id: str
    name: str
    scopes: tuple[str, ...]
    grant_types: tuple[str, ...]
    redirect_uris: tuple[str, ...]
    created_at: float
    expires_at: float

    def allows(self, grant: str) -> bool:
        # a registration without grantTypes is the legacy device-flow client (as AWS treats it)
        return grant in self.grant_types if self.grant_types else grant in (DEVICE_GRANT, REFRESH_GRANT)


@dataclass(frozen=True)
class Registration:
    client: Client
    client_secret: str


def register_client(
    conn: Connection,
    clock: Clock,
    *,
    name: str,
    client_type: str,
    scopes: list[str] | None,
    grant_types: list[str] | None,
    redirect_uris: list[str] | None,
    issuer_url: str | None,
    source_ip: str | None,
) -> Registration:
    if not name or len(name) > 255:
        raise InvalidClientMetadata("clientName must be 1 to 255 characters")
    if client_type != "public":
        raise InvalidClientMetadata('clientType must be "public"')
    scope_list = tuple(scopes) if scopes else DEFAULT_SCOPES
    unknown = [s for s in scope_list if s not in ALLOWED_SCOPES]
    if unknown:
        raise InvalidScope(f"Unknown scopes: {', '.join(unknown)}")
    grants = tuple(grant_types or ())
    bad = [g for g in grants if g not in KNOWN_GRANTS]
    if bad:
        raise UnsupportedGrantType(f"Unsupported grant types: {', '.join(bad)}")
    uris = tuple(redirect_uris or ())
    if CODE_GRANT in grants and not uris:
        raise InvalidRedirectUri("The authorization_code grant needs redirectUris")
    for uri in uris:
        if not is_loopback_redirect(uri):
            raise InvalidRedirectUri(
                f"Only loopback http redirect URIs (127.0.0.1 or [::1]) are allowed: {uri!r}"
            )
    now = clock.timestamp()
    client_id = secrets.token_urlsafe(24)
    secret = secrets.token_urlsafe(48)
    conn.execute(
        insert(oauth_clients).values(
            id=client_id,
            secret_hash=token_hash(secret),
            name=name,
            client_type=client_type,
            scopes=list(scope_list),
            grant_types=list(grants),
            redirect_uris=list(uris),
            issuer_url=issuer_url,
            source_ip=source_ip,
            created_at=now,
            expires_at=now + REGISTRATION_SECONDS,
        )
    )
    client = Client(client_id, name, scope_list, grants, uris, now, now + REGISTRATION_SECONDS)
    return Registration(client, secret)


def load_client(conn: Connection, client_id: str) -> Client | None:
    row = conn.execute(select(oauth_clients).where(oauth_clients.c.id == client_id)).first()
    if row is None:
        return None
    m = row._mapping
    return Client(
        m["id"],
        m["name"],
        tuple(m["scopes"]),
        tuple(m["grant_types"]),
        tuple(m["redirect_uris"]),
        m["created_at"],
        m["expires_at"],
    )


def authenticate_client(conn: Connection, clock: Clock, client_id: str, client_secret: str) -> Client:
    """The client, if the secret is right and the registration current; InvalidClient otherwise."""
    row = conn.execute(
        select(oauth_clients.c.secret_hash, oauth_clients.c.expires_at).where(oauth_clients.c.id == client_id)
    ).first()
    presented = token_hash(client_secret or "")
    stored = row.secret_hash if row is not None else b"\0" * 32
    if not hmac.compare_digest(bytes(stored), presented) or row is None:
        raise InvalidClient("Invalid client credentials")
    if row.expires_at <= clock.timestamp():
        raise InvalidClient("The client registration has expired; register again")
    client = load_client(conn, client_id)
    assert client is not None
    return client
