"""The adoption report: each group's share of tokens and of requests per period, by where models
come from (maker's country), whether their weights are open, or who made them. The team's own
version of the public "open models went from 1% to 30% of tokens" chart."""

from __future__ import annotations

from typing import Any

from crossroads.analytics.query import ReportQuery, group_cells, group_columns, periods
from crossroads.analytics.result import Report, shares
from crossroads.ledger.store import RollupReader

__all__ = ["adoption"]


async def adoption(reader: RollupReader, query: ReportQuery) -> Report:
    """Tokens (prompt + completion) and requests per group and period (defaults: by maker's
    country, per week), each with its share of the period's total in per cent. Within a period
    the shares of either kind add up to exactly 100.00 (largest-remainder rounding; each is within
    0.01 of the exact share). Requests that never reached a model form a group whose keys are
    None, so the shares still cover all traffic."""
    by = query.by if query.by is not None else ("origin_country",)
    interval = query.interval or "week"
    rows = await reader.rollup(query.since, query.until, interval, by)
    tokens = [row["prompt_tokens"] + row["completion_tokens"] for row in rows]
    token_shares: list[Any] = [None] * len(rows)
    request_shares: list[Any] = [None] * len(rows)
    for indexes in periods(rows, interval):
        in_period = shares([tokens[i] for i in indexes])
        by_requests = shares([rows[i]["requests"] for i in indexes])
        for i, token_share, request_share in zip(indexes, in_period, by_requests, strict=True):
            token_shares[i] = token_share
            request_shares[i] = request_share
    table = tuple(
        (
            *group_cells(row, interval, by),
            tokens[i],
            token_shares[i],
            row["requests"],
            request_shares[i],
        )
        for i, row in enumerate(rows)
    )
    return Report(
        kind="adoption",
        columns=(
            *group_columns(interval, by),
            "tokens",
            "token_share_pct",
            "requests",
            "request_share_pct",
        ),
        rows=table,
        notes=(
            f"Shares are of each {interval}'s total (UTC; weeks start on Monday). Tokens are "
            "prompt + completion; a '-' key is traffic that never reached a model.",
        ),
        summary={"interval": interval, "by": list(by)},
    )
