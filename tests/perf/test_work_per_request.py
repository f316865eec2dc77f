"""A guard on the work the gateway does per request, for CI: counts and bytes, never time, so it
cannot flake on a slow or busy machine. The timed figures come from `make bench`
(docs/performance.md); this catches the regressions that would move them:

- one upstream HTTP request per client request, over pooled keep-alive connections;
- the ledger written off the request path, in batches, by one background task;
- Python memory per request (tracemalloc) under bounds set from a measured baseline;
- per relayed stream event: Python function calls and body messages, and the Python memory
  each open stream holds (the paced-streams workload of `make bench`, in counts and bytes).

The gateway runs in-process (uvicorn on its own thread and loop) with a wrapped ledger store,
against the project's mock upstream behind a small TCP relay that counts connections."""

from __future__ import annotations

import asyncio
import gc
import http.client
import json
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import uvloop
import yaml

from crossroads.config import load_settings
from crossroads.ledger.record import LedgerRecord
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.mockupstream import MockUpstreamThread, run_in_thread
from crossroads.server.app import build_app
from crossroads.server.graceful import uvicorn_config
from crossroads.server.runtime import LEDGER_FILE
from crossroads.server.serve import bind
from support.gateway import read_ledger

REQUESTS = 200

# Memory bounds, from a baseline measured when this test was written (2026-11-29, CPython 3.11,
# uvloop; repeated runs): a request waiting on its upstream holds 32.0-32.7 KB of Python memory in
# the gateway, its client connection included; after 400 requests, with the ledger flushed, the
# gateway retains 110-260 B per request (free lists and caches, not a leak). Since the requests
# wait on answers the relay holds (2026-12-03) instead of a mock latency, which let the first
# answers go before the last requests arrived, a waiting request measures 26.8-27.3 KB. The
# bounds are about twice the baseline: room for library upgrades, but a per-request copy of a
# big buffer, a client made per request, or a record, body or task kept per request fails them.
HELD_BYTES_PER_IN_FLIGHT_REQUEST = 64_000
IN_FLIGHT = 50
RETAINED_BYTES_PER_REQUEST = 1_000
RETAINED_REQUESTS = 400

# Per relayed stream event (2026-12-03, CPython 3.11, uvloop): with the upstream's events
# arriving one per read, the gateway made 1 body message per event and 41 Python function calls
# (54 before a stream's deadline became one timer per stream instead of one per read), the
# difference between streams of 40 and 10 events, so the per-request work cancels out; the
# bounds are about twice that. Events arriving together make fewer calls and messages, never
# more, so a busy machine cannot fail them. An open stream (its first event relayed, the next
# one not yet there) held 33.2 KB of Python memory, client and upstream connections included;
# the paced workload's RSS target is 32 KB per open stream.
CALLS_PER_EVENT = 80
OPEN_STREAM_BYTES = 64_000
OPEN_STREAMS = 50


