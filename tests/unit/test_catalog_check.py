"""`crossroads catalog check`, the savings report against several baselines with the price
dates it used, and `crossroads models` showing dated, sourced prices."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from crossroads.analytics import ReportQuery, run_report
from crossroads.catalog import load_builtin
from crossroads.catalog.check import check_catalog
from crossroads.cli.main import main
from crossroads.config import load_settings
from crossroads.ingress.exchange import Exchange
from crossroads.ingress.openai.models import models_body
from crossroads.ledger.baseline import baseline_from_catalog
from crossroads.ledger.record import LedgerRecord, Status
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.routing.router import Trace
from crossroads.routing.table import RoutingTable
from crossroads.schemas import Usage
from crossroads.server.runtime import LEDGER_FILE

CATALOG = load_builtin()
TODAY = dt.date(2026, 12, 3)


def test_check_finds_stale_and_unconfirmed_prices_of_live_offerings() -> None:
    findings = check_catalog(CATALOG, TODAY, 90)
    found = {(f.kind, f.subject) for f in findings}
    # Read 2025-12-01: more than 90 days before 2026-12-03.
    assert ("stale", "anthropic/claude-sonnet-4.5 at anthropic") in found
    # From secondary sources only.
    assert ("unverified", "moonshotai/kimi-k2.6 at moonshot") in found
    assert ("unverified", "minimax/minimax-m3 at minimax") in found
    assert ("unverified", "model minimax/minimax-m3") in found
    assert ("unverified", "host deepseek") in found
    # Read on DeepSeek's own page, today: neither stale nor unconfirmed.
    assert not {k for k, s in found if s == "deepseek/deepseek-v4-pro at deepseek"}
    # Retired offerings only price old rows: not checked.
    assert not any(s == "deepseek/deepseek-v3.2 at deepseek" for _, s in found)
    # A longer age makes last year's prices current again.
    assert not any(f.kind == "stale" for f in check_catalog(CATALOG, TODAY, 400))
    with pytest.raises(ValueError):
        check_catalog(CATALOG, TODAY, -1)


def _record(n: int, served: str | None, cost: Decimal | None) -> LedgerRecord:
    return LedgerRecord(
        request_id=f"req-{n}",
        created_at=dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC),
        endpoint="chat.completions",
        requested_model="m",
        stream=False,
        status=Status.OK,
        served_model=served,
        provider="vllm",
        prompt_tokens=1000,
        completion_tokens=100,
        cost_usd=cost,
    )


def _write(data_dir: Path, records: list[LedgerRecord]) -> None:
    async def main() -> None:
        store = SQLiteLedgerStore(data_dir / LEDGER_FILE)
        await store.open()
        try:
            await store.write(records)
        finally:
            await store.close()

    asyncio.run(main())


def test_check_warns_about_ledger_spend_with_no_price(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(
        tmp_path,
        [
            _record(1, "my-finetune", None),
            _record(2, "my-finetune", None),
            _record(3, "x", Decimal(1)),
        ],
    )
    code = main(["catalog", "check", "--data-dir", str(tmp_path), "--format", "json", "--strict"])
    rows = json.loads(capsys.readouterr().out)
    unpriced = [r for r in rows if r["warning"] == "unpriced"]
    assert unpriced == [
        {
            "warning": "unpriced",
            "subject": "my-finetune via vllm",
            "detail": "2 requests, 2200 tokens in the ledger with no price: add one (catalog "
            "override) so spend and savings count them",
        }
    ]
    assert code == 1  # --strict: any warning fails, for CI


def test_savings_against_several_baselines_names_each_and_its_price_dates(tmp_path: Path) -> None:
    settings = load_settings(environ={"DEEPSEEK_API_KEY": "k"})
    dep = next(d for d in settings.deployments if d.catalog_id == "deepseek/deepseek-v4-pro")
    sonnet45 = baseline_from_catalog(CATALOG, "anthropic/claude-sonnet-4.5")
    sonnet5 = baseline_from_catalog(CATALOG, "anthropic/claude-sonnet-5")
    gpt5 = baseline_from_catalog(CATALOG, "openai/gpt-5")
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=100_000)
    records = []
    for n, hour in enumerate((2, 12)):  # one request at peak, one off-peak, 2026-10-27
        exchange = Exchange("chat.completions", request_id=f"req-{n}")
        exchange.created_at = dt.datetime(2026, 10, 27, hour, tzinfo=dt.UTC)
        trace = Trace(request_id="r", deadline=0, attempts=1, deployment=dep)
        records.append(exchange.record(trace, status=Status.OK, usage=usage, baseline=sonnet45))
    _write(tmp_path, records)

    async def report() -> tuple[tuple[str, ...], dict[str, object]]:
        store = SQLiteLedgerStore(tmp_path / LEDGER_FILE)
        await store.open()
        try:
            result = await run_report(
                "savings", store, ReportQuery(baselines=(sonnet45, sonnet5, gpt5))
            )
        finally:
            await store.close()
        return result.notes, dict(result.summary)

    notes, summary = asyncio.run(report())
    # Actual: peak 1.32 + 0.396, off-peak 0.66 + 0.198. Sonnet 4.5: 2 x (3 + 1.5) on the rows.
    assert (summary["actual_usd"], summary["baseline_usd"]) == (Decimal("2.574"), Decimal("9"))
    assert any(
        n.startswith(
            "Baseline on the ledger rows: anthropic/claude-sonnet-4.5 at anthropic at "
            "3.00/15.00 per M (Anthropic pricing (2025), read 2025-12-01)"
        )
        for n in notes
    ), notes
    against = {b["baseline_model"]: b for b in summary["baselines"]}  # type: ignore[attr-defined]
    # Sonnet 5: 2 x (2 + 1); GPT-5: 2 x (1.25 + 1).
    assert against["anthropic/claude-sonnet-5"]["baseline_usd"] == Decimal("6")
    assert against["anthropic/claude-sonnet-5"]["saving_usd"] == Decimal("3.426")
    assert against["openai/gpt-5"]["baseline_usd"] == Decimal("4.5")
    assert "read 2026-12-03" in against["anthropic/claude-sonnet-5"]["prices"]
    assert any(n.startswith("Against openai/gpt-5 at openai: baseline $4.50") for n in notes), notes


def test_models_lists_dated_sourced_prices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    v4 = next(
        r for r in rows if r["model"] == "deepseek/deepseek-v4-pro" and r["host"] == "deepseek"
    )
    assert (v4["input"], v4["output"], v4["price_date"], v4["verified"]) == (
        "0.66",
        "1.98",
        "2026-12-03",
        True,
    )
    assert v4["pricing"] == ("peak mon-fri 01:00-04:00,06:00-10:00 UTC: 1.32/3.96")
    assert "api-docs.deepseek.com" in v4["source"]
    kimi = next(
        r for r in rows if r["model"] == "moonshotai/kimi-k2.6" and r["host"] == "deepinfra"
    )
    assert (kimi["quant"], kimi["verified"]) == ("fp4", False)
    retired = next(
        r for r in rows if r["model"] == "deepseek/deepseek-v3.2" and r["host"] == "deepseek"
    )
    assert retired["retired"] == "2026-04-24"
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    assert "Sources:" in table and "[1] " in table


def test_v1_models_shows_each_price_with_its_source_and_date() -> None:
    settings = load_settings(environ={"DEEPSEEK_API_KEY": "k", "DEEPINFRA_API_KEY": "k"})
    body = json.loads(models_body(RoutingTable(settings.deployments, settings.aliases)))
    models = {m["id"]: m["crossroads"] for m in body["data"]}
    (v4,) = models["deepseek/deepseek-v4-pro@deepseek"]["deployments"]
    prices = v4["prices_per_million"]
    assert (prices["input"], prices["output"], prices["since"], prices["verified"]) == (
        "0.66",
        "1.98",
        "2026-08-16",
        True,
    )
    assert prices["as_of"] == "2026-12-03" and "api-docs.deepseek.com" in prices["source"]
    assert [(w["start_utc"], w["end_utc"], w["input"]) for w in prices["windows"]] == [
        ("01:00", "04:00", "1.32"),
        ("06:00", "10:00", "1.32"),
    ]
    (kimi,) = models["moonshotai/kimi-k2.6@deepinfra"]["deployments"]
    assert (kimi["quantization"], kimi["zero_retention"]) == ("fp4", True)
    assert kimi["prices_per_million"]["verified"] is False
