"""Plain-text tables, CSV and JSON for the CLI's reports. Values may be text clients chose
(model names, upstream errors): control characters in them are printed as visible escapes, and
CSV cells are kept from running as spreadsheet formulas (`crossroads.safe_text`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from crossroads.safe_text import csv_text, printable, printable_json


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return printable(str(value))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )
    return "\n".join(lines)


def to_csv(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    # printable() leaves no carriage return in a cell, so plain newlines end the lines.
    cells = [[printable(v) if isinstance(v, str) else v for v in row] for row in rows]
    return csv_text(headers, cells, lineterminator="\n").rstrip("\n")


def to_json(value: Any) -> str:
    return printable_json(orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode())


def render(fmt: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    if fmt == "csv":
        return to_csv(headers, rows)
    if fmt == "json":
        return to_json([dict(zip(headers, row, strict=True)) for row in rows])
    return table(headers, rows)
