"""SQLAlchemy Core tables: the single description of the schema (migrations are generated from it).

Ids follow AWS formats (see ARCHITECTURE.md). Timestamps are UTC epoch seconds as floats: cheap to compare,
identical on SQLite and PostgreSQL, and what the AWS JSON protocols send anyway.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

instance = Table(
    "instance",
    metadata,
    Column("id", String(64), primary_key=True),  # ssoins-<16 hex>
    Column("identity_store_id", String(36), nullable=False, unique=True),  # d-<10 hex>
    Column("name", String(255), nullable=False),
    Column("directory_source", String(16), nullable=False, default="builtin"),  # builtin | scim | ldap
    Column("portal_session_minutes", Integer, nullable=False, default=480),
    Column("mfa_policy", String(16), nullable=False, default="required"),  # required | optional | off
    Column("device_grant_enabled", Boolean, nullable=False, default=True),
    Column("created_at", Float, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", String(47), primary_key=True),
    Column("user_name", String(128), nullable=False),
    # casefolded user name: identitystore and SCIM treat userName as case-insensitive and unique
    Column("user_name_key", String(128), nullable=False, unique=True),
    Column("display_name", String(1024), nullable=True),
    Column("status", String(16), nullable=False, default="ENABLED"),
    Column("source", String(16), nullable=False, default="builtin"),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("managed", Boolean, nullable=False, default=False),  # declared by `keyhall apply`
    Column("attributes", JSON, nullable=False),  # Name, Emails, PhoneNumbers, Title, … (identitystore shapes)
    Column("external_ids", JSON, nullable=False),
    Column("password_hash", Text, nullable=True),
    Column("must_change_password", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("created_by", String(255), nullable=True),
    Column("updated_by", String(255), nullable=True),
)

groups = Table(
    "groups",
    metadata,
    Column("id", String(47), primary_key=True),
    Column("display_name", String(1024), nullable=False),
    Column("display_name_key", String(1024), nullable=False, unique=True),
    Column("description", String(1024), nullable=True),
    Column("external_ids", JSON, nullable=False),
    Column("managed", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("created_by", String(255), nullable=True),
    Column("updated_by", String(255), nullable=True),
)

group_memberships = Table(
    "group_memberships",
    metadata,
    Column("id", String(47), primary_key=True),
    Column("group_id", String(47), ForeignKey("groups.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", String(47), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(255), nullable=True),
    UniqueConstraint("group_id", "user_id"),
    Index("ix_group_memberships_user", "user_id", "group_id"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(12), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("name_key", String(128), nullable=False, unique=True),
    Column("email", String(254), nullable=False),
    Column("status", String(16), nullable=False, default="ACTIVE"),  # ACTIVE | SUSPENDED
    Column("kind", String(8), nullable=False, default="local"),  # local | aws
    Column("ou_path", String(1024), nullable=True),
    Column("tags", JSON, nullable=False),
    Column("managed", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

permission_sets = Table(
    "permission_sets",
    metadata,
    Column("id", String(32), primary_key=True),  # ps-<16 hex>
    Column("name", String(32), nullable=False),
    Column("name_key", String(32), nullable=False, unique=True),
    Column("description", String(700), nullable=True),
    Column("session_duration", String(100), nullable=False, default="PT1H"),
    Column("session_seconds", Integer, nullable=False, default=3600),
    Column("relay_state", String(240), nullable=True),
    Column("managed_policy_arns", JSON, nullable=False),
    Column("customer_managed_policies", JSON, nullable=False),  # [{"Name":…, "Path":…}]
    Column("inline_policy", Text, nullable=True),
    Column("permissions_boundary", JSON, nullable=True),
    Column("tags", JSON, nullable=False),
    Column("managed", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

account_assignments = Table(
    "account_assignments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", String(12), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column(
        "permission_set_id", String(32), ForeignKey("permission_sets.id", ondelete="RESTRICT"), nullable=False
    ),
    Column("principal_type", String(8), nullable=False),  # USER | GROUP
    Column("principal_id", String(47), nullable=False),
    Column("managed", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(255), nullable=True),
    UniqueConstraint("account_id", "permission_set_id", "principal_type", "principal_id"),
    # the hot check "may this principal use (account, permission set)" and "what may this principal use"
    Index("ix_account_assignments_principal", "principal_type", "principal_id", "account_id"),
)

totp_devices = Table(
    "totp_devices",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(47), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(64), nullable=False),
    Column("secret_encrypted", LargeBinary, nullable=False),
    Column("last_used_step", Integer, nullable=True),  # a code is accepted once: steps <= this are refused
    Column("confirmed", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    # BIGINT: at thousands of credentials a second a 32-bit sequence would run out within days
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    # not indexed: every index costs each audited request a page write (3x the insert cost measured on
    # SQLite); records are found by seq (commit order), event name or actor
    Column("event_id", String(36), nullable=False),
    Column("event_time", Float, nullable=False),
    Column("event_source", String(64), nullable=False),  # e.g. keyhall.admin, sso.amazonaws.com
    Column("event_name", String(128), nullable=False),
    Column("actor_type", String(32), nullable=False),  # LocalOperator | IdentityCenterUser | Anonymous | …
    Column("actor_id", String(255), nullable=True),
    Column("actor_name", String(255), nullable=True),
    Column("source_ip", String(64), nullable=True),
    Column("user_agent", String(512), nullable=True),
    Column("request_id", String(64), nullable=True),
    Column("resource_type", String(64), nullable=True),
    Column("resource_id", String(255), nullable=True),
    Column("request_parameters", JSON, nullable=True),
    Column("response_elements", JSON, nullable=True),
    Column("additional_data", JSON, nullable=True),
    Column("error_code", String(128), nullable=True),
    Column("read_only", Boolean, nullable=False, default=False),
    Index("ix_audit_events_name_seq", "event_name", "seq"),
    Index("ix_audit_events_actor_seq", "actor_id", "seq"),
)

# ---- sign-in and the authorization server (sso-oidc) ---------------------------------------------
# Every token, code and secret is stored only as its SHA-256 digest (``*_hash``): a copy of the database
# gives an attacker nothing to present.

portal_sessions = Table(
    "portal_sessions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(47), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(8), nullable=False),  # browser | cli
    Column("token_hash", LargeBinary(32), nullable=True, unique=True),  # browser cookie
    Column("parent_id", String(36), nullable=True),  # the browser session that approved a CLI session
    Column("client_id", String(64), nullable=True),
    Column("auth_time", Float, nullable=False),
    Column("mfa_method", String(16), nullable=True),  # totp | webauthn | None
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("source_ip", String(64), nullable=True),
    Column("user_agent", String(512), nullable=True),
    Index("ix_portal_sessions_user", "user_id", "revoked_at"),
)

oauth_clients = Table(
    "oauth_clients",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("secret_hash", LargeBinary(32), nullable=False),
    Column("name", String(255), nullable=False),
    Column("client_type", String(16), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("grant_types", JSON, nullable=False),
    Column("redirect_uris", JSON, nullable=False),
    Column("issuer_url", String(1024), nullable=True),
    Column("source_ip", String(64), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

device_authorizations = Table(
    "device_authorizations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("device_code_hash", LargeBinary(32), nullable=False, unique=True),
    Column("user_code", String(16), nullable=False, unique=True),  # normalised, no dash
    Column("client_id", String(64), ForeignKey("oauth_clients.id", ondelete="CASCADE"), nullable=False),
    Column("start_url", String(1024), nullable=True),
    Column("status", String(16), nullable=False),  # PENDING | APPROVED | DENIED | REDEEMED
    Column("user_id", String(47), ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    Column("approved_session_id", String(36), nullable=True),
    Column("interval", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("last_polled_at", Float, nullable=True),
    Column("initiator_ip", String(64), nullable=True),
    Column("initiator_user_agent", String(512), nullable=True),
    Column("approver_ip", String(64), nullable=True),
    Column("failed_lookups", Integer, nullable=False, default=0),
)

authorization_codes = Table(
    "authorization_codes",
    metadata,
    Column("code_hash", LargeBinary(32), primary_key=True),
    Column("client_id", String(64), ForeignKey("oauth_clients.id", ondelete="CASCADE"), nullable=False),
    Column("redirect_uri", String(2048), nullable=False),
    Column("code_challenge", String(128), nullable=False),  # S256 only
    Column("scopes", JSON, nullable=False),
    Column("user_id", String(47), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("browser_session_id", String(36), nullable=False),
    Column("issued_session_id", String(36), nullable=True),  # set on redemption; revoked if redeemed twice
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
)

access_tokens = Table(
    "access_tokens",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("session_id", String(36), ForeignKey("portal_sessions.id", ondelete="CASCADE"), nullable=False),
    Column("client_id", String(64), nullable=False),
    Column("user_id", String(47), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_access_tokens_session", "session_id"),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    # the session is the token family: reuse of a rotated token revokes it, and with it every token
    Column("session_id", String(36), ForeignKey("portal_sessions.id", ondelete="CASCADE"), nullable=False),
    Column("client_id", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
    Index("ix_refresh_tokens_session", "session_id"),
)

rate_limits = Table(
    "rate_limits",
    metadata,
    # fixed-window counters shared by every server process (sign-in throttling, user-code guessing)
    Column("bucket", String(255), primary_key=True),
    Column("window_start", Float, nullable=False),
    Column("count", Integer, nullable=False),
    Column("blocked_until", Float, nullable=True),
)

# ---- federation with real AWS accounts, provisioning, WebAuthn ------------------------------------

signing_keys = Table(
    "signing_keys",
    metadata,
    # Keyhall's own keys as a SAML identity provider / OIDC issuer that AWS trusts; the private half is
    # encrypted under the master key (bound to its kid), the public half is published in metadata/JWKS
    Column("kid", String(64), primary_key=True),
    Column("purpose", String(16), nullable=False),  # saml | oidc
    Column("algorithm", String(16), nullable=False),  # RS256 (RSA-SHA256)
    Column("private_key_encrypted", LargeBinary, nullable=False),
    Column("certificate_pem", Text, nullable=False),
    Column("status", String(16), nullable=False),  # next (published, not yet signing) | active | retired
    Column("created_at", Float, nullable=False),
    Column("activated_at", Float, nullable=True),
    Column("retired_at", Float, nullable=True),
    Index("ix_signing_keys_purpose", "purpose", "status"),
)

instance_settings = Table(
    "instance_settings",
    metadata,
    # structured instance settings beyond the instance row (e.g. "federation"), one JSON document per key
    Column("key", String(64), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", Float, nullable=False),
)

provisioning_state = Table(
    "provisioning_state",
    metadata,
    # what `keyhall aws apply` last did for each (account, role): shown by plan, by the CLI and the console
    Column("account_id", String(12), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("role_name", String(64), primary_key=True),
    Column("permission_set_id", String(32), nullable=True),
    Column("role_arn", String(2048), nullable=True),
    Column("status", String(16), nullable=False),  # PROVISIONED | FAILED | REMOVED
    Column("desired_hash", String(64), nullable=True),
    Column("message", Text, nullable=True),
    Column("last_attempt_at", Float, nullable=False),
    Column("provisioned_at", Float, nullable=True),
)

webauthn_credentials = Table(
    "webauthn_credentials",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(47), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("credential_id", LargeBinary, nullable=False, unique=True),
    Column("public_key", LargeBinary, nullable=False),
    Column("sign_count", BigInteger, nullable=False, default=0),
    Column("name", String(64), nullable=False),
    Column("transports", JSON, nullable=False),
    Column("aaguid", String(36), nullable=True),
    Column("backup_eligible", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float, nullable=True),
)
