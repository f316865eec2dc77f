"""The gateway as a process: under SIGTERM it lets requests in flight finish, ends those still
running past the grace period with an error in their API's shape, and flushes every ledger
record before it exits (or saves what the store refuses to a recovery file, replayed at the
next start); with several workers, each listens on a socket of its own, and they die with
their supervisor."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from crossroads.ledger.record import Status
from crossroads.mockupstream import MockUpstreamThread
from crossroads.server.serve import REUSE_PORT
from support.gateway import read_ledger, write_config
from support.process import Served, serve_command

IN_FLIGHT = 40


def start_gateway(
    config_path: Path, data_dir: Path, workers: int = 1, port: int = 0
) -> tuple[subprocess.Popen[str], str]:
    served = Served(config_path, data_dir, workers, port)
    return served.proc, served.url


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


def _stalled_config(mock: MockUpstreamThread, **server: Any) -> dict[str, Any]:
    """`hang`: the upstream never sends a first byte; `drip`: a stream that sends its first
    chunk, then one a second for minutes."""
    return {
        "server": server,
        "embedded": {"enabled": False},
        "providers": {"up": {"type": "openai", "base_url": mock.url}},
        "models": [
            {"name": "hang", "provider": "up", "upstream_model": "mock:hang"},
            {"name": "drip", "provider": "up", "upstream_model": "mock:drip=1,chunks=600"},
        ],
    }


def _chat(model: str, stream: bool) -> tuple[str, dict[str, Any]]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return "/v1/chat/completions", body


def _messages(model: str, stream: bool) -> tuple[str, dict[str, Any]]:
    body = {
        "model": model,
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
    }
    return "/v1/messages", body


def test_requests_past_the_shutdown_grace_get_an_api_error_and_a_ledger_record(
    tmp_path: Path, mock: MockUpstreamThread
) -> None:
    """Requests still waiting for their upstream's first byte when the grace period ends, and
    streams still running then, are ended by the gateway: a 503 in the API's own shape (or a
    final error event on a stream that began), and each has its ledger record. uvicorn's own
    deadline would cancel them into a plain-text 500 with no record."""
    calls = {
        "openai-waiting": _chat("hang", False),
        "openai-stream-waiting": _chat("hang", True),
        "openai-stream-started": _chat("drip", True),
        "anthropic-waiting": _messages("hang", False),
        "anthropic-stream-started": _messages("drip", True),
    }
    served = Served(write_config(tmp_path, _stalled_config(mock, shutdown_grace=1)), tmp_path / "d")
    started = {name: threading.Event() for name in calls}
    try:

        def one(name: str) -> tuple[int, str, bytes]:
            path, body = calls[name]
            with (
                httpx.Client(timeout=120) as http,
                http.stream("POST", served.url + path, json=body) as response,
            ):
                data = b""
                for piece in response.iter_bytes():
                    data += piece
                    started[name].set()
                return response.status_code, response.headers.get("content-type", ""), data

        with ThreadPoolExecutor(len(calls)) as pool:
            futures = {name: pool.submit(one, name) for name in calls}
            cap = time.monotonic() + 60  # a generous cap on reaching the state, not a deadline
            while len(mock.requests()) < len(calls) or not all(
                started[name].is_set() for name in calls if name.endswith("started")
            ):
                assert time.monotonic() < cap, "requests did not reach the upstream"
                time.sleep(0.02)
            os.kill(served.proc.pid, signal.SIGTERM)
            answers = {name: future.result() for name, future in futures.items()}
        assert served.wait() in (0, -signal.SIGTERM)
    finally:
        served.close()

    for name in ("openai-waiting", "openai-stream-waiting"):
        status, content_type, data = answers[name]
        assert (status, content_type) == (503, "application/json"), (name, data)
        error = json.loads(data)["error"]
        assert error["code"] == "gateway_shutting_down" and "shutting down" in error["message"]
    status, content_type, data = answers["anthropic-waiting"]
    assert (status, content_type) == (503, "application/json"), data
    body = json.loads(data)
    assert body["type"] == "error" and "shutting down" in body["error"]["message"]

    status, content_type, data = answers["openai-stream-started"]
    assert status == 200 and content_type.startswith("text/event-stream")
    last = data.strip().split(b"\n\n")[-1]
    assert last.startswith(b"data: ") and b"[DONE]" not in data
    assert json.loads(last[len(b"data: ") :])["error"]["code"] == "gateway_shutting_down"
    status, content_type, data = answers["anthropic-stream-started"]
    assert status == 200 and content_type.startswith("text/event-stream")
    event, payload = data.strip().split(b"\n\n")[-1].split(b"\n", 1)
    assert event == b"event: error" and b"shutting down" in payload

    records = read_ledger(tmp_path / "d")
    assert len(records) == len(calls)  # every request has its record: none lost
    assert {(r.status, r.http_status, r.error_type) for r in records} == {
        (Status.ERROR, 503, "service_unavailable")
    }
    assert all("shutting down" in (r.error_message or "") for r in records)
    assert {r.endpoint for r in records} == {"chat.completions", "messages"}


def _children(parent: int) -> list[int]:
    """The pids whose parent is `parent` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent:
                found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_workers_die_with_a_killed_supervisor_and_the_port_is_free_again(
    tmp_path: Path, mock: MockUpstreamThread
) -> None:
    """SIGKILL of the supervisor used to leave its workers serving the old config, and a new
    start then failed with "Address already in use" (or listened beside them)."""
    config = {
        "embedded": {"enabled": False},
        "providers": {"up": {"type": "openai", "base_url": mock.url}},
        "models": [{"name": "m", "provider": "up", "upstream_model": "mock"}],
    }
    path = write_config(tmp_path, config)
    served = Served(path, tmp_path / "data", workers=2)
    workers: list[int] = []
    try:
        cap = time.monotonic() + 60
        while len(workers := _children(served.proc.pid)) < 2:
            assert time.monotonic() < cap, "workers did not start"
            time.sleep(0.05)
        served.proc.kill()
        served.proc.wait()
        cap = time.monotonic() + 120  # they shut down gracefully: a cap, not a deadline
        while any(_alive(pid) for pid in workers):
            assert time.monotonic() < cap, "the workers outlived their supervisor"
            time.sleep(0.05)
    finally:
        served.close()
        for pid in workers:  # this test's own orphans, if the assertion above failed
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    again = Served(path, tmp_path / "data", workers=2, port=_port(served.url))
    try:
        assert httpx.get(f"{again.url}/healthz", timeout=30).status_code == 200
        os.kill(again.proc.pid, signal.SIGTERM)
        assert again.wait() in (0, -signal.SIGTERM)
    finally:
        again.close()


