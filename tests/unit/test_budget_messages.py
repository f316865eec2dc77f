"""What a budget refusal tells the client: what broke the budget, how to fix it, amounts to the
micro-dollar where cents would round them away, and a Retry-After only where waiting helps."""

from __future__ import annotations

from decimal import Decimal

import pytest

from crossroads.errors import BudgetError
from crossroads.governance.budgets import denial_error, usd
from crossroads.governance.counters import Denied
from crossroads.governance.model import Limits, Period
from crossroads.governance.principal import Principal


def principal(budget: str, period: Period = "day") -> Principal:
    limits = Limits(budget_usd=Decimal(budget), budget_period=period)
    return Principal(key_id="k1", scopes=(("key:k1", limits),))


def budget_denied(used: int, limit: int, period: str = "2026-12-03") -> Denied:
    return Denied(f"budget:key:k1:{period}", used, limit, 172800.0)


def test_a_request_whose_worst_case_alone_exceeds_the_budget_says_so_and_how_to_fix_it() -> None:
    err = denial_error(
        budget_denied(0, 50_000), principal("0.05"), reserve=1_790_000, output_capped=False
    )
    assert isinstance(err, BudgetError)
    assert "this request could cost up to $1.79" in err.message
    assert "budget of $0.05" in err.message and "key 'k1'" in err.message
    assert "set max_tokens" in err.message
    assert err.retry_after is None  # waiting cannot make it fit


def test_a_budget_used_up_by_earlier_requests_says_when_it_resets() -> None:
    err = denial_error(
        budget_denied(40_000, 50_000), principal("0.05"), reserve=20_000, output_capped=True
    )
    assert "has used $0.04 of its daily budget of $0.05" in err.message
    assert "max_tokens" not in err.message
    assert err.retry_after is not None and 1 <= err.retry_after <= 86_400


def test_a_total_budget_never_resets_so_it_sends_no_retry_after() -> None:
    err = denial_error(
        budget_denied(250_000, 250_000, "total"),
        principal("0.25", "total"),
        reserve=10_000,
    )
    assert "total budget of $0.25" in err.message
    assert err.retry_after is None


def test_small_budgets_are_not_rounded_to_zero() -> None:
    err = denial_error(budget_denied(50, 100), principal("0.0001"), reserve=60)
    assert "used $0.00005 of its daily budget of $0.0001" in err.message
    assert "could cost up to $0.00006" in err.message


@pytest.mark.parametrize(
    ("micros", "text"),
    [
        (0, "$0.00"),
        (1, "$0.000001"),
        (10_000, "$0.01"),
        (1_500_000, "$1.50"),
        (123_456, "$0.123456"),
    ],
)
def test_usd(micros: int, text: str) -> None:
    assert usd(micros) == text