class ConnectionCountingRelay:
    """A TCP relay on 127.0.0.1 in front of `target_port` that counts the connections opened
    through it: how many upstream connections the gateway's pool really made. `hold_answers`
    keeps the upstream's bytes from the gateway until `release_answers`: requests then wait on
    their upstream for as long as a test needs, whatever the machine's speed."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.connections = 0
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._loop = asyncio.new_event_loop()
        self._answers = asyncio.Event()
        self._answers.set()
        self.first_event_passes = False  # with answers held: let each answer's first event by
        self._holds = 0  # hold_answers calls: a pooled connection's next answer starts anew
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)

    def __enter__(self) -> ConnectionCountingRelay:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("relay did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def hold_answers(self) -> None:
        def hold() -> None:
            self._holds += 1
            self._answers.clear()

        self._on_loop(hold)

    def release_answers(self) -> None:
        self._on_loop(self._answers.set)

    def _on_loop(self, action: Callable[[], None]) -> None:
        async def act() -> None:
            action()

        asyncio.run_coroutine_threadsafe(act(), self._loop).result(timeout=60)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._relay, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            for writer in self._writers:
                writer.close()
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.run_until_complete(server.wait_closed())
            self._loop.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]

        async def pipe(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, answers: bool
        ) -> None:
            seen: bytes | None = b""  # an answer's bytes until its first SSE event has passed
            holds = self._holds
            try:
                while data := await src.read(65536):
                    if holds != self._holds:
                        seen, holds = b"", self._holds
                    if answers and self.first_event_passes and seen is not None:
                        # The headers and the first event (ending in a blank line, then the
                        # chunk's CRLF) go at once; what follows waits like any held answer.
                        seen += data
                        end = seen.find(b"\n\n\r\n", seen.find(b"\r\n\r\n") + 4)
                        if end < 0:
                            continue
                        dst.write(seen[: end + 4])
                        data, seen = seen[end + 4 :], None
                        if not data:
                            continue
                    if answers:
                        await self._answers.wait()
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        await asyncio.gather(
            pipe(reader, up_writer, answers=False), pipe(up_reader, writer, answers=True)
        )


class ObservedStore:
    """The real SQLite store, wrapped: counts `write` calls and rows, notes which asyncio task
    called, and holds every write while `released` is clear (a stalled disk)."""

    def __init__(self, inner: SQLiteLedgerStore) -> None:
        self.inner = inner
        self.batches: list[int] = []
        self.rows_written = 0
        self.callers: set[int] = set()
        self.released = threading.Event()
        self.released.set()

    async def write(self, records: Sequence[LedgerRecord]) -> None:
        self.batches.append(len(records))
        self.callers.add(id(asyncio.current_task()))
        if not self.released.is_set():
            await asyncio.to_thread(self.released.wait)
        await self.inner.write(records)
        self.rows_written += len(records)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class InProcessGateway:
    """The real app under uvicorn on a background thread, with our store, on uvloop as
    `crossroads serve` runs it. (On asyncio's own loop every answer would wait ~40 ms: the
    listening socket from `serve.bind` has proto 0, so asyncio does not set TCP_NODELAY on the
    connections it accepts, and Nagle meets the client's delayed ACK; uvloop always sets it.)"""

    def __init__(self, config_path: Path, data_dir: Path, store: ObservedStore) -> None:
        settings = load_settings(config_path, data_dir=data_dir, environ={})
        self._sock = bind("127.0.0.1", 0)
        self.port = self._sock.getsockname()[1]
        self.app = build_app(settings, store)  # type: ignore[arg-type]
        self.body_messages = 0  # http.response.body messages the app sent, for every request
        self.loop: asyncio.AbstractEventLoop | None = None
        app = self.app

        async def counting(scope: Any, receive: Any, send: Any) -> None:
            async def counted(message: Any) -> None:
                if message["type"] == "http.response.body":
                    self.body_messages += 1
                await send(message)

            await app(scope, receive, counted)

        self._server = uvicorn.Server(uvicorn_config(counting, settings))
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)

    def _run(self) -> None:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            self.loop = runner.get_loop()
            runner.run(self._server.serve(sockets=[self._sock]))

    def on_loop(self, action: Callable[[], None]) -> None:
        """Runs `action` on the gateway's thread (for `sys.setprofile`, which is per thread)."""
        assert self.loop is not None
        done = threading.Event()

        def act() -> None:
            action()
            done.set()

        self.loop.call_soon_threadsafe(act)
        assert done.wait(60), "the gateway's loop did not run the action"

    def __enter__(self) -> InProcessGateway:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            assert self._thread.is_alive() and time.monotonic() < deadline, "gateway did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(30)
        self._sock.close()


