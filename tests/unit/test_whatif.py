"""What-if pricing: every input format read from the example files, unknown columns and models
reported rather than guessed, and the catalog's worked example priced at each candidate."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from crossroads.analytics.importers import (
    UsageFileError,
    UsageRow,
    detect_format,
    ledger_rows,
    open_usage,
)
from crossroads.analytics.model_names import ModelResolver
from crossroads.analytics.whatif import Target, WhatIf, _Sum, parse_target, price_usage
from crossroads.catalog import Catalog
from crossroads.catalog.loader import load_builtin
from crossroads.catalog.model import Prices, PriceTier
from crossroads.ledger.pricing import cost
from crossroads.ledger.record import LedgerRecord, Status
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.schemas.usage import Usage

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "usage"
D = Decimal


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_builtin()


def what_if(catalog: Catalog, path: Path, *targets: str, fmt: str = "auto") -> WhatIf:
    usage = open_usage(path, fmt)
    parsed = [parse_target(catalog, t) for t in targets]
    result = price_usage(usage.rows(), catalog, parsed, ModelResolver(catalog))
    result.extra_notes.append(f"unknown columns: {usage.unknown_columns}")
    return result


def costs(result: WhatIf) -> dict[str, Decimal]:
    return {row[0]: row[2] for row in result.report().rows}


# The worked example


def test_worked_example_at_each_candidate(catalog: Catalog) -> None:
    # generic.csv holds 10M input and 2M output tokens of DeepSeek V3.2 over two days.
    result = what_if(
        catalog,
        EXAMPLES / "generic.csv",
        "anthropic/claude-sonnet-4.5",
        "openai/gpt-4.1",
        "deepseek/deepseek-v3.2",
        "moonshotai/kimi-k2-0905@together",
        "zai/glm-4.6",
        "minimax/minimax-m2",
    )
    assert costs(result) == {
        "anthropic/claude-sonnet-4.5": D("60.00"),
        "openai/gpt-4.1": D("36.00"),
        "deepseek/deepseek-v3.2": D("3.64"),
        "moonshotai/kimi-k2-0905@together": D("16.00"),
        "zai/glm-4.6": D("10.40"),
        "minimax/minimax-m2": D("5.40"),
    }
    report = result.report()
    rows = {row[0]: row for row in report.rows}
    # Actual 3.64 from the cost column; against Claude: saving -56.36, -1548.35% of actual;
    # over the file's two days a year is -56.36 * 365 / 2 = -10285.70.
    assert rows["anthropic/claude-sonnet-4.5"][3:] == (
        D("3.64"), D("-56.36"), D("-1548.35"), D("-10285.70"),
    )  # fmt: skip
    assert rows["deepseek/deepseek-v3.2"][4:6] == (D("0.00"), D("0.00"))
    assert report.summary["prompt_tokens"] == 10_000_000
    assert report.summary["completion_tokens"] == 2_000_000
    assert report.summary["requests"] == 1250
    assert any("2.00 days" in note for note in report.notes)
    assert any("2 rows from the file's cost column ($3.64)" in note for note in report.notes)


def test_worked_example_priced_at_the_source_when_the_file_has_no_cost(
    catalog: Catalog, tmp_path: Path
) -> None:
    path = tmp_path / "usage.csv"
    path.write_text("model,prompt_tokens,completion_tokens\nopenai/gpt-4.1,10000000,2000000\n")
    result = what_if(catalog, path, "deepseek/deepseek-v3.2")
    (row,) = result.report().rows
    assert row[2:6] == (D("3.64"), D("36.00"), D("32.36"), D("89.89"))
    assert row[6] is None  # no timestamps: no per-year figure
    assert result.priced_at == {"openai/gpt-4.1": "openai/gpt-4.1@openai"}
    assert any("lower bound" in note for note in result.report().notes)


# Each input format, from the example files


def test_openrouter_activity_export(catalog: Catalog) -> None:
    path = EXAMPLES / "openrouter-activity.csv"
    assert detect_format(path) == "openrouter"
    result = what_if(catalog, path, "deepseek/deepseek-v3.2")
    report = result.report()
    # Costs in the file: 0.0244 + 0.0825 + 0.036 + 0.0156 + 0.0119 + 0.014 = 0.1844.
    assert report.summary["actual_usd"] == D("0.1844")
    # 122,000 prompt tokens (4,000 cached) and 8,800 completion tokens at DeepSeek V3.2:
    # 118,000 x 0.28 + 4,000 x 0.028 + 8,800 x 0.42 = 36,848 micro-USD.
    (row,) = report.rows
    assert row[2] == D("0.036848")
    assert row[4] == D("0.147552")
    # Exactly 7 days from first to last row: 0.147552 * 365 / 7 = 7.6937.. -> 7.69.
    assert row[6] == D("7.69")
    assert result.matched == {
        "openai/gpt-4.1-2025-04-14": "openai/gpt-4.1 (date suffix dropped)",
        "z-ai/glm-4.6": "zai/glm-4.6 (a host's id for it)",
    }
    assert set(result.unknown) == {
        "anthropic/claude-4.5-sonnet-20250929",
        "deepseek/deepseek-chat-v3.1",
    }
    assert result.unknown["deepseek/deepseek-chat-v3.1"].prompt_tokens == 40_000
    assert result.left_out == {}  # unknown, but the file says what they cost
    assert "unknown columns: []" in result.extra_notes


def test_litellm_spend_logs(catalog: Catalog) -> None:
    path = EXAMPLES / "litellm-spend-logs.csv"
    assert detect_format(path) == "litellm"
    result = what_if(catalog, path, "deepseek/deepseek-v3.2")
    # spend 0.0304 + 0.0825 + 0 (failed, no tokens) + 0.002 = 0.1149 from the file; the Kimi
    # row logged spend 0 for 5,000 + 700 tokens, so it is priced at Kimi K2's cheapest offering
    # (0.60 / 2.50): 0.003 + 0.00175 = 0.00475. The Ollama row has neither and is left out.
    assert result.rows_from_file == 4
    assert result.actual_from_file == D("0.1149")
    assert result.actual_usd == D("0.11965")
    assert result.priced_at == {"moonshotai/kimi-k2-0905": "moonshotai/kimi-k2-0905@moonshot"}
    assert set(result.unknown) == {"ft:gpt-4.1-mini:acme::b7x2", "ollama/llama3.1:8b"}
    assert set(result.left_out) == {"ollama/llama3.1:8b"}
    assert result.left_out["ollama/llama3.1:8b"].prompt_tokens == 3000
    assert result.matched["claude-sonnet-4-5-20250929"].startswith("anthropic/claude-sonnet-4.5")
    assert result.matched["together_ai/moonshotai/Kimi-K2-Instruct-0905"].startswith(
        "moonshotai/kimi-k2-0905"
    )
    assert "unknown columns: []" in result.extra_notes
    notes = "\n".join(result.report().notes)
    assert "ollama/llama3.1:8b: 1 requests, 3000 prompt + 300 completion tokens" in notes


def test_litellm_spend_logs_as_json(catalog: Catalog, tmp_path: Path) -> None:
    path = tmp_path / "spend.json"
    path.write_text(
        '{"data": [{"request_id": "r1", "call_type": "acompletion", "spend": 0.0304,'
        ' "prompt_tokens": 12000, "completion_tokens": 800, "model": "gpt-4.1",'
        ' "custom_llm_provider": "openai", "startTime": "2025-11-03T09:14:22Z",'
        ' "metadata": {"user_api_key": "x"}}], "total": 1, "page": 1}'
    )
    assert detect_format(path) == "litellm"
    result = what_if(catalog, path, "openai/gpt-4.1")
    assert costs(result) == {"openai/gpt-4.1": D("0.0304")}
    assert result.actual_usd == D("0.0304")


def test_generic_json_lines(catalog: Catalog) -> None:
    path = EXAMPLES / "generic.jsonl"
    assert detect_format(path) == "generic"
    result = what_if(catalog, path, "deepseek/deepseek-v3.2")
    # deepseek-chat (a DeepSeek id for V3.2): cost 0.010 from the file; gpt-4o-2024-08-06 has
    # no cost: 20,000 x 2.50 + 2,000 x 10 = 70,000 micro-USD at GPT-4o; Kimi K2: 0.04.
    assert result.actual_usd == D("0.120")
    assert result.matched["gpt-4o-2024-08-06"] == (
        "openai/gpt-4o (date suffix dropped, a host's id for it)"
    )
    assert set(result.left_out) == {"acme/secret-model"}
    # At V3.2: (170,000 - 80,000) x 0.28 + 80,000 x 0.028 + 11,000 x 0.42 = 32,060 micro-USD.
    assert costs(result) == {"deepseek/deepseek-v3.2": D("0.03206")}


def test_crossroads_ledger_through_its_store(catalog: Catalog, tmp_path: Path) -> None:
    t0 = datetime(2026, 1, 5, 10, tzinfo=UTC)
    served = LedgerRecord(
        request_id="r1",
        created_at=t0,
        endpoint="chat.completions",
        requested_model="x",
        stream=False,
        status=Status.OK,
        served_model="deepseek/deepseek-v3.2",
        provider="deepseek",
        prompt_tokens=6_000_000,
        completion_tokens=1_200_000,
        cost_usd=D("2.184"),
    )
    later = dataclasses.replace(
        served,
        request_id="r2",
        created_at=t0 + timedelta(days=1, minutes=30),
        prompt_tokens=4_000_000,
        completion_tokens=800_000,
        cost_usd=D("1.456"),
    )
    unpriced = dataclasses.replace(later, request_id="r3", served_model="qwen/qwen3-coder",
                                   cost_usd=None)  # fmt: skip
    never_served = dataclasses.replace(later, request_id="r4", served_model=None)

    async def main() -> list[UsageRow]:
        store = SQLiteLedgerStore(tmp_path / "ledger.sqlite3")
        await store.open()
        try:
            await store.write([served, later, unpriced, never_served])
            return await ledger_rows(store)
        finally:
            await store.close()

    rows = asyncio.run(main())
    assert detect_format(tmp_path / "ledger.sqlite3") == "crossroads"
    assert sorted((r.model, r.requests, r.cost_usd) for r in rows) == [
        ("deepseek/deepseek-v3.2", 1, D("1.4560000000")),
        ("deepseek/deepseek-v3.2", 1, D("2.1840000000")),
        ("qwen/qwen3-coder", 1, None),
    ]
    result = price_usage(
        rows, catalog, [parse_target(catalog, "openai/gpt-4.1")], ModelResolver(catalog)
    )
    assert result.left_out.keys() == {"qwen/qwen3-coder"}  # no price anywhere in the catalog
    assert costs(result) == {"openai/gpt-4.1": D("36.00")}
    assert result.span == (t0, t0 + timedelta(days=1, hours=1))  # hour resolution


# Unknown columns, malformed values, header mapping


def test_unknown_columns_are_reported(catalog: Catalog, tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(
        "model,input_tokens,output_tokens,region,team\ndeepseek/deepseek-v3.2,1000,10,eu,a\n"
    )
    usage = open_usage(path)
    assert len(list(usage.rows())) == 1
    assert usage.unknown_columns == ["region", "team"]
    assert usage.mapping == {
        "model": "model",
        "prompt_tokens": "input_tokens",
        "completion_tokens": "output_tokens",
    }


def test_unknown_keys_in_later_json_lines_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    path.write_text(
        '{"model": "m", "prompt_tokens": 1, "completion_tokens": 2}\n\n'
        '{"model": "m", "prompt_tokens": 1, "completion_tokens": 2, "latency": 3}\n'
    )
    usage = open_usage(path)
    assert [r.prompt_tokens for r in usage.rows()] == [1, 1]
    assert usage.unknown_columns == ["latency"]


def test_a_header_mapping_for_columns_of_other_names(catalog: Catalog, tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text("llm,in,out,usd,when\nopenai/gpt-4.1,10000000,2000000,36,2025-11-01\n")
    with pytest.raises(UsageFileError, match="no column for model, prompt_tokens"):
        list(open_usage(path).rows())
    columns = {"model": "llm", "prompt_tokens": "in", "completion_tokens": "out",
               "cost_usd": "usd", "timestamp": "when"}  # fmt: skip
    usage = open_usage(path, "generic", columns)
    (row,) = usage.rows()
    assert (row.model, row.cost_usd, row.start) == (
        "openai/gpt-4.1", D("36"), datetime(2025, 11, 1, tzinfo=UTC),
    )  # fmt: skip
    assert row.end == datetime(2025, 11, 2, tzinfo=UTC)
    assert usage.unknown_columns == []
    with pytest.raises(UsageFileError, match="no such column"):
        list(open_usage(path, "generic", {"model": "nope"}).rows())
    with pytest.raises(ValueError, match="unknown field"):
        open_usage(path, "generic", {"tokens": "in"})


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("m,12.5,1,", "line 2: prompt_tokens: not a whole"),
        ("m,-3,1,", "line 2: prompt_tokens: not a whole"),
        ("m,abc,1,", "line 2: prompt_tokens: not a whole"),
        ("m,1,1,lots", "line 2: cost: not an amount"),
        (",1,1,", "line 2: model: empty model name"),
    ],
)
def test_malformed_values_name_the_line_and_column(tmp_path: Path, line: str, needle: str) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(f"model,prompt_tokens,completion_tokens,cost\n{line}\n")
    with pytest.raises(UsageFileError, match=needle):
        list(open_usage(path).rows())


def test_timestamps_in_the_forms_exports_use(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(
        "model,prompt_tokens,completion_tokens,timestamp\n"
        "m,1,1,2026-02-06 18:54:30.040\n"
        "m,1,1,2026-02-06T18:54:30Z\n"
        "m,1,1,2026-02-06T19:54:30+01:00\n"
        "m,1,1,1770404070\n"
        "m,1,1,1770404070000\n"
    )
    moment = datetime(2026, 2, 6, 18, 54, 30, tzinfo=UTC)
    starts = [row.start for row in open_usage(path).rows()]
    assert starts == [moment + timedelta(milliseconds=40)] + [moment] * 4


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(UsageFileError, match=r"missing\.csv"):
        detect_format(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("model,prompt_tokens,completion_tokens\n")
    with pytest.raises(UsageFileError, match="no rows"):
        detect_format(tmp_path / "empty.csv")


# Candidates and model names


def test_candidates(catalog: Catalog) -> None:
    assert parse_target(catalog, "deepseek/deepseek-v3.2") == Target(
        "deepseek/deepseek-v3.2", "deepseek/deepseek-v3.2", None
    )
    assert parse_target(catalog, "moonshotai/kimi-k2-0905@together").host_id == "together"
    with pytest.raises(ValueError, match="not a catalog model"):
        parse_target(catalog, "acme/model")
    with pytest.raises(ValueError, match="does not serve it"):
        parse_target(catalog, "deepseek/deepseek-v3.2@together")
    with pytest.raises(ValueError, match="no price for it at groq"):
        parse_target(catalog, "meta/llama-3.3-70b-instruct@groq")
    with pytest.raises(ValueError, match="no price for it at any host"):
        parse_target(catalog, "qwen/qwen3-coder")


def test_model_names_match_by_rule_only(catalog: Catalog) -> None:
    resolver = ModelResolver(catalog, {"my-ft": "openai/gpt-4.1"})
    assert resolver.resolve("deepseek/deepseek-v3.2").model_id == "deepseek/deepseek-v3.2"
    assert resolver.resolve("deepseek/deepseek-v3.2").rule is None
    assert resolver.resolve("my-ft").model_id == "openai/gpt-4.1"
    assert resolver.resolve("kimi-k2-0905-preview").model_id == "moonshotai/kimi-k2-0905"
    assert resolver.resolve("gpt-4.1", "openai").model_id == "openai/gpt-4.1"
    assert resolver.resolve("fireworks_ai/accounts/fireworks/models/deepseek-v3").model_id == (
        "deepseek/deepseek-v3"
    )
    assert resolver.resolve("claude-sonnet-4-5-20250929").model_id == "anthropic/claude-sonnet-4.5"
    # Nothing close-but-different is guessed:
    for name in ("gpt-4.1-mini", "deepseek-v3.2", "claude-sonnet-4.5", "kimi-k2", "qwen3"):
        assert resolver.resolve(name).model_id is None, name
    # A four-digit suffix is part of a name, not a date:
    assert resolver.resolve("moonshotai/kimi-k2-0905").model_id == "moonshotai/kimi-k2-0905"
    with pytest.raises(ValueError, match="not a catalog model"):
        ModelResolver(catalog, {"x": "acme/none"})


# Exact sums


GEMINI_PRO = Prices(
    input=D("1.25"),
    output=D("10"),
    cached_input=D("0.125"),
    tiers=(PriceTier(above_prompt_tokens=200_000, input=D("2.5"), output=D("15")),),
)


@pytest.mark.parametrize(
    "prices",
    [
        Prices(input=D("0.28"), output=D("0.42"), cached_input=D("0.028")),
        Prices(input=D("3"), output=D("15"), cached_input=D("0.3"), cache_write=D("3.75")),
        Prices(input=D("0.123456"), output=D("1.0000001")),  # too many decimals to add up
        GEMINI_PRO,
    ],
)
def test_summed_costs_equal_the_sum_of_each_cost(prices: Prices) -> None:
    rng = random.Random(5)
    usages = []
    for _ in range(500):
        prompt = rng.randrange(0, 400_000)
        cached = rng.randrange(0, prompt + 1)
        written = rng.randrange(0, prompt - cached + 1)
        usages.append(Usage(prompt, rng.randrange(0, 9000), cached, written))
    usages.append(Usage(100, 1, cached_tokens=500))  # bad data: more cached than prompt
    summed = _Sum(prices)
    for usage in usages:
        summed.add(usage)
    assert summed.total() == sum((cost(u, prices) for u in usages), D(0))


def test_rows_that_sum_requests_use_base_prices_for_tiered_candidates() -> None:
    summed = _Sum(GEMINI_PRO)
    summed.add(Usage(prompt_tokens=1_000_000, completion_tokens=0), aggregated=True)
    assert summed.total() == D("1.25")  # not the >200K tier's 2.50
    single = _Sum(GEMINI_PRO)
    single.add(Usage(prompt_tokens=1_000_000, completion_tokens=0))
    assert single.total() == D("2.5")


def test_whatif_prices_at_today_or_at_a_chosen_date() -> None:
    """DeepSeek V4 Pro: 0.435 / 0.87 on 2026-08-01; today off-peak 0.66 / 1.98, peak twice that.
    A row with a time is priced in its window; a row without one at the dearer (peak) price."""
    catalog = load_builtin()
    target = parse_target(catalog, "deepseek/deepseek-v4-pro@deepseek")
    rows = [
        UsageRow(
            model="x", prompt_tokens=1_000_000, completion_tokens=1_000_000, cost_usd=Decimal(9)
        )
    ]
    resolver = ModelResolver(catalog, {})

    def priced(at: datetime | None, start: datetime | None) -> Decimal:
        row = dataclasses.replace(rows[0], start=start, end=start)
        result = price_usage([row], catalog, [target], resolver, at=at)
        return result.candidates[0][2]

    august = datetime(2026, 8, 1, tzinfo=UTC)
    assert priced(august, None) == Decimal("1.305")
    assert priced(None, datetime(2026, 10, 27, 12, tzinfo=UTC)) == Decimal("2.64")
    assert priced(None, datetime(2026, 10, 27, 2, tzinfo=UTC)) == Decimal("5.28")
    assert priced(None, None) == Decimal("5.28")
    notes = price_usage(rows, catalog, [target], resolver, at=august).report().notes
    assert "Prices: 2026-08-01's catalog list prices:" in notes
