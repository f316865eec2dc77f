"""`crossroads report`: spend, savings, adoption, latency and error-rate reports from the
ledger's rollups (`crossroads.analytics`), and `--rebuild-rollups` to recompute the rollups from
the raw ledger."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import replace
from decimal import Decimal
from typing import Any

from crossroads.analytics import Report, ReportQuery, resolve_dimensions, run_report
from crossroads.analytics.result import display
from crossroads.cli import eval_cmd
from crossroads.cli.tables import render, to_json
from crossroads.cli.usage_cmd import parse_since
from crossroads.config import Settings, load_settings
from crossroads.errors import ConfigError
from crossroads.ledger.baseline import Baseline, baseline_from_catalog
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.ledger.store import LedgerStoreError
from crossroads.quality.store import EVAL_LEDGER_FILE
from crossroads.server.runtime import LEDGER_FILE

__all__ = ["print_report", "run"]


def print_report(report: Report, fmt: str) -> None:
    """Writes `report` to stdout as a table followed by its notes (amounts rounded to read: cents
    from $1 up, four significant digits below), as CSV (exact; notes on stderr, so the CSV stays
    machine-readable), or as one JSON object: report, columns, rows (objects), notes, summary,
    with Decimals written exactly, as strings."""
    if fmt == "json":
        print(
            to_json(
                {
                    "report": report.kind,
                    "columns": list(report.columns),
                    "rows": report.as_dicts(),
                    "notes": list(report.notes),
                    "summary": dict(report.summary),
                }
            )
        )
        return
    rows: Any = report.rows
    if fmt == "table":  # amounts rounded to read; csv and json keep them exact
        rows = [[display(v) if isinstance(v, Decimal) else v for v in row] for row in rows]
    print(render(fmt, report.columns, rows))
    out = sys.stderr if fmt == "csv" else sys.stdout
    if report.notes and fmt == "table":
        print(file=out)
    for note in report.notes:
        print(note, file=out)


def _query(args: argparse.Namespace) -> ReportQuery:
    by = None
    if args.by:
        try:
            by = resolve_dimensions([name for name in args.by.split(",") if name.strip()])
        except ValueError as exc:
            raise ConfigError(f"--by: {exc}") from None
    return ReportQuery(
        since=parse_since(args.since),
        until=parse_since(args.until, flag="--until"),
        interval=args.interval,
        by=by,
    )


def _baselines(args: argparse.Namespace, settings: Settings) -> tuple[Baseline, ...]:
    """The configured baselines (the default first), then those named with --baseline."""
    named = []
    for text in getattr(args, "baseline", None) or []:
        try:
            named.append(baseline_from_catalog(settings.catalog, text))
        except ValueError as exc:
            raise ConfigError(f"--baseline {text}: {exc}") from None
    configured = settings.baselines.all()
    if named and not configured:
        return tuple(named)
    return (*configured, *named)


async def _main(args: argparse.Namespace, query: ReportQuery) -> Report | None:
    settings = load_settings(args.config, data_dir=args.data_dir)
    query = replace(query, baselines=_baselines(args, settings))
    path = settings.data_dir / (EVAL_LEDGER_FILE if args.eval else LEDGER_FILE)
    if not path.exists():
        raise ConfigError(f"no ledger at {path}; has the gateway served any request yet?")
    store = SQLiteLedgerStore(path, create=False)
    await store.open()
    try:
        if args.rebuild_rollups:
            started = time.monotonic()
            count = await store.rebuild_rollups()
            out = sys.stderr if args.kind else sys.stdout
            elapsed = time.monotonic() - started
            print(f"Rebuilt the rollups from {count} ledger records in {elapsed:.1f} s.", file=out)
        if args.kind is None:
            return None
        return await run_report(args.kind, store, query)
    finally:
        await store.close()


def run(args: argparse.Namespace) -> int:
    if args.kind == "switch":
        return eval_cmd.report_switch(args)
    if args.kind is None and not args.rebuild_rollups:
        raise ConfigError(
            "name a report (spend, savings, adoption, latency, errors) or pass --rebuild-rollups"
        )
    query = _query(args)
    try:
        report = asyncio.run(_main(args, query))
    except LedgerStoreError as exc:
        print(f"crossroads: ledger error: {exc.message}", file=sys.stderr)
        return 1
    if report is not None:
        print_report(report, args.format)
    return 0
