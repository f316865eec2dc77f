"""Prices that depend on time, against the shipped catalog's own entries: DeepSeek V4 Pro at
peak and off-peak and across its 2026-08-16 16:00 UTC price change, MiniMax M3 above 512K
input, each to the micro-dollar; requests priced at the price in force when they started, and
old ledger rows keeping their cost after a price change."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from crossroads.catalog import Catalog, load_builtin
from crossroads.catalog.model import Offering, PricePoint, Prices
from crossroads.config import load_settings
from crossroads.errors import ConfigError
from crossroads.ingress.exchange import Exchange
from crossroads.ledger.baseline import baseline_from_catalog
from crossroads.ledger.pricing import cost, estimate_max_cost
from crossroads.ledger.record import Status
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.routing.deployment import Deployment
from crossroads.routing.router import Trace
from crossroads.schemas import Usage

CATALOG = load_builtin()
# One million prompt tokens of which 200K cached, 100K completion tokens of which 20K reasoning.
AGENT_TURN = Usage(
    prompt_tokens=1_000_000,
    completion_tokens=100_000,
    cached_tokens=200_000,
    reasoning_tokens=20_000,
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def offering(model: str, host: str) -> Offering:
    found = CATALOG.offering(model, host)
    assert found is not None
    return found


def priced_at(o: Offering, usage: Usage, when: datetime) -> Decimal:
    point = o.price_at(when)
    assert point is not None, f"no price for {o.model} at {o.host} on {when}"
    return cost(usage, point, when)


V4_PRO = offering("deepseek/deepseek-v4-pro", "deepseek")


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        # Peak, Tuesday 02:00 UTC (10:00 Beijing): 800K x 1.32 + 200K x 0.044 + 100K x 3.96.
        ("2026-10-27 02:00", "1.4608"),
        ("2026-10-27 03:59:59", "1.4608"),
        ("2026-10-27 06:00", "1.4608"),
        # Off-peak: 800K x 0.66 + 200K x 0.022 + 100K x 1.98, outside the windows or at a weekend.
        ("2026-10-27 04:00", "0.7304"),
        ("2026-10-27 12:00", "0.7304"),
        ("2026-10-27 00:59", "0.7304"),
        ("2026-10-31 02:00", "0.7304"),
        # Before 2026-08-16 16:00 UTC, one price all day: 0.435 / 0.003625 / 0.87.
        ("2026-08-14 02:00", "0.435725"),
        ("2026-08-16 15:59:59", "0.435725"),
        # From 16:00 that Sunday: off-peak; the next morning, Monday, peak.
        ("2026-08-16 16:00", "0.7304"),
        ("2026-08-17 02:00", "1.4608"),
        # At launch (2026-04-24) the list price was 1.74 / 0.145 / 3.48 (secondary source).
        ("2026-05-01 12:00", "1.769"),
    ],
)
def test_deepseek_v4_pro_is_priced_at_the_price_and_window_in_force(
    when: str, expected: str
) -> None:
    assert priced_at(V4_PRO, AGENT_TURN, utc(when)) == Decimal(expected)


def test_before_the_first_recorded_price_there_is_no_price() -> None:
    assert V4_PRO.price_at(utc("2026-04-23 23:59")) is None
    assert V4_PRO.price_at(utc("2026-04-24 00:00")) is not None


def test_deepseek_flash_peak_is_twice_off_peak() -> None:
    flash = offering("deepseek/deepseek-v4.1-flash", "deepseek")
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    assert priced_at(flash, usage, utc("2026-11-03 08:30")) == Decimal("1.50")  # 0.30 + 1.20
    assert priced_at(flash, usage, utc("2026-11-03 18:30")) == Decimal("0.75")  # 0.15 + 0.60


@pytest.mark.parametrize(
    ("prompt", "cached", "completion", "expected"),
    [
        # Above 512K (524,288) input tokens every token bills at the higher tier:
        # 500K x 0.60 + 100K x 0.12 + 10K x 2.40.
        (600_000, 100_000, 10_000, "0.336"),
        # At exactly 524,288 the base tier holds: 524,288 x 0.30 + 10K x 1.20.
        (524_288, 0, 10_000, "0.1692864"),
        (524_289, 0, 10_000, "0.3385734"),
    ],
)
def test_minimax_m3_long_prompts_bill_at_the_higher_tier(
    prompt: int, cached: int, completion: int, expected: str
) -> None:
    m3 = offering("minimax/minimax-m3", "minimax")
    usage = Usage(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached)
    assert priced_at(m3, usage, utc("2026-11-03 12:00")) == Decimal(expected)


def _deployment(model: str, host: str) -> Deployment:
    settings = load_settings(environ={"DEEPSEEK_API_KEY": "k"})
    return next(d for d in settings.deployments if d.catalog_id == model and d.provider == host)


def test_the_ledger_record_is_priced_at_the_request_start_time() -> None:
    dep = _deployment("deepseek/deepseek-v4-pro", "deepseek")
    trace = Trace(request_id="r", deadline=0, attempts=1, deployment=dep)
    sonnet = baseline_from_catalog(CATALOG, "anthropic/claude-sonnet-4.5")
    costs = []
    for when in ("2026-08-14 02:00", "2026-10-27 02:00", "2026-10-27 12:00"):
        exchange = Exchange("chat.completions")
        exchange.created_at = utc(when)
        record = exchange.record(trace, status=Status.OK, usage=AGENT_TURN, baseline=sonnet)
        # Sonnet 4.5: 800K x 3 + 200K x 0.30 + 100K x 15, the same at every hour.
        assert record.baseline_cost_usd == Decimal("3.96")
        costs.append(record.cost_usd)
    assert costs == [Decimal("0.435725"), Decimal("1.4608"), Decimal("0.7304")]


def test_old_ledger_rows_keep_their_cost_after_a_price_change(tmp_path: Path) -> None:
    """Rows priced before the change keep that price: a report over both periods sums the
    price each request ran at, not today's."""
    dep = _deployment("deepseek/deepseek-v4-pro", "deepseek")
    trace = Trace(request_id="r", deadline=0, attempts=1, deployment=dep)
    records = []
    for n, when in enumerate(("2026-08-14 12:00", "2026-08-20 12:00")):
        exchange = Exchange("chat.completions", request_id=f"req-{n}")
        exchange.created_at = utc(when)
        records.append(exchange.record(trace, status=Status.OK, usage=AGENT_TURN))

    async def main() -> Decimal:
        store = SQLiteLedgerStore(tmp_path / "ledger.db")
        await store.open()
        try:
            await store.write(records)
            (row,) = await store.rollup(None, None, None, ())
            return Decimal(row["cost_usd"])
        finally:
            await store.close()

    assert asyncio.run(main()) == Decimal("0.435725") + Decimal("0.7304")


