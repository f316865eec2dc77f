"""The ledger under faults: readiness tells a load balancer when records are not being written,
a store that cannot be written at shutdown costs a recovery file rather than the records (or a
process that never exits), and a damaged SQLite `-shm` file does not crash the gateway."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from crossroads.config import load_settings
from crossroads.ledger import recovery
from crossroads.ledger.record import LedgerRecord
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.ledger.store import LedgerStoreError
from crossroads.mockupstream import MockUpstreamThread
from crossroads.server.runtime import LEDGER_FILE
from support.gateway import GatewayThread, read_ledger, write_config
from support.process import Served

CAP = 120.0
"""Seconds any wait below may take before the test gives up: a cap, not a deadline."""


def _config(mock: MockUpstreamThread, **server: Any) -> dict[str, Any]:
    return {
        "server": server,
        "embedded": {"enabled": False},
        "providers": {"up": {"type": "openai", "base_url": mock.url}},
        "models": [{"name": "m", "provider": "up", "upstream_model": "mock"}],
    }


def _chat(url: str, n: int) -> str:
    """One answered chat request; its request id."""
    body = {"model": "m", "messages": [{"role": "user", "content": f"n{n}"}]}
    response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.headers["x-request-id"]


def _poll(condition: Any, what: str) -> None:
    cap = time.monotonic() + CAP
    while not condition():
        assert time.monotonic() < cap, f"gave up waiting for {what}"
        time.sleep(0.05)


class SwitchableStore(SQLiteLedgerStore):
    """The SQLite store, whose writes raise while `failing` is set (as on a full disk: the
    store still answers a ping, which writes nothing) or wait while `held` is set."""

    failing = False
    held = False

    async def write(self, records: Sequence[LedgerRecord]) -> None:
        while self.held:  # noqa: ASYNC110 - the test thread flips it
            await asyncio.sleep(0.01)
        if self.failing:
            raise LedgerStoreError("database or disk is full")
        await super().write(records)


def _gateway(tmp_path: Path, mock: MockUpstreamThread, **server: Any) -> GatewayThread:
    path = write_config(tmp_path, _config(mock, **server))
    settings = load_settings(path, data_dir=tmp_path / "data", environ={})
    return GatewayThread(settings, SwitchableStore(tmp_path / "data" / LEDGER_FILE))


def _ready(gw: GatewayThread) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{gw.url}/readyz", timeout=60)
    return response.status_code, response.json()


def _metric(gw: GatewayThread, name: str) -> float:
    text = httpx.get(f"{gw.url}/metrics", timeout=60).text
    (line,) = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(line.split()[1])


def test_readiness_fails_while_ledger_writes_fail_though_the_store_answers_pings(
    tmp_path: Path, mock: MockUpstreamThread
) -> None:
    gw = _gateway(tmp_path, mock)
    store = gw.gateway.store
    assert isinstance(store, SwitchableStore)
    with gw:
        assert _ready(gw)[0] == 200
        store.failing = True
        ids = [_chat(gw.url, n) for n in range(3)]  # answered; their records cannot be written
        _poll(lambda: _ready(gw)[0] == 503, "/readyz to report the failing writes")
        assert _ready(gw)[1]["checks"]["ledger"].startswith("writes failing")
        assert _metric(gw, "crossroads_ledger_pending_records") == 3
        assert _metric(gw, "crossroads_ledger_write_failures_total") >= 1
        store.failing = False
        _poll(lambda: _ready(gw)[0] == 200, "/readyz to recover once writes succeed")
    assert {r.request_id for r in gw.ledger()} == set(ids)


def test_readiness_fails_while_the_backlog_is_past_its_limit(
    tmp_path: Path, mock: MockUpstreamThread
) -> None:
    gw = _gateway(tmp_path, mock, ledger_backlog_limit=4)
    store = gw.gateway.store
    assert isinstance(store, SwitchableStore)
    with gw:
        store.held = True  # a slow disk: writes do not fail, they do not finish
        ids = [_chat(gw.url, n) for n in range(6)]
        status, body = _ready(gw)
        assert status == 503 and body["checks"]["ledger"].startswith("backlog: ")
        store.held = False
        _poll(lambda: _ready(gw)[0] == 200, "/readyz to recover once the backlog drains")
    assert {r.request_id for r in gw.ledger()} == set(ids)


def test_sigterm_with_a_store_that_cannot_be_written_spills_and_the_next_start_replays(
    tmp_path: Path, mock: MockUpstreamThread
) -> None:
    """A real fault: another process holds the SQLite write lock (a backup, a stuck tool), so
    every ledger write fails after its busy timeout. SIGTERM must still end the process, with
    the unwritten records in a recovery file, and the next start must write them."""
    data = tmp_path / "data"
    config = write_config(tmp_path, _config(mock, shutdown_grace=1, ledger_drain_timeout=1))
    served = Served(config, data)
    try:
        before = [_chat(served.url, n) for n in range(3)]
        _poll(lambda: len(read_ledger(data)) == 3, "the first records to be written")
        holder = sqlite3.connect(data / LEDGER_FILE, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # every writer now fails with "database is locked"
        try:
            during = [_chat(served.url, n) for n in range(3, 8)]
            _poll(
                lambda: httpx.get(f"{served.url}/readyz", timeout=60).status_code == 503,
                "/readyz to report the ledger",
            )
            os.kill(served.proc.pid, signal.SIGTERM)
            assert served.wait(CAP) == -signal.SIGTERM  # it ends, and not as a failure
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    finally:
        served.close()
    (spilled,) = recovery.files(data)
    records, bad = recovery.read(spilled)
    assert bad == 0 and set(during) <= {r.request_id for r in records}

    served = Served(config, data)  # replays before it serves
    try:
        os.kill(served.proc.pid, signal.SIGTERM)
        assert served.wait(CAP) == -signal.SIGTERM
    finally:
        served.close()
    assert recovery.files(data) == []
    ledger = read_ledger(data)
    assert sorted(r.request_id for r in ledger) == sorted(before + during)


def test_a_truncated_shm_file_neither_crashes_the_gateway_nor_loses_records(
    tmp_path: Path, mock: MockUpstreamThread
) -> None:
    """SQLite maps `ledger.sqlite3-shm` into memory in WAL mode; truncating it under a running
    gateway used to kill the process with SIGBUS at its next ledger write, losing the records
    it held. Nothing else may open the ledger between the truncation and the gateway's next
    write here: a new connection would extend the file itself and hide the fault."""
    data = tmp_path / "data"
    served = Served(write_config(tmp_path, _config(mock)), data)
    try:
        ids = [_chat(served.url, n) for n in range(5)]
        _poll(lambda: len(read_ledger(data)) == 5, "the first records to be written")
        assert (data / f"{LEDGER_FILE}-shm").exists()  # the gateway's connection keeps it
        os.truncate(data / f"{LEDGER_FILE}-shm", 0)
        ids += [_chat(served.url, n) for n in range(5, 10)]
        served.proc.send_signal(signal.SIGTERM)
        code = served.wait(CAP)
    finally:
        served.close()
    assert code == -signal.SIGTERM, "".join(served.output)
    assert sorted(r.request_id for r in read_ledger(data)) == sorted(ids)
    assert "extended back" in "".join(served.output)
