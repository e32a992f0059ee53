"""One typed settings object, read once from KEYHALL_* environment variables and passed in.

Nothing reads the environment anywhere else: services receive this object (or the parts they need).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path("./keyhall-data")


class Settings(BaseSettings):
    """Server and CLI settings. Booleans parse strictly (true/false/1/0), never by truthiness."""

    model_config = SettingsConfigDict(env_prefix="KEYHALL_", extra="forbid", frozen=True)

    data_dir: Path = Field(
        default=DEFAULT_DATA_DIR, description="Where the SQLite database and master key live."
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; defaults to SQLite in data_dir. postgresql://… for PostgreSQL.",
    )
    master_key: str | None = Field(
        default=None,
        description="urlsafe base64 of 32 bytes; defaults to data_dir/master.key, written by `keyhall init`.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    public_url: str | None = Field(
        default=None, description="The URL users reach Keyhall at; defaults to http://host:port."
    )
    device_code_seconds: int = Field(
        default=600,
        ge=5,
        le=1800,
        description="Seconds a device code may wait for approval; the AWS CLI expects 600.",
    )
    device_poll_interval: int = Field(
        default=5,
        ge=1,
        le=60,
        description="Seconds between device-grant polls that clients are told to keep.",
    )
    device_approval_max_auth_age: int = Field(
        default=900,
        ge=60,
        le=86_400,
        description="Seconds after signing in (password, and MFA where the person has it) within which a"
        " device code may be approved; an older sign-in is asked again (RFC 8628 §5.4, security.md §1.3 d).",
    )
    access_log: bool = Field(
        default=False,
        description="One JSON line per request (method, path, status, time); measured to halve throughput.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    trusted_proxies: tuple[str, ...] = Field(
        default=(),
        description="CIDRs whose X-Forwarded-For is believed; empty means the peer address is used.",
    )

    @field_validator("master_key")
    @classmethod
    def _refuse_placeholder(cls, value: str | None) -> str | None:
        if value is not None and value.strip().lower() in {
            "",
            "changeme",
            "change-me",
            "secret",
            "placeholder",
        }:
            raise ValueError(
                "KEYHALL_MASTER_KEY is a placeholder; generate one with `keyhall init` or leave it unset"
            )
        return value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'keyhall.db').resolve()}"

    @property
    def master_key_file(self) -> Path:
        return self.data_dir / "master.key"

    @property
    def effective_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.host}:{self.port}"
