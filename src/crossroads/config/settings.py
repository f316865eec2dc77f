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
from crossroads.routing.deployment import Deployment
from crossroads.routing.policy import RoutingPolicy
from crossroads.routing.table import Alias


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
