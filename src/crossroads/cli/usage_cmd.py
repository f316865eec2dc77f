"""`crossroads usage`: recent requests and totals by model and provider (or by the ledger columns
`--by` names, e.g. `usage_source`), read from the ledger."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from typing import Any

from crossroads.analytics.moments import parse_moment
from crossroads.cli.tables import render, to_json
from crossroads.config import load_settings
from crossroads.errors import ConfigError, InvalidRequestError
from crossroads.ledger.record import LedgerRecord
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.ledger.store import GROUP_BY_FIELDS, validate_group_by
from crossroads.server.runtime import LEDGER_FILE

RECENT_HEADERS = [
    "time (UTC)",
    "request_id",
    "model",
    "provider",
    "status",
    "prompt",
    "completion",
    "usage",  # reported by the upstream, or estimated by the gateway
    "cost_usd",
    "latency_ms",
    "attempts",
]
DEFAULT_BY = ("served_model", "provider")
TOTAL_METRICS = ["requests", "errors", "prompt", "completion", "cost_usd"]


def parse_since(
    value: str | None, now: datetime | None = None, flag: str = "--since"
) -> datetime | None:
    """`30m`, `24h`, `7d`, `2w` before now, or an ISO date/datetime (UTC if no zone given), as
    `crossroads.analytics.moments.parse_moment` reads them. Raises ConfigError naming `flag`,
    saying what is wrong and what is accepted."""
    if not value:
        return None
    try:
        return parse_moment(value, now or datetime.now(UTC))
    except ValueError as exc:
        raise ConfigError(f"{flag} {exc}") from None


def _recent_row(r: LedgerRecord) -> list[Any]:
    return [
        r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        r.request_id,
        r.served_model or r.requested_model,
        r.provider,
        r.status.value if r.error_type is None else f"{r.status.value} ({r.error_type})",
        r.prompt_tokens,
        r.completion_tokens,
        None if r.usage_source is None else r.usage_source.value,
        r.cost_usd,
        None if r.latency_ms is None else round(r.latency_ms, 1),
        r.attempts,
    ]


def _group_by(value: str | None) -> tuple[str, ...]:
    """The `--by` columns (comma-separated names from `GROUP_BY_FIELDS`), or the default.
    Raises ConfigError naming the accepted names."""
    if not value:
        return DEFAULT_BY
    try:
        return validate_group_by([name.strip() for name in value.split(",") if name.strip()])
    except InvalidRequestError:
        accepted = ", ".join(sorted(GROUP_BY_FIELDS))
        raise ConfigError(f"--by takes distinct names from: {accepted}") from None


async def _query(
    args: argparse.Namespace, by: tuple[str, ...]
) -> tuple[list[LedgerRecord], list[dict[str, Any]], dict[str, Any]]:
    settings = load_settings(args.config, data_dir=args.data_dir)
    path = settings.data_dir / LEDGER_FILE
    if not path.exists():
        raise ConfigError(f"no ledger at {path}; has the gateway served any request yet?")
    store = SQLiteLedgerStore(path)
    await store.open()
    try:
        since = parse_since(args.since)
        recent = await store.recent(args.limit, since)
        by_model = await store.totals(since=since, by=by)
        overall = (await store.totals(since=since))[0]
    finally:
        await store.close()
    return recent, by_model, overall


def run(args: argparse.Namespace) -> int:
    by = _group_by(args.by)
    recent, by_model, overall = asyncio.run(_query(args, by))
    headers = [*by, *TOTAL_METRICS]
    totals_rows = [
        [
            *(getattr(t[name], "value", t[name]) for name in by),
            t["requests"],
            t["errors"],
            t["prompt_tokens"],
            t["completion_tokens"],
            t["cost_usd"],
        ]
        for t in by_model
    ]
    if args.format == "json":
        print(
            to_json(
                {
                    "recent": [
                        dict(zip(RECENT_HEADERS, _recent_row(r), strict=True)) for r in recent
                    ],
                    "by_model": by_model,
                    "total": overall,
                }
            )
        )
        return 0
    if args.format == "csv":
        print(render("csv", headers, totals_rows))
        return 0
    print(f"Recent requests (newest first, up to {args.limit}):")
    print(render("table", RECENT_HEADERS, [_recent_row(r) for r in recent]))
    print(f"\nTotals by {', '.join(by)}:")
    print(render("table", headers, totals_rows))
    print(
        f"\nAll: {overall['requests']} requests, {overall['errors']} errors, "
        f"{overall['prompt_tokens']} prompt + {overall['completion_tokens']} completion tokens, "
        f"${overall['cost_usd']}"
    )
    return 0
