"""Turns a principal's limits into counter checks, and a denial into a client-facing error.

Budgets are enforced by reserving the request's worst-case cost before the call and settling
with the real cost after it. The worst case is the dearest candidate deployment's price for the
request's prompt estimate plus its `max_tokens` (or, when unset, the rest of the model's context
window), so concurrent requests can overspend a budget only when an upstream bills more than
that bound: by at most what is in flight. Unpriced deployments reserve nothing."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from crossroads.errors import BudgetError, RateLimitError
from crossroads.governance.counters import Denied, Reservation, WindowCheck
from crossroads.governance.model import Limits, Period
from crossroads.governance.principal import Principal
from crossroads.ledger.pricing import estimate_max_cost
from crossroads.routing.deployment import Deployment

MICRO = Decimal(1_000_000)
DEFAULT_OUTPUT_CAP = 32_768
_TTL = {"day": 2 * 86400, "week": 8 * 86400, "month": 32 * 86400, "total": 3650 * 86400}
_PERIOD_WORD = {"day": "daily", "week": "weekly", "month": "monthly", "total": "total"}


def period_bucket(period: Period, now: datetime) -> str:
    if period == "day":
        return now.strftime("%Y-%m-%d")
    if period == "week":
        year, week, _ = now.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return now.strftime("%Y-%m")
    return "total"


def budget_key(scope: str, period: Period, now: datetime) -> str:
    """The counter key of `scope`'s budget ("key:ID" or "team:ID") for the period holding
    `now`: e.g. "budget:team:research:2026-11"."""
    return f"budget:{scope}:{period_bucket(period, now)}"


def budget_ttl(period: Period) -> int:
    """Seconds a budget counter must live: its period, plus slack."""
    return _TTL[period]


@dataclass(frozen=True, slots=True)
class BudgetKey:
    """A budget counter key taken apart: whose budget (`kind` "key" or "team", and the id), for
    which period, and when that period began (None for a total budget)."""

    kind: str
    id: str
    period: Period
    bucket: str
    since: datetime | None

    @property
    def scope(self) -> str:
        return f"{self.kind}:{self.id}"

    @property
    def key(self) -> str:
        return f"budget:{self.kind}:{self.id}:{self.bucket}"


def parse_budget_key(key: str) -> BudgetKey:
    """The inverse of `budget_key`. Raises ValueError for a key it did not make."""
    prefix, _, rest = key.partition(":")
    kind, _, rest = rest.partition(":")
    ident, _, bucket = rest.rpartition(":")
    if prefix != "budget" or kind not in ("key", "team") or not ident:
        raise ValueError(f"not a budget key: {key!r}")
    if bucket == "total":
        return BudgetKey(kind, ident, "total", bucket, None)
    if "-W" in bucket:
        iso_year, _, iso_week = bucket.partition("-W")
        since = datetime.fromisocalendar(int(iso_year), int(iso_week), 1).replace(tzinfo=UTC)
        return BudgetKey(kind, ident, "week", bucket, since)
    parts = [int(part) for part in bucket.split("-")]
    if len(parts) == 3:
        year, month, day = parts
        return BudgetKey(kind, ident, "day", bucket, datetime(year, month, day, tzinfo=UTC))
    if len(parts) == 2:
        year, month = parts
        return BudgetKey(kind, ident, "month", bucket, datetime(year, month, 1, tzinfo=UTC))
    raise ValueError(f"not a budget key: {key!r}")


def worst_case_micros(
    candidates: Sequence[Deployment], prompt_tokens: int, max_output: int | None
) -> int:
    worst = Decimal(0)
    for dep in candidates:
        if dep.prices is None:
            continue
        output = max_output
        if output is None:
            context = dep.model.context_length if dep.model else DEFAULT_OUTPUT_CAP
            output = max(1, min(context - prompt_tokens, context))
        worst = max(worst, estimate_max_cost(prompt_tokens, output, dep.prices))
    return math.ceil(worst * MICRO)


def to_micros(cost: Decimal | None) -> int:
    return 0 if cost is None else math.ceil(cost * MICRO)


def checks(
    principal: Principal, prompt_tokens: int, reserve: int, now: datetime | None = None
) -> tuple[list[WindowCheck], list[Reservation]]:
    """The tokens-per-minute windows and the budget reservations of an admitted request (its
    requests-per-minute windows are `rate_checks`, counted earlier)."""
    now = now or datetime.now(UTC)
    windows: list[WindowCheck] = []
    reservations: list[Reservation] = []
    for scope, limits in principal.scopes:
        if limits.tpm is not None:
            windows.append(WindowCheck(f"tpm:{scope}", prompt_tokens, limits.tpm))
        if limits.budget_usd is not None:
            reservations.append(
                Reservation(
                    budget_key(scope, limits.budget_period, now),
                    reserve,
                    to_micros(limits.budget_usd),
                    _TTL[limits.budget_period],
                )
            )
    return windows, reservations


def rate_checks(principal: Principal) -> list[WindowCheck]:
    """The requests-per-minute windows of a request: counted as soon as its key is known, so a
    request refused later (bad body, unknown model, over budget) still counts."""
    return [
        WindowCheck(f"rpm:{scope}", 1, limits.rpm)
        for scope, limits in principal.scopes
        if limits.rpm is not None
    ]


def denial_error(
    denied: Denied, principal: Principal, *, reserve: int = 0, output_capped: bool = True
) -> RateLimitError:
    """The 429 for a failed check, naming the limit (never a secret). For a budget, `reserve`
    is what this request asked to hold (its worst-case cost, micro-dollars) and
    `output_capped` whether the client set its output limit: without one the worst case is the
    rest of the model's context, which is usually what breaks a small budget."""
    kind, _, rest = denied.key.partition(":")
    scope = rest.rsplit(":", 1)[0] if kind == "budget" else rest
    holder = _holder(scope)
    if kind == "rpm":
        return RateLimitError(
            f"Rate limit exceeded: {holder} allows {denied.limit} "
            f"request{'s' if denied.limit != 1 else ''} per minute.",
            retry_after=max(denied.retry_after, 1.0),
        )
    if kind == "tpm":
        return RateLimitError(
            f"Rate limit exceeded: {holder} allows {denied.limit} tokens per minute "
            f"({denied.used} used in this minute).",
            retry_after=max(denied.retry_after, 1.0),
        )
    limits = dict(principal.scopes).get(scope, Limits())
    period = _PERIOD_WORD[limits.budget_period]
    used, limit, worst = usd(denied.used), usd(denied.limit), usd(reserve)
    fix = (
        ""
        if output_capped
        else " The request sets no max_tokens, so its worst case is the rest of the model's "
        "context window: set max_tokens to what you need."
    )
    if reserve > denied.limit:
        # Waiting cannot help: this request alone is over the whole budget.
        return BudgetError(
            f"Budget exceeded: this request could cost up to {worst}, more than the {period} "
            f"budget of {limit} that {holder} has.{fix}",
        )
    retry = (
        None if limits.budget_period == "total" else seconds_to_next_period(limits.budget_period)
    )
    return BudgetError(
        f"Budget exceeded: {holder} has used {used} of its {period} budget of {limit} "
        f"(in-flight requests included), and this request could cost up to {worst}.{fix}",
        retry_after=None if retry is None else float(retry),
    )


def usd(micros: int) -> str:
    """A micro-dollar amount as dollars, to the cent where that is exact and to the micro-dollar
    otherwise: a budget of $0.0001 must not read as $0.00."""
    amount = (Decimal(micros) / MICRO).normalize()
    if amount == amount.quantize(Decimal("0.01")):
        return f"${amount:.2f}"
    return f"${amount:f}"


def _holder(scope: str) -> str:
    kind, _, name = scope.partition(":")
    return f"{kind} '{name}'"


def seconds_to_next_period(period: Period, now: datetime | None = None) -> int:
    """Seconds from `now` until the budget period after the one holding `now` begins (UTC;
    weeks begin on Monday). At least 1. Raises ValueError for a total budget, which never
    resets."""
    if period == "total":
        raise ValueError("a total budget has no next period")
    now = now or datetime.now(UTC)
    if period == "day":
        nxt = now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() + 86400
    elif period == "week":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        nxt = start.timestamp() + (7 - now.weekday()) * 86400
    else:
        year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
        nxt = datetime(year, month, 1, tzinfo=UTC).timestamp()
    return max(1, int(nxt - now.timestamp()))