@dataclass
class Rig:
    mock: MockUpstreamThread
    relay: ConnectionCountingRelay
    store: ObservedStore
    gateway: InProcessGateway
    data_dir: Path
    clients: list[http.client.HTTPConnection] = field(default_factory=list)

    def client(self) -> Callable[..., bytes]:
        """A keep-alive client; each call sends one chat request and returns the answer's body
        (asserting a 200). Closed with the rig."""
        conn = http.client.HTTPConnection("127.0.0.1", self.gateway.port, timeout=30)
        self.clients.append(conn)

        def send(*, stream: bool = False, model: str = "m") -> bytes:
            body: dict[str, Any] = {
                "model": model,
                "messages": [{"role": "user", "content": "How many requests go upstream?"}],
            }
            if stream:
                body["stream"] = True
            headers = {"content-type": "application/json"}
            conn.request("POST", "/v1/chat/completions", json.dumps(body), headers)
            response = conn.getresponse()
            raw = response.read()
            assert response.status == 200, raw[:300]
            return raw

        return send

    def wait_written(self, rows: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.store.rows_written < rows:
            assert time.monotonic() < deadline, f"{self.store.rows_written} of {rows} written"
            time.sleep(0.005)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with run_in_thread() as mock, ConnectionCountingRelay(_port(mock.url)) as relay:
        config = {
            "embedded": {"enabled": False},
            "providers": {
                "up": {"type": "openai", "base_url": f"http://127.0.0.1:{relay.port}/v1"}
            },
            "models": [
                {"name": "m", "provider": "up", "upstream_model": "mock"},
            ],
        }
        path = tmp_path / "crossroads.yaml"
        path.write_text(yaml.safe_dump(config))
        data_dir = tmp_path / "data"
        store = ObservedStore(SQLiteLedgerStore(data_dir / LEDGER_FILE))
        with InProcessGateway(path, data_dir, store) as gateway:
            rig = Rig(mock, relay, store, gateway, data_dir)
            try:
                yield rig
            finally:
                for conn in rig.clients:
                    conn.close()


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def test_one_upstream_request_per_client_request(rig: Rig) -> None:
    send = rig.client()
    for i in range(REQUESTS):
        send(stream=i % 2 == 1)
    upstream = rig.mock.requests()
    assert len(upstream) == REQUESTS
    assert {r["path"] for r in upstream} == {"/v1/chat/completions"}
    assert sum(bool(r["json"].get("stream")) for r in upstream) == REQUESTS // 2


def test_upstream_connections_are_pooled_and_reused(rig: Rig) -> None:
    """Sequential whole (JSON) answers need one pooled connection; a client or connection made
    per request would show as ~200. Streams are left out: when a stream's last bytes (the
    chunked-encoding terminator) have not arrived at the moment the gateway releases the
    response, aiohttp closes the connection instead of pooling it, so how many streams reuse
    their connection depends on timing (see docs/performance.md)."""
    send = rig.client()
    for _ in range(REQUESTS):
        send()
    assert len(rig.mock.requests()) == REQUESTS
    assert rig.relay.connections <= 2, f"{rig.relay.connections} upstream connections"


def test_ledger_is_written_off_the_request_path_in_batches(rig: Rig) -> None:
    rig.store.released.clear()  # the disk stalls
    send = rig.client()
    for i in range(REQUESTS):
        send(stream=i % 2 == 1)  # every request completes while no ledger write can finish
    assert len(rig.store.batches) <= 1, rig.store.batches
    rig.store.released.set()
    rig.wait_written(REQUESTS)
    # One batch held the first record; the rest waited in memory and went in one or two more.
    assert len(rig.store.batches) <= 3, rig.store.batches
    assert len(rig.store.callers) == 1, "ledger writes came from more than one task"
    rig.gateway.__exit__()
    records = read_ledger(rig.data_dir)
    assert len(records) == REQUESTS
    assert len({r.request_id for r in records}) == REQUESTS


def test_python_memory_retained_per_request_stays_bounded(rig: Rig) -> None:
    """After 400 requests and the ledger flushed, the gateway keeps (almost) nothing of them."""
    send = rig.client()
    for i in range(40):  # warm: imports, pools, caches, first-use allocations
        send(stream=i % 2 == 1)
    rig.wait_written(40)
    tracemalloc.start()
    try:
        rig.mock.clear()  # the mock logs every request; that is not the gateway's memory
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(RETAINED_REQUESTS):
            send(stream=i % 2 == 1)
        rig.wait_written(40 + RETAINED_REQUESTS)
        rig.mock.clear()
        gc.collect()
        retained = (tracemalloc.get_traced_memory()[0] - before) / RETAINED_REQUESTS
    finally:
        tracemalloc.stop()
    print(f"retained per request: {retained:,.0f} B")
    assert retained < RETAINED_BYTES_PER_REQUEST


# The mock upstream, the relay and the client threads share this process with the gateway.
# A trace counts as the gateway's when a frame of its stack is in the gateway's code or the
# libraries it serves with (the event loop is uvloop, in C, so its own frames never show), and
# none is in the mock (its handlers, or aiohttp's server side: the gateway only uses the client).
_GATEWAY_ONLY = [
    *(
        tracemalloc.Filter(True, pattern, all_frames=True)
        for pattern in ("*/crossroads/*", "*/uvicorn/*", "*/starlette/*", "*/aiohttp/*")
    ),
    tracemalloc.Filter(False, "*/crossroads/mockupstream/*", all_frames=True),
    tracemalloc.Filter(False, "*/aiohttp/web_*", all_frames=True),
]


def _held_while(burst: Callable[[Callable[[], None]], None]) -> int:
    """Bytes of the gateway's Python memory held at the moment `burst` calls its callback (its
    requests in flight), over what was held before the burst."""
    tracemalloc.start(50)
    try:
        gc.collect()
        snapshots = [tracemalloc.take_snapshot()]
        burst(lambda: snapshots.append(tracemalloc.take_snapshot()))
    finally:
        tracemalloc.stop()
    return _gateway_bytes(snapshots[1]) - _gateway_bytes(snapshots[0])


def _gateway_bytes(snapshot: tracemalloc.Snapshot) -> int:
    return sum(stat.size for stat in snapshot.filter_traces(_GATEWAY_ONLY).statistics("filename"))


def test_python_memory_held_per_in_flight_request_stays_bounded(rig: Rig) -> None:
    """Memory the gateway holds for each request waiting on its upstream, its client connection
    included: what many concurrent slow requests cost."""

    def burst(while_parked: Callable[[], None]) -> None:
        # The relay holds the mock's answers until every request has reached the mock, so all
        # of them wait on their upstream at once: a count to wait for, not a time (a mock
        # latency let the first answers go before the last requests arrived on a busy machine).
        rig.relay.hold_answers()
        try:
            with ThreadPoolExecutor(IN_FLIGHT) as pool:
                futures = [pool.submit(lambda: rig.client()()) for _ in range(IN_FLIGHT)]
                cap = time.monotonic() + 600  # a generous cap against a hang, not a deadline
                while len(rig.mock.requests()) < IN_FLIGHT:
                    assert time.monotonic() < cap, "requests did not reach the upstream"
                    time.sleep(0.01)
                while_parked()
                rig.relay.release_answers()
                for future in futures:
                    future.result()
        finally:
            rig.relay.release_answers()

    burst(lambda: None)  # warm: the upstream pool grows to IN_FLIGHT connections
    rig.mock.clear()
    held = _held_while(burst) / IN_FLIGHT
    print(f"held per in-flight request: {held:,.0f} B")
    assert held < HELD_BYTES_PER_IN_FLIGHT_REQUEST


@pytest.mark.parametrize("size", [37, 500])
def test_a_ledger_batch_costs_a_few_sqlite_statements_not_one_per_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """The SQLite store's worker thread gives the GIL back on every statement step and must win
    it back from a busy event loop each time, which can take the whole switch interval (5 ms):
    written row by row, a saturated gateway's ledger fell behind and its memory grew without
    bound (docs/performance.md). A batch must cost a handful of statements whatever its size."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from crossroads.ledger import sqlite as sqlite_store
    from crossroads.ledger.record import Status

    statements: list[str] = []
    connect = sqlite_store.sqlite3.connect

    def traced(*args: Any, **kwargs: Any) -> Any:
        conn = connect(*args, **kwargs)
        conn.set_trace_callback(lambda sql: statements.append(sql[:2000]))
        return conn

    monkeypatch.setattr(sqlite_store.sqlite3, "connect", traced)
    now = datetime.now(UTC)
    records = [
        LedgerRecord(
            request_id=f"req_{size}_{n}",
            created_at=now,
            endpoint="chat.completions",
            requested_model="m",
            stream=bool(n % 2),
            status=Status.OK,
            served_model="m",
            provider="p",
            prompt_tokens=10,
            completion_tokens=20,
            cost_usd=Decimal("0.0001"),
            latency_ms=1.5,
        )
        for n in range(size)
    ]

    async def write() -> None:
        store = SQLiteLedgerStore(tmp_path / "ledger.db")
        await store.open()
        try:
            statements.clear()
            await store.write(records)
            written = list(statements)
            assert await store.count() == size
        finally:
            await store.close()
        inserts = [s for s in written if s.startswith("INSERT INTO requests")]
        assert len(inserts) <= size.bit_length(), inserts  # one per power of two in the size
        # BEGIN, the watermark, the inserts, one upsert per rollup table, COMMIT
        assert len(written) <= 3 + len(inserts) + 4 + 1, written
        # and the rollups are summed from the batch, not from its rows read back one by one
        assert not [s for s in written if "FROM requests WHERE rowid" in s]

    asyncio.run(write())


def _python_calls(rig: Rig, run: Callable[[], None]) -> int:
    """Python function calls made on the gateway's thread while `run` runs (sys.setprofile
    counts every call of Python code, C functions left out): a count of work, not a time."""
    calls = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    rig.gateway.on_loop(lambda: sys.setprofile(profile))
    try:
        run()
    finally:
        rig.gateway.on_loop(lambda: sys.setprofile(None))
    return calls


def test_work_per_relayed_stream_event_stays_bounded(rig: Rig) -> None:
    """The per-event path of a relayed stream (read, decode, re-encode, one send) in Python
    function calls and body messages per event, from the difference between long and short
    streams, so that the per-request work cancels out. The mock drips its events (10 ms apart)
    so that they arrive one per read, as a paced model's do; when some arrive together the
    counts fall, so a slow machine passes too."""
    send = rig.client()
    for _ in range(3):  # warm: imports, pools, first-use caches
        send(stream=True)
    streams, short, long = 4, 10, 40

    def relay(chunks: int) -> tuple[int, int]:
        # The gateway does not pass client headers on, so the scripts go in the mock's queue.
        rig.mock.script([f"chunks={chunks},drip=0.01"] * streams)
        before = rig.gateway.body_messages
        calls = _python_calls(rig, lambda: [send(stream=True) for _ in range(streams)])
        return calls, rig.gateway.body_messages - before

    calls_short, messages_short = relay(short)
    calls_long, messages_long = relay(long)
    events = streams * (long - short)
    per_event = (calls_long - calls_short) / events
    messages_per_event = (messages_long - messages_short) / events
    print(f"per relayed event: {per_event:,.0f} Python calls, {messages_per_event:.2f} messages")
    assert messages_per_event <= 1.0, "more than one body message (socket write) per event"
    assert per_event < CALLS_PER_EVENT


def test_python_memory_held_per_open_stream_stays_bounded(rig: Rig) -> None:
    """Memory the gateway holds for each stream that is open mid-answer (its first event
    relayed to the client, the next one not yet arrived), its client and upstream connections
    included: what thousands of slow streams cost. The relay lets each answer's first event by
    and holds the rest until every client has read its first event: counts, not times."""
    first_events = threading.Semaphore(0)

    def stream_one() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", rig.gateway.port, timeout=600)
        try:
            body = {
                "model": "m",
                "stream": True,
                "messages": [{"role": "user", "content": "Say a few words slowly."}],
            }
            headers = {"content-type": "application/json"}
            conn.request("POST", "/v1/chat/completions", json.dumps(body), headers)
            response = conn.getresponse()
            assert response.status == 200
            while not response.readline().startswith(b"data: {"):
                pass
            first_events.release()
            rest = response.read()
            assert rest.rstrip().endswith(b"data: [DONE]"), rest[-200:]
        finally:
            conn.close()

    def burst(while_open: Callable[[], None]) -> None:
        # Events 10 ms apart: the first arrives apart from the rest (the relay holds those).
        rig.mock.script(["chunks=4,drip=0.01"] * OPEN_STREAMS)
        rig.relay.first_event_passes = True
        rig.relay.hold_answers()
        try:
            with ThreadPoolExecutor(OPEN_STREAMS) as pool:
                futures = [pool.submit(stream_one) for _ in range(OPEN_STREAMS)]
                for _ in range(OPEN_STREAMS):
                    # a generous cap against a hang, not a deadline
                    assert first_events.acquire(timeout=600), "a stream's first event never came"
                while_open()
                rig.relay.release_answers()
                for future in futures:
                    future.result()
        finally:
            rig.relay.release_answers()
            rig.relay.first_event_passes = False

    burst(lambda: None)  # warm: the upstream pool grows to OPEN_STREAMS connections
    rig.mock.clear()
    held = _held_while(burst) / OPEN_STREAMS
    print(f"held per open stream: {held:,.0f} B")
    assert held < OPEN_STREAM_BYTES


CYCLE_BODIES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    "/v1/messages": {
        "model": "m",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi"}],
    },
    "/v1/responses": {"model": "m", "input": "hi", "store": False},
}


@pytest.mark.parametrize("path", list(CYCLE_BODIES))
def test_a_finished_request_leaves_no_reference_cycles(rig: Rig, path: str) -> None:
    """What a request leaves for the garbage collector rather than for reference counting, on
    each ingress, whole and streamed: at thousands of streams the collector's pauses, not the
    CPU, broke the paced workload's 10 ms bound (the disconnect watcher's cancelled task kept a
    traceback cycle of ~28 objects per request, and everything its frames held). Requests that
    outlive the watcher's start (an answer 50 ms late, a stream dripping for 100 ms) are
    counted: a count, not a time."""
    conn = http.client.HTTPConnection("127.0.0.1", rig.gateway.port, timeout=60)
    rig.clients.append(conn)
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}

    def send(stream: bool) -> None:
        conn.request("POST", path, json.dumps(CYCLE_BODIES[path] | {"stream": stream}), headers)
        response = conn.getresponse()
        raw = response.read()
        assert response.status == 200, raw[:300]

    for stream, script in ((False, "latency=0.05"), (True, "chunks=5,drip=0.02")):
        requests = 20
        rig.mock.script([script] * (requests + 2))
        send(stream)  # warm: pools and first-use caches
        send(stream)
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds is kept in gc.garbage
        try:
            for _ in range(requests):
                send(stream)
            gc.collect()
        finally:
            gc.set_debug(0)
        left = len(gc.garbage)
        kinds = sorted({type(o).__qualname__ for o in gc.garbage})[:12]
        gc.garbage.clear()
        kind = "stream" if stream else "whole answer"
        assert left / requests < 1.0, (
            f"{path}, {kind}: {left / requests:.1f} objects per request in cycles: {kinds}"
        )
