"""What every report returns (`Report`: column names, rows, notes, summary figures) and the exact
number formatting they share: money and percentages as Decimal, shares that add up to 100."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

__all__ = ["Report", "display", "money", "percent", "period_label", "shares"]

_CENT = Decimal("0.01")
_PRECISION = 50  # as in ledger/pricing.py: no intermediate result is ever rounded


@dataclass(frozen=True, slots=True)
class Report:
    """A report: `columns` names the fields of each tuple in `rows`; `notes` are lines a reader
    needs to interpret it (window, basis, error bounds, caveats); `summary` holds the figures
    that are not per row (totals, run rates) under stable keys. Money is Decimal throughout."""

    kind: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    notes: tuple[str, ...] = ()
    summary: Mapping[str, Any] = field(default_factory=dict)

    def as_dicts(self) -> list[dict[str, Any]]:
        """Each row as a dict keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def money(amount: Decimal) -> Decimal:
    """`amount` with trailing zeros dropped but at least two decimals: the same number, shown as
    people read money (60.0000000000 -> 60.00, 0.0000364000 -> 0.0000364)."""
    reduced = amount.normalize()
    exponent = reduced.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        return reduced.quantize(_CENT)
    return reduced


def display(amount: Decimal) -> Decimal:
    """`amount` rounded for people to read (half-even): to the cent from 1 up, to four
    significant digits below (0.036848 -> 0.03685, 0.0000364 -> 0.0000364). For tables and
    notes only; reports keep exact values in their rows and summaries."""
    if not amount.is_finite() or amount == 0:
        return money(amount) if amount.is_finite() else amount
    if abs(amount) >= 1:
        return amount.quantize(_CENT, rounding=ROUND_HALF_EVEN)
    digits = amount.adjusted() - 3  # the exponent of the fourth significant digit
    return money(amount.quantize(Decimal(1).scaleb(digits), rounding=ROUND_HALF_EVEN))


def percent(part: Decimal | int, whole: Decimal | int) -> Decimal | None:
    """100 * part / whole rounded half-even to 0.01, or None when `whole` is zero."""
    if whole == 0:
        return None
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        return (Decimal(part) * 100 / Decimal(whole)).quantize(_CENT, rounding=ROUND_HALF_EVEN)


def shares(values: Sequence[int]) -> list[Decimal | None]:
    """Each value's share of their sum in per cent with two decimals, rounded so the shares add up
    to exactly 100.00 (largest remainder: each share is the exact one rounded down to 0.01, then
    the hundredths still missing go to the largest remainders, earlier values first on ties).
    Every share is within 0.01 of the exact one. All None when the sum is zero.

    Raises ValueError for a negative value."""
    if any(v < 0 for v in values):
        raise ValueError("shares of negative values are undefined")
    total = sum(values)
    if total == 0:
        return [None for _ in values]
    floors = [v * 10_000 // total for v in values]
    missing = 10_000 - sum(floors)
    by_remainder = sorted(range(len(values)), key=lambda i: -(values[i] * 10_000 % total))
    for i in by_remainder[:missing]:
        floors[i] += 1
    return [Decimal(hundredths).scaleb(-2) for hundredths in floors]


def period_label(start: datetime, interval: str) -> str:
    """How a bucket start is shown: '2026-01-05 13:00' (hour), '2026-01-05' (day, and week,
    which starts on that Monday). Times are UTC."""
    return start.strftime("%Y-%m-%d %H:%M" if interval == "hour" else "%Y-%m-%d")
