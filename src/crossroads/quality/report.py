"""The switch report: what moving served name A's traffic to B would save and lose, from the
verdicts of replays and shadow calls, the eval ledger's costs and latencies, and the production
ledger's volume of A. Win / tie / loss with Wilson 95% intervals; a difference is called only
when the interval of B's win rate among decided items excludes parity (0.5)."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from crossroads.ledger.record import LedgerRecord
from crossroads.ledger.store import LedgerStore
from crossroads.quality.store import Answer, Verdict

__all__ = ["VOLUME_DAYS", "Z95", "switch_report", "wilson"]

Z95 = 1.959963984540054
VOLUME_DAYS = 30


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion; (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    denominator = 1 + z * z / n
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


def _share(count: int, n: int) -> dict[str, Any]:
    low, high = wilson(count, n)
    return {"count": count, "share": count / n if n else None, "low": low, "high": high}


def outcomes(verdicts: Sequence[Verdict]) -> dict[str, Any]:
    """Counts, shares and intervals of one group of verdicts, and the call they support."""
    n = len(verdicts)
    wins = sum(v.outcome == "win" for v in verdicts)
    losses = sum(v.outcome == "loss" for v in verdicts)
    ties = n - wins - losses
    decided = wins + losses
    low, high = wilson(wins, decided)
    if decided == 0:
        call = "tied: no item decided either way" if n else "no evidence: no items"
    elif high < 0.5:
        call = "worse: the candidate loses more than it wins (the interval excludes parity)"
    elif low > 0.5:
        call = "better: the candidate wins more than it loses (the interval excludes parity)"
    else:
        call = "no difference shown: the interval includes parity; more items would narrow it"
    tools = [v.tool_agree for v in verdicts if v.tool_agree is not None]
    return {
        "items": n,
        "win": _share(wins, n),
        "tie": _share(ties, n),
        "loss": _share(losses, n),
        "win_rate_of_decided": {
            "decided": decided,
            "rate": wins / decided if decided else None,
            "low": low,
            "high": high,
        },
        "call": call,
        "tool_agreement": _share(sum(tools), len(tools)) if tools else None,
    }


def _costs(
    pairs: Iterable[tuple[Answer, Answer]], records: Mapping[str, LedgerRecord]
) -> dict[str, Any]:
    """Latency and cost of the baseline's and the candidate's answers to the same items; costs
    only over items both of whose answers are priced, so the two sums are comparable."""
    lat_a, lat_b = [], []
    cost_a = cost_b = Decimal(0)
    priced = 0
    for a, b in pairs:
        if a.latency_ms is not None and b.latency_ms is not None:
            lat_a.append(a.latency_ms)
            lat_b.append(b.latency_ms)
        ra, rb = records.get(a.request_id or ""), records.get(b.request_id or "")
        if ra and rb and ra.cost_usd is not None and rb.cost_usd is not None:
            cost_a += ra.cost_usd
            cost_b += rb.cost_usd
            priced += 1
    median_a = statistics.median(lat_a) if lat_a else None
    median_b = statistics.median(lat_b) if lat_b else None
    return {
        "latency_ms": {
            "from_median": median_a,
            "to_median": median_b,
            "difference": (
                median_b - median_a if median_a is not None and median_b is not None else None
            ),
            "items": len(lat_a),
        },
        "cost_usd": {
            "priced_items": priced,
            "from": cost_a,
            "to": cost_b,
            "ratio": (cost_b / cost_a) if cost_a else None,
        },
    }


async def production_cost(store: LedgerStore, model: str, now: datetime | None = None) -> Decimal:
    """What served name `model` cost in production over the last `VOLUME_DAYS` days."""
    since = (now or datetime.now(UTC)) - timedelta(days=VOLUME_DAYS)
    for row in await store.totals(since=since, by=["requested_model"]):
        if row["requested_model"] == model:
            return Decimal(row["cost_usd"])
    return Decimal(0)


def switch_report(
    source: str,
    target: str,
    verdicts: Sequence[Verdict],
    answers: Sequence[tuple[str, str, Answer]],
    eval_records: Iterable[LedgerRecord],
    volumes: Mapping[str, Decimal],
) -> dict[str, Any]:
    """The report for moving `source`'s traffic to `target`. `answers` are (run, item,
    answer) of the runs the verdicts come from; `volumes` the production cost of each served
    name over `VOLUME_DAYS` days (`production_cost`)."""
    records = {r.request_id: r for r in eval_records}
    index = {(run, item, a.model): a for run, item, a in answers}
    pairs = []
    for v in verdicts:
        a, b = index.get((v.run, v.item, source)), index.get((v.run, v.item, target))
        if a is not None and b is not None:
            pairs.append((a, b))
    judge_cost = sum(
        (
            records[a.request_id].cost_usd or Decimal(0)
            for run, item, a in answers
            if "#judge" in item and a.request_id in records
        ),
        Decimal(0),
    )
    report: dict[str, Any] = {
        "from": source,
        "to": target,
        **outcomes(verdicts),
        **_costs(pairs, records),
        "judge_cost_usd": judge_cost,
        "runs": sorted({v.run for v in verdicts}),
    }
    ratio = report["cost_usd"]["ratio"]
    by_served: dict[str, list[Verdict]] = defaultdict(list)
    by_task: dict[str, list[Verdict]] = defaultdict(list)
    for v in verdicts:
        by_served[v.served].append(v)
        by_task[v.task or ""].append(v)
    served_rows = []
    for name, group in sorted(by_served.items()):
        volume = volumes.get(name, Decimal(0))
        saving = volume * (1 - ratio) if ratio is not None else None
        row = _row(group)
        row.update({"served": name, f"production_cost_{VOLUME_DAYS}d": volume, "saving": saving})
        served_rows.append(row)
    report["by_served"] = served_rows
    report["by_task"] = [{"task": t or "(untagged)", **_row(g)} for t, g in sorted(by_task.items())]
    savings = [r["saving"] for r in served_rows if r["saving"] is not None]
    report[f"saving_usd_per_{VOLUME_DAYS}d"] = sum(savings, Decimal(0)) if savings else None
    return report


def _row(group: Sequence[Verdict]) -> dict[str, Any]:
    o = outcomes(group)
    return {
        "items": o["items"],
        "win": o["win"]["count"],
        "tie": o["tie"]["count"],
        "loss": o["loss"]["count"],
        "call": o["call"].split(":", 1)[0],
    }
