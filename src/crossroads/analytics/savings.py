"""The savings report: what requests cost against what the same tokens would have cost at the
baseline model (priced on the request path), in USD and per cent, and the annual run rate the
window implies. Exact Decimal arithmetic; rounded to cents only where stated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from crossroads.analytics.query import ReportQuery, group_cells, group_columns
from crossroads.analytics.result import Report, display, money, percent
from crossroads.catalog.model import Prices
from crossroads.ledger.baseline import Baseline
from crossroads.ledger.pricing import cost
from crossroads.ledger.store import RollupReader
from crossroads.schemas.usage import Usage

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
    annual run rate (`annual_run_rate`), each rounded half-even to the cent. With
    `query.baselines`, the notes name the first one's prices in force in the window (date and
    source: the ledger rows were priced at them), and every further baseline is compared
    against too (`compare_baseline`), in the notes and in `summary["baselines"]`."""
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
    if query.baselines and compared:
        start, end = window if window is not None else (None, None)
        notes.append(f"Baseline on the ledger rows: {query.baselines[0].provenance(start, end)}.")
    comparisons = [await compare_baseline(reader, query, b) for b in query.baselines[1:]]
    summary["baselines"] = [c.summary() for c in comparisons]
    notes += [c.note() for c in comparisons]
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


class Comparison:
    """Savings against one further baseline: `actual` of the priced requests against the same
    token counts at the baseline's list price in force in each hour."""

    def __init__(self, baseline: Baseline, start: datetime | None, end: datetime | None) -> None:
        self.baseline = baseline
        self.start, self.end = start, end
        self.requests = 0
        self.actual = Decimal(0)
        self.priced = Decimal(0)
        self.unpriced_hours = 0
        self.tier_base_prices = False

    def summary(self) -> dict[str, object]:
        saving = self.priced - self.actual
        return {
            "baseline_model": self.baseline.model,
            "baseline_host": self.baseline.host,
            "prices": self.baseline.provenance(self.start, self.end),
            "requests": self.requests,
            "actual_usd": money(self.actual),
            "baseline_usd": money(self.priced),
            "saving_usd": money(saving),
            "saving_pct": percent(saving, self.priced),
        }

    def note(self) -> str:
        saving = self.priced - self.actual
        text = (
            f"Against {self.baseline.label()}: baseline ${display(money(self.priced))}, saving "
            f"${display(money(saving))} ({percent(saving, self.priced)}%) over {self.requests} "
            f"priced requests, at {self.baseline.provenance(self.start, self.end)}, from hourly "
            "token counts"
        )
        if self.tier_base_prices:
            text += " (prompt-length tiers not applied to summed hours: base prices)"
        return text + "."


async def compare_baseline(
    reader: RollupReader, query: ReportQuery, baseline: Baseline
) -> Comparison:
    """The priced requests of the window (every hour, served model and host with a cost)
    priced again at `baseline`, at its list price in force in each hour. Exact where the
    baseline has no prompt-length tiers; an hour's summed tokens have no one prompt length, so
    tiers fall back to base prices (said in the note)."""
    rows = await reader.rollup(query.since, query.until, "hour", ("served_model", "provider"))
    span = window_of(query, await reader.rollup_span(query.since, query.until))
    result = Comparison(baseline, *(span if span else (None, None)))
    for row in rows:
        if not row["priced_requests"]:
            continue
        hour: datetime = row["bucket_start"]
        prices = baseline.prices_at(hour)
        if prices is None:
            result.unpriced_hours += 1
            continue
        prices = prices.at_time(hour)
        if prices.tiers:
            result.tier_base_prices = True
            prices = Prices(
                prices.input,
                prices.output,
                prices.cached_input,
                prices.cache_write,
                prices.reasoning,
            )
        usage = Usage(
            prompt_tokens=row["prompt_tokens"],
            completion_tokens=row["completion_tokens"],
            cached_tokens=row["cached_tokens"],
            cache_write_tokens=row["cache_write_tokens"],
            reasoning_tokens=row["reasoning_tokens"],
        )
        result.requests += row["priced_requests"]
        result.actual += row["cost_usd"]
        result.priced += cost(usage, prices)
    return result


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
