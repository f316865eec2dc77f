"""How a `LedgerRecord` maps to a row of the SQLite `requests` table and back: the column list,
the INSERT statement, and the encodings of times and costs (see `migrations.m001_create_requests`).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from crossroads.ledger.record import LedgerRecord, Status, UsageSource
from crossroads.ledger.store import cost_from_units, cost_to_units

__all__ = [
    "COLUMNS",
    "INSERT",
    "SELECT_COLUMNS",
    "decode",
    "encode",
    "from_micros",
    "insert_rows",
    "to_micros",
]

COLUMNS = (
    "request_id",
    "created_at",
    "endpoint",
    "requested_model",
    "stream",
    "status",
    "served_model",
    "deployment",
    "provider",
    "host_jurisdiction",
    "maker",
    "origin_country",
    "open_weights",
    "prompt_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "http_status",
    "error_type",
    "error_message",
    "attempts",
    "api_key_id",
    "team_id",
    "baseline_model",
    "baseline_cost_units",
    "upstream_cost_units",
    "usage_source",
)
"""The `requests` columns in `LedgerRecord` field order; `_encode` and `_decode` follow it. Each
is named as its field, except the two later costs, named `_units` for what they hold."""

SELECT_COLUMNS = ", ".join(COLUMNS)
# ON CONFLICT DO NOTHING rather than INSERT OR IGNORE: only a repeated request_id is skipped;
# any other constraint failure still aborts the batch instead of silently losing the row.
INSERT = (
    f"INSERT INTO requests ({SELECT_COLUMNS}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    "ON CONFLICT (request_id) DO NOTHING"
)
_ROW = f"({', '.join('?' * len(COLUMNS))})"


@functools.lru_cache(maxsize=16)
def insert_rows(count: int) -> str:
    """`INSERT` as above, for `count` rows in one statement.

    Why not `executemany(INSERT, rows)`: Python's sqlite3 releases the GIL around every row's
    step, and the writer thread must win it back from a busy event loop each time, which takes
    up to the interpreter's switch interval (5 ms). Measured on this project's 2-core machine
    with the event loop saturated: about 2,000 rows/s row by row, about 40,000 in one statement
    (docs/performance.md)."""
    return (
        f"INSERT INTO requests ({SELECT_COLUMNS}) VALUES {', '.join([_ROW] * count)} "
        "ON CONFLICT (request_id) DO NOTHING"
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(moment: datetime) -> int:
    if moment.utcoffset() is None:
        raise ValueError("ledger datetimes must be timezone-aware")
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def encode(r: LedgerRecord) -> tuple[object, ...]:
    """`r` as a row in `COLUMNS` order. Raises ValueError for a naive `created_at`, an unknown
    status or usage source, or an out-of-range cost."""
    return (
        r.request_id,
        to_micros(r.created_at),
        r.endpoint,
        r.requested_model,
        int(r.stream),
        Status(r.status).value,
        r.served_model,
        r.deployment,
        r.provider,
        r.host_jurisdiction,
        r.maker,
        r.origin_country,
        None if r.open_weights is None else int(r.open_weights),
        r.prompt_tokens,
        r.cached_tokens,
        r.cache_write_tokens,
        r.completion_tokens,
        r.reasoning_tokens,
        _units(r, "cost_usd"),
        r.latency_ms,
        r.ttft_ms,
        r.http_status,
        r.error_type,
        r.error_message,
        r.attempts,
        r.api_key_id,
        r.team_id,
        r.baseline_model,
        _units(r, "baseline_cost_usd"),
        _units(r, "upstream_cost_usd"),
        None if r.usage_source is None else UsageSource(r.usage_source).value,
    )


def _units(record: LedgerRecord, field: str) -> int | None:
    value: Decimal | None = getattr(record, field)
    if value is None:
        return None
    try:
        return cost_to_units(value)
    except ValueError:
        raise ValueError(f"record {record.request_id}: {field} out of range") from None


def decode(row: tuple[Any, ...]) -> LedgerRecord:
    """The inverse of `encode`."""
    (request_id, created_at, endpoint, requested_model, stream, status, served_model,
     deployment, provider, host_jurisdiction, maker, origin_country, open_weights,
     prompt_tokens, cached_tokens, cache_write_tokens, completion_tokens, reasoning_tokens,
     cost_units, latency_ms, ttft_ms, http_status, error_type, error_message, attempts,
     api_key_id, team_id, baseline_model, baseline_units, upstream_units, usage_source,
     ) = row  # fmt: skip
    return LedgerRecord(
        request_id=request_id,
        created_at=from_micros(created_at),
        endpoint=endpoint,
        requested_model=requested_model,
        stream=bool(stream),
        status=Status(status),
        served_model=served_model,
        deployment=deployment,
        provider=provider,
        host_jurisdiction=host_jurisdiction,
        maker=maker,
        origin_country=origin_country,
        open_weights=None if open_weights is None else bool(open_weights),
        prompt_tokens=prompt_tokens,
        cached_tokens=cached_tokens,
        cache_write_tokens=cache_write_tokens,
        completion_tokens=completion_tokens,
        reasoning_tokens=reasoning_tokens,
        cost_usd=None if cost_units is None else cost_from_units(cost_units),
        latency_ms=latency_ms,
        ttft_ms=ttft_ms,
        http_status=http_status,
        error_type=error_type,
        error_message=error_message,
        attempts=attempts,
        api_key_id=api_key_id,
        team_id=team_id,
        baseline_model=baseline_model,
        baseline_cost_usd=None if baseline_units is None else cost_from_units(baseline_units),
        upstream_cost_usd=None if upstream_units is None else cost_from_units(upstream_units),
        usage_source=None if usage_source is None else UsageSource(usage_source),
    )
