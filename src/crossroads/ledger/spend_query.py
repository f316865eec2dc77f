"""The two narrow reads that rebuild a restarted gateway's budget and rate counters from the
ledger, as SQL for both stores: spend per API key or team since a period began (from the daily
or hourly rollups, never the raw ledger), and the requests and tokens of the last minute."""

from __future__ import annotations

from dataclasses import dataclass

# The rollups' bucket sizes (`sqlite_rollups.HOUR_US`, `DAY_US`), restated: the store protocol
# imports this module, and the rollups import the protocol.
HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US

__all__ = ["SPEND_SCOPES", "RecentUsage", "recent_usage_sql", "spend_sql"]

SPEND_SCOPES = ("api_key_id", "team_id")
"""The columns `spend_since` may sum by. Like the other allow-lists, they double as SQL names."""


@dataclass(frozen=True, slots=True)
class RecentUsage:
    """What one API key (within one team) did since a moment: requests, and prompt plus
    completion tokens."""

    api_key_id: str | None
    team_id: str | None
    requests: int
    tokens: int


def spend_sql(scope: str, since_us: int | None, ids: str, since: str) -> tuple[str, int | None]:
    """The statement summing `cost_units` per `scope` id, and the value of its `since`
    placeholder (None: the statement has none). `ids` is the SQL that tests the column (e.g.
    "IN (?, ?)" or "= ANY($1::text[])"). The daily rollup answers windows that start on a UTC
    day (every budget period does) or have no start; the hourly one the rest, from `since_us`
    rounded down to the hour. Raises ValueError for a scope outside `SPEND_SCOPES`."""
    if scope not in SPEND_SCOPES:
        raise ValueError(f"cannot sum spend by {scope!r}; choose from: {', '.join(SPEND_SCOPES)}")
    if since_us is None or since_us % DAY_US == 0:
        table, bound = "rollup_daily", since_us
    else:
        table, bound = "rollup_hourly", since_us - since_us % HOUR_US
    where = f"{scope} {ids}" + ("" if bound is None else f" AND bucket_start >= {since}")
    return f"SELECT {scope}, SUM(cost_units) FROM {table} WHERE {where} GROUP BY {scope}", bound


def recent_usage_sql(since: str) -> str:
    """The statement for `LedgerStore.usage_since`, with `since` the placeholder of its one
    parameter (microseconds). Requests refused by a rate limit are left out: they were not
    counted in any window."""
    return (
        "SELECT api_key_id, team_id, COUNT(*), "
        "COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM requests "
        f"WHERE created_at >= {since} AND (api_key_id IS NOT NULL OR team_id IS NOT NULL) "
        "AND (error_type IS NULL OR error_type <> 'rate_limit_error') "
        "GROUP BY api_key_id, team_id"
    )
