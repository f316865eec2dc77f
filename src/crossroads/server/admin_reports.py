"""Admin API for the economics: the reports (`GET /admin/reports/{kind}`) and the raw ledger
(`GET /admin/ledger`), as JSON or CSV. Reports read the rollups; the ledger export streams
records newest first, up to `limit` (default 10,000, at most 1,000,000). CSV cells that start
like a formula (a client's model name can be `=HYPERLINK(...)`) get a leading `'`."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from crossroads.analytics import REPORT_KINDS, ReportQuery, resolve_dimensions, run_report
from crossroads.analytics.moments import parse_moment
from crossroads.errors import GatewayError, InvalidRequestError
from crossroads.ledger.record import LedgerRecord
from crossroads.safe_text import csv_text
from crossroads.server.admin import admin_error, require_admin
from crossroads.server.runtime import Gateway

MAX_EXPORT = 1_000_000


def _moment(value: str | None, name: str) -> datetime | None:
    """`30m`, `24h`, `7d`, `2w` before now, or an ISO date/date-time (UTC when no zone); see
    `crossroads.analytics.moments`. Raises InvalidRequestError (400) naming the parameter."""
    if not value:
        return None
    try:
        return parse_moment(value, datetime.now(UTC))
    except ValueError as exc:
        raise InvalidRequestError(f"'{name}': {exc}.", param=name) from None


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError


async def report(request: Request) -> Response:
    """GET /admin/reports/{kind}?since=&until=&by=a,b&interval=day&format=json|csv"""
    try:
        require_admin(request)
        gateway: Gateway = request.app.state.gateway
        kind = request.path_params["kind"]
        if kind not in REPORT_KINDS:
            raise InvalidRequestError(
                f"Unknown report {kind!r}; choose from {', '.join(REPORT_KINDS)}.", param="kind"
            )
        params = request.query_params
        try:
            by = resolve_dimensions(params["by"].split(",")) if params.get("by") else None
            query = ReportQuery(
                since=_moment(params.get("since"), "since"),
                until=_moment(params.get("until"), "until"),
                interval=params.get("interval") or None,
                by=by,
                baselines=gateway.settings.baselines.all(),
            )
            result = await run_report(kind, gateway.store, query)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None
    except GatewayError as exc:
        return admin_error(exc)
    if params.get("format") == "csv":
        return Response(
            csv_text(list(result.columns), [list(r) for r in result.rows]), media_type="text/csv"
        )
    body = {
        "report": result.kind,
        "columns": list(result.columns),
        "rows": result.as_dicts(),
        "notes": list(result.notes),
        "summary": dict(result.summary),
    }
    return Response(orjson.dumps(body, default=_json_default), media_type="application/json")


LEDGER_COLUMNS = [
    "request_id", "created_at", "endpoint", "requested_model", "served_model", "deployment",
    "provider", "host_jurisdiction", "maker", "origin_country", "open_weights", "stream",
    "status", "http_status", "error_type", "prompt_tokens", "cached_tokens",
    "cache_write_tokens", "completion_tokens", "reasoning_tokens", "cost_usd",
    "baseline_model", "baseline_cost_usd", "upstream_cost_usd", "latency_ms", "ttft_ms",
    "attempts", "api_key_id", "team_id", "usage_source",
]  # fmt: skip


def _ledger_row(r: LedgerRecord) -> list[Any]:
    return [
        v.isoformat() if isinstance(v, datetime) else getattr(v, "value", v)
        for v in (getattr(r, c) for c in LEDGER_COLUMNS)
    ]


async def ledger(request: Request) -> Response:
    """GET /admin/ledger?since=&limit=&format=json|csv: the raw records, newest first."""
    try:
        require_admin(request)
        gateway: Gateway = request.app.state.gateway
        params = request.query_params
        raw_limit = params.get("limit", "10000")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_EXPORT:
            raise InvalidRequestError(
                f"'limit' must be a whole number from 1 to {MAX_EXPORT}.", param="limit"
            )
        records = await gateway.store.recent(int(raw_limit), _moment(params.get("since"), "since"))
    except GatewayError as exc:
        return admin_error(exc)
    rows = [_ledger_row(r) for r in records]
    if params.get("format") == "csv":
        return Response(csv_text(LEDGER_COLUMNS, rows), media_type="text/csv")
    body = [dict(zip(LEDGER_COLUMNS, row, strict=True)) for row in rows]
    return Response(orjson.dumps(body, default=_json_default), media_type="application/json")
