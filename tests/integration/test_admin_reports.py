"""The reports and the raw ledger from the admin API, as JSON and CSV, from real requests."""

from __future__ import annotations

import csv
import io
import time
from decimal import Decimal
from typing import Any

import httpx

from conftest import GatewayFactory, client, mock_config
from crossroads.mockupstream import MockUpstreamThread

USER = [{"role": "user", "content": "hello"}]


def priced(url: str) -> dict[str, Any]:
    config = mock_config(url)
    config["providers"]["up0"]["host"] = "together"
    config["models"][0]["catalog_model"] = "moonshotai/kimi-k2-0905"  # $1 in / $3 out per M
    return config


def ledger_rows(gw: Any, expected: int) -> list[dict[str, str]]:
    deadline = time.monotonic() + 10
    while True:
        text = httpx.get(f"{gw.url}/admin/ledger", params={"format": "csv"}).text
        rows = list(csv.DictReader(io.StringIO(text)))
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_reports_and_ledger_export(gateway: GatewayFactory, mock: MockUpstreamThread) -> None:
    gw = gateway(priced(mock.url))
    mock.script(["usage=1000000/100000"] * 3)  # $1.30 each; Claude Sonnet 4.5: $4.50
    for _ in range(3):
        client(gw).chat.completions.create(model="m", messages=USER)  # type: ignore[arg-type]
    httpx.post(f"{gw.v1}/chat/completions", json={"model": "nope", "messages": USER})
    rows = ledger_rows(gw, 4)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok", "error"}
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(Decimal(r["cost_usd"]) == Decimal("1.3") for r in ok)
    assert all(Decimal(r["baseline_cost_usd"]) == Decimal("4.5") for r in ok)

    savings = httpx.get(f"{gw.url}/admin/reports/savings").json()
    (row,) = savings["rows"]
    assert Decimal(row["actual_usd"]) == Decimal("3.90")
    assert Decimal(row["baseline_usd"]) == Decimal("13.50")
    assert Decimal(row["saving_usd"]) == Decimal("9.60")
    adoption = httpx.get(
        f"{gw.url}/admin/reports/adoption", params={"by": "origin", "interval": "day"}
    ).json()
    assert any(r["origin_country"] == "CN" for r in adoption["rows"])
    spend_csv = httpx.get(f"{gw.url}/admin/reports/spend", params={"format": "csv"}).text
    assert spend_csv.splitlines()[0].startswith("served_model")


def test_bad_report_requests_are_400(gateway: GatewayFactory, mock: MockUpstreamThread) -> None:
    gw = gateway(mock_config(mock.url))
    for path, params in (
        ("/admin/reports/profit", {}),
        ("/admin/reports/spend", {"by": "colour"}),
        ("/admin/reports/spend", {"since": "yesterday"}),
        ("/admin/reports/spend", {"interval": "fortnight"}),
        ("/admin/ledger", {"limit": "0"}),
    ):
        response = httpx.get(f"{gw.url}{path}", params=params)
        assert response.status_code == 400, (path, params, response.text)
        assert response.json()["error"]["message"]
