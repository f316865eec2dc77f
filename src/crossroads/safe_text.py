"""Text that clients chose (a model name, a key name, an upstream's error), made safe for the
medium it is written to: CSV cells a spreadsheet would run as formulas, and control characters a
terminal would obey."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["csv_cell", "csv_text", "printable", "printable_json"]

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# C0 controls, DEL and C1 controls (ESC starts the terminal's escape sequences; C1's CSI, 0x9b,
# is one on its own), and the bidirectional overrides that make text display out of order.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_KEEPING_LINES = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
# What a JSON encoder leaves raw (it escapes C0 only): DEL, C1 and the overrides.
_JSON_RAW_CONTROL = re.compile("[\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def csv_cell(value: Any) -> Any:
    """A CSV cell value that no spreadsheet runs as a formula: text starting with `=`, `+`,
    `-`, `@`, tab or carriage return gets a leading `'` (OWASP's rule for CSV injection).
    Numbers and other non-text values are returned as they are; None becomes an empty cell."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], *, lineterminator: str = "\r\n"
) -> str:
    """A CSV document, every cell through `csv_cell`. Lines end in CRLF (RFC 4180), which also
    makes the writer quote a cell holding a bare carriage return: with `\n` alone it would
    leave it unquoted, and a reader would start a new row, and a new first cell, there. Pass
    `lineterminator="\n"` only for cells that cannot hold a carriage return."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=lineterminator)
    writer.writerow(headers)
    writer.writerows([[csv_cell(v) for v in row] for row in rows])
    return out.getvalue()


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, keep_lines: bool = False) -> str:
    """`text` with every control character written as a visible escape (`\\x1b`, `\\u202e`),
    so a terminal shows it rather than obeys it. With `keep_lines`, newlines and tabs stay:
    for whole lines of output rather than one value."""
    pattern = _CONTROL_KEEPING_LINES if keep_lines else _CONTROL
    return pattern.sub(_escape, text)


def printable_json(document: str) -> str:
    """A JSON document with the control characters its encoder leaves raw written as `\\uXXXX`
    escapes: the same JSON, safe to print to a terminal. (They can only occur inside strings,
    where the escape is valid.)"""
    return _JSON_RAW_CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", document)
