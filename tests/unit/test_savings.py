"""Savings baselines: configured per team, per served name or globally, priced at the baseline
model's list price with the request's own token counts; and upstream-reported costs."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from crossroads.config import load_settings
from crossroads.errors import ConfigError
from crossroads.ingress.exchange import Exchange
from crossroads.ledger.record import Status
from crossroads.routing.deployment import Deployment
from crossroads.routing.router import Trace
from crossroads.schemas import Usage


def test_default_baseline_is_claude_sonnet_at_anthropic() -> None:
    baselines = load_settings(environ={}).baselines
    assert baselines.default is not None
    assert baselines.default.model == "anthropic/claude-sonnet-4.5"
    assert baselines.default.host == "anthropic"
    assert baselines.default.prices.input == Decimal("3")


def test_team_then_name_then_global(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "savings:\n  baseline: openai/gpt-4.1\n  models: {fast: openai/gpt-4o}\n"
        "  teams: {research: anthropic/claude-sonnet-4.5}\n"
        "aliases:\n  fast: [local/smollm2-135m]\n"
    )
    b = load_settings(path, environ={}).baselines
    assert b.choose("fast", "research") is not None
    assert b.choose("fast", "research").model == "anthropic/claude-sonnet-4.5"  # type: ignore[union-attr]
    assert b.choose("fast", None).model == "openai/gpt-4o"  # type: ignore[union-attr]
    assert b.choose("other", None).model == "openai/gpt-4.1"  # type: ignore[union-attr]


def test_unknown_baseline_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("savings:\n  baseline: openai/gpt-9\n")
    with pytest.raises(ConfigError, match="gpt-9"):
        load_settings(path, environ={})


def test_record_carries_actual_baseline_and_upstream_cost() -> None:
    settings = load_settings(environ={"DEEPSEEK_API_KEY": "k"})
    # V3.2 is retired at DeepSeek (not served any more), but its catalog price still prices a
    # deployment that names it, as old ledger rows do.
    offering = settings.catalog.offering("deepseek/deepseek-v3.2", "deepseek")
    assert offering is not None
    dep = Deployment(
        "deepseek:deepseek-chat",
        "deepseek/deepseek-v3.2",
        "deepseek",
        "deepseek-chat",
        prices=offering.current,
        price_history=offering.history,
    )
    trace = Trace(request_id="r", deadline=0, attempts=1, deployment=dep)
    usage = Usage.from_openai(
        {"prompt_tokens": 10_000_000, "completion_tokens": 2_000_000, "cost": "3.70"}
    )
    exchange = Exchange("chat.completions")
    record = exchange.record(
        trace, status=Status.OK, usage=usage, baseline=settings.baselines.default
    )
    # The worked example: DeepSeek V3.2 $3.64 against Claude Sonnet 4.5 $60.00.
    assert record.cost_usd == Decimal("3.64")
    assert record.baseline_cost_usd == Decimal("60.00")
    assert record.baseline_model == "anthropic/claude-sonnet-4.5"
    assert record.upstream_cost_usd == Decimal("3.70")


@pytest.mark.parametrize("value", [None, True, "abc", -1, float("nan"), 1e12, {"x": 1}])
def test_unbelievable_upstream_costs_are_ignored(value: object) -> None:
    usage = Usage.from_openai({"prompt_tokens": 1, "cost": value})
    assert usage is not None and usage.upstream_cost_usd is None


def test_absurd_token_counts_are_not_recorded() -> None:
    usage = Usage.from_openai({"prompt_tokens": 2**62, "completion_tokens": 5})
    assert usage is not None and usage.prompt_tokens == 0 and usage.completion_tokens == 5
