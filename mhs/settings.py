"""The one settings object: MHS_* environment variables, overridden by command-line flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

RetryCountMode = Literal["retries", "attempts"]


class Settings(BaseSettings):
    """Effective configuration for every role. Field ``x`` is read from ``MHS_X``."""

    model_config = SettingsConfigDict(env_prefix="MHS_", extra="forbid", frozen=True)

    broker_url: str | None = Field(
        default=None,
        description="amqp://user:pass@host:5672/vhost for RabbitMQ; unset for the embedded broker",
    )
    topology: Path | None = Field(default=None, description="topology file (default: packaged)")
    local_mhs: str | None = Field(
        default=None, description="the MHS the inbound role serves (default: the hosted one)"
    )

    host: str = "127.0.0.1"
    outbound_port: int = Field(default=8080, ge=0, le=65535)
    spine_proxy_port: int = Field(default=8081, ge=0, le=65535)
    inbound_port: int = Field(default=8082, ge=0, le=65535)
    worker_port: int = Field(default=8083, ge=0, le=65535, description="worker health port")

    spine_proxy_url: str = Field(default="http://127.0.0.1:8081", pattern=r"^https?://")
    endpoint_overrides: dict[str, str] = Field(
        default_factory=dict,
        description="MHS name -> inbound URL, replacing the topology's registered endpoint",
    )

    queue_prefix: str = Field(default="mhs.", pattern=r"^[A-Za-z0-9_.:-]*$")
    queue_type: Literal["quorum", "classic"] = "quorum"
    delivery_limit: int = Field(default=20, ge=1)
    prefetch: int = Field(default=64, ge=1, le=65535)

    retry_count_mode: RetryCountMode = Field(
        default="retries",
        description="'retries': nhsMHSRetries counts retries after the first send "
        "(the NHS adaptor); 'attempts': it counts every send (SpineTools)",
    )
    delivery_timeout_s: float = Field(default=10.0, gt=0, description="worker -> proxy")
    forward_timeout_s: float = Field(default=10.0, gt=0, description="proxy -> inbound")
    shutdown_timeout_s: float = Field(default=15.0, gt=0)
    max_request_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    @field_validator("broker_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value in (None, "", "memory://"):
            return None
        if urlsplit(value).scheme not in ("amqp", "amqps"):
            raise ValueError("broker_url must start with amqp:// or amqps:// (or be unset)")
        return value

    def queue(self, name: str) -> str:
        """A queue name in this deployment's namespace."""
        return f"{self.queue_prefix}{name}"

    @property
    def outbound_queue(self) -> str:
        return self.queue("outbound")

    @property
    def dead_letter_queue(self) -> str:
        return self.queue("dead-letter")

    def inbound_queue(self, asid: str) -> str:
        return self.queue(f"inbound.{asid}")

    def redacted(self) -> dict[str, Any]:
        """The settings as printable data, with passwords removed."""
        data = self.model_dump(mode="json")
        if self.broker_url:
            data["broker_url"] = redact_url(self.broker_url)
        return data


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))
