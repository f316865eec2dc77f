"""The reports: adoption shares that add up to 100%, savings worked by hand in exact Decimal from
the catalog's worked example, latency percentiles within the histogram's stated bound, and every
report reading nothing but the ledger's rollups."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import pytest

from crossroads.analytics import REPORT_KINDS, Report, ReportQuery, resolve_dimensions, run_report
from crossroads.analytics.result import display, money, percent, shares
from crossroads.analytics.savings import annual_run_rate
from crossroads.catalog.loader import load_builtin
from crossroads.ledger import histogram
from crossroads.ledger.pricing import cost
from crossroads.ledger.record import LedgerRecord, Status, UsageSource
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.schemas.usage import Usage

T = TypeVar("T")
T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
SRC = Path(__file__).resolve().parents[2] / "src" / "crossroads"
M = 1_000_000


def run(path: Path, body: Callable[[SQLiteLedgerStore], Awaitable[T]]) -> T:
    async def main() -> T:
        store = SQLiteLedgerStore(path)
        await store.open()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def record(n: int, **changes: Any) -> LedgerRecord:
    base = LedgerRecord(
        request_id=f"req_{n:07d}",
        created_at=T0 + timedelta(minutes=n),
        endpoint="chat.completions",
        requested_model="m",
        stream=False,
        status=Status.OK,
    )
    return dataclasses.replace(base, **changes)


def list_price(model: str, host: str, prompt: int, completion: int) -> Decimal:
    offering = load_builtin().offering(model, host)
    assert offering is not None and offering.current is not None
    return cost(Usage(prompt_tokens=prompt, completion_tokens=completion), offering.current)


# Savings, worked by hand


def test_worked_example_prices_from_the_catalog() -> None:
    # catalog-facts.md: 10M uncached input and 2M output tokens at list price.
    assert list_price("deepseek/deepseek-v3.2", "deepseek", 10 * M, 2 * M) == Decimal("3.64")
    assert list_price("anthropic/claude-sonnet-4.5", "anthropic", 10 * M, 2 * M) == 60
    assert list_price("openai/gpt-4.1", "openai", 10 * M, 2 * M) == 36


def test_savings_of_the_worked_example_over_one_day(tmp_path: Path) -> None:
    actual = list_price("deepseek/deepseek-v3.2", "deepseek", 10 * M, 2 * M)
    baseline = list_price("anthropic/claude-sonnet-4.5", "anthropic", 10 * M, 2 * M)
    served = record(
        1,
        served_model="deepseek/deepseek-v3.2",
        prompt_tokens=10 * M,
        completion_tokens=2 * M,
        cost_usd=actual,
        baseline_model="anthropic/claude-sonnet-4.5",
        baseline_cost_usd=baseline,
    )
    no_baseline = record(2, cost_usd=Decimal("1.5"))
    query = ReportQuery(since=T0, until=T0 + timedelta(days=1))

    async def check(store: SQLiteLedgerStore) -> Report:
        await store.write([served, no_baseline])
        return await run_report("savings", store, query)

    report = run(tmp_path / "ledger.db", check)
    assert report.columns == (
        "requests", "actual_usd", "baseline_usd", "saving_usd", "saving_pct",
    )  # fmt: skip
    # By hand: 60.00 - 3.64 = 56.36; 56.36 / 60 = 93.9333..% -> 93.93; per day over one day
    # 56.36; a year: 56.36 * 365 = 20571.40.
    assert report.rows == ((1, Decimal("3.64"), Decimal("60.00"), Decimal("56.36"),
                            Decimal("93.93")),)  # fmt: skip
    summary = report.summary
    assert summary["saving_usd"] == Decimal("56.36")
    assert summary["saving_per_day_usd"] == Decimal("56.36")
    assert summary["annual_run_rate_usd"] == Decimal("20571.40")
    assert summary["window_days"] == Decimal("1.00")
    assert summary["other_requests"] == 1
    assert all(isinstance(v, Decimal) for v in report.rows[0][1:])
    assert any("20571.40" in note and "365" in note for note in report.notes)
    assert any("1 requests without a baseline" in note for note in report.notes)


def test_savings_by_model_over_a_week(tmp_path: Path) -> None:
    # Against GPT-4.1: 36.00 - 3.64 = 32.36 (89.888..% -> 89.89); twice in a week is 64.72,
    # so a year is 64.72 * 365 / 7 = 3374.6857.. -> 3374.69.
    deepseek = {
        "served_model": "deepseek/deepseek-v3.2",
        "prompt_tokens": 10 * M,
        "completion_tokens": 2 * M,
        "cost_usd": Decimal("3.64"),
        "baseline_model": "openai/gpt-4.1",
        "baseline_cost_usd": Decimal("36.00"),
    }
    kimi = {  # Kimi K2 at Moonshot, $11.00, against the same baseline: 25.00 (69.44%)
        **deepseek,
        "served_model": "moonshotai/kimi-k2-0905",
        "cost_usd": Decimal("11.00"),
    }
    records = [record(1, **deepseek), record(3000, **deepseek), record(5000, **kimi)]
    query = ReportQuery(since=T0, until=T0 + timedelta(days=7), by=("served_model",))

    async def check(store: SQLiteLedgerStore) -> Report:
        await store.write(records)
        return await run_report("savings", store, query)

    report = run(tmp_path / "ledger.db", check)
    assert report.as_dicts() == [
        {"served_model": "deepseek/deepseek-v3.2", "requests": 2, "actual_usd": Decimal("7.28"),
         "baseline_usd": Decimal("72.00"), "saving_usd": Decimal("64.72"),
         "saving_pct": Decimal("89.89")},
        {"served_model": "moonshotai/kimi-k2-0905", "requests": 1, "actual_usd": Decimal("11.00"),
         "baseline_usd": Decimal("36.00"), "saving_usd": Decimal("25.00"),
         "saving_pct": Decimal("69.44")},
    ]  # fmt: skip
    # Total 89.72 over 7 days: 12.817.. a day -> 12.82; a year 89.72 * 365 / 7 = 4678.257..
    assert report.summary["saving_usd"] == Decimal("89.72")
    assert report.summary["saving_per_day_usd"] == Decimal("12.82")
    assert report.summary["annual_run_rate_usd"] == Decimal("4678.26")
    assert annual_run_rate(Decimal("64.72"), T0, T0 + timedelta(days=7)) == Decimal("3374.69")


def test_savings_window_defaults_to_the_hours_with_data(tmp_path: Path) -> None:
    records = [
        record(0, cost_usd=Decimal(1), baseline_cost_usd=Decimal(3), created_at=T0),
        record(1, cost_usd=Decimal(1), baseline_cost_usd=Decimal(3),
               created_at=T0 + timedelta(hours=47, minutes=10)),
    ]  # fmt: skip

    async def check(store: SQLiteLedgerStore) -> Report:
        await store.write(records)
        return await run_report("savings", store, ReportQuery())

    report = run(tmp_path / "ledger.db", check)
    assert report.summary["window_start"] == T0
    assert report.summary["window_end"] == T0 + timedelta(hours=48)
    assert report.summary["annual_run_rate_usd"] == Decimal("730.00")  # 4 a saving per 2 days


def test_savings_of_an_empty_window(tmp_path: Path) -> None:
    async def check(store: SQLiteLedgerStore) -> Report:
        return await run_report("savings", store, ReportQuery())

    report = run(tmp_path / "ledger.db", check)
    assert report.summary["annual_run_rate_usd"] is None
    assert report.rows == ((0, Decimal("0.00"), Decimal("0.00"), Decimal("0.00"), None),)


# Adoption


def test_adoption_shares_add_up_to_100_in_every_period(tmp_path: Path) -> None:
    rng = random.Random(3)
    origins = [None, "CN", "US", "FR"]
    records = [
        record(
            n,
            created_at=T0 + timedelta(minutes=rng.randrange(21 * 1440)),
            origin_country=rng.choice(origins),
            open_weights=rng.choice([None, True, False]),
            prompt_tokens=rng.randrange(0, 30_000),
            completion_tokens=rng.randrange(0, 3000),
        )
        for n in range(2000)
    ]

    async def check(store: SQLiteLedgerStore) -> list[Report]:
        await store.write(records)
        return [
            await run_report("adoption", store, ReportQuery(interval=interval, by=by))
            for interval in (None, "day", "week")
            for by in (None, ("open_weights",), ("origin_country", "open_weights"))
        ]

    for report in run(tmp_path / "ledger.db", check):
        period = report.columns[0]
        assert period in ("day", "week")
        by_period: dict[str, list[dict[str, Any]]] = {}
        for row in report.as_dicts():
            by_period.setdefault(row[period], []).append(row)
        assert len(by_period) == (21 if period == "day" else 3)
        for rows in by_period.values():
            for kind, count in (("token_share_pct", "tokens"), ("request_share_pct", "requests")):
                assert sum(row[kind] for row in rows) == Decimal("100.00")
                total = sum(row[count] for row in rows)
                for row in rows:
                    exact = Fraction(row[count] * 100, total)
                    assert abs(Fraction(row[kind]) - exact) < Fraction(1, 100)
        if "open_weights" in report.columns:
            assert {row["open_weights"] for row in report.as_dicts()} == {"open", "closed", None}


def test_shares_round_by_largest_remainder() -> None:
    assert shares([1, 1, 1]) == [Decimal("33.34"), Decimal("33.33"), Decimal("33.33")]
    assert shares([2, 1]) == [Decimal("66.67"), Decimal("33.33")]
    assert shares([0, 5]) == [Decimal("0.00"), Decimal("100.00")]
    assert shares([0, 0]) == [None, None]
    assert sum(s for s in shares([7, 13, 29, 51, 3]) if s is not None) == 100
    with pytest.raises(ValueError):
        shares([-1, 2])


# Latency


@pytest.mark.parametrize("seed", [1, 2])
def test_latency_percentiles_within_the_stated_bound(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    models = ["deepseek/deepseek-v3.2", "openai/gpt-4.1"]
    latencies: dict[str, list[float]] = {m: [] for m in models}
    records = []
    for n in range(3000):
        model = models[n % 2]
        value = 10 ** rng.uniform(0.5, 5.5) * (3 if model == models[1] else 1)
        latencies[model].append(value)
        ttft = value / 4
        records.append(record(n, served_model=model, provider="p", latency_ms=value, ttft_ms=ttft))

    async def check(store: SQLiteLedgerStore) -> Report:
        await store.write(records)
        return await run_report("latency", store, ReportQuery())

    report = run(tmp_path / "ledger.db", check)
    assert report.columns[:2] == ("served_model", "provider")
    bound = histogram.RELATIVE_ERROR_BOUND
    assert 0.09 < bound < 0.091
    for row in report.as_dicts():
        values = sorted(latencies[row["served_model"]])
        assert row["requests"] == len(values)
        for name, q in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
            exact = values[math.ceil(q * len(values)) - 1]  # nearest rank
            assert abs(row[name] - exact) <= bound * exact + 0.05, (name, row[name], exact)
        assert row["mean_ms"] == pytest.approx(sum(values) / len(values), abs=0.051)
        assert row["mean_ttft_ms"] == pytest.approx(sum(values) / len(values) / 4, abs=0.051)
    assert any("9.05%" in note for note in report.notes)


def test_quantile_of_known_counts() -> None:
    counts = [0] * histogram.BUCKET_COUNT
    assert histogram.quantile(counts, 0.5) is None
    counts[0] = 1
    counts[5] = 98
    counts[81] = 1
    assert histogram.quantile(counts, 0.01) == 0.5
    assert histogram.quantile(counts, 0.5) == pytest.approx(2 ** (4.5 / 4))
    assert histogram.quantile(counts, 1.0) == 2.0**20
    with pytest.raises(ValueError):
        histogram.quantile(counts, 0)
    with pytest.raises(ValueError):
        histogram.quantile(counts[:-1], 0.5)


# Spend and errors


def test_spend_and_error_rates(tmp_path: Path) -> None:
    records = [
        record(1, served_model="a", provider="x", cost_usd=Decimal("0.1"), prompt_tokens=10),
        record(2, served_model="a", provider="x", cost_usd=Decimal("0.2"), status=Status.ERROR),
        record(3, served_model="b", provider="y", cost_usd=None, status=Status.CANCELLED),
        record(4, served_model="b", provider="y", cost_usd=Decimal("0.6"),
               upstream_cost_usd=Decimal("0.59")),
    ]  # fmt: skip

    async def check(store: SQLiteLedgerStore) -> tuple[Report, Report]:
        await store.write(records)
        return (
            await run_report("spend", store, ReportQuery()),
            await run_report("errors", store, ReportQuery()),
        )

    spend, errors = run(tmp_path / "ledger.db", check)
    rows = spend.as_dicts()
    shown = [(r["served_model"], r["cost_usd"], r["cost_share_pct"], r["unpriced"]) for r in rows]
    assert shown == [
        ("a", Decimal("0.30"), Decimal("33.33"), 0),
        ("b", Decimal("0.60"), Decimal("66.67"), 1),
    ]  # fmt: skip
    assert rows[1]["upstream_cost_usd"] == Decimal("0.59")
    assert rows[0]["upstream_cost_usd"] is None
    assert spend.summary["cost_usd"] == Decimal("0.90")
    assert [(r["provider"], r["errors"], r["cancelled"], r["error_rate_pct"])
            for r in errors.as_dicts()] == [("x", 1, 0, Decimal("50.00")),
                                            ("y", 0, 1, Decimal("0.00"))]  # fmt: skip


def test_spend_shows_per_group_and_period_the_cost_resting_on_estimates(tmp_path: Path) -> None:
    rng = random.Random(3)
    sources = [None, UsageSource.REPORTED, UsageSource.ESTIMATED]
    records = [
        record(
            n * 37,
            served_model=rng.choice(["a", "b"]),
            cost_usd=rng.choice([None, Decimal(rng.randrange(1, 10**6)).scaleb(-8)]),
            usage_source=rng.choice(sources),
        )
        for n in range(300)
    ]

    async def check(store: SQLiteLedgerStore) -> Report:
        await store.write(records)
        return await run_report("spend", store, ReportQuery(interval="day"))

    report = run(tmp_path / "ledger.db", check)
    for row in report.as_dicts():
        group = [
            r
            for r in records
            if r.served_model == row["served_model"]
            and r.created_at.strftime("%Y-%m-%d") == row["day"]
            and r.usage_source is UsageSource.ESTIMATED
        ]
        assert row["estimated_requests"] == len(group)
        assert row["estimated_cost_usd"] == sum((r.cost_usd or 0 for r in group), Decimal(0))
    estimated = [r.cost_usd for r in records if r.usage_source is UsageSource.ESTIMATED]
    assert report.summary["estimated_cost_usd"] == sum((c or 0 for c in estimated), Decimal(0))
    assert report.summary["estimated_requests"] == len(estimated)
    share = percent(report.summary["estimated_cost_usd"], report.summary["cost_usd"])
    assert any(f"({share}% of the total) rests on {len(estimated)} requests" in note
               for note in report.notes)  # fmt: skip


def test_spend_without_estimates_says_nothing_of_them(tmp_path: Path) -> None:
    async def check(store: SQLiteLedgerStore) -> Report:
        await store.write([record(1, cost_usd=Decimal("0.5"), usage_source=UsageSource.REPORTED)])
        return await run_report("spend", store, ReportQuery())

    report = run(tmp_path / "ledger.db", check)
    (row,) = report.as_dicts()
    assert row["estimated_requests"] == 0 and row["estimated_cost_usd"] == Decimal("0.00")
    assert not any("Estimated" in note for note in report.notes)


def test_money_and_percent_helpers() -> None:
    assert str(money(Decimal("60.0000000000"))) == "60.00"
    assert str(money(Decimal("0.0000364000"))) == "0.0000364"
    assert str(money(Decimal("0E-10"))) == "0.00"
    assert str(money(Decimal("1E+2"))) == "100.00"
    assert str(display(Decimal("6355.859400388"))) == "6355.86"
    assert str(display(Decimal("0.036848"))) == "0.03685"
    assert str(display(Decimal("0.0000364"))) == "0.0000364"
    assert str(display(Decimal("-0.3028"))) == "-0.3028"
    assert str(display(Decimal("0E-10"))) == "0.00"
    assert percent(1, 3) == Decimal("33.33")
    assert percent(1, 0) is None


def test_dimension_names() -> None:
    assert resolve_dimensions(["key", "team", "model", "host", "origin"]) == (
        "api_key_id", "team_id", "served_model", "provider", "origin_country",
    )  # fmt: skip
    with pytest.raises(ValueError, match="choose from"):
        resolve_dimensions(["request_id"])
    with pytest.raises(ValueError, match="more than once"):
        resolve_dimensions(["model", "served_model"])


# Reports read the rollups and nothing else


class RollupsOnly:
    """A `RollupReader` that answers from fixed rows and records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    async def rollup(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        interval: str | None = None,
        by: Sequence[str] = (),
        *,
        histogram: bool = False,
    ) -> list[dict[str, Any]]:
        self.calls.append(("rollup", (since, until, interval, tuple(by), histogram)))
        return []

    async def rollup_span(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> tuple[datetime, datetime] | None:
        self.calls.append(("rollup_span", (since, until)))
        return None

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a report used {name}, which is not part of RollupReader")


@pytest.mark.parametrize("kind", REPORT_KINDS)
def test_every_report_reads_only_through_the_rollup_reader(kind: str) -> None:
    reader = RollupsOnly()
    report = asyncio.run(run_report(kind, reader, ReportQuery(interval="day")))
    assert reader.calls and {name for name, _ in reader.calls} <= {"rollup", "rollup_span"}
    assert report.kind == kind and report.columns[0] == "day"


def test_unknown_report_or_interval() -> None:
    with pytest.raises(ValueError, match="unknown report"):
        asyncio.run(run_report("profit", RollupsOnly(), ReportQuery()))
    with pytest.raises(ValueError, match="unknown interval"):
        asyncio.run(run_report("spend", RollupsOnly(), ReportQuery(interval="month")))


def test_analytics_never_touches_sqlite_directly() -> None:
    forbidden = re.compile(
        r"^\s*(import sqlite3|from sqlite3|from crossroads\.ledger\.sqlite)", re.M
    )
    offenders = [
        p.name for p in (SRC / "analytics").glob("*.py") if forbidden.search(p.read_text())
    ]
    assert offenders == []
