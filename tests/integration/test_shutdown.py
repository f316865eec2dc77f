"""The gateway as a process: under SIGTERM it lets requests in flight finish and flushes every
ledger record before it exits; with several workers, each listens on a socket of its own."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from crossroads.ledger.record import Status
from crossroads.mockupstream import MockUpstreamThread
from crossroads.server.serve import REUSE_PORT
from support.gateway import read_ledger, start_gateway, write_config

IN_FLIGHT = 40


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_under_load_loses_no_ledger_record(
    tmp_path: Path, mock: MockUpstreamThread, workers: int
) -> None:
    config = {
        "embedded": {"enabled": False},
        "providers": {"up": {"type": "openai", "base_url": mock.url}},
        "models": [{"name": "slow", "provider": "up", "upstream_model": "mock:latency=1.0"}],
    }
    proc, url = start_gateway(write_config(tmp_path, config), tmp_path / "data", workers)
    try:

        def one(i: int) -> int:
            body = {
                "model": "slow",
                "messages": [{"role": "user", "content": f"n{i}"}],
                "stream": i % 2 == 0,
            }
            return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30).status_code

        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            futures = [pool.submit(one, i) for i in range(IN_FLIGHT)]
            deadline = time.monotonic() + 20
            while len(mock.requests()) < IN_FLIGHT and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(mock.requests()) == IN_FLIGHT  # every request is in flight upstream
            os.kill(proc.pid, signal.SIGTERM)
            statuses = [f.result() for f in futures]
        # uvicorn finishes its graceful shutdown, then re-raises the signal it caught, so the
        # process ends "killed by SIGTERM" as supervisors expect; with several workers the
        # supervisor exits 0 once every worker has (it exits 1 if any worker failed).
        code = proc.wait(timeout=60)
        assert code in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    assert statuses == [200] * IN_FLIGHT  # in-flight requests finished despite the SIGTERM
    records = read_ledger(tmp_path / "data")
    assert len(records) == IN_FLIGHT
    assert len({r.request_id for r in records}) == IN_FLIGHT
    assert all(r.status is Status.OK for r in records)


def _listening(port: int) -> int:
    """How many sockets listen on `port` on this host (Linux: /proc/net/tcp and tcp6)."""
    count = 0
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            if int(local.rsplit(":", 1)[1], 16) == port and state == "0A":  # 0A: LISTEN
                count += 1
    return count


@pytest.mark.skipif(
    not (REUSE_PORT and Path("/proc/net/tcp").exists()), reason="needs SO_REUSEPORT and /proc"
)
def test_each_worker_listens_on_a_socket_of_its_own(
    tmp_path: Path, mock: MockUpstreamThread
) -> None:
    """On one shared socket, whichever worker is awake when a burst of connections arrives
    accepts most of them (measured in docs/performance.md); with a socket per worker
    (SO_REUSEPORT) the kernel spreads them. Checked directly: one listening socket per worker."""
    config = {
        "embedded": {"enabled": False},
        "providers": {"up": {"type": "openai", "base_url": mock.url}},
        "models": [{"name": "m", "provider": "up", "upstream_model": "mock"}],
    }
    proc, url = start_gateway(write_config(tmp_path, config), tmp_path / "data", workers=3)
    try:
        port = int(url.rsplit(":", 1)[1])
        deadline = time.monotonic() + 30  # the banner comes once the first worker serves
        while _listening(port) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _listening(port) == 3
        for _ in range(20):  # a new connection each time; every one is answered
            assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
        assert _listening(port) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
