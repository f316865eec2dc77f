"""Out-of-range input to the admin API and the CLI is refused with a 400 (exit 2 on the CLI)
saying what is wrong, never a 500 (issue 11, finding 10): report and export windows that reach
past the dates the ledger's arithmetic can hold (spans of centuries, dates at the ends of the
calendar, zones that push year 1 into year 0), and key lifetimes beyond any sane expiry."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import client, mock_config
from crossroads.analytics import REPORT_KINDS
from crossroads.cli.main import main
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.mockupstream import run_in_thread
from crossroads.server.runtime import LEDGER_FILE
from support.gateway import GatewayThread, gateway_for

SPANS = ["999999999999d", "99999999w", "9999999999h", "9" * 30 + "m", "36501d"]
DATES = [
    "9999-12-31T23:59:59",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:00:00-14:00",
    "0001-01-01",
]
WINDOW_VALUES = [*SPANS, *DATES]
DAYS = [2**31, 2**32, 2**53, 2**63, 1e300, 3_000_000, 36_501]
EXPIRIES = [
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z",
    "2500-01-01T00:00:00Z",
]
RATES = [2**63, 2**64, 10**12 + 1]

# (method, path, query or JSON body, the parameter the 400 must name)
CASES: list[tuple[str, str, dict[str, Any], str]] = [
    *(
        ("GET", f"/admin/reports/{kind}", {bound: value}, bound)
        for kind in REPORT_KINDS
        for bound in ("since", "until")
        for value in WINDOW_VALUES
    ),
    *(("GET", "/admin/ledger", {"since": value}, "since") for value in WINDOW_VALUES),
    *(
        ("GET", "/dashboard/api/data", {bound: value}, bound)
        for bound in ("since", "until")
        for value in WINDOW_VALUES
    ),
    *(
        ("POST", "/admin/keys", {"name": "k", "expires_in_days": days}, "expires_in_days")
        for days in DAYS
    ),
    *(("POST", "/admin/keys", {"name": "k", "expires_at": at}, "expires_at") for at in EXPIRIES),
    *(
        ("POST", path, {**who, "limits": {rate: value}}, f"limits.{rate}")
        for path, who in (("/admin/keys", {"name": "k"}), ("/admin/teams", {"id": "t"}))
        for rate in ("rpm", "tpm")
        for value in RATES
    ),
    *(
        ("POST", path, {**who, "limits": {"budget_usd": budget}}, "limits.budget_usd")
        for path, who in (("/admin/keys", {"name": "k"}), ("/admin/teams", {"id": "t"}))
        for budget in ("NaN", "Infinity", "1e999", "-0")
    ),
    *(
        ("POST", "/v1/route/explain", {"model": "m", field: value}, field)
        for field, value in (
            ("prompt_tokens", -1),
            ("prompt_tokens", 2**63),
            ("max_tokens", 0),
            ("max_tokens", 10**10),
        )
    ),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One gateway with a ledger record, so every report has something to compute."""
    with run_in_thread() as mock:
        gw = gateway_for(tmp_path_factory.mktemp("ranges"), mock_config(mock.url))
        with gw:
            client(gw).chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "hello"}],  # type: ignore[list-item]
            )
            deadline = time.monotonic() + 60
            while not httpx.get(f"{gw.url}/admin/ledger").json():
                assert time.monotonic() < deadline, "the request never reached the ledger"
                time.sleep(0.05)
            yield gw


@pytest.mark.parametrize(("method", "path", "given", "param"), CASES)
def test_out_of_range_admin_input_is_a_400_naming_the_parameter(
    served: GatewayThread, method: str, path: str, given: dict[str, Any], param: str
) -> None:
    if method == "GET":
        response = httpx.get(f"{served.url}{path}", params=given, timeout=30)
    else:
        response = httpx.post(f"{served.url}{path}", json=given, timeout=30)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}  # OpenAI's shape
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param and param in error["message"]


def test_the_ranges_still_take_what_is_in_them(served: GatewayThread) -> None:
    for value in ("36500d", "5214w", "876000h", "1900-01-01", "9998-12-31T23:59:59+00:00"):
        bound = "until" if value.startswith("9998") else "since"
        for path in ("/admin/reports/savings", "/admin/reports/spend", "/admin/ledger"):
            response = httpx.get(f"{served.url}{path}", params={bound: value}, timeout=30)
            assert response.status_code == 200, (path, value, response.text)
    for window in (
        {"since": "1900-01-01", "until": "1900-02-01"},
        {"until": "9998-12-31T23:59:59+00:00"},
    ):
        response = httpx.get(f"{served.url}/dashboard/api/data", params=window, timeout=30)
        assert response.status_code == 200, (window, response.text)
    for body in (
        {"expires_in_days": 36_500},
        {"expires_at": "2100-01-01T00:00:00+14:00"},
        {"limits": {"rpm": 10**12, "tpm": 10**12}},
    ):
        created = httpx.post(f"{served.url}/admin/keys", json={"name": "long", **body}, timeout=30)
        assert created.status_code == 201, (body, created.text)
    # The key ring still reloads: nothing unreadable was stored.
    assert httpx.get(f"{served.url}/admin/keys", timeout=30).status_code == 200


@pytest.fixture
def ledger_dir(tmp_path: Path) -> Path:
    async def create() -> None:
        store = SQLiteLedgerStore(tmp_path / LEDGER_FILE)
        await store.open()
        await store.close()

    asyncio.run(create())
    return tmp_path


@pytest.mark.parametrize("value", WINDOW_VALUES)
@pytest.mark.parametrize(
    "command",
    [
        ["report", "spend", "--since"],
        ["report", "savings", "--until"],
        ["usage", "--since"],
    ],
)
def test_out_of_range_cli_windows_exit_2_with_one_line(
    ledger_dir: Path, command: list[str], value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, value, "--data-dir", str(ledger_dir)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and command[-1] in err, err
