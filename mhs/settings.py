"""The one settings object: MHS_* environment variables, overridden by command-line flags."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mhs.directory.addresses import LocalAddresses
from mhs.state.sentinel import SCHEME as SENTINEL_SCHEME
from mhs.state.sentinel import parse_sentinel_url

RetryCountMode = Literal["retries", "attempts"]
AcceptanceMode = Literal["queued", "spine"]
_LOCAL = LocalAddresses()


class Settings(BaseSettings):
    """Effective configuration for every role. Field ``x`` is read from ``MHS_X``."""

    model_config = SettingsConfigDict(env_prefix="MHS_", extra="forbid", frozen=True)

    broker_url: str | None = Field(
        default=None,
        description="amqp://user:pass@host:5672/vhost for RabbitMQ (for a cluster, each node's "
        "URL, comma-separated: a role whose node stops moves to the next); unset for the "
        "embedded broker",
    )
    topology: Path | None = Field(default=None, description="topology file (default: packaged)")
    local_mhs: str | None = Field(
        default=None, description="the MHS the inbound role serves (default: the hosted one)"
    )

    host: str = Field(default=_LOCAL.host, description="the address every role listens on")
    outbound_port: int = Field(default=8080, ge=0, le=65535)
    spine_proxy_port: int = Field(default=8081, ge=0, le=65535)
    inbound_port: int = Field(default=_LOCAL.inbound_port, ge=0, le=65535)
    worker_port: int = Field(default=8083, ge=0, le=65535, description="worker health port")
    gp_provider_port: int = Field(default=_LOCAL.gp_provider_port, ge=0, le=65535)
    sds_port: int = Field(default=8086, ge=0, le=65535, description="the SDS API simulator")
    remote_inbound_port: int = Field(
        default=_LOCAL.remote_inbound_port,
        ge=0,
        le=65535,
        description="where `serve all` runs the inbound MHS of the topology's other MHS",
    )

    serve_file: Path | None = Field(
        default=None,
        description="where `mhs serve` names the roles and ports it serves once ready, for "
        "`mhs healthcheck` without a role (the image sets it)",
    )
    audit_dir: Path = Field(
        default_factory=lambda: _state_home() / "mhs" / "audit",
        description="where each GP Connect provider keeps its audit trail "
        "(<MHS name>.audit.jsonl); default $XDG_STATE_HOME/mhs/audit (~/.local/state/...)",
    )

    spine_proxy_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="where workers send (default: this host's spine_proxy_port)",
    )
    endpoint_overrides: dict[str, str] = Field(
        default_factory=dict,
        description="MHS name -> inbound URL, replacing the topology's registered endpoint",
    )
    gpconnect_overrides: dict[str, str] = Field(
        default_factory=dict,
        description="MHS name -> GP Connect provider base URL, replacing the topology's",
    )

    state_url: str | None = Field(
        default=None,
        description="redis://host:6379/0 for the shared state store (duplicate elimination "
        "across inbound replicas and restarts), or redis+sentinel://host:26379,.../<service>/0 "
        "for one that fails over; unset for the in-process one",
    )
    connection_name: str = Field(
        default="mhs",
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="prefix of the broker connection names (<prefix>-<role>)",
    )
    queue_prefix: str = Field(default="mhs.", pattern=r"^[A-Za-z0-9_.:-]*$")
    inbound_shared_queue: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="one queue, named exactly this, for every hosted instance's messages, "
        "as the NHS adaptor's consumers read (its MHS_INBOUND_QUEUE_NAME, default 'inbound'); "
        "the to-asid header says whose; unset: a queue per instance, <prefix>inbound.<ASID>",
    )
    queue_type: Literal["quorum", "classic"] = "quorum"
    delivery_limit: int = Field(default=20, ge=1)
    prefetch: int = Field(default=64, ge=1, le=65535)

    hl7_receiver_check: Literal["warn", "strict"] = Field(
        default="warn",
        description="an HL7 receiver ASID (communicationFunctionRcv) that is not the "
        "recipient's: 'warn' sends to the directory's recipient and logs "
        "message.receiver_mismatch (real payloads carry Spine's and test environments' "
        "ASIDs); 'strict' refuses it with 400",
    )
    retry_count_mode: RetryCountMode = Field(
        default="retries",
        description="'retries': nhsMHSRetries counts retries after the first send "
        "(the NHS adaptor); 'attempts': it counts every send (SpineTools)",
    )
    inprocess_retry_max_s: float = Field(
        default=1.0,
        ge=0,
        description="retry waits up to this long are slept in the worker; longer ones wait "
        "in a delay queue",
    )
    dedup_pending_ttl_s: float = Field(
        default=30.0,
        gt=0,
        description="how long an inbound claim on a message id holds while it is published; "
        "longer than any publish can take",
    )
    sync_async_timeout_s: float = Field(
        default=20.0,
        gt=0,
        le=3600,
        description="wait-for-response: true: how long the outbound MHS holds the request "
        "for the reply (the NHS adaptor polls for about 20 s)",
    )
    acceptance: AcceptanceMode = Field(
        default="queued",
        description="when POST / answers (a request's mhs-acceptance header overrides it): "
        "'queued': 202 once RabbitMQ has confirmed the message; 'spine': once the delivery "
        "worker has settled it, as the NHS adaptor answers once Spine has: 202 delivered, "
        "the adaptor's 500 JSON when Spine refused it or it was given up",
    )
    acceptance_timeout_s: float = Field(
        default=20.0,
        gt=0,
        le=3600,
        description="acceptance 'spine': how long POST / waits for the delivery's outcome "
        "before it answers 202 with mhs-outcome: pending (the message is still being retried)",
    )
    spine_org_code: str = Field(
        default="YES",
        pattern=r"^[A-Z0-9]{3,8}$",
        description="Spine's ODS code: the recipient of a request without an ods-code",
    )
    status_ttl_s: float = Field(
        default=600.0,
        ge=0,
        description="how long each message's status timeline (GET /messages/{id}) is kept "
        "after its last step (default: past the longest persist duration, PT5M); 0: no "
        "timelines are recorded",
    )
    delivery_timeout_s: float = Field(default=10.0, gt=0, description="worker -> proxy")
    forward_timeout_s: float = Field(default=10.0, gt=0, description="proxy -> inbound")
    shutdown_timeout_s: float = Field(default=15.0, gt=0)
    max_request_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)

    jwt_timing: Literal["strict", "lenient"] = Field(
        default="strict",
        description="'strict': exp = iat + 300 exactly, iat not beyond now + leeway (the "
        "provider test suite); 'lenient': iat unchecked, exp within 300 s of it",
    )
    jwt_leeway_s: float = Field(default=600.0, ge=0, description="JWT clock-skew allowance")
    tls_cert: Path | None = Field(
        default=None, description="PEM certificate chain: TLS mutual authentication when set"
    )
    tls_key: Path | None = Field(default=None, description="PEM private key of tls_cert")
    tls_ca: Path | None = Field(default=None, description="PEM CA bundle peers are checked against")
    spine_proxy_fqdn: str = Field(
        default="spine-proxy.mhs.local",
        description="the name inbound and GP Connect providers require on the proxy's certificate",
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console", "ecs"] = Field(
        default="json", description="json (docs/log-schema.md), ecs (Elastic), console"
    )
    metrics_instance_labels: bool = Field(
        default=True,
        description="label per-instance metrics with ASIDs (bounded by the topology); "
        "false for very large topologies",
    )

    @field_validator("state_url")
    @classmethod
    def _state_scheme(cls, value: str | None) -> str | None:
        if value in (None, "", "memory://"):
            return None
        scheme = urlsplit(value).scheme
        if scheme == SENTINEL_SCHEME:
            parse_sentinel_url(value)  # a ValueError here says what is wrong with it
        elif scheme not in ("redis", "rediss", "unix"):
            raise ValueError(
                "state_url must start with redis://, rediss://, unix:// or "
                "redis+sentinel:// (or be unset)"
            )
        return value

    @field_validator("broker_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value in (None, "", "memory://"):
            return None
        urls = broker_urls(value)
        if not urls:
            raise ValueError("broker_url holds no URL: give amqp://... (or leave it unset)")
        for url in urls:
            if urlsplit(url).scheme not in ("amqp", "amqps"):
                raise ValueError(
                    "broker_url must start with amqp:// or amqps:// (or be unset); a cluster "
                    "is several such URLs, comma-separated"
                )
        return value

    @model_validator(mode="after")
    def _tls_complete(self) -> Settings:
        given = [self.tls_cert, self.tls_key, self.tls_ca]
        if any(given) and not all(given):
            raise ValueError("tls_cert, tls_key and tls_ca go together: set all three or none")
        return self

    @property
    def tls(self) -> bool:
        """Whether TLS mutual authentication is on."""
        return self.tls_cert is not None

    @property
    def reachable_host(self) -> str:
        """The address to reach this host's roles at (``host``, unless it is a wildcard)."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104

    @property
    def local_addresses(self) -> LocalAddresses:
        """What a topology's endpoint templates are filled with (mhs.directory.addresses)."""
        return LocalAddresses(
            scheme="https" if self.tls else "http",
            host=self.reachable_host,
            inbound_port=self.inbound_port,
            remote_inbound_port=self.remote_inbound_port,
            gp_provider_port=self.gp_provider_port,
        )

    @property
    def proxy_url(self) -> str:
        """Where workers and the outbound MHS reach the Spine proxy, without a trailing /."""
        if self.spine_proxy_url:
            return self.spine_proxy_url.rstrip("/")
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.reachable_host}:{self.spine_proxy_port}"

    def endpoint_of(self, mhs: str, registered: str) -> str:
        """The inbound URL of MHS ``mhs``: its override, else the topology's (registered)."""
        return self.endpoint_overrides.get(mhs, registered)

    def gpconnect_of(self, mhs: str, registered: str | None) -> str | None:
        """The GP Connect base URL of MHS ``mhs``: its override, else the topology's."""
        return self.gpconnect_overrides.get(mhs, registered)

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
        """Where messages for hosted instance ``asid`` go: its own queue, or the shared one."""
        return self.inbound_shared_queue or self.queue(f"inbound.{asid}")

    def reply_queue(self, replica: str) -> str:
        """Where replies for the requests one outbound replica holds (wait-for-response) go."""
        return self.queue(f"replies.{replica}")

    @property
    def unclaimed_replies_queue(self) -> str:
        """Where replies no outbound replica took in time go, to reach their instance's queue."""
        return self.queue("replies.unclaimed")

    def delay_queue(self, delay_ms: int) -> str:
        """Where outbound messages wait ``delay_ms`` before going back to the outbound queue."""
        return self.queue(f"delay.{delay_ms}")

    def redacted(self) -> dict[str, Any]:
        """The settings as printable data, with the password of every URL in them removed
        (broker, state store, endpoint overrides) and secret fields masked."""
        redacted: dict[str, Any] = _redact(self.model_dump(mode="json"))
        return redacted


def _state_home() -> Path:
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")


def _redact(value: Any) -> Any:
    if isinstance(value, str) and "@" in value:
        return redact_url(value)
    if isinstance(value, dict):
        return {key: _redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact(item) for item in value]
    return value


def broker_urls(url: str) -> list[str]:
    """The node URLs of a broker URL: one, or a cluster's, comma-separated (blanks and a
    trailing comma ignored)."""
    return [part.strip() for part in url.split(",") if part.strip()]


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (in its user info, and a
    ``sentinel_password`` in its query); each of a comma-separated list of URLs."""
    if url.count("://") > 1:
        return ",".join(redact_url(part) for part in url.split(","))
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        parts = parts._replace(netloc=f"{userinfo.partition(':')[0]}:***@{hosts}")
    query = re.sub(r"(sentinel_password=)[^&]*", r"\1***", parts.query)
    return urlunsplit(parts._replace(query=query))
