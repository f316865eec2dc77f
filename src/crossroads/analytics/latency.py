"""The latency report: p50/p95/p99 of request latency per deployment, provider or model,
estimated from the rollups' histogram (bound in `ledger/histogram.py`), plus mean latency and
mean time to first token."""

from __future__ import annotations

from crossroads.analytics.query import ReportQuery, group_cells, group_columns
from crossroads.analytics.result import Report
from crossroads.ledger.histogram import RELATIVE_ERROR_BOUND, quantile
from crossroads.ledger.store import RollupReader

__all__ = ["PERCENTILES", "latency"]

PERCENTILES = (0.50, 0.95, 0.99)


async def latency(reader: RollupReader, query: ReportQuery) -> Report:
    """Per group (default: by served model and provider): requests that have a latency, the
    estimated nearest-rank p50, p95 and p99 in ms, mean latency and mean time to first token
    (None where no request has one). Values are rounded to 0.1 ms."""
    by = query.by if query.by is not None else ("served_model", "provider")
    rows = await reader.rollup(query.since, query.until, query.interval, by, histogram=True)
    table = []
    for row in rows:
        counts = row["latency_histogram"]
        estimates = [quantile(counts, q) for q in PERCENTILES]
        table.append(
            (
                *group_cells(row, query.interval, by),
                row["latency_count"],
                *(None if value is None else round(value, 1) for value in estimates),
                _mean(row["latency_ms_sum"], row["latency_count"]),
                _mean(row["ttft_ms_sum"], row["ttft_count"]),
            )
        )
    bound = f"{RELATIVE_ERROR_BOUND * 100:.2f}%"
    return Report(
        kind="latency",
        columns=(
            *group_columns(query.interval, by),
            "requests",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "mean_ms",
            "mean_ttft_ms",
        ),
        rows=tuple(table),
        notes=(
            f"Percentiles are estimated from a log-spaced histogram: within {bound} of the exact "
            "(nearest-rank) value for latencies from 1 ms to 2^20 ms (17.5 min); requests "
            "is the number with a latency. Means are exact.",
        ),
        summary={"percentile_relative_error_bound": RELATIVE_ERROR_BOUND},
    )


def _mean(total: float, count: int) -> float | None:
    return None if count == 0 else round(total / count, 1)
