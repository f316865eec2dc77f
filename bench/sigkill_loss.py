"""Measures what a SIGKILL of a busy gateway costs the ledger: concurrent clients send requests
to `crossroads serve` (one worker, SQLite, against the in-process mock upstream), the gateway
is killed mid-load, and the answered requests (a 200 with its x-request-id) are checked
against the ledger's rows. Prints, per run, the rate, the answered requests, the records
missing, the missing records as milliseconds of traffic, and the gateway's CPU time per request
under that load (figures in docs/operations.md).

Usage: .venv/bin/python bench/sigkill_loss.py [RUNS] [CONCURRENCY] [SECONDS_BEFORE_THE_KILL]"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from crossroads.mockupstream import run_in_thread
from support.gateway import read_ledger, write_config
from support.process import Served


def one_run(tmp: Path, concurrency: int, seconds: float) -> dict[str, float]:
    with run_in_thread() as mock:
        config = {
            "embedded": {"enabled": False},
            "providers": {"up": {"type": "openai", "base_url": mock.url}},
            "models": [{"name": "m", "provider": "up", "upstream_model": "mock"}],
        }
        served = Served(write_config(tmp, config), tmp / "data")
        answered: list[tuple[float, str]] = []
        stop = threading.Event()

        def client() -> None:
            body = {"model": "m", "messages": [{"role": "user", "content": "count me"}]}
            with httpx.Client(base_url=served.url, timeout=30) as http:
                while not stop.is_set():
                    try:
                        response = http.post("/v1/chat/completions", json=body)
                    except httpx.HTTPError:
                        return  # the gateway is gone
                    if response.status_code == 200:
                        answered.append((time.monotonic(), response.headers["x-request-id"]))

        threads = [threading.Thread(target=client) for _ in range(concurrency)]
        cpu_before = _cpu_seconds(served.proc.pid)
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        cpu = _cpu_seconds(served.proc.pid) - cpu_before
        answered_before_the_kill = len(answered)
        served.proc.kill()
        killed = time.monotonic()
        stop.set()
        for thread in threads:
            thread.join()
        served.close()
    stored = {r.request_id for r in read_ledger(tmp / "data")}
    missing = [t for t, request_id in answered if request_id not in stored]
    last_second = sum(1 for t, _ in answered if killed - 1.0 <= t <= killed)
    return {
        "rate_per_s": last_second,
        "answered": len(answered),
        "missing": len(missing),
        "missing_ms_of_traffic": 1000.0 * len(missing) / last_second if last_second else 0.0,
        "gateway_cpu_ms_per_request": 1000.0 * cpu / max(answered_before_the_kill, 1),
    }


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
    results = []
    for run in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            result = one_run(Path(tmp), concurrency, seconds)
        results.append(result)
        print(f"run {run + 1}: {result}", flush=True)
    for key in ("missing", "missing_ms_of_traffic", "gateway_cpu_ms_per_request"):
        values = [r[key] for r in results]
        print(
            f"{key}: min {min(values):.2f}, median {statistics.median(values):.2f}, "
            f"max {max(values):.2f}"
        )


if __name__ == "__main__":
    main()
