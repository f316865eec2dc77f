"""One ledger record: what happened to one client request, whatever its outcome."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    ERROR = "error"
    CANCELLED = "cancelled"


class UsageSource(StrEnum):
    """Where a record's token counts (and so its costs) came from."""

    REPORTED = "reported"  # the upstream's own usage
    ESTIMATED = "estimated"  # the upstream reported none; the gateway estimated it


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """Token counts follow `crossroads.schemas.Usage`: `prompt_tokens` includes `cached_tokens`,
    `completion_tokens` includes `reasoning_tokens`. Fields about the serving deployment are None
    when no deployment was reached (bad request, unknown model). Latencies are milliseconds."""

    request_id: str
    created_at: datetime  # UTC, timezone-aware: when the request arrived
    endpoint: str  # "chat.completions", "messages", ...
    requested_model: str
    stream: bool
    status: Status
    # The catalog model id that answered, e.g. "deepseek/deepseek-v3.2".
    served_model: str | None = None
    deployment: str | None = None  # the deployment that answered (or was last tried)
    provider: str | None = None  # the provider id from config
    host_jurisdiction: str | None = None  # ISO country code of the serving host
    maker: str | None = None
    origin_country: str | None = None  # ISO country code of the model's maker
    open_weights: bool | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal | None = None  # None when the serving host has no known price
    latency_ms: float | None = None
    ttft_ms: float | None = None  # time to first token (first byte to the client on streams)
    http_status: int = 200
    error_type: str | None = None
    error_message: str | None = None
    attempts: int = 0
    api_key_id: str | None = None  # the key's public prefix, never the secret
    team_id: str | None = None
    # Savings: the same token counts priced at the proprietary baseline model.
    baseline_model: str | None = None  # catalog id, e.g. "anthropic/claude-sonnet-4.5"
    baseline_cost_usd: Decimal | None = None
    # What the upstream itself reported the request cost (OpenRouter's usage.cost), if anything.
    upstream_cost_usd: Decimal | None = None
    # Where the token counts came from; None when the request has no usage at all (it never
    # reached an upstream's answer), and in rows written before the ledger recorded it.
    usage_source: UsageSource | None = None
