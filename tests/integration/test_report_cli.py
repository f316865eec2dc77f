"""`crossroads report` and `crossroads whatif` as a user runs them: the real command
(`python -m crossroads`) in a subprocess, over a ledger filled through the ledger store."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crossroads.ledger.record import LedgerRecord, Status, UsageSource
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.server.runtime import LEDGER_FILE

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "usage"
T0 = datetime(2026, 3, 2, tzinfo=UTC)
M = 1_000_000

MODELS = [
    # served model, provider, maker, origin, open weights, cost of one request, latency ms
    ("deepseek/deepseek-v3.2", "deepseek", "deepseek", "CN", True, Decimal("3.64"), 800.0),
    ("openai/gpt-4.1", "openai", "openai", "US", False, Decimal("36.00"), 2000.0),
]


def ledger_records() -> list[LedgerRecord]:
    """Three days: each hour one DeepSeek request and, every third hour, one GPT-4.1 request,
    each of 10M input and 2M output tokens, all against a Claude Sonnet 4.5 baseline ($60).
    The DeepSeek requests of every fourth hour (18) have estimated usage, the rest reported."""
    records = []
    for hour in range(72):
        for i, (model, provider, maker, origin, weights, cost, latency) in enumerate(MODELS):
            if i == 1 and hour % 3:
                continue
            records.append(
                LedgerRecord(
                    request_id=f"req_{hour:03d}_{i}",
                    created_at=T0 + timedelta(hours=hour, minutes=17),
                    endpoint="chat.completions",
                    requested_model=model,
                    stream=False,
                    status=Status.ERROR if hour == 5 and i == 0 else Status.OK,
                    served_model=model,
                    deployment=f"{provider}-main",
                    provider=provider,
                    host_jurisdiction="CN" if provider == "deepseek" else "US",
                    maker=maker,
                    origin_country=origin,
                    open_weights=weights,
                    prompt_tokens=10 * M,
                    completion_tokens=2 * M,
                    cost_usd=cost,
                    latency_ms=latency,
                    ttft_ms=latency / 10,
                    api_key_id=f"cr_key{hour % 2}",
                    team_id="team-a" if hour % 2 else "team-b",
                    baseline_model="anthropic/claude-sonnet-4.5",
                    baseline_cost_usd=Decimal("60.00"),
                    usage_source=(
                        UsageSource.ESTIMATED if i == 0 and hour % 4 == 0 else UsageSource.REPORTED
                    ),
                )
            )
    return records


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("data")

    async def fill() -> None:
        store = SQLiteLedgerStore(directory / LEDGER_FILE)
        await store.open()
        try:
            records = ledger_records()
            for start in range(0, len(records), 20):
                await store.write(records[start : start + 20])
        finally:
            await store.close()

    asyncio.run(fill())
    return directory


def crossroads(*args: str | Path, code: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "crossroads", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    return done


def json_report(*args: str | Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(crossroads(*args, "--format", "json").stdout)
    return report


def test_spend_by_model(data_dir: Path) -> None:
    report = json_report("report", "spend", "--data-dir", data_dir, "--by", "model")
    assert report["report"] == "spend"
    rows = {row["served_model"]: row for row in report["rows"]}
    assert rows["deepseek/deepseek-v3.2"]["requests"] == 72
    assert Decimal(rows["deepseek/deepseek-v3.2"]["cost_usd"]) == Decimal("3.64") * 72
    assert Decimal(rows["openai/gpt-4.1"]["cost_usd"]) == Decimal("36.00") * 24
    assert Decimal(report["summary"]["cost_usd"]) == Decimal("1126.08")  # 262.08 + 864


def test_spend_shows_the_cost_that_rests_on_estimates(data_dir: Path) -> None:
    report = json_report("report", "spend", "--data-dir", data_dir, "--by", "model")
    rows = {row["served_model"]: row for row in report["rows"]}
    deepseek, gpt = rows["deepseek/deepseek-v3.2"], rows["openai/gpt-4.1"]
    assert deepseek["estimated_requests"] == 18
    assert Decimal(deepseek["estimated_cost_usd"]) == Decimal("3.64") * 18
    assert gpt["estimated_requests"] == 0 and Decimal(gpt["estimated_cost_usd"]) == 0
    assert Decimal(report["summary"]["estimated_cost_usd"]) == Decimal("65.52")
    table = crossroads("report", "spend", "--data-dir", data_dir).stdout
    assert "estimated_cost_usd" in table.splitlines()[0]
    assert "Estimated: $65.52 (5.82% of the total) rests on 18 requests" in table


def test_usage_totals_by_usage_source(data_dir: Path) -> None:
    done = crossroads("usage", "--data-dir", data_dir, "--by", "usage_source", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    shown = [(r["usage_source"], r["requests"], Decimal(r["cost_usd"])) for r in rows]
    assert shown == [
        ("estimated", "18", Decimal("65.52")),
        ("reported", "78", Decimal("1126.08") - Decimal("65.52")),
    ]
    table = crossroads("usage", "--data-dir", data_dir, "--by", "usage_source,provider").stdout
    assert "Totals by usage_source, provider:" in table
    assert "estimated" in table.split("Totals by")[0]  # the recent requests' usage column
    bad = crossroads("usage", "--data-dir", data_dir, "--by", "colour", code=2)
    assert "usage_source" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_savings_with_a_window_and_run_rate(data_dir: Path) -> None:
    report = json_report(
        "report", "savings", "--data-dir", data_dir, "--since", "2026-03-02", "--until",
        "2026-03-04",
    )  # fmt: skip
    # Two days: 48 DeepSeek requests (saving 56.36 each) and 16 GPT-4.1 ones (24.00 each):
    # 2705.28 + 384.00 = 3089.28, so 1544.64 a day and 563,793.60 a year.
    summary = report["summary"]
    assert Decimal(summary["saving_usd"]) == Decimal("3089.28")
    assert Decimal(summary["saving_per_day_usd"]) == Decimal("1544.64")
    assert Decimal(summary["annual_run_rate_usd"]) == Decimal("563793.60")
    assert summary["window_days"] == "2.00"
    (row,) = report["rows"]
    assert row["requests"] == 64 and Decimal(row["baseline_usd"]) == 64 * 60


def test_adoption_per_day_as_csv(data_dir: Path) -> None:
    done = crossroads(
        "report", "adoption", "--data-dir", data_dir, "--by", "origin", "--interval", "day",
        "--format", "csv",
    )  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["day"] for r in rows] == ["2026-03-02"] * 2 + ["2026-03-03"] * 2 + ["2026-03-04"] * 2
    for day in ("2026-03-02", "2026-03-03", "2026-03-04"):
        shares = {r["origin_country"]: r["token_share_pct"] for r in rows if r["day"] == day}
        assert shares == {"CN": "75.00", "US": "25.00"}  # 24 DeepSeek to 8 GPT-4.1 requests
    assert "Shares are of each day's total" in done.stderr  # notes go to stderr with CSV


def test_latency_and_errors(data_dir: Path) -> None:
    done = crossroads("report", "latency", "--data-dir", data_dir, "--by", "deployment")
    lines = done.stdout.splitlines()
    assert lines[0].split() == [
        "deployment", "requests", "p50_ms", "p95_ms", "p99_ms", "mean_ms", "mean_ttft_ms",
    ]  # fmt: skip
    deepseek = next(line.split() for line in lines if line.startswith("deepseek-main"))
    p50 = float(deepseek[2])
    assert abs(p50 - 800) <= 800 * 0.0905 and deepseek[5:] == ["800.0", "80.0"]
    assert "9.05%" in done.stdout
    errors = json_report("report", "errors", "--data-dir", data_dir, "--by", "provider")
    assert [(r["provider"], r["errors"], r["error_rate_pct"]) for r in errors["rows"]] == [
        ("deepseek", 1, "1.39"),  # 1 of 72
        ("openai", 0, "0.00"),
    ]


def test_rebuilding_the_rollups_changes_no_report(data_dir: Path) -> None:
    before = json_report("report", "spend", "--data-dir", data_dir, "--by", "key,team")
    done = crossroads("report", "--rebuild-rollups", "--data-dir", data_dir)
    assert "Rebuilt the rollups from 96 ledger records" in done.stdout
    assert json_report("report", "spend", "--data-dir", data_dir, "--by", "key,team") == before


def test_report_mistakes_exit_2_with_one_line(tmp_path: Path, data_dir: Path) -> None:
    for args, needle in (
        (("report", "spend", "--data-dir", tmp_path), "no ledger at"),
        (("report", "spend", "--data-dir", data_dir, "--by", "colour"), "unknown dimension"),
        (("report", "spend", "--data-dir", data_dir, "--since", "soon"), "--since 'soon'"),
        (("report", "spend", "--data-dir", data_dir, "--until", "later"), "--until 'later'"),
        (("report", "--data-dir", data_dir), "name a report"),
    ):
        done = crossroads(*args, code=2)
        assert needle in done.stderr and len(done.stderr.strip().splitlines()) == 1, args
    assert not (tmp_path / LEDGER_FILE).exists()


def test_whatif_prices_the_worked_example() -> None:
    report = json_report(
        "whatif", "--usage", EXAMPLES / "generic.csv", "--to", "anthropic/claude-sonnet-4.5",
        "--to", "openai/gpt-4.1", "--to", "deepseek/deepseek-v3.2",
    )  # fmt: skip
    assert {row["candidate"]: row["cost_usd"] for row in report["rows"]} == {
        "anthropic/claude-sonnet-4.5": "60.00",
        "openai/gpt-4.1": "36.00",
        "deepseek/deepseek-v3.2": "3.64",
    }


def test_whatif_on_a_crossroads_ledger(data_dir: Path) -> None:
    report = json_report(
        "whatif", "--usage", data_dir / LEDGER_FILE, "--to", "anthropic/claude-sonnet-4.5"
    )
    (row,) = report["rows"]
    # 96 requests of the worked example at Claude Sonnet 4.5: 96 x 60 = 5760; actual 1126.08.
    assert (row["cost_usd"], row["actual_usd"], row["saving_usd"]) == (
        "5760.00", "1126.08", "-4633.92",
    )  # fmt: skip
    assert report["summary"]["requests"] == 96


def test_whatif_reports_unknown_columns_and_models(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(
        "model,prompt_tokens,completion_tokens,cost,region\n"
        "deepseek/deepseek-v3.2,1000000,0,0.28,eu\n"
        "acme/mystery-1,5000,500,,eu\n"
    )
    done = crossroads("whatif", "--usage", path, "--to", "openai/gpt-4.1")
    assert "Warning: unknown columns ignored: region" in done.stdout
    assert "acme/mystery-1: 1 requests, 5000 prompt + 500 completion tokens" in done.stdout
    mapped = crossroads(
        "whatif", "--usage", path, "--to", "openai/gpt-4.1", "--model-map",
        "acme/mystery-1=openai/gpt-4.1", "--format", "json",
    )  # fmt: skip
    (row,) = json.loads(mapped.stdout)["rows"]
    # 1M input at GPT-4.1 = 2.00, plus the mapped row: 5000 x 2 + 500 x 8 = 14,000 micro-USD.
    assert (row["cost_usd"], row["actual_usd"]) == ("2.014", "0.294")


def test_whatif_mistakes_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("model,prompt_tokens,completion_tokens\nm,many,1\n")
    for args, needle in (
        (("--usage", EXAMPLES / "generic.csv", "--to", "acme/none"), "not a catalog model"),
        (("--usage", tmp_path / "missing.csv", "--to", "openai/gpt-4.1"), "missing.csv"),
        (("--usage", bad, "--to", "openai/gpt-4.1"), "line 2: prompt_tokens"),
        (("--usage", bad, "--to", "openai/gpt-4.1", "--column", "oops"), "NAME=VALUE"),
    ):
        done = crossroads("whatif", *args, code=2)
        assert needle in done.stderr, (args, done.stderr)
