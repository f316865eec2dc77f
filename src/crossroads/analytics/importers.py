"""Usage exports read as `UsageRow`s: OpenRouter's activity CSV, LiteLLM's spend logs (CSV, JSON
or JSON lines), a generic CSV or JSON lines file, and Crossroads' own ledger (through its
rollups). docs/whatif.md lists every column each format maps and which mappings are unverified.

Files are streamed: `UsageFile.rows()` reads one row at a time, so an export of millions of rows
never sits in memory. Malformed values raise `UsageFileError` naming the file, line and column.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import orjson

from crossroads.analytics.usage_formats import FIELDS, IGNORED, INPUT_FORMATS, MAPPINGS, REQUIRED
from crossroads.ledger.store import RollupReader

__all__ = [
    "FIELDS",
    "INPUT_FORMATS",
    "UsageFile",
    "UsageFileError",
    "UsageRow",
    "detect_format",
    "ledger_rows",
    "open_usage",
]


class UsageFileError(Exception):
    """A usage file cannot be read: missing, unknown format, a required column missing, or a
    malformed value. The message names the file and, for values, the line and column."""


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One row of usage: one request, or `requests` of them summed. `prompt_tokens` includes
    `cached_tokens` and `cache_write_tokens`; `completion_tokens` includes `reasoning_tokens`.
    `cost_usd` is what the file says was paid (None when it does not say). The row covers
    [start, end] (equal for one request; a whole day for a date)."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal | None = None
    start: datetime | None = None
    end: datetime | None = None
    requests: int = 1
    provider: str | None = None  # a LiteLLM provider prefix, used to match the model


class UsageFile:
    """An opened usage export (not `crossroads`, which `ledger_rows` reads). `mapping` says which
    header feeds each field; `unknown_columns` lists headers neither mapped nor known to the
    format, complete once `rows()` has been read to the end (JSON lines may vary by line)."""

    def __init__(self, path: Path, fmt: str, columns: Mapping[str, str]) -> None:
        self.path = path
        self.format = fmt
        self._overrides = dict(columns)
        self.mapping: dict[str, str] = {}
        self._unknown: set[str] = set()
        self.byok_usd = Decimal(0)  # OpenRouter BYOK inference cost added to cost_total

    @property
    def unknown_columns(self) -> list[str]:
        return sorted(self._unknown)

    def rows(self) -> Iterator[UsageRow]:
        """Reads the file, one row at a time. Raises UsageFileError."""
        for line, record in self._records():
            if not self.mapping:
                self._map(record.keys())
            else:
                self._unknown.update(k for k in record if not self._known(k))
            yield self._row(line, record)

    def _records(self) -> Iterator[tuple[int, Mapping[str, Any]]]:
        try:
            if self.path.suffix.lower() in (".jsonl", ".ndjson"):
                yield from _json_lines(self.path)
            elif self.path.suffix.lower() == ".json":
                yield from _json_array(self.path)
            else:
                yield from _csv_rows(self.path)
        except OSError as exc:
            raise UsageFileError(f"{self.path}: {exc.strerror or exc}") from None

    def _known(self, header: str) -> bool:
        return header in self.mapping.values() or header in IGNORED[self.format]

    def _map(self, headers: Any) -> None:
        present = list(headers)
        for field, candidates in MAPPINGS[self.format].items():
            found = next((h for h in candidates if h in present), None)
            if found is not None:
                self.mapping[field] = found
        for field, header in self._overrides.items():
            if header not in present:
                raise UsageFileError(f"{self.path}: --column {field}={header}: no such column")
            self.mapping[field] = header
        missing = [f for f in REQUIRED if f not in self.mapping]
        if missing:
            raise UsageFileError(
                f"{self.path}: no column for {', '.join(missing)} in the {self.format} format "
                f"(columns: {', '.join(present)}); map one with --column FIELD=HEADER"
            )
        self._unknown.update(h for h in present if not self._known(h))

    def _row(self, line: int, record: Mapping[str, Any]) -> UsageRow:
        def get(field: str) -> Any:
            header = self.mapping.get(field)
            return None if header is None else record.get(header)

        where = f"{self.path}, line {line}"
        counts = {
            field: _count(get(field), where, self.mapping.get(field, field))
            for field in FIELDS[1:6]
        }
        cost = _money(get("cost_usd"), where, self.mapping.get("cost_usd", ""))
        if self.format == "openrouter" and "byok_usage_inference" in record:
            byok = _money(record["byok_usage_inference"], where, "byok_usage_inference")
            if byok:
                self.byok_usd += byok
                cost = byok if cost is None else cost + byok
        if self.format == "litellm" and cost == 0 and counts["prompt_tokens"]:
            cost = None  # LiteLLM logs 0 spend for models it has no price for
        start, end = _times(get("timestamp"), where, self.mapping.get("timestamp", ""))
        requests = _count(get("requests"), where, "requests") if "requests" in self.mapping else 1
        model = get("model")
        if model is None or str(model).strip() == "":
            raise UsageFileError(f"{where}: {self.mapping['model']}: empty model name")
        provider = get("provider")
        return UsageRow(
            model=str(model).strip(),
            cost_usd=cost,
            start=start,
            end=end,
            requests=requests,
            provider=str(provider) if provider else None,
            **counts,
        )


def detect_format(path: Path) -> str:
    """The format of `path` by its content: a SQLite file is `crossroads`; a header or first
    record with OpenRouter's `generation_id` or `tokens_prompt` is `openrouter`; one with
    LiteLLM's `spend` and `startTime` (or `call_type`) is `litellm`; anything else `generic`.
    Raises UsageFileError when the file cannot be read or is empty."""
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise UsageFileError(f"{path}: {exc.strerror or exc}") from None
    if head.startswith(b"SQLite format 3\x00"):
        return "crossroads"
    probe = UsageFile(path, "generic", {})
    first = next(probe._records(), None)
    if first is None:
        raise UsageFileError(f"{path}: no rows")
    keys = set(first[1])
    if {"generation_id", "tokens_prompt"} & keys:
        return "openrouter"
    if {"spend", "startTime"} <= keys or "call_type" in keys:
        return "litellm"
    return "generic"


def open_usage(
    path: Path, fmt: str = "auto", columns: Mapping[str, str] | None = None
) -> UsageFile:
    """Opens `path` in format `fmt` (`auto` detects it). `columns` maps fields (`FIELDS`) to
    headers, over the format's own mapping. Raises UsageFileError, or ValueError for an unknown
    format or field, or for `crossroads` (read that with `ledger_rows`)."""
    if fmt not in INPUT_FORMATS:
        raise ValueError(f"unknown input format {fmt!r}; choose from {', '.join(INPUT_FORMATS)}")
    for field in columns or {}:
        if field not in FIELDS:
            raise ValueError(f"--column {field}: unknown field; choose from {', '.join(FIELDS)}")
    chosen = detect_format(path) if fmt == "auto" else fmt
    if chosen == "crossroads":
        raise ValueError("a Crossroads ledger is read through its store: use ledger_rows")
    return UsageFile(path, chosen, columns or {})


async def ledger_rows(reader: RollupReader) -> list[UsageRow]:
    """A Crossroads ledger's usage as rows, one per served model, provider and day, from its
    rollups. A group's cost is the ledger's when every request in it was priced, else None.
    Each row's time range is its day clipped to the hours that hold data. Requests that never
    reached a model are left out."""
    span = await reader.rollup_span()
    if span is None:
        return []
    rows = []
    for group in await reader.rollup(interval="day", by=("served_model", "provider")):
        if group["served_model"] is None:
            continue
        day: datetime = group["bucket_start"]
        rows.append(
            UsageRow(
                model=group["served_model"],
                prompt_tokens=group["prompt_tokens"],
                completion_tokens=group["completion_tokens"],
                cached_tokens=group["cached_tokens"],
                cache_write_tokens=group["cache_write_tokens"],
                reasoning_tokens=group["reasoning_tokens"],
                cost_usd=group["cost_usd"]
                if group["priced_requests"] == group["requests"]
                else None,
                start=max(day, span[0]),
                end=min(day + timedelta(days=1), span[1]),
                requests=group["requests"],
            )
        )
    return rows


def _csv_rows(path: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: Excel's byte-order mark
        reader = csv.DictReader(handle)
        for record in reader:
            if any(value not in (None, "") for value in record.values()):
                yield reader.line_num, {k: v for k, v in record.items() if k is not None}


def _json_lines(path: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                yield number, _object(_loads(raw, path, number), path, number)


def _json_array(path: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    data = _loads(path.read_bytes(), path, 1)
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]  # LiteLLM's paginated /spend/logs/v2 answer
    if not isinstance(data, list):
        raise UsageFileError(f"{path}: expected a JSON array of objects (or {{'data': [...]}})")
    for number, item in enumerate(data, start=1):
        yield number, _object(item, path, number)


def _loads(raw: bytes, path: Path, line: int) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UsageFileError(f"{path}, line {line}: not JSON: {exc}") from None


def _object(value: Any, path: Path, number: int) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise UsageFileError(f"{path}, record {number}: expected a JSON object")
    return value


def _count(value: Any, where: str, column: str) -> int:
    """A token or request count: blank is 0; otherwise a whole, non-negative number."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return 0
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite() or number < 0 or number != number.to_integral_value():
        raise UsageFileError(f"{where}: {column}: not a whole, non-negative number: {value!r}")
    return int(number)


def _money(value: Any, where: str, column: str) -> Decimal | None:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite():
        raise UsageFileError(f"{where}: {column}: not an amount in USD: {value!r}")
    return amount


def _times(value: Any, where: str, column: str) -> tuple[datetime | None, datetime | None]:
    """(start, end) of a timestamp: an ISO date (the whole day, UTC), an ISO datetime (UTC when
    it has no zone), or seconds since the epoch (milliseconds when above 10^11)."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None, None
    text = str(value).strip()
    try:
        if isinstance(value, int | float) or text.replace(".", "", 1).isdigit():
            seconds = float(text)
            moment = datetime.fromtimestamp(seconds / 1000 if seconds > 1e11 else seconds, UTC)
            return moment, moment
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError):
        raise UsageFileError(f"{where}: {column}: not a date or time: {value!r}") from None
    if len(text) == 10:  # a bare date covers the whole day
        day = moment.replace(tzinfo=UTC)
        return day, day + timedelta(days=1)
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment, moment
