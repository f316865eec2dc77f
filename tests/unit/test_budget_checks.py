"""What a request holds against its budgets and counts against its token windows before it is
sent: the worst case over every priced candidate, the rest of the context when max_tokens is
unset, and the counter keys per period. Worked examples with real catalog prices."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from crossroads.catalog import load_builtin
from crossroads.governance.budgets import (
    DEFAULT_OUTPUT_CAP,
    checks,
    seconds_to_next_period,
    worst_case_micros,
)
from crossroads.governance.model import Limits, Period
from crossroads.governance.principal import Principal
from crossroads.routing.deployment import Deployment

CATALOG = load_builtin()
DEEPSEEK_MODEL = CATALOG.model("deepseek/deepseek-v3.2")
DEEPSEEK_PRICES = CATALOG.offering("deepseek/deepseek-v3.2", "deepseek").current  # type: ignore[union-attr]
SONNET_PRICES = CATALOG.offering("anthropic/claude-sonnet-4.5", "anthropic").current  # type: ignore[union-attr]

PRICED = Deployment(
    "ds:chat", "m", "ds", "deepseek-chat", model=DEEPSEEK_MODEL, prices=DEEPSEEK_PRICES
)
DEAR = Deployment("an:sonnet", "m", "an", "claude", prices=SONNET_PRICES)  # no catalog model
UNPRICED = Deployment("mine:x", "m", "mine", "x")


def test_max_tokens_set_holds_prompt_and_output_at_list_price() -> None:
    # DeepSeek V3.2: $0.28 in, $0.42 out per million. 1,000 in + 2,000 out = $0.00112.
    assert worst_case_micros([PRICED], 1_000, 2_000) == 1_120


def test_the_dearest_candidate_sets_the_hold_wherever_it_is_in_the_list() -> None:
    # Sonnet: $3.75 cache write (dearest input) and $15 out: 1,000 + 2,000 = $0.03375.
    expected = 33_750
    assert worst_case_micros([PRICED, DEAR], 1_000, 2_000) == expected
    assert worst_case_micros([DEAR, PRICED], 1_000, 2_000) == expected
    # An unpriced candidate, anywhere, holds nothing and hides no later priced one.
    assert worst_case_micros([UNPRICED, PRICED], 1_000, 2_000) == 1_120
    assert worst_case_micros([UNPRICED], 1_000, 2_000) == 0


def test_without_max_tokens_the_hold_is_the_rest_of_the_context() -> None:
    context = DEEPSEEK_MODEL.context_length  # type: ignore[union-attr]
    rest = context - 1_000
    expected = Decimal(1_000) * Decimal("0.28") + Decimal(rest) * Decimal("0.42")
    assert worst_case_micros([PRICED], 1_000, None) == int(expected)  # per million = micros
    # A model the catalog does not know: the default output cap, less the prompt.
    no_model = Deployment("an:x", "m", "an", "x", prices=SONNET_PRICES)
    capped = Decimal(1_000) * Decimal("3.75") + Decimal(DEFAULT_OUTPUT_CAP - 1_000) * 15
    assert worst_case_micros([no_model], 1_000, None) == int(capped)
    # A prompt past the context still holds at least one output token.
    huge = context + 5
    assert worst_case_micros([PRICED], huge, None) == math.ceil(
        Decimal(huge) * Decimal("0.28") + Decimal("0.42")
    )


@pytest.mark.parametrize(
    ("period", "bucket"),
    [("day", "2026-12-03"), ("week", "2026-W49"), ("month", "2026-12"), ("total", "total")],
)
def test_checks_hold_each_budget_in_its_period_and_count_prompt_tokens_per_minute(
    period: Period, bucket: str
) -> None:
    limits = Limits(budget_usd=Decimal(5), budget_period=period, tpm=10_000, rpm=3)
    principal = Principal(key_id="k1", scopes=(("key:k1", limits), ("team:t", Limits(tpm=50))))
    now = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    windows, reservations = checks(principal, 1_234, 777, now)
    assert [(w.key, w.amount, w.limit, w.window) for w in windows] == [
        ("tpm:key:k1", 1_234, 10_000, 60),
        ("tpm:team:t", 1_234, 50, 60),
    ]
    (hold,) = reservations
    assert (hold.key, hold.amount, hold.limit) == (f"budget:key:k1:{bucket}", 777, 5_000_000)
    assert hold.ttl > {"day": 86_400, "week": 7 * 86_400, "month": 31 * 86_400}.get(period, 0)


@pytest.mark.parametrize(
    ("period", "now", "seconds"),
    [
        ("day", datetime(2026, 12, 3, 23, 59, 30, tzinfo=UTC), 30),
        ("day", datetime(2026, 12, 3, 0, 0, 0, tzinfo=UTC), 86_400),
        ("week", datetime(2026, 12, 6, 12, 0, tzinfo=UTC), 12 * 3600),  # Sunday noon
        ("week", datetime(2026, 11, 30, 0, 0, tzinfo=UTC), 7 * 86_400),  # Monday 00:00
        ("week", datetime(2026, 12, 6, 12, 34, 56, 789_000, tzinfo=UTC), 41_103),
        ("day", datetime(2026, 12, 3, 23, 0, 0, 500_000, tzinfo=UTC), 3_599),
        ("month", datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), 1),
        ("month", datetime(2026, 11, 30, 18, 0, tzinfo=UTC), 6 * 3600),
        ("month", datetime(2026, 12, 31, 23, 0, tzinfo=UTC), 3600),  # into January
    ],
)
def test_a_budget_resets_at_the_start_of_its_next_period(
    period: Period, now: datetime, seconds: int
) -> None:
    """What Retry-After says for a daily, weekly (ISO, Monday) or monthly budget."""
    assert seconds_to_next_period(period, now) == seconds


def test_a_total_budget_has_no_next_period() -> None:
    with pytest.raises(ValueError, match="no next period"):
        seconds_to_next_period("total", datetime(2026, 12, 3, tzinfo=UTC))
