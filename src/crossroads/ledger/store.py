"""The ledger's storage seam: the `LedgerStore` protocol every backend (SQLite, PostgreSQL)
implements, the narrower `RollupReader` that reports read through, plus the rules they share:
which columns `totals` and `rollup` may group by, which records a store accepts, and how a
Decimal cost becomes an exact integer for storage."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Protocol

from crossroads.errors import GatewayError, InvalidRequestError
from crossroads.ledger.pricing import COST_QUANTUM
from crossroads.ledger.record import LedgerRecord
from crossroads.ledger.spend_query import RecentUsage

__all__ = [
    "GROUP_BY_FIELDS",
    "MAX_COST_USD",
    "ROLLUP_DIMENSIONS",
    "ROLLUP_INTERVALS",
    "ROLLUP_METRICS",
    "TOTALS_METRICS",
    "LedgerStore",
    "LedgerStoreError",
    "RecentUsage",
    "RollupReader",
    "check_record",
    "cost_from_units",
    "cost_to_units",
    "validate_group_by",
    "validate_rollup_query",
]

GROUP_BY_FIELDS = frozenset(
    {
        "served_model",
        "provider",
        "deployment",
        "maker",
        "origin_country",
        "host_jurisdiction",
        "status",
        "requested_model",
        "endpoint",
        "usage_source",
    }
)
"""The only names `LedgerStore.totals` accepts in `by`. They double as SQL column names, which is
why nothing outside this set may ever reach a query."""

TOTALS_METRICS = (
    "requests",  # every request in the group, whatever its status
    "errors",  # requests with status "error" (cancellations are not errors)
    "prompt_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cost_usd",  # Decimal, exact; the sum over priced requests only
    "unpriced",  # requests whose cost is unknown (no list price), left out of cost_usd
    "avg_latency_ms",  # float, or None when no request in the group has a latency
    "avg_ttft_ms",  # float, or None likewise
)
"""The keys of each `totals` row besides its group keys, in order."""

ROLLUP_DIMENSIONS = frozenset(
    {
        "api_key_id",
        "team_id",
        "served_model",
        "deployment",
        "maker",
        "origin_country",
        "open_weights",
        "provider",
        "host_jurisdiction",
        "status",
    }
)
"""The only names `RollupReader.rollup` accepts in `by`: the rollups' key columns besides the
bucket start. Like `GROUP_BY_FIELDS`, they double as SQL column names."""

ROLLUP_INTERVALS = ("hour", "day", "week")
"""Bucket sizes `rollup` can return, in UTC; weeks start on Monday."""

ROLLUP_METRICS = (
    "requests",  # every request in the group, whatever its status
    "errors",  # status "error"
    "cancelled",  # status "cancelled"
    "prompt_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cost_usd",  # Decimal, exact: the sum over priced requests
    "priced_requests",  # requests with a cost; the rest are unpriced
    "baselined_requests",  # requests with both a cost and a baseline cost
    "baselined_cost_usd",  # Decimal: their actual cost
    "baseline_cost_usd",  # Decimal: the same requests priced at their baseline model
    "upstream_cost_usd",  # Decimal: what upstreams reported, over requests that reported it
    "upstream_priced_requests",
    "estimated_requests",  # requests whose usage the gateway estimated (`usage_source`)
    "estimated_cost_usd",  # Decimal: the part of cost_usd that rests on those estimates
    "latency_count",  # requests with a latency
    "latency_ms_sum",  # float; each latency counted to the microsecond, so sums are exact
    "ttft_count",  # requests with a time to first token
    "ttft_ms_sum",  # float, likewise
)
"""The keys of each `rollup` row besides `bucket_start`, its group keys and, when asked for,
`latency_histogram` (a tuple of `histogram.BUCKET_COUNT` counts)."""

MAX_COST_USD = Decimal("922337203.6854775807")
"""The largest cost one record may carry: a signed 64-bit count of 1e-10 USD."""

_UNIT_SCALE = 10  # decimal places in one storage unit: 1 unit = 1e-10 USD = COST_QUANTUM


class LedgerStoreError(GatewayError):
    """The ledger store cannot do what was asked: not open, database unreachable or not
    writable. A readiness probe turns it into 503; the writer retries on it."""

    status = 503
    kind = "ledger_unavailable"


class RollupReader(Protocol):
    """Aggregates kept up to date as records are written, so reading them never scans the raw
    ledger. Everything `crossroads.analytics` reads goes through this protocol.

    Resolution is one hour, in UTC: a request counts in the hour that contains its `created_at`.
    Raises `LedgerStoreError` when the backend fails.
    """

    async def rollup(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        interval: str | None = None,
        by: Sequence[str] = (),
        *,
        histogram: bool = False,
    ) -> list[dict[str, Any]]:
        """Sums over the hours from `since` rounded down to the hour to `until` rounded up
        (each bound optional, aware), grouped by `by` (names from `ROLLUP_DIMENSIONS`) and, unless
        `interval` is None, by the `interval` bucket that holds each hour.

        Each row holds `bucket_start` (an aware UTC datetime; only with an interval), the group
        keys (None where the record had none; `open_weights` a bool, `status` a `Status`), the
        `ROLLUP_METRICS` and, with `histogram=True`, `latency_histogram`. Rows are ordered by
        `bucket_start`, then the group keys (missing keys first). With neither `by` nor
        `interval`, exactly one row, zeros included. Reads one consistent snapshot.

        Raises `InvalidRequestError` for a name outside the allow-list (param "by"), an unknown
        interval (param "interval") or a naive datetime (param "since" or "until")."""

    async def rollup_span(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> tuple[datetime, datetime] | None:
        """The start of the first and the end of the last hour holding any record within the
        window (same rounding as `rollup`), or None when there is none. Aware UTC datetimes."""


class LedgerStore(RollupReader, Protocol):
    """Where ledger records live. Every method may raise `LedgerStoreError` when the backend
    fails, and ValueError (or `InvalidRequestError` for `totals`) on bad arguments.

    Cancelling a call cancels the wait, not necessarily the work: a backend that runs queries on a
    worker thread or another server may still finish (and, for `write`, commit) it. `write` is
    idempotent, so the safe response to an unknown outcome is to write the batch again.
    """

    async def open(self) -> None:
        """Connects and brings the schema up to date (creates it on an empty database).
        Must be awaited before any other method."""

    async def write(self, records: Sequence[LedgerRecord]) -> None:
        """Stores `records` atomically: all of them or, on error, none. A record whose
        `request_id` is already stored (or earlier in the same batch) is ignored, so a retried
        batch never duplicates. Records must pass `check_record`."""

    async def recent(self, limit: int, since: datetime | None = None) -> list[LedgerRecord]:
        """Up to `limit` records created at or after `since` (aware datetime), newest first.
        Datetimes come back in UTC. Raises ValueError on a negative limit or a naive `since`."""

    async def totals(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        by: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """Aggregates over records with `since <= created_at < until` (each bound optional,
        aware). Groups by the columns named in `by` (see `GROUP_BY_FIELDS`); each row holds those
        keys plus `TOTALS_METRICS`, ordered by the group keys. With no `by`, exactly one row,
        zeros included. Raises `InvalidRequestError` for a name outside the allow-list."""

    async def count(self) -> int:
        """The number of stored records."""

    async def spend_since(
        self, scope: str, ids: Collection[str], since: datetime | None = None
    ) -> dict[str, Decimal]:
        """The cost of the records whose `scope` column ("api_key_id" or "team_id") holds one
        of `ids`, summed per id, exact: over the records created at or after `since` (aware)
        rounded down to the hour, or all of them when None. Read from the rollups, so cheap for
        any window; an id with no record in the window is absent. What rebuilds budget counters at
        start. Raises ValueError for another scope or a naive `since`."""

    async def usage_since(self, since: datetime) -> list[RecentUsage]:
        """Per API key and team, the requests (less those a rate limit refused) and tokens of
        the records created at or after `since` (aware): what rebuilds the rate windows at
        start. Meant for the last minute: it reads the raw ledger over that window."""

    async def rebuild_rollups(self) -> int:
        """Recomputes every rollup from the stored records, atomically, and returns how many
        records it read. `write` keeps rollups current, so this is for repairs and upgrades; it
        reads the whole ledger (minutes at tens of millions of records) and holds the write lock
        while it runs. Cancelling the call does not stop the rebuild."""

    async def ping(self) -> None:
        """Returns when the store can take a write now; raises `LedgerStoreError` otherwise.
        Writes nothing. Used by the readiness probe."""

    async def close(self) -> None:
        """Releases the connection and any worker thread. Idempotent; waits for calls already
        started to finish."""


def validate_group_by(by: Sequence[str]) -> tuple[str, ...]:
    """Returns `by` as a tuple after checking every name against `GROUP_BY_FIELDS`.

    Raises InvalidRequestError (param "by") for an unknown or repeated name, or when `by` is a
    single string rather than a sequence of names.
    """
    return _names(by, GROUP_BY_FIELDS, "group by")


def validate_rollup_query(
    interval: str | None, by: Sequence[str], since: datetime | None, until: datetime | None
) -> tuple[str, ...]:
    """Checks a `rollup` query and returns `by` as a tuple. Raises InvalidRequestError naming the
    parameter: an unknown or repeated dimension or a bare string (`by`), an unknown interval,
    a naive `since` or `until`."""
    if interval is not None and interval not in ROLLUP_INTERVALS:
        raise InvalidRequestError(
            f"unknown interval {interval!r}; choose from: {', '.join(ROLLUP_INTERVALS)}",
            param="interval",
        )
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.utcoffset() is None:
            raise InvalidRequestError(f"'{name}' must be timezone-aware", param=name)
    return _names(by, ROLLUP_DIMENSIONS, "group rollups by")


def _names(by: Sequence[str], allowed: Collection[str], what: str) -> tuple[str, ...]:
    """`by` as a tuple of distinct names from `allowed`; InvalidRequestError (param "by")
    otherwise, or when `by` is a bare string rather than a sequence of names."""
    if isinstance(by, str):
        raise InvalidRequestError("'by' must be a list of field names, not a string", param="by")
    names = tuple(by)
    for name in names:
        if name not in allowed:
            choices = ", ".join(sorted(allowed))
            raise InvalidRequestError(f"cannot {what} {name!r}; choose from: {choices}", param="by")
    if len(set(names)) != len(names):
        raise InvalidRequestError("'by' names a field more than once", param="by")
    return names


def check_record(record: LedgerRecord) -> None:
    """Raises ValueError if a store could not take `record`: a naive `created_at`, or a cost (own,
    baseline or upstream) that is not finite or exceeds `MAX_COST_USD` in size. O(1); the writer
    calls it on submit so a bad record fails where it was made instead of blocking a batch
    later."""
    if record.created_at.utcoffset() is None:
        raise ValueError(f"record {record.request_id}: created_at must be timezone-aware")
    for name in ("cost_usd", "baseline_cost_usd", "upstream_cost_usd"):
        value: Decimal | None = getattr(record, name)
        if value is not None and (not value.is_finite() or abs(value) > MAX_COST_USD):
            raise ValueError(f"record {record.request_id}: {name} out of range")


def cost_to_units(cost_usd: Decimal) -> int:
    """`cost_usd` as an integer count of 1e-10 USD, rounding half-even below that resolution
    (costs from `pricing.cost` are already quantized, so they convert exactly).

    Raises ValueError for a non-finite cost or one larger in size than `MAX_COST_USD`.
    """
    if not cost_usd.is_finite() or abs(cost_usd) > MAX_COST_USD:
        raise ValueError("cost_usd out of range")
    return int(cost_usd.quantize(COST_QUANTUM, rounding=ROUND_HALF_EVEN).scaleb(_UNIT_SCALE))


def cost_from_units(units: int) -> Decimal:
    """The inverse of `cost_to_units`: always exactly ten decimal places."""
    return Decimal(units).scaleb(-_UNIT_SCALE)
