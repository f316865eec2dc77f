"""One client request from arrival to its ledger record, shared by every ingress.

It notes the times (arrival, first byte to the client), the outcome and the usage, and turns
them, with the router's Trace, into exactly one LedgerRecord."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

from crossroads.errors import GatewayError
from crossroads.ledger.baseline import Baseline
from crossroads.ledger.pricing import cost
from crossroads.ledger.record import LedgerRecord, Status, UsageSource
from crossroads.routing.router import Trace
from crossroads.schemas import Usage


def new_request_id() -> str:
    """`req_` and 32 random hex digits (128 bits, as a UUID4 has, without building one)."""
    return f"req_{secrets.token_hex(16)}"


class Exchange:
    __slots__ = (
        "_first_byte",
        "_start",
        "api_key_id",
        "created_at",
        "endpoint",
        "eval_run",
        "request_id",
        "requested_model",
        "stream",
        "team_id",
    )

    def __init__(self, endpoint: str, request_id: str | None = None) -> None:
        self.created_at = datetime.now(UTC)
        self._start = time.perf_counter()
        self._first_byte: float | None = None
        self.endpoint = endpoint
        self.request_id = request_id or new_request_id()
        self.requested_model = ""
        self.stream = False
        self.api_key_id: str | None = None
        self.team_id: str | None = None
        self.eval_run: str | None = None  # set for eval traffic: recorded in the eval ledger

    def first_byte(self) -> None:
        """Notes that the first byte of the answer is going to the client (streams)."""
        if self._first_byte is None:
            self._first_byte = time.perf_counter()

    def record(
        self,
        trace: Trace | None,
        *,
        status: Status,
        usage: Usage | None = None,
        error: GatewayError | None = None,
        baseline: Baseline | None = None,
    ) -> LedgerRecord:
        """The ledger record of this request. Cost is None when the deployment has no price
        or no usage is known; `usage_source` None when no usage is known."""
        now = time.perf_counter()
        dep = trace.deployment if trace else None
        source = None
        if usage is not None:
            source = UsageSource.ESTIMATED if usage.estimated else UsageSource.REPORTED
        usage = usage or Usage()
        # Priced at the list price in force when the request started, in its time-of-day
        # window (`created_at` is UTC), so a later price change never reprices this row.
        prices = dep.prices_at(self.created_at) if dep else None
        baseline_prices = baseline.prices_at(self.created_at) if baseline else None
        model = dep.model if dep else None
        return LedgerRecord(
            request_id=self.request_id,
            created_at=self.created_at,
            endpoint=self.endpoint,
            requested_model=self.requested_model,
            stream=self.stream,
            status=status,
            served_model=(model.id if model else dep.name) if dep else None,
            deployment=dep.id if dep else None,
            provider=dep.provider if dep else None,
            host_jurisdiction=dep.host.jurisdiction if dep and dep.host else None,
            maker=model.maker if model else None,
            origin_country=dep.maker.country if dep and dep.maker else None,
            open_weights=model.open_weights if model else None,
            prompt_tokens=usage.prompt_tokens,
            cached_tokens=usage.cached_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            completion_tokens=usage.completion_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost_usd=(
                cost(usage, prices, self.created_at) if prices and usage.total_tokens else None
            ),
            latency_ms=(now - self._start) * 1000.0,
            ttft_ms=(self._first_byte - self._start) * 1000.0 if self._first_byte else None,
            http_status=error.status if error else (499 if status is Status.CANCELLED else 200),
            error_type=error.kind if error else None,
            error_message=error.message[:500] if error else None,
            attempts=trace.attempts if trace else 0,
            api_key_id=self.api_key_id,
            team_id=self.team_id,
            baseline_model=baseline.model if baseline else None,
            baseline_cost_usd=(
                cost(usage, baseline_prices, self.created_at)
                if baseline_prices and usage.total_tokens
                else None
            ),
            upstream_cost_usd=usage.upstream_cost_usd,
            usage_source=source,
        )
