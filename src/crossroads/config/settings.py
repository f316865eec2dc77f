"""The validated, frozen result of loading the configuration."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from crossroads.catalog import Catalog
from crossroads.governance.policy import EMPTY, PolicyRules
from crossroads.ledger.baseline import Baselines
from crossroads.providers.base import ProviderSpec
from crossroads.quality.settings import QualitySettings
from crossroads.routing.deployment import Deployment
from crossroads.routing.policy import RoutingPolicy
from crossroads.routing.table import Alias
from crossroads.scrub import DEFAULT_MAX_MESSAGE_CHARS, Scrubber, url_credentials
from crossroads.telemetry.otlp import OtlpSettings

# Provider headers whose values are credentials (Authorization, x-api-key, api-key, ...).
_CREDENTIAL_HEADER_WORDS = ("auth", "key", "token", "secret", "password", "cookie")

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
"""The Host names open mode answers to unless `server.allowed_hosts` says otherwise."""


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    """The HTTP edge (server.* in the config): what one client connection may hold and for how
    long, and which Host names and browser origins the gateway answers."""

    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    header_timeout: float = 30.0
    body_timeout: float = 300.0
    body_idle_timeout: float = 30.0
    keep_alive_timeout: float = 5.0
    max_connections: int | None = None  # None: derived from the open-file limit at start
    # Lower-case host names, IPv6 in brackets; None: any Host is answered.
    allowed_hosts: frozenset[str] | None = frozenset(LOOPBACK_HOSTS)
    cors_origins: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ResponsesSettings:
    """Stored responses of POST /v1/responses (the config's `responses` section)."""

    store: bool = True
    retention_days: float = 30.0
    max_stored_bytes: int = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Settings:
    source: str  # the config file, or "defaults"
    host: str
    port: int
    data_dir: Path
    max_body_bytes: int
    request_timeout: float
    catalog: Catalog
    providers: tuple[ProviderSpec, ...]
    deployments: tuple[Deployment, ...]
    # served name -> the served names it expands to, in order, and its strategy
    aliases: Mapping[str, Alias] = field(default_factory=dict)
    routing: RoutingPolicy = field(default_factory=RoutingPolicy)
    auth_mode: Literal["open", "keys"] = "open"
    admin_key: str | None = field(default=None, repr=False)
    key_refresh_interval: float = 5.0
    global_policy: PolicyRules = EMPTY
    storage_backend: Literal["sqlite", "postgres"] = "sqlite"
    postgres_url: str | None = field(default=None, repr=False)
    limits_backend: Literal["memory", "redis"] = "memory"
    redis_url: str | None = field(default=None, repr=False)
    baselines: Baselines = field(default_factory=Baselines)
    # Shutdown and the ledger's durability (server section; docs/operations.md).
    shutdown_grace: float = 30.0  # seconds requests in flight may finish after SIGTERM
    ledger_drain_timeout: float = 10.0  # seconds to flush the ledger at exit before spilling
    ledger_backlog_limit: int = 10_000  # unwritten records past which /readyz says not ready
    # Input limits (server section; README "Configuration").
    max_json_depth: int = 64
    max_model_name_chars: int = 256
    edge: EdgeSettings = field(default_factory=EdgeSettings)
    max_upstream_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS
    responses: ResponsesSettings = field(default_factory=ResponsesSettings)
    otlp: OtlpSettings | None = None  # OpenTelemetry export; None: off
    quality: QualitySettings = field(default_factory=QualitySettings)

    def scrubber(self) -> Scrubber:
        """The scrubber of every secret configured here: each provider's API key and
        credential headers, the admin key, the OTLP exporter's header values, and the user
        and password of the PostgreSQL and Redis URLs (see `crossroads.scrub`)."""
        secrets: list[str] = [self.admin_key] if self.admin_key else []
        users: list[str] = []
        for spec in self.providers:
            if spec.api_key:
                secrets.append(spec.api_key)
            for name, value in spec.headers.items():
                if any(word in name.lower() for word in _CREDENTIAL_HEADER_WORDS):
                    secrets += [value, value.rpartition(" ")[2]]
        if self.otlp is not None:  # a collector vendor's API key travels in these
            for headers in (self.otlp.traces_headers, self.otlp.metrics_headers):
                for value in headers.values():
                    secrets += [value, value.rpartition(" ")[2]]
        for url in (self.postgres_url, self.redis_url):
            if url:
                found, names = url_credentials(url)
                secrets += found
                users += names
        return Scrubber(secrets, users=users, max_message_chars=self.max_upstream_message_chars)
