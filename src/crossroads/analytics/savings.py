"""The savings report: what requests cost against what the same tokens would have cost at the
baseline model (priced on the request path), in USD and per cent, and the annual run rate the
window implies. Exact Decimal arithmetic; rounded to cents only where stated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from crossroads.analytics.query import ReportQuery, group_cells, group_columns
from crossroads.analytics.result import Report, display, money, percent
from crossroads.ledger.store import RollupReader

__all__ = ["annual_run_rate", "savings", "window_of"]

_CENT = Decimal("0.01")
_DAY_SECONDS = 86_400
_HOUR = timedelta(hours=1)


async def savings(reader: RollupReader, query: ReportQuery) -> Report:
    """Per group (default: one row for everything): requests that have both a cost and a baseline
    cost, their actual cost, their baseline cost, the saving (baseline - actual) and the saving as
    a per cent of the baseline (0.01, half-even). Requests without a baseline or without a cost are
    left out of every figure and counted in the notes.

    The summary adds the window (see `window_of`), the total saving, the saving per day and the
    annual run rate (`annual_run_rate`), each rounded half-even to the cent."""
    by = query.by if query.by is not None else ()
    rows = await reader.rollup(query.since, query.until, query.interval, by)
    table = tuple(
        (
            *group_cells(row, query.interval, by),
            row["baselined_requests"],
            money(row["baselined_cost_usd"]),
            money(row["baseline_cost_usd"]),
            money(row["baseline_cost_usd"] - row["baselined_cost_usd"]),
            percent(row["baseline_cost_usd"] - row["baselined_cost_usd"], row["baseline_cost_usd"]),
        )
        for row in rows
        if row["baselined_requests"] or not (by or query.interval)
    )
    actual = sum((row["baselined_cost_usd"] for row in rows), Decimal(0))
    baseline = sum((row["baseline_cost_usd"] for row in rows), Decimal(0))
    compared = sum(row["baselined_requests"] for row in rows)
    others = sum(row["requests"] for row in rows) - compared
    saving = baseline - actual
    window = window_of(query, await reader.rollup_span(query.since, query.until))
    summary: dict[str, object] = {
        "window_start": None if window is None else window[0],
        "window_end": None if window is None else window[1],
        "window_days": None if window is None else _days(window),
        "baselined_requests": compared,
        "other_requests": others,
        "actual_usd": money(actual),
        "baseline_usd": money(baseline),
        "saving_usd": money(saving),
        "saving_pct": percent(saving, baseline),
        "saving_per_day_usd": None,
        "annual_run_rate_usd": None,
    }
    notes = [_window_note(window)]
    if compared:
        notes.append(
            f"Saving: ${display(saving)} against a baseline of ${display(baseline)} "
            f"({summary['saving_pct']}%), over {compared} requests with a baseline."
        )
    else:
        notes.append("No request in the window has both a cost and a baseline cost.")
    if others:
        notes.append(f"{others} requests without a baseline cost or without a cost are left out.")
    if window is not None and compared:
        seconds = int((window[1] - window[0]).total_seconds())
        summary["saving_per_day_usd"] = _rate(saving, seconds, 1)
        summary["annual_run_rate_usd"] = annual_run_rate(saving, window[0], window[1])
        notes.append(
            f"Annual run rate: ${summary['annual_run_rate_usd']} "
            f"(saving per day ${summary['saving_per_day_usd']} x 365, from this window)."
        )
    return Report(
        kind="savings",
        columns=(
            *group_columns(query.interval, by),
            "requests",
            "actual_usd",
            "baseline_usd",
            "saving_usd",
            "saving_pct",
        ),
        rows=table,
        notes=tuple(notes),
        summary=summary,
    )


def window_of(
    query: ReportQuery, span: tuple[datetime, datetime] | None
) -> tuple[datetime, datetime] | None:
    """The window a report covers, at hour resolution: from `since` rounded down to the hour (or,
    without `since`, the first hour with data) to `until` rounded up (or the end of the last hour
    with data). None when a bound is missing and there is no data to take it from."""
    start = _floor_hour(query.since) if query.since else (span[0] if span else None)
    end = _ceil_hour(query.until) if query.until else (span[1] if span else None)
    if start is None or end is None or end <= start:
        return None
    return start, end


def annual_run_rate(saving: Decimal, start: datetime, end: datetime) -> Decimal:
    """`saving` made between `start` and `end`, scaled to 365 days: saving * 365 days / window,
    rounded half-even to the cent. Raises ValueError when the window is empty."""
    seconds = int((end - start).total_seconds())
    if seconds <= 0:
        raise ValueError("the window must be longer than zero")
    return _rate(saving, seconds, 365)


def _rate(amount: Decimal, seconds: int, days: int) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 50
        scaled = amount * days * _DAY_SECONDS / seconds
        return scaled.quantize(_CENT, rounding=ROUND_HALF_EVEN)


def _days(window: tuple[datetime, datetime]) -> Decimal:
    seconds = int((window[1] - window[0]).total_seconds())
    return (Decimal(seconds) / _DAY_SECONDS).quantize(_CENT, rounding=ROUND_HALF_EVEN)


def _window_note(window: tuple[datetime, datetime] | None) -> str:
    if window is None:
        return "Window: no requests in it."
    start, end = (moment.strftime("%Y-%m-%d %H:%M") for moment in window)
    return f"Window: {start} to {end} UTC ({_days(window)} days, hour resolution)."


def _floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _ceil_hour(moment: datetime) -> datetime:
    floor = _floor_hour(moment)
    return floor if floor == moment else floor + _HOUR
