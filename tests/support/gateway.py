"""Runs the real gateway (uvicorn + the real app) on 127.0.0.1 with an OS-chosen port, in a
background thread with its own event loop, so sync tests can drive it with the official clients."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import uvloop
import yaml

from crossroads.config import Settings, load_settings
from crossroads.ledger.record import LedgerRecord
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.ledger.store import LedgerStore
from crossroads.server.app import build_app
from crossroads.server.graceful import gateway_server
from crossroads.server.protocol import EdgeProtocol
from crossroads.server.runtime import LEDGER_FILE
from crossroads.server.serve import bind


def write_config(tmp_path: Path, config: Mapping[str, Any]) -> Path:
    path = tmp_path / "crossroads.yaml"
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return path


class GatewayThread:
    def __init__(self, settings: Settings, store: LedgerStore | None = None) -> None:
        self.settings = settings
        self._sock = bind("127.0.0.1", 0)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        app = build_app(settings, store)
        self.gateway = app.state.gateway_object
        self._server = gateway_server(app)  # configured as `crossroads serve` runs it
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)
        self.clients: list[Any] = []  # test clients to close with the gateway
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            # The production stack (uvloop + httptools), as `crossroads serve` runs it.
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            self._error = exc

    def __enter__(self) -> GatewayThread:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gateway failed to start: {self._error!r}")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for http_client in self.clients:
            http_client.close()
        self.clients.clear()
        self._server.should_exit = True
        self._thread.join(timeout=60)
        self._sock.close()

    def connections(self) -> tuple[int, int]:
        """(open, idle): the client connections the gateway holds, and those of them waiting
        for a request with none in progress (the ones the connection cap may close)."""
        protocol = self._server.config.http_protocol_class
        assert issubclass(protocol, EdgeProtocol)
        return len(self._server.server_state.connections), len(protocol.idle)

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    def ledger(self) -> list[LedgerRecord]:
        """Every ledger record, oldest first. Call after stop() to see everything flushed."""
        return read_ledger(self.settings.data_dir)


def read_ledger(data_dir: Path) -> list[LedgerRecord]:
    async def read() -> list[LedgerRecord]:
        store = SQLiteLedgerStore(data_dir / LEDGER_FILE)
        await store.open()
        try:
            return list(reversed(await store.recent(1_000_000)))
        finally:
            await store.close()

    return asyncio.run(read())


def gateway_for(
    tmp_path: Path, config: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> GatewayThread:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = write_config(tmp_path, config)
    settings = load_settings(path, data_dir=tmp_path / "data", environ=environ or {})
    return GatewayThread(settings)


def counted_spend(gw: GatewayThread, budget_key: str) -> int:
    """What the gateway's counters hold under `budget_key` now (held plus settled), in
    micro-dollars. A plain read from the test's thread: `MemoryCounters.spent` reads a dict and
    never awaits."""
    return asyncio.run(gw.gateway.gate.counters.spent(budget_key))


def settled_spend(gw: GatewayThread, budget_key: str, expected: int, timeout: float = 60) -> int:
    """Polls `counted_spend` until it equals `expected` (settling runs in background tasks
    after each answer) or `timeout` seconds pass; returns the last value read."""
    deadline = time.monotonic() + timeout
    while True:
        value = counted_spend(gw, budget_key)
        if value == expected or time.monotonic() > deadline:
            return value
        time.sleep(0.02)
