"""Four weeks of synthetic ledger history for the dashboard tests, written straight into a ledger
store before the gateway starts, so charts have many periods: open models' share of tokens grows
over the month, as in the public "1% to 30%" charts. Deterministic for a given `now` and seed."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from crossroads.ledger.pricing import COST_QUANTUM
from crossroads.ledger.record import LedgerRecord, Status
from crossroads.ledger.sqlite import SQLiteLedgerStore

__all__ = ["history", "run_on_own_loop", "seed_ledger"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Model:
    id: str
    origin: str
    open_weights: bool
    provider: str
    jurisdiction: str
    input_usd: str  # per million tokens
    output_usd: str
    median_ms: float

    @property
    def deployment(self) -> str:
        return f"{self.provider}:{self.id.split('/')[1]}"


_OPEN = (
    _Model("moonshotai/kimi-k2-0905", "CN", True, "together", "US", "1.00", "3.00", 2400),
    _Model("deepseek/deepseek-v3.2", "CN", True, "deepseek", "CN", "0.28", "0.42", 3100),
    _Model("openai/gpt-oss-120b", "US", True, "fireworks", "US", "0.15", "0.60", 900),
    _Model("mistral/mistral-small-3.2", "FR", True, "mistral", "FR", "0.10", "0.30", 700),
)
_CLOSED = (
    _Model("openai/gpt-5", "US", False, "openai", "US", "1.25", "10.00", 5200),
    _Model("anthropic/claude-sonnet-4.5", "US", False, "anthropic", "US", "3.00", "15.00", 4100),
)
BASELINE = "anthropic/claude-sonnet-4.5"
_BASELINE_PRICES = ("3.00", "15.00")


def history(now: datetime, days: int = 28, per_day: int = 30, seed: int = 7) -> list[LedgerRecord]:
    """`days * per_day` records from `days` days before `now` up to an hour before it. The open
    models' share of requests grows from about 5% to about 60%; 3% of requests fail."""
    rng = random.Random(seed)
    records = []
    for day in range(days, 0, -1):
        open_share = 0.05 + 0.55 * (days - day) / (days - 1)
        for _ in range(per_day):
            created = now - timedelta(days=day) + timedelta(hours=rng.uniform(0, 23))
            model = rng.choice(_OPEN if rng.random() < open_share else _CLOSED)
            records.append(_record(rng, len(records), created, model))
    return records


def seed_ledger(data_dir: Path, records: list[LedgerRecord]) -> None:
    """Writes `records` to the gateway ledger in `data_dir` (created if missing)."""

    async def write() -> None:
        store = SQLiteLedgerStore(data_dir / "ledger.sqlite3")
        await store.open()
        try:
            await store.write(records)
        finally:
            await store.close()

    run_on_own_loop(write())


def run_on_own_loop(coroutine: Coroutine[object, object, T]) -> T:
    """Runs `coroutine` to the end on a fresh event loop in a worker thread: the test's own
    thread may already run one (Playwright's sync API does)."""
    with ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(asyncio.run, coroutine).result()


def _record(rng: random.Random, index: int, created: datetime, model: _Model) -> LedgerRecord:
    failed = rng.random() < 0.03
    stream = rng.random() < 0.6
    prompt = 0 if failed else rng.randint(800, 9000)
    completion = 0 if failed else rng.randint(100, 1800)
    latency = rng.lognormvariate(0, 0.45) * model.median_ms * (0.3 if failed else 1)
    cost = None if failed else _price(prompt, completion, model.input_usd, model.output_usd)
    baseline = None if failed else _price(prompt, completion, *_BASELINE_PRICES)
    return LedgerRecord(
        request_id=f"req_history_{index:05d}",
        created_at=created,
        endpoint="chat.completions",
        requested_model=model.id,
        stream=stream,
        status=Status.ERROR if failed else Status.OK,
        served_model=model.id,
        deployment=model.deployment,
        provider=model.provider,
        host_jurisdiction=model.jurisdiction,
        maker=model.id.split("/")[0],
        origin_country=model.origin,
        open_weights=model.open_weights,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost_usd=cost,
        latency_ms=round(latency, 3),
        ttft_ms=round(latency * 0.25, 3) if stream and not failed else None,
        http_status=502 if failed else 200,
        error_type="upstream_error" if failed else None,
        error_message="upstream answered 503" if failed else None,
        attempts=2 if failed else 1,
        baseline_model=None if failed else BASELINE,
        baseline_cost_usd=baseline,
    )


def _price(prompt: int, completion: int, input_usd: str, output_usd: str) -> Decimal:
    total = prompt * Decimal(input_usd) + completion * Decimal(output_usd)
    return (total / 1_000_000).quantize(COST_QUANTUM)
