"""Every report behind one entry point, `run_report`, plus the two simplest: spend and error
rates. Adoption, savings and latency have modules of their own.

Every report reads the ledger's rollups through `RollupReader` and nothing else, so it costs the
same at a thousand requests or ten million.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal

from crossroads.analytics.adoption import adoption
from crossroads.analytics.latency import latency
from crossroads.analytics.query import ReportQuery, group_cells, group_columns, periods
from crossroads.analytics.result import Report, display, money, percent, shares
from crossroads.analytics.savings import savings
from crossroads.ledger.store import ROLLUP_INTERVALS, RollupReader

__all__ = ["REPORT_KINDS", "error_rates", "run_report", "spend"]


async def spend(reader: RollupReader, query: ReportQuery) -> Report:
    """Requests, tokens and cost per group (default: by served model), with each group's share of
    the cost within its period. Unpriced requests (no list price known) are counted apart.
    `estimated_cost_usd` is the part of `cost_usd` that rests on usage the gateway estimated
    because the upstream reported none (`estimated_requests` requests): an approximation, where
    the rest is the upstream's own count priced exactly."""
    by = query.by if query.by is not None else ("served_model",)
    rows = await reader.rollup(query.since, query.until, query.interval, by)
    cost_shares: list[Decimal | None] = [None] * len(rows)
    for indexes in periods(rows, query.interval):
        units = [int(rows[i]["cost_usd"].scaleb(10)) for i in indexes]
        for i, share in zip(indexes, shares(units), strict=True):
            cost_shares[i] = share
    table = tuple(
        (
            *group_cells(row, query.interval, by),
            row["requests"],
            row["prompt_tokens"],
            row["cached_tokens"],
            row["completion_tokens"],
            money(row["cost_usd"]),
            share,
            row["estimated_requests"],
            money(row["estimated_cost_usd"]),
            row["requests"] - row["priced_requests"],
            money(row["upstream_cost_usd"]) if row["upstream_priced_requests"] else None,
        )
        for row, share in zip(rows, cost_shares, strict=True)
    )
    total = money(sum((row["cost_usd"] for row in rows), Decimal(0)))
    requests = sum(row["requests"] for row in rows)
    unpriced = sum(row["requests"] - row["priced_requests"] for row in rows)
    estimated = money(sum((row["estimated_cost_usd"] for row in rows), Decimal(0)))
    estimated_requests = sum(row["estimated_requests"] for row in rows)
    note = f"Total: ${display(total)} over {requests} requests"
    note += f"; {unpriced} unpriced (no list price known), not in the total." if unpriced else "."
    notes = [note]
    if estimated_requests:
        share = percent(estimated, total)
        notes.append(
            f"Estimated: ${display(estimated)}"
            + (f" ({share}% of the total)" if share is not None else "")
            + f" rests on {estimated_requests} requests whose upstream reported no usage; the"
            " gateway estimated their tokens (about 4 characters a token)."
        )
    return Report(
        kind="spend",
        columns=(
            *group_columns(query.interval, by),
            "requests",
            "prompt_tokens",
            "cached_tokens",
            "completion_tokens",
            "cost_usd",
            "cost_share_pct",
            "estimated_requests",
            "estimated_cost_usd",
            "unpriced",
            "upstream_cost_usd",
        ),
        rows=table,
        notes=(
            *notes,
            "upstream_cost_usd: what upstreams that report a cost (OpenRouter) said.",
        ),
        summary={
            "cost_usd": total,
            "requests": requests,
            "unpriced": unpriced,
            "estimated_cost_usd": estimated,
            "estimated_requests": estimated_requests,
        },
    )


async def error_rates(reader: RollupReader, query: ReportQuery) -> Report:
    """Requests, errors and cancellations per group (default: by provider and served model), and
    the error rate: errors / requests, in per cent. Cancellations are not errors."""
    by = query.by if query.by is not None else ("provider", "served_model")
    rows = await reader.rollup(query.since, query.until, query.interval, by)
    table = tuple(
        (
            *group_cells(row, query.interval, by),
            row["requests"],
            row["errors"],
            row["cancelled"],
            percent(row["errors"], row["requests"]),
        )
        for row in rows
    )
    requests = sum(row["requests"] for row in rows)
    errors = sum(row["errors"] for row in rows)
    rate = percent(errors, requests)
    overall = f"All: {errors} errors in {requests} requests"
    overall += f" ({rate}%)." if rate is not None else "."
    return Report(
        kind="errors",
        columns=(
            *group_columns(query.interval, by),
            "requests",
            "errors",
            "cancelled",
            "error_rate_pct",
        ),
        rows=table,
        notes=(
            overall,
            "Error rate = requests that ended in an error / all requests. Client cancellations "
            "are counted apart, not as errors.",
        ),
        summary={"requests": requests, "errors": errors, "error_rate_pct": rate},
    )


ReportFunction = Callable[[RollupReader, ReportQuery], Awaitable[Report]]

_REPORTS: Mapping[str, ReportFunction] = {
    "spend": spend,
    "savings": savings,
    "adoption": adoption,
    "latency": latency,
    "errors": error_rates,
}

REPORT_KINDS = tuple(_REPORTS)
"""Every report `run_report` knows, in the order the CLI lists them."""


async def run_report(kind: str, reader: RollupReader, query: ReportQuery) -> Report:
    """Builds the report named `kind` (one of `REPORT_KINDS`). Raises ValueError for an unknown
    kind or interval, InvalidRequestError (from the reader) for a dimension the rollups lack,
    LedgerStoreError when the store fails. Cancelling it cancels the wait on the store."""
    if query.interval is not None and query.interval not in ROLLUP_INTERVALS:
        raise ValueError(f"unknown interval {query.interval!r}; choose from hour, day, week")
    function = _REPORTS.get(kind)
    if function is None:
        raise ValueError(f"unknown report {kind!r}; choose from: {', '.join(REPORT_KINDS)}")
    report: Report = await function(reader, query)
    return report
