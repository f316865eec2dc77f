"""The dashboard's time window (`parse_window`): spans and ISO date-times, hour rounding, the
automatic interval, and a 400 naming the parameter for anything unreadable or too large."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crossroads.errors import InvalidRequestError
from crossroads.server.dashboard.data import MAX_BUCKETS, Window, parse_window

NOW = datetime(2026, 11, 30, 14, 25, 7, tzinfo=UTC)


def test_defaults_to_the_last_seven_days_per_day_on_whole_hours() -> None:
    assert parse_window({}, NOW) == Window(
        since=datetime(2026, 11, 23, 14, tzinfo=UTC),
        until=datetime(2026, 11, 30, 15, tzinfo=UTC),
        interval="day",
    )


@pytest.mark.parametrize(
    ("since", "interval"),
    [
        ("24h", "hour"),
        ("2d", "hour"),
        ("3d", "day"),
        ("2w", "day"),
        ("17w", "day"),
        ("18w", "week"),
    ],
)
def test_spans_before_now_pick_an_interval_by_length(since: str, interval: str) -> None:
    window = parse_window({"since": since}, NOW)
    assert window.interval == interval
    assert window.until == datetime(2026, 11, 30, 15, tzinfo=UTC)


def test_iso_times_are_utc_without_a_zone_and_converted_with_one() -> None:
    window = parse_window(
        {"since": "2026-11-01", "until": "2026-11-02T05:45:00+05:30", "interval": "week"}, NOW
    )
    assert window == Window(
        datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, 1, tzinfo=UTC), "week"
    )
    z = parse_window({"since": "2026-11-01T10:59:59Z", "until": "2026-11-01T11:00:00Z"}, NOW)
    assert (z.since, z.until) == (
        datetime(2026, 11, 1, 10, tzinfo=UTC),
        z.since + timedelta(hours=1),
    )


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"since": "2026-11-30T16:00Z", "until": "2026-11-30T15:00Z"}, "since"),
        ({"interval": "minute"}, "interval"),
        ({"since": f"{MAX_BUCKETS + 2}h", "interval": "hour"}, "interval"),
        ({"since": "0001-01-01", "until": "9999-12-31T23:30"}, "until"),  # named since issue 11
    ],
)
def test_unreadable_or_oversized_windows_are_400s(params: dict[str, str], param: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        parse_window(params, NOW)
    assert raised.value.status == 400 and raised.value.param == param
