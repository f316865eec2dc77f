"""Ledger scale benchmark: fills a ledger with N generated requests through the real store (the
same `SQLiteLedgerStore.write` the gateway uses, which keeps the rollups current in each batch's
transaction), then times every report over it, median of several runs.

    .venv/bin/python bench/ledger_scale.py --rows 10000000

The traffic is a realistic mix over 90 days: 17 catalog models from 8 makers (Chinese, US and
French, open and closed weights) on 1 to 4 providers each (25 deployments), 40 API keys in 8
teams, 95% ok / 4% error / 1% cancelled, log-normal token counts and latencies, costs priced
exactly from the catalog's list prices, a Claude Sonnet 4.5 baseline on every request, and
open-weight traffic growing from about 22% to 43% of requests over the period. Results and
method: docs/performance-ledger.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from crossroads.analytics import ReportQuery, run_report
from crossroads.catalog.loader import load_builtin
from crossroads.catalog.model import Prices
from crossroads.ledger.record import LedgerRecord, Status
from crossroads.ledger.sqlite import SQLiteLedgerStore

END = datetime(2026, 3, 31, tzinfo=UTC)
GRAINS = ("hourly", "daily")
BASELINE = "anthropic/claude-sonnet-4.5"

# served model -> (providers, relative weight at the start, at the end, median latency ms)
MIX = {
    "deepseek/deepseek-v3.2": (("deepseek",), 5, 13, 900),
    "deepseek/deepseek-v3": (("fireworks", "together"), 2, 3, 900),
    "deepseek/deepseek-r1": (("together", "fireworks"), 2, 3, 6000),
    "moonshotai/kimi-k2-0905": (("moonshot", "together", "fireworks", "groq"), 3, 9, 1100),
    "zai/glm-4.6": (("zai",), 1, 5, 1300),
    "minimax/minimax-m2": (("minimax",), 1, 4, 1000),
    "qwen/qwen3-max": (("dashscope-intl",), 2, 3, 1500),
    "qwen/qwen3-coder": (("fireworks", "openrouter"), 2, 4, 1200),
    "openai/gpt-oss-120b": (("groq", "together"), 2, 5, 500),
    "meta/llama-3.3-70b-instruct": (("groq", "deepinfra"), 3, 2, 600),
    "mistral/mistral-small-3.2": (("deepinfra",), 1, 1, 700),
    "openai/gpt-4.1": (("openai",), 20, 14, 1800),
    "openai/gpt-4o": (("openai",), 10, 5, 1600),
    "openai/gpt-5": (("openai",), 8, 10, 4000),
    "anthropic/claude-sonnet-4.5": (("anthropic",), 25, 18, 2500),
    "google/gemini-2.5-pro": (("google",), 6, 6, 3000),
    "google/gemini-2.5-flash": (("google",), 8, 7, 800),
}


@dataclass(frozen=True, slots=True)
class Route:
    model: str
    provider: str
    maker: str
    origin: str
    open_weights: bool
    jurisdiction: str
    rates: tuple[int, int, int] | None  # units of 1e-10 USD per input, cached, output token
    latency_ms: float


def _rates(prices: Prices | None) -> tuple[int, int, int] | None:
    """Per-token rates in 1e-10 USD: a price per million tokens times 10^4 (exact for the
    catalog's prices, which have at most four decimals)."""
    if prices is None:
        return None
    cached = prices.cached_input if prices.cached_input is not None else prices.input
    return tuple(int(p * 10_000) for p in (prices.input, cached, prices.output))  # type: ignore[return-value]


def routes() -> dict[str, list[Route]]:
    catalog = load_builtin()
    table: dict[str, list[Route]] = {}
    for model_id, (providers, _, _, latency) in MIX.items():
        model = catalog.model(model_id)
        assert model is not None, model_id
        maker = catalog.maker(model.maker)
        assert maker is not None
        for provider in providers:
            host = catalog.host(provider)
            offering = catalog.offering(model_id, provider)
            assert host is not None and offering is not None, (model_id, provider)
            table.setdefault(model_id, []).append(
                Route(
                    model_id,
                    provider,
                    maker.id,
                    maker.country,
                    model.open_weights,
                    host.jurisdiction,
                    _rates(offering.prices),
                    latency,
                )
            )
    return table


def generate(rows: int, days: int, seed: int = 2026) -> Iterator[LedgerRecord]:
    """`rows` records in time order over the `days` before END."""
    rng = random.Random(seed)
    table = routes()
    models = list(MIX)
    baseline = _rates(load_builtin().offering(BASELINE, "anthropic").prices)  # type: ignore[union-attr]
    assert baseline is not None
    keys = [(f"cr_live_{k:02d}", f"team-{k % 8}") for k in range(40)]
    key_weights = [1 / (k + 1) for k in range(40)]  # a few heavy keys, a long tail
    start = END - timedelta(days=days)
    step = days * 86_400 / rows
    for n in range(rows):
        progress = n / rows
        weights = [a + (b - a) * progress for _, a, b, _ in MIX.values()]
        route = rng.choice(table[rng.choices(models, weights)[0]])
        key, team = rng.choices(keys, key_weights)[0]
        roll = rng.random()
        status = Status.OK if roll < 0.95 else Status.ERROR if roll < 0.99 else Status.CANCELLED
        prompt = int(rng.lognormvariate(7.6, 1.1)) if status is not Status.ERROR else 0
        cached = int(prompt * rng.choice((0, 0, 0.3, 0.6, 0.9)))
        completion = int(rng.lognormvariate(5.8, 0.9)) if status is Status.OK else 0
        reasoning = completion // 2 if "r1" in route.model or "gpt-5" in route.model else 0
        units = None
        if route.rates is not None:
            i, c, o = route.rates
            units = (prompt - cached) * i + cached * c + completion * o
        bi, bc, bo = baseline
        baseline_units = (prompt - cached) * bi + cached * bc + completion * bo
        latency = route.latency_ms * rng.lognormvariate(0, 0.6)
        stream = rng.random() < 0.6
        yield LedgerRecord(
            request_id=f"req_{rng.getrandbits(128):032x}",
            created_at=start + timedelta(seconds=n * step + rng.random() * step),
            endpoint="chat.completions",
            requested_model=route.model,
            stream=stream,
            status=status,
            served_model=route.model,
            deployment=f"{route.provider}:{route.model.split('/')[1]}",
            provider=route.provider,
            host_jurisdiction=route.jurisdiction,
            maker=route.maker,
            origin_country=route.origin,
            open_weights=route.open_weights,
            prompt_tokens=prompt,
            cached_tokens=cached,
            completion_tokens=completion,
            reasoning_tokens=reasoning,
            cost_usd=None if units is None else Decimal(units).scaleb(-10),
            latency_ms=latency,
            ttft_ms=latency * rng.uniform(0.05, 0.3) if stream else None,
            http_status=200 if status is not Status.ERROR else rng.choice((429, 502, 504)),
            error_type=None if status is not Status.ERROR else "upstream_error",
            attempts=1 if status is not Status.ERROR else rng.randint(1, 3),
            api_key_id=key,
            team_id=team,
            baseline_model=BASELINE,
            baseline_cost_usd=Decimal(baseline_units).scaleb(-10),
            upstream_cost_usd=None
            if route.provider != "openrouter" or units is None
            else Decimal(units).scaleb(-10),
        )


def queries(now: datetime) -> list[tuple[str, str, ReportQuery]]:
    """(label, report, query): the questions a dashboard asks, over the whole period and over
    windows that do not start on a day boundary."""
    d30, d7, h24 = now - timedelta(days=30), now - timedelta(days=7), now - timedelta(hours=24)
    return [
        ("spend by model, 90 days", "spend", ReportQuery(by=("served_model",))),
        ("spend by key and team, last 30 days", "spend",
         ReportQuery(since=d30, by=("api_key_id", "team_id"))),
        ("spend by provider per day, 90 days", "spend",
         ReportQuery(interval="day", by=("provider",))),
        ("savings total, 90 days", "savings", ReportQuery()),
        ("savings by team per week, 90 days", "savings",
         ReportQuery(interval="week", by=("team_id",))),
        ("adoption by origin per week, 90 days", "adoption", ReportQuery(by=("origin_country",))),
        ("adoption by open weights per day, 90 days", "adoption",
         ReportQuery(interval="day", by=("open_weights",))),
        ("adoption by maker per week, 90 days", "adoption", ReportQuery(by=("maker",))),
        ("latency by deployment, 90 days", "latency", ReportQuery(by=("deployment",))),
        ("latency by model per day, last 7 days", "latency",
         ReportQuery(since=d7, interval="day", by=("served_model",))),
        ("errors by provider and model, 90 days", "errors", ReportQuery()),
        ("spend by model per hour, last 24 hours", "spend",
         ReportQuery(since=h24, interval="hour", by=("served_model",))),
        ("spend per hour, last 7 days", "spend", ReportQuery(since=d7, interval="hour", by=())),
        ("spend by key per day, 90 days", "spend",
         ReportQuery(interval="day", by=("api_key_id",))),
        ("errors by key per hour, last 24 hours", "errors",
         ReportQuery(since=h24, interval="hour", by=("api_key_id",))),
    ]  # fmt: skip


async def rollup_rows(path: Path) -> str:
    """How many rows each rollup table holds (read directly: this is the benchmark, not a
    report)."""
    import sqlite3

    def count() -> str:
        with sqlite3.connect(path) as conn:
            tables = (
                "rollup_hourly",
                "rollup_daily",
                "rollup_hourly_served",
                "rollup_daily_served",
            )
            return ", ".join(
                f"{t} {conn.execute(f'SELECT COUNT(*) FROM {t}').fetchone()[0]:,}" for t in tables
            )

    return await asyncio.to_thread(count)


async def fill(store: SQLiteLedgerStore, rows: int, days: int, batch: int) -> float:
    """Writes the generated records in batches, generating the next batch while the store's
    worker thread writes the last one. Returns seconds."""
    started = time.perf_counter()
    pending: asyncio.Task[None] | None = None
    records = generate(rows, days)
    written = 0
    while written < rows:
        chunk = [next(records) for _ in range(min(batch, rows - written))]
        if pending is not None:
            await pending
        pending = asyncio.create_task(store.write(chunk))
        await asyncio.sleep(0)  # let the write start on the worker before generating more
        written += len(chunk)
        if written % (batch * 20) == 0 or written == rows:
            rate = written / (time.perf_counter() - started)
            print(f"  {written:>11,} rows  {rate:>9,.0f} rows/s", file=sys.stderr, flush=True)
    if pending is not None:
        await pending
    return time.perf_counter() - started


async def main(args: argparse.Namespace) -> None:
    if args.dir:
        await measure(args, Path(args.dir))
    else:
        with tempfile.TemporaryDirectory(prefix="ledger-scale-") as directory:
            await measure(args, Path(directory))


async def measure(args: argparse.Namespace, directory: Path) -> None:
    path = directory / "ledger.sqlite3"
    store = SQLiteLedgerStore(path)
    await store.open()
    try:
        if args.fill:
            print(
                f"Filling {path} with {args.rows:,} rows over {args.days} days...", file=sys.stderr
            )
            seconds = await fill(store, args.rows, args.days, args.batch)
            print(f"Fill: {args.rows:,} rows in {seconds:.0f} s "
                  f"({args.rows / seconds:,.0f} rows/s, batches of {args.batch:,})")  # fmt: skip
        count = await store.count()
        print(f"Rollup rows: {await rollup_rows(path)}")
        size = sum(p.stat().st_size for p in directory.glob("ledger.sqlite3*")) / 2**30  # noqa: ASYNC240
        print(f"Ledger: {count:,} rows, {size:.2f} GiB on disk (with WAL)")
        results = []
        for label, kind, query in queries(END):
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                report = await run_report(kind, store, query)
                times.append(time.perf_counter() - started)
            results.append((label, len(report.rows), statistics.median(times), max(times)))
        width = max(len(label) for label, *_ in results)
        print(f"\n{'report':<{width}}  {'rows':>5}  {'median ms':>9}  {'max ms':>7}")
        print(f"{'-' * width}  {'-' * 5}  {'-' * 9}  {'-' * 7}")
        for label, n, median, worst in results:
            print(f"{label:<{width}}  {n:>5}  {median * 1000:>9.1f}  {worst * 1000:>7.1f}")
        if args.rebuild:
            started = time.perf_counter()
            rebuilt = await store.rebuild_rollups()
            print(f"\nRebuild of the rollups: {rebuilt:,} rows in "
                  f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    finally:
        await store.close()
    if args.dir:
        print(f"\nLedger kept at {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--batch", type=int, default=20_000, help="records per store.write")
    parser.add_argument("--repeat", type=int, default=5, help="runs per report (median)")
    parser.add_argument("--dir", help="keep the ledger here (default: a temporary directory)")
    parser.add_argument("--no-fill", dest="fill", action="store_false",
                        help="time the reports of the ledger already in --dir")  # fmt: skip
    parser.add_argument("--rebuild", action="store_true", help="also time a full rebuild")
    asyncio.run(main(parser.parse_args()))