def test_a_second_gateway_on_the_same_port_or_data_dir_refuses_to_start(
    tmp_path: Path, mock: MockUpstreamThread
) -> None:
    config = {
        "embedded": {"enabled": False},
        "providers": {"up": {"type": "openai", "base_url": mock.url}},
        "models": [{"name": "m", "provider": "up", "upstream_model": "mock"}],
    }
    path = write_config(tmp_path, config)
    served = Served(path, tmp_path / "data", workers=2)
    port = _port(served.url)
    try:
        for data_dir, workers, port_, says in [
            (tmp_path / "other", 2, port, f"already serving on 127.0.0.1:{port}"),
            (tmp_path / "other", 1, port, f"already serving on 127.0.0.1:{port}"),
            (tmp_path / "data", 1, 0, f"already serving with data dir {tmp_path / 'data'}"),
        ]:
            second = subprocess.run(
                serve_command(path, data_dir, workers, port_),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert second.returncode == 1, second.stdout + second.stderr
            assert says in second.stderr and "serving on http" not in second.stdout
        assert httpx.get(f"{served.url}/healthz", timeout=30).status_code == 200
        os.kill(served.proc.pid, signal.SIGTERM)
        assert served.wait() in (0, -signal.SIGTERM)
    finally:
        served.close()
