"""Text a client chose reaches the operator's spreadsheet and terminal harmless (issue 11,
finding 13): the ledger's CSV export keeps a model name like `=HYPERLINK(...)` from running as a
formula, and the CLI prints control characters (ESC, C1, bidi overrides) as visible escapes."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import pytest

from conftest import GatewayFactory, mock_config
from crossroads.cli.main import main
from crossroads.ledger.record import LedgerRecord, Status
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.mockupstream import MockUpstreamThread
from crossroads.safe_text import csv_cell, printable
from crossroads.server.runtime import LEDGER_FILE

FORMULAS = [
    '=HYPERLINK("http://x","click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A2)",
    "\t=1+1",
    "\r=1+1",
]
# Clear the screen, retitle the window, a C1 CSI (0x9b) and a right-to-left override.
HOSTILE = "evil\x1b[2J\x1b]0;owned\x07\x9b31m\u202etxt.exe"


def test_ledger_csv_neutralises_formulas_and_json_keeps_them(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url))
    for name in FORMULAS:
        response = httpx.post(
            f"{gw.v1}/chat/completions",
            json={"model": name, "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )
        assert response.status_code == 404
    deadline = time.monotonic() + 60
    while len(rows := httpx.get(f"{gw.url}/admin/ledger", timeout=30).json()) < len(FORMULAS):
        assert time.monotonic() < deadline, "the requests never reached the ledger"
        time.sleep(0.05)
    assert {r["requested_model"] for r in rows} == set(FORMULAS)  # JSON: as the client sent it
    exported = httpx.get(f"{gw.url}/admin/ledger", params={"format": "csv"}, timeout=30).text
    cells = {r["requested_model"] for r in csv.DictReader(io.StringIO(exported))}
    assert cells == {"'" + name for name in FORMULAS}


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("kimi-k2", "kimi-k2"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (-3, -3),  # numbers are not text
        (Decimal("-0.5"), Decimal("-0.5")),
    ],
)
def test_csv_cells(value: object, cell: object) -> None:
    assert csv_cell(value) == cell


def test_printable_escapes_every_control_character() -> None:
    assert printable(HOSTILE) == "evil\\x1b[2J\\x1b]0;owned\\x07\\x9b31m\\u202etxt.exe"
    assert printable("a\nb\tc") == "a\\x0ab\\x09c"
    assert printable("a\nb\tc", keep_lines=True) == "a\nb\tc"
    assert printable("naïve café, 東京") == "naïve café, 東京"  # printable text stays


@pytest.fixture
def hostile_ledger(tmp_path: Path) -> Path:
    async def write() -> None:
        store = SQLiteLedgerStore(tmp_path / LEDGER_FILE)
        await store.open()
        try:
            await store.write(
                [
                    LedgerRecord(
                        request_id="req_1",
                        created_at=datetime.now(UTC),
                        endpoint="chat.completions",
                        requested_model=HOSTILE,
                        stream=False,
                        status=Status.ERROR,
                        error_type="not_found_error",
                        http_status=404,
                    ),
                    LedgerRecord(
                        request_id="req_2",
                        created_at=datetime.now(UTC),
                        endpoint="chat.completions",
                        requested_model="m",
                        served_model=HOSTILE,
                        provider="=cmd",
                        stream=False,
                        status=Status.OK,
                        prompt_tokens=3,
                        completion_tokens=4,
                    ),
                ]
            )
        finally:
            await store.close()

    asyncio.run(write())
    return tmp_path


@pytest.mark.parametrize(
    "command",
    [
        ["usage"],
        ["usage", "--format", "csv"],
        ["usage", "--format", "json"],
        ["report", "errors", "--by", "model"],
        ["report", "spend", "--by", "model,provider", "--format", "csv"],
        ["report", "spend", "--by", "model", "--format", "json"],
    ],
)
def test_cli_prints_no_control_character_a_client_chose(
    hostile_ledger: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "--data-dir", str(hostile_ledger)]) == 0
    out = capsys.readouterr().out
    for raw in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert raw not in out, (command, repr(raw))
    assert "evil" in out  # the value is shown, escaped
    if "json" in command:
        orjson.loads(out)  # still valid JSON
    else:
        assert "evil\\x1b[2J" in out
    if command[-1] == "csv":
        assert "'=cmd" in out or "=cmd" not in out
