"""SIGTERM under load: the gateway process lets requests in flight finish and flushes every
ledger record before it exits."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from crossroads.ledger.record import Status
from crossroads.mockupstream import MockUpstreamThread
from support.gateway import read_ledger, write_config

IN_FLIGHT = 40


def start_gateway(
    config_path: Path, data_dir: Path, workers: int = 1
) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "crossroads",
            "serve",
            "--config",
            str(config_path),
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            "--log-level",
            "warning",
            "--workers",
            str(workers),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        match = re.search(r"serving on (http://[\d.]+:\d+)", line)
        if match:
            return proc, match.group(1)
        assert time.monotonic() < deadline, "gateway did not start"
    raise AssertionError(f"gateway exited early with {proc.wait()}")


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