def test_estimates_hold_the_window_in_force_or_else_the_dearest() -> None:
    prices = V4_PRO.current
    assert prices is not None
    peak = estimate_max_cost(1_000_000, 100_000, prices, utc("2026-10-27 02:00"))
    off_peak = estimate_max_cost(1_000_000, 100_000, prices, utc("2026-10-27 12:00"))
    assert (peak, off_peak) == (Decimal("1.716"), Decimal("0.858"))
    assert estimate_max_cost(1_000_000, 100_000, prices) == peak


def test_a_reasoning_rate_bills_reasoning_tokens_apart_from_output() -> None:
    prices = Prices(input=Decimal(1), output=Decimal(2), reasoning=Decimal(5))
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000, reasoning_tokens=400_000)
    # 1M x 1 + 600K x 2 + 400K x 5
    assert cost(usage, prices) == Decimal("4.2")
    assert estimate_max_cost(0, 1_000_000, prices) == Decimal("5")


def test_a_window_over_midnight_belongs_to_the_day_it_starts() -> None:
    catalog = _with_offering(
        {
            "input": "1",
            "output": "1",
            "windows": [
                {
                    "name": "night",
                    "start": "22:00",
                    "end": "02:00",
                    "days": ["fri"],
                    "input": "0.5",
                    "output": "0.5",
                    "except_dates": ["2026-10-02"],
                }
            ],
        }
    )
    point = present(catalog.offering("zai/glm-4.6", "zai")).current
    assert point is not None
    usage = Usage(prompt_tokens=1_000_000)
    assert cost(usage, point, utc("2026-10-30 23:00")) == Decimal("0.5")  # Friday night
    assert cost(usage, point, utc("2026-10-31 01:00")) == Decimal("0.5")  # still Friday's
    assert cost(usage, point, utc("2026-10-31 23:00")) == Decimal("1")  # Saturday night
    assert cost(usage, point, utc("2026-10-02 23:00")) == Decimal("1")  # an excepted Friday
    assert cost(usage, point, utc("2026-10-03 01:00")) == Decimal("1")


