"""`crossroads whatif`: a usage export (OpenRouter, LiteLLM, a generic CSV or JSON lines file,
or a Crossroads ledger) priced at candidate models, against what was actually paid. The formats
are described in docs/whatif.md."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from crossroads.analytics.importers import (
    UsageFile,
    UsageFileError,
    UsageRow,
    detect_format,
    ledger_rows,
    open_usage,
)
from crossroads.analytics.model_names import ModelResolver
from crossroads.analytics.whatif import parse_target, price_usage
from crossroads.cli.report_cmd import print_report
from crossroads.config import load_settings
from crossroads.errors import ConfigError
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.ledger.store import LedgerStoreError

__all__ = ["run"]


def _pairs(values: Sequence[str], flag: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, target = value.partition("=")
        if not sep or not key.strip() or not target.strip():
            raise ConfigError(f"{flag} {value!r}: expected NAME=VALUE")
        pairs[key.strip()] = target.strip()
    return pairs


async def _ledger(path: Path) -> list[UsageRow]:
    store = SQLiteLedgerStore(path, create=False)
    await store.open()
    try:
        return await ledger_rows(store)
    finally:
        await store.close()


def _prices_at(args: argparse.Namespace) -> datetime | None:
    """--prices-at DATE: price at the list prices in force that day (00:00 UTC); None: today's."""
    text = getattr(args, "prices_at", None)
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--prices-at {text!r}: expected a date such as 2026-09-01") from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def run(args: argparse.Namespace) -> int:
    catalog = load_settings(args.config).catalog
    try:
        targets = [parse_target(catalog, text) for text in args.to]
        resolver = ModelResolver(catalog, _pairs(args.model_map, "--model-map"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    columns = _pairs(args.column, "--column")
    path = Path(args.usage)
    notes: list[str] = []
    usage: UsageFile | None = None
    try:
        fmt = detect_format(path) if args.input_format == "auto" else args.input_format
        rows: Iterable[UsageRow]
        if fmt == "crossroads":
            if columns:
                raise ConfigError("--column does not apply to a Crossroads ledger")
            rows = asyncio.run(_ledger(path))
        else:
            usage = open_usage(path, fmt, columns)
            rows = usage.rows()
        result = price_usage(
            rows, catalog, targets, resolver, source=f"{path} ({fmt} format)", at=_prices_at(args)
        )
        if usage is not None:
            if usage.unknown_columns:
                ignored = ", ".join(usage.unknown_columns)
                notes.append(f"Warning: unknown columns ignored: {ignored}")
            if usage.byok_usd:
                notes.append(f"Actual includes ${usage.byok_usd} of BYOK inference cost.")
    except UsageFileError as exc:
        print(f"crossroads: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except LedgerStoreError as exc:
        print(f"crossroads: {exc.message}", file=sys.stderr)
        return 2
    result.extra_notes.extend(notes)
    print_report(result.report(), args.format)
    return 0
