"""The dashboard's data: the time window a request asks for, and the one JSON document the page
charts for it, assembled from the analytics reports (spend, savings, adoption, latency, errors).
Those read only the ledger's rollups, so the page costs the same at any ledger size."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from crossroads.analytics import Report, ReportQuery, run_report
from crossroads.analytics.moments import parse_moment
from crossroads.analytics.result import money, percent
from crossroads.errors import InvalidRequestError
from crossroads.ledger.baseline import Baseline
from crossroads.ledger.store import ROLLUP_INTERVALS, RollupReader

__all__ = ["DEFAULT_SPAN", "MAX_BUCKETS", "Window", "dashboard_data", "parse_window"]

DEFAULT_SPAN = timedelta(days=7)
MAX_BUCKETS = 5_000
"""The most periods one answer may hold (about seven months by the hour); more is a 400 that
asks for a longer interval, so a stray query cannot make the store sum millions of buckets."""

_HOUR = timedelta(hours=1)
_INTERVAL_LENGTH = {"hour": _HOUR, "day": timedelta(days=1), "week": timedelta(weeks=1)}


@dataclass(frozen=True, slots=True)
class Window:
    """`since <= time < until`, both on whole UTC hours (the rollups' resolution), charted per
    `interval`."""

    since: datetime
    until: datetime
    interval: str


def parse_window(params: Mapping[str, str], now: datetime) -> Window:
    """The window of a data request. `since` and `until` are ISO 8601 date-times (UTC when they
    carry no zone) or a span before `now` (`30m`, `24h`, `7d`, `2w`), as
    `crossroads.analytics.moments.parse_moment` reads them; defaults: `DEFAULT_SPAN` before
    now, and now. `since` is rounded down and `until` up to the hour. `interval` is hour, day or
    week; without one: hour up to 2 days, day up to 120 days, week beyond.

    Raises InvalidRequestError naming the parameter for an unreadable or out-of-range value, an
    empty window or one with more than `MAX_BUCKETS` periods."""
    # parse_moment keeps both far inside datetime's range, so this arithmetic cannot overflow.
    until = _moment(params.get("until"), "until", now) or now
    since = _moment(params.get("since"), "since", now) or until - DEFAULT_SPAN
    interval = params.get("interval") or _auto_interval(until - since)
    since, until = _floor_hour(since), _ceil_hour(until)
    if since >= until:
        raise InvalidRequestError("'since' must be before 'until'", param="since")
    if interval not in ROLLUP_INTERVALS:
        choices = ", ".join(ROLLUP_INTERVALS)
        raise InvalidRequestError(
            f"unknown interval {interval!r}; choose from: {choices}", param="interval"
        )
    if (until - since) / _INTERVAL_LENGTH[interval] > MAX_BUCKETS:
        raise InvalidRequestError(
            f"the window holds more than {MAX_BUCKETS} {interval}s; choose a longer interval",
            param="interval",
        )
    return Window(since, until, interval)


async def dashboard_data(
    reader: RollupReader,
    window: Window,
    *,
    baseline_model: str | None = None,
    baselines: tuple[Baseline, ...] = (),
) -> dict[str, Any]:
    """Everything the page charts for `window`, JSON-ready: money and percentages as exact
    decimal strings, periods as UTC labels ('2026-11-30 14:00' by the hour, the day otherwise;
    weeks start on Monday). Raises LedgerStoreError when the store fails."""
    span = (window.since, window.until)
    series = (*span, window.interval)
    spend, savings, origin, weights, latency, overall, errors = await asyncio.gather(
        run_report("spend", reader, ReportQuery(*series, ("served_model",))),
        run_report("savings", reader, ReportQuery(*series, (), baselines)),
        run_report("adoption", reader, ReportQuery(*series, ("origin_country",))),
        run_report("adoption", reader, ReportQuery(*series, ("open_weights",))),
        run_report("latency", reader, ReportQuery(*span, None, ("provider", "deployment"))),
        run_report("latency", reader, ReportQuery(*span, None, ())),
        run_report("errors", reader, ReportQuery(*span, None, ("provider",))),
    )
    period = window.interval
    document: dict[str, Any] = _jsonable(
        {
            "window": {
                "since": window.since.isoformat(),
                "until": window.until.isoformat(),
                "interval": period,
            },
            "baseline_model": baseline_model,
            # Every baseline compared against, with the prices (dates, sources) it used.
            "baselines": savings.summary.get("baselines", []),
            "totals": _totals(spend, savings, weights, overall, errors),
            "spend": _spend(spend, period),
            "savings": _savings(savings, period),
            "adoption": {
                "origin": _adoption(origin, period),
                "weights": _adoption(weights, period),
            },
            "latency": [
                row for row in latency.as_dicts() if row["provider"] is not None and row["requests"]
            ],
            "errors": errors.as_dicts(),
            # The spend notes but the last, which explains a column the page does not show.
            "notes": [*spend.notes[:-1], *savings.notes, *latency.notes],
        }
    )
    return document


def _totals(
    spend: Report, savings: Report, weights: Report, overall: Report, errors: Report
) -> dict[str, Any]:
    tokens = sum(row["prompt_tokens"] + row["completion_tokens"] for row in spend.as_dicts())
    open_tokens = sum(row["tokens"] for row in weights.as_dicts() if row["open_weights"] == "open")
    latency = overall.as_dicts()[0]
    return {
        "requests": errors.summary["requests"],
        "errors": errors.summary["errors"],
        "error_rate_pct": errors.summary["error_rate_pct"],
        "cost_usd": spend.summary["cost_usd"],
        "unpriced_requests": spend.summary["unpriced"],
        "estimated_cost_usd": spend.summary["estimated_cost_usd"],
        "estimated_requests": spend.summary["estimated_requests"],
        "tokens": tokens,
        "open_weights_token_share_pct": percent(open_tokens, tokens),
        "p50_ms": latency["p50_ms"],
        "p95_ms": latency["p95_ms"],
        **{
            name: savings.summary[name]
            for name in (
                "baselined_requests",
                "actual_usd",
                "baseline_usd",
                "saving_usd",
                "saving_pct",
                "saving_per_day_usd",
                "annual_run_rate_usd",
            )
        },
    }


def _spend(report: Report, period: str) -> dict[str, Any]:
    rows = report.as_dicts()
    periods = _periods(rows, period)
    keys = _keys_by_total(rows, "served_model", "cost_usd")
    cells = {(row[period], row["served_model"]): row for row in rows}
    return {
        "periods": periods,
        "series": [
            {
                "key": key,
                "cost_usd": [_cell(cells, p, key, "cost_usd", Decimal(0)) for p in periods],
                "requests": [_cell(cells, p, key, "requests", 0) for p in periods],
                "unpriced": [_cell(cells, p, key, "unpriced", 0) for p in periods],
            }
            for key in keys
        ],
    }


def _savings(report: Report, period: str) -> dict[str, Any]:
    rows = report.as_dicts()
    return {
        "periods": [row[period] for row in rows],
        **{
            name: [row[name] for row in rows]
            for name in ("requests", "actual_usd", "baseline_usd", "saving_usd", "saving_pct")
        },
    }


def _adoption(report: Report, period: str) -> dict[str, Any]:
    """Token shares per group and period, for periods with any tokens (a period of failed
    requests only has no shares); a group missing from a period holds 0% of it."""
    rows = [row for row in report.as_dicts() if row["token_share_pct"] is not None]
    dimension = report.columns[1]
    periods = _periods(rows, period)
    keys = _keys_by_total(rows, dimension, "tokens")
    cells = {(row[period], row[dimension]): row for row in rows}
    return {
        "periods": periods,
        "series": [
            {
                "key": key,
                "token_share_pct": [
                    _cell(cells, p, key, "token_share_pct", Decimal("0.00")) for p in periods
                ],
                "tokens": [_cell(cells, p, key, "tokens", 0) for p in periods],
            }
            for key in keys
            if any(cells.get((p, key), {}).get("tokens") for p in periods)
        ],
    }


def _periods(rows: Sequence[Mapping[str, Any]], period: str) -> list[str]:
    return sorted({row[period] for row in rows})


def _keys_by_total(rows: Sequence[Mapping[str, Any]], dimension: str, metric: str) -> list[Any]:
    """The groups, largest total first (the bottom of a stack), then by name; None last."""
    totals: dict[Any, Any] = {}
    for row in rows:
        totals[row[dimension]] = totals.get(row[dimension], 0) + row[metric]
    return sorted(totals, key=lambda key: (key is None, -totals[key], str(key)))


def _cell(
    cells: Mapping[tuple[str, Any], Mapping[str, Any]], period: str, key: Any, name: str, zero: Any
) -> Any:
    row = cells.get((period, key))
    return zero if row is None else row[name]


def _jsonable(value: Any) -> Any:
    """Decimals become exact strings (money keeps at least two decimals), datetimes ISO 8601."""
    if isinstance(value, Decimal):
        return str(money(value)) if value.is_finite() else None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _moment(raw: str | None, name: str, now: datetime) -> datetime | None:
    if not raw:
        return None
    try:
        return parse_moment(raw, now)
    except ValueError as exc:
        raise InvalidRequestError(f"'{name}': {exc}", param=name) from None


def _auto_interval(span: timedelta) -> str:
    if span <= timedelta(days=2):
        return "hour"
    return "day" if span <= timedelta(days=120) else "week"


def _floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _ceil_hour(moment: datetime) -> datetime:
    floor = _floor_hour(moment)
    return floor if floor == moment else floor + _HOUR