def present(value: Offering | None) -> Offering:
    assert value is not None
    return value


def _with_offering(*points: dict[str, object]) -> Catalog:
    return CATALOG.merged(
        {
            "offerings": [
                {
                    "model": "zai/glm-4.6",
                    "host": "zai",
                    "upstream_model": "glm-4.6",
                    "prices": list(points),
                }
            ]
        }
    )


def test_the_older_single_price_form_still_loads_as_a_history() -> None:
    catalog = CATALOG.merged(
        {
            "offerings": [
                {
                    "model": "zai/glm-4.6",
                    "host": "zai",
                    "upstream_model": "glm-4.6",
                    "prices": {"input": "0.5", "output": "2"},
                    "as_of": "2026-01-01",
                    "source": "our contract",
                }
            ]
        }
    )
    (point,) = present(catalog.offering("zai/glm-4.6", "zai")).history
    assert isinstance(point, PricePoint)
    assert (point.input, point.as_of.isoformat() if point.as_of else None, point.source) == (
        Decimal("0.5"),
        "2026-01-01",
        "our contract",
    )


@pytest.mark.parametrize(
    ("points", "problem"),
    [
        (
            [
                {"since": "2026-02-01", "input": "1", "output": "1"},
                {"since": "2026-01-01", "input": "2", "output": "2"},
            ],
            "$.offerings[0].prices[1].since",
        ),
        (
            [{"input": "1", "output": "1"}, {"input": "2", "output": "2"}],
            "$.offerings[0].prices[1].since",
        ),
        (
            [{"since": "2026-01-01", "since_time": "25:00", "input": "1", "output": "1"}],
            "since_time",
        ),
        (
            [
                {
                    "input": "1",
                    "output": "1",
                    "windows": [
                        {"name": "p", "start": "1:00", "end": "04:00", "input": "2", "output": "2"}
                    ],
                }
            ],
            "windows[0].start",
        ),
        (
            [
                {
                    "input": "1",
                    "output": "1",
                    "windows": [
                        {
                            "name": "p",
                            "start": "01:00",
                            "end": "04:00",
                            "days": ["monday"],
                            "input": "2",
                            "output": "2",
                        }
                    ],
                }
            ],
            "'monday' is not one of mon",
        ),
        (
            [
                {
                    "input": "1",
                    "output": "1",
                    "windows": [
                        {"name": "p", "start": "01:00", "end": "01:00", "input": "2", "output": "2"}
                    ],
                }
            ],
            "must not start and end at the same time",
        ),
    ],
)
def test_bad_histories_and_windows_are_refused_naming_the_path(
    points: list[dict[str, object]], problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _with_offering(*points)
    assert problem in caught.value.message


def test_a_deployment_without_history_uses_its_one_price() -> None:
    prices = Prices(input=Decimal(1), output=Decimal(1))
    dep = Deployment("x:y", "y", "x", "y", prices=prices)
    assert dep.prices_at(utc("2020-01-01 00:00")) is prices
    dated = replace(
        dep,
        price_history=(
            PricePoint(input=Decimal(2), output=Decimal(2), since=utc("2026-01-01 00:00").date()),
        ),
    )
    assert dated.prices_at(utc("2025-12-31 23:59")) is None
