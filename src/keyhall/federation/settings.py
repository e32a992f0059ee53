"""Federation settings of the instance, kept in ``instance_settings["federation"]`` and changed with
`keyhall aws configure`. Nothing here is secret: the server holds no AWS credentials at all."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Connection, insert, select, update

from keyhall.audit.events import Actor, AuditEvent
from keyhall.audit.writer import AuditWriter
from keyhall.clock import Clock
from keyhall.db.tables import instance_settings
from keyhall.federation.naming import PARTITIONS

KEY = "federation"


class FederationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["saml", "oidc"] = "saml"
    partition: str = "aws"
    sts_region: str = "us-east-1"
    #: overrides the regional STS endpoint (a VPC endpoint, or moto in tests)
    sts_endpoint: str | None = None
    saml_provider_name: str = "Keyhall"
    #: the SAML entity id; defaults to <public url>/saml/metadata
    entity_id: str | None = None
    #: the public https issuer URL AWS fetches discovery and JWKS from (OIDC method only)
    oidc_issuer_url: str | None = None
    oidc_audience: str = "sts.amazonaws.com"
    #: the role `keyhall aws apply` assumes in member accounts
    provisioning_role_name: str = "OrganizationAccountAccessRole"
    #: session tag key -> identity-store attribute path, like IdC's attributes for access control
    access_control_attributes: dict[str, str] = Field(default_factory=dict)

    @field_validator("partition")
    @classmethod
    def _known_partition(cls, value: str) -> str:
        if value not in PARTITIONS:
            raise ValueError(f"partition must be one of {', '.join(PARTITIONS)}")
        return value

    @field_validator("oidc_issuer_url")
    @classmethod
    def _https_issuer(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ValueError(
                "AWS fetches the OIDC issuer over https: the issuer URL must start with https://"
            )
        return value


def load_federation_settings(conn: Connection) -> FederationSettings:
    row = conn.execute(select(instance_settings.c.value).where(instance_settings.c.key == KEY)).first()
    return FederationSettings.model_validate(row.value) if row else FederationSettings()


def save_federation_settings(
    conn: Connection, actor: Actor, audit: AuditWriter, clock: Clock, settings: FederationSettings
) -> None:
    value = settings.model_dump(mode="json")
    exists = conn.execute(select(instance_settings.c.key).where(instance_settings.c.key == KEY)).first()
    if exists:
        conn.execute(
            update(instance_settings)
            .where(instance_settings.c.key == KEY)
            .values(value=value, updated_at=clock.timestamp())
        )
    else:
        conn.execute(insert(instance_settings).values(key=KEY, value=value, updated_at=clock.timestamp()))
    audit.record(
        conn, actor, AuditEvent("sso.amazonaws.com", "UpdateFederationSettings", request_parameters=value)
    )
