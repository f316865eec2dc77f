"""Reading a bound of a report or export window, as every surface takes it (the admin API, the
dashboard, the CLI's `--since` and `--until`): a span before now (`30m`, `24h`, `7d`, `2w`) or an
ISO 8601 date or date-time, checked to lie where the ledger's date arithmetic cannot overflow."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["EARLIEST", "LATEST", "MAX_SPAN_DAYS", "parse_moment"]

MAX_SPAN_DAYS = 36_500
"""The longest span before now, in days (100 years)."""

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
"""Moments must lie in [EARLIEST, LATEST): far from the ends of Python's datetime range, so the
rounding to hours, days and weeks that reports and rollups do can never leave it."""

_SPAN = re.compile(r"(\d+)([mhdw])")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_UNIT_NAMES = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_moment(value: str, now: datetime) -> datetime:
    """The moment `value` names, timezone-aware in UTC: a span before `now` (a whole number
    of m, h, d or w, at most `MAX_SPAN_DAYS` days) or an ISO 8601 date or date-time (UTC when
    it names no zone), between `EARLIEST` and `LATEST`.

    Raises ValueError whose message starts with `value`, quoted, and says what is wrong and
    what is accepted (the caller puts the parameter's name before it); never OverflowError."""
    text = value.strip()
    span = _SPAN.fullmatch(text)
    if span is not None:
        digits, unit = span.group(1), span.group(2)
        most = MAX_SPAN_DAYS * 86_400 // _UNIT_SECONDS[unit]
        # Length first: int() refuses numbers of more than 4,300 digits with its own words.
        if len(digits) > 18 or int(digits) > most:
            raise ValueError(
                f"{_shown(value)} is a span longer than 100 years (at most {most}{unit})"
            )
        moment = now - timedelta(**{_UNIT_NAMES[unit]: int(digits)})
    else:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"{_shown(value)} is neither a span like 30m, 24h, 7d or 2w nor an ISO 8601 "
                "date or date-time such as 2026-11-01 or 2026-11-01T10:00:00Z"
            ) from None
        try:
            moment = (
                parsed.replace(tzinfo=UTC) if parsed.utcoffset() is None else parsed.astimezone(UTC)
            )
        except OverflowError:  # 0001-01-01T00:00+14:00 is in year 0 in UTC
            raise _out_of_range(value) from None
    if not EARLIEST <= moment < LATEST:
        raise _out_of_range(value)
    return moment


def _out_of_range(value: str) -> ValueError:
    return ValueError(
        f"{_shown(value)} is outside the range the ledger can be asked about: from "
        f"{EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d} (UTC)"
    )


def _shown(value: str) -> str:
    """`value` quoted for a message, cut to a readable length."""
    return repr(value if len(value) <= 40 else value[:40] + "...")
