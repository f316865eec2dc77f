"""How a report is asked for (`ReportQuery`: window, interval, dimensions), the dimension names
users may type, and the helpers every report uses to lay out its grouped rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crossroads.analytics.result import period_label
from crossroads.ledger.baseline import Baseline
from crossroads.ledger.record import Status
from crossroads.ledger.store import ROLLUP_DIMENSIONS

__all__ = [
    "DIMENSION_ALIASES",
    "ReportQuery",
    "group_cells",
    "group_columns",
    "periods",
    "resolve_dimensions",
]

DIMENSION_ALIASES: Mapping[str, str] = {
    "key": "api_key_id",
    "team": "team_id",
    "model": "served_model",
    "origin": "origin_country",
    "weights": "open_weights",
    "host": "provider",  # the provider id from config, which names the host that served
    "jurisdiction": "host_jurisdiction",
    **{name: name for name in ROLLUP_DIMENSIONS},
}
"""Names accepted for a dimension: the short ones above, or the ledger's own column names."""


@dataclass(frozen=True, slots=True)
class ReportQuery:
    """What to report on: `since <= time < until` at hour resolution (either bound may be None),
    per `interval` bucket (None: the report's default) and grouped by `by` (ledger dimension
    names, see `resolve_dimensions`; None: the report's default)."""

    since: datetime | None = None
    until: datetime | None = None
    interval: str | None = None
    by: tuple[str, ...] | None = None
    # The savings report's baselines: the first is the one on the ledger rows (its prices are
    # named in the notes), every other is compared against from the ledger's token counts.
    baselines: tuple[Baseline, ...] = ()


def resolve_dimensions(names: Sequence[str]) -> tuple[str, ...]:
    """Maps user-facing names (`DIMENSION_ALIASES`) to ledger dimension names, in order. Raises
    ValueError naming the accepted names for an unknown or repeated one."""
    resolved: list[str] = []
    for raw in names:
        name = raw.strip()
        dimension = DIMENSION_ALIASES.get(name)
        if dimension is None:
            accepted = ", ".join(sorted(DIMENSION_ALIASES))
            raise ValueError(f"unknown dimension {name!r}; choose from: {accepted}")
        if dimension in resolved:
            raise ValueError(f"dimension {name!r} is given more than once")
        resolved.append(dimension)
    return tuple(resolved)


def group_columns(interval: str | None, by: Sequence[str]) -> list[str]:
    """The leading columns of a grouped report: the period (named for the interval), then the
    dimensions."""
    return [*([interval] if interval else []), *by]


def group_cells(row: Mapping[str, Any], interval: str | None, by: Sequence[str]) -> list[Any]:
    """The values of `group_columns` for one rollup row, as shown: periods as labels, open
    weights as 'open'/'closed', statuses as their value; None stays None."""
    cells: list[Any] = [period_label(row["bucket_start"], interval)] if interval else []
    for name in by:
        value = row[name]
        if name == "open_weights" and value is not None:
            value = "open" if value else "closed"
        elif isinstance(value, Status):
            value = value.value
        cells.append(value)
    return cells


def periods(rows: Sequence[Mapping[str, Any]], interval: str | None) -> list[list[int]]:
    """Indexes of `rows` grouped by bucket, in order (all in one group without an interval)."""
    groups: dict[object, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(row["bucket_start"] if interval else None, []).append(i)
    return list(groups.values())
