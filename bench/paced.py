"""The paced-streams workload's two tools, each its own process on uvloop, written for a low cost
per event so that the gateway, not they, is what runs out of CPU first:

- `python -m bench.paced mock --port P`: an OpenAI-compatible upstream that answers every POST
  with a chat-completion SSE stream, like a reasoning model: nothing for `ttft` seconds (not
  even the headers), then `events` content chunks at `rate` per second on an absolute schedule,
  then a finish chunk, a usage chunk and `[DONE]`, chunked, on a keep-alive connection. Each
  chunk's content is `@<CLOCK_MONOTONIC ns>@ `, the moment the mock wrote it: whoever reads the
  chunk, directly or through a gateway in any wire format (the content survives translation),
  knows how long it took to arrive. The request may override the pacing with the text
  `PACE ttft_ms=T rate=R events=N` anywhere in its body.
- `python -m bench.paced client ...`: an open-loop load generator. It opens a new connection per
  stream at a fixed arrival rate (not waiting for earlier streams to end: the number of open
  streams grows with the rate), in steps of rising rate, and for each event it receives notes
  the delay since the mock wrote it and how much the gap since the previous event grew on the
  way. Per step it measures over a window after the streams opened in the step have reached
  their steady number: open streams, event delay p50/p99/max, gap growth p99, time to first
  token, errors, and the CPU of the target's, the mock's and its own processes over the window,
  and the target's resident memory. Prints one JSON object per step and a final summary.

Only 127.0.0.1; every run is bounded in count and time. The harness (bench/paced_run.py) starts
both, ramps each target, and subtracts a direct-to-mock baseline to get the gateway's *added*
latency."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:\s*chunked", re.IGNORECASE)
_PACE = re.compile(rb"PACE ttft_ms=(\d+) rate=(\d+(?:\.\d+)?) events=(\d+)")
_MARK = re.compile(rb"@(\d{6,20})@")
_TICK = os.sysconf("SC_CLK_TCK")
CREATED = 1_767_225_600
UPSTREAM_MODEL = "bench-upstream"


# --- the mock -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pace:
    ttft: float = 2.0  # seconds before the first byte
    rate: float = 20.0  # content events per second, per stream
    events: int = 200  # content events per stream

    @property
    def seconds(self) -> float:
        return self.ttft + self.events / self.rate

    def text(self) -> str:
        return f"PACE ttft_ms={round(self.ttft * 1000)} rate={self.rate:g} events={self.events}"


_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
_CHUNK_ID = (
    b'{"id":"chatcmpl-paced","object":"chat.completion.chunk","created":%d,"model":"%s",'
    % (
        CREATED,
        UPSTREAM_MODEL.encode(),
    )
)
_FIRST = b"data: " + _CHUNK_ID + b'"choices":[{"index":0,"delta":{"role":"assistant","content":"@'
_NEXT = b"data: " + _CHUNK_ID + b'"choices":[{"index":0,"delta":{"content":"@'
_TAIL = b'@ "},"finish_reason":null}]}\n\n'


def _frame(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _ending(events: int) -> bytes:
    finish = (
        b"data: " + _CHUNK_ID + b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    )
    usage = (
        b"data: "
        + _CHUNK_ID
        + b'"choices":[],"usage":{"prompt_tokens":57,"completion_tokens":%d,"total_tokens":%d}}\n\n'
        % (events, 57 + events)
    )
    return _frame(finish) + _frame(usage) + _frame(b"data: [DONE]\n\n") + b"0\r\n\r\n"


class _MockConnection(asyncio.Protocol):
    """One upstream connection: reads a request (Content-Length or chunked body), answers it
    with a paced stream, then takes the next request on the same connection."""

    def __init__(self, mock: PacedMock) -> None:
        self.mock = mock
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.handle: asyncio.TimerHandle | None = None
        self.busy = False
        self.sent = 0
        self.pace = mock.pace
        self.start = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._next_request()

    def _next_request(self) -> None:
        while not self.busy and self.transport is not None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[: end + 2]
            body_at = end + 4
            if _CHUNKED.search(head):
                stop = self.buf.find(b"\r\n0\r\n\r\n", body_at - 2)
                if stop < 0:
                    return
                total = stop + 7
            else:
                length = _CONTENT_LENGTH.search(head)
                total = body_at + (int(length.group(1)) if length else 0)
                if len(self.buf) < total:
                    return
            body, self.buf = self.buf[body_at:total], self.buf[total:]
            if not head.startswith(b"POST"):
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                continue
            self._answer(body)

    def _answer(self, body: bytes) -> None:
        found = _PACE.search(body)
        self.pace = (
            Pace(int(found.group(1)) / 1000, float(found.group(2)), int(found.group(3)))
            if found
            else self.mock.pace
        )
        self.busy = True
        self.sent = 0
        self.mock.streams += 1
        loop = asyncio.get_running_loop()
        self.start = loop.time() + self.pace.ttft
        self.handle = loop.call_at(self.start, self._event)

    def _event(self) -> None:
        transport = self.transport
        if transport is None:
            return
        pace, k = self.pace, self.sent
        stamp = b"%d" % time.monotonic_ns()
        data = (_FIRST if k == 0 else _NEXT) + stamp + _TAIL
        frame = b"%x\r\n%s\r\n" % (len(data), data)
        if k == 0:
            frame = _HEAD + frame
        self.sent = k = k + 1
        self.mock.events += 1
        if k >= pace.events:
            transport.write(frame + _ending(pace.events))
            self.handle = None
            self.busy = False
            self._next_request()
            return
        transport.write(frame)
        self.handle = asyncio.get_running_loop().call_at(self.start + k / pace.rate, self._event)


class PacedMock:
    def __init__(self, pace: Pace) -> None:
        self.pace = pace
        self.streams = 0
        self.events = 0


async def serve_mock(port: int, pace: Pace, ready: Path | None) -> None:
    mock = PacedMock(pace)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _MockConnection(mock), HOST, port, backlog=8192, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    if ready is not None:
        ready.write_text(str(bound))
    print(f"paced mock on {HOST}:{bound}, {pace.text()}", flush=True)
    async with server:
        await server.serve_forever()


# --- the client -----------------------------------------------------------------------------


def _stat_ticks(pid: int) -> tuple[int, int] | None:
    """(utime + stime + cutime + cstime, rss pages) of one process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return sum(int(v) for v in fields[11:15]), int(fields[21])


def _cpu_rss(pids: Sequence[int]) -> tuple[float, int]:
    ticks = rss = 0
    for pid in pids:
        got = _stat_ticks(pid)
        if got is not None:
            ticks += got[0]
            rss += got[1]
    return ticks / _TICK, rss * resource.getpagesize()


def _own_cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


def _pct(values: list[int], q: float) -> float | None:
    """The q-quantile (0..1) of values in ns, as ms; sorts in place."""
    if not values:
        return None
    values.sort()
    return values[min(len(values) - 1, int(q * len(values)))] / 1e6


@dataclass
class _Window:
    """What is collected while a step's measurement window is open."""

    delays: list[int] = field(default_factory=list)  # ns from the mock's write to our read
    gaps: list[int] = field(default_factory=list)  # ns the gap grew by, events 2..n
    ttfts: list[int] = field(default_factory=list)  # ns from connect to the first event
    events: int = 0
    open_samples: list[int] = field(default_factory=list)


@dataclass
class _Run:
    host: str
    port: int
    request: bytes
    events_expected: int
    window: _Window | None = None
    open: int = 0
    started: int = 0
    completed: int = 0
    events: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    streams: set[_Stream] = field(default_factory=set)
    error_detail: list[str] = field(default_factory=list)

    def error(self, kind: str, detail: str = "") -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if detail and len(self.error_detail) < 5:
            self.error_detail.append(f"{kind}: {detail[:300]}")


_DONE_MARKS = (b"[DONE]", b"event: message_stop", b"response.completed")


class _Stream(asyncio.Protocol):
    __slots__ = (
        "began",
        "finished",
        "first_bytes",
        "prev_recv",
        "prev_sent",
        "run",
        "seen",
        "status_seen",
        "tail",
        "transport",
    )  # fmt: skip

    def __init__(self, run: _Run, began: int) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.began = began
        self.status_seen = False
        self.tail = b""
        self.seen = 0
        self.prev_sent = 0
        self.prev_recv = 0
        self.finished = False
        self.first_bytes = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        transport.write(self.run.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        run = self.run
        if not self.status_seen:
            self.first_bytes += data
            if b"\r\n" not in self.first_bytes:
                return
            if not self.first_bytes.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
                self._fail("status", self.first_bytes[:300].decode(errors="replace"))
                return
            self.status_seen = True
            data, self.first_bytes = self.first_bytes, b""
        buf = self.tail + data if self.tail else data
        last = 0
        window = run.window
        for match in _MARK.finditer(buf):
            sent = int(match.group(1))
            if window is not None:
                window.delays.append(now - sent)
                if self.seen:
                    window.gaps.append((now - self.prev_recv) - (sent - self.prev_sent))
                else:
                    window.ttfts.append(now - self.began)
                window.events += 1
            self.seen += 1
            self.prev_sent, self.prev_recv = sent, now
            last = match.end()
        if any(mark in buf for mark in _DONE_MARKS):
            if self.seen == run.events_expected:
                self.finished = True
                run.completed += 1
                run.events += self.seen
            else:
                self._fail("short", f"{self.seen} of {run.events_expected} events")
                return
            assert self.transport is not None
            self.transport.close()
            return
        self.tail = buf[max(last, len(buf) - 48) :]

    def _fail(self, kind: str, detail: str) -> None:
        self.finished = True
        self.run.events += self.seen
        self.run.error(kind, detail)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        run = self.run
        run.open -= 1
        run.streams.discard(self)
        if not self.finished:
            self.finished = True
            run.events += self.seen
            run.error("cut", f"closed after {self.seen} events: {exc!r}")


async def _open_one(run: _Run) -> None:
    run.open += 1
    run.started += 1
    began = time.monotonic_ns()
    stream = _Stream(run, began)
    run.streams.add(stream)
    try:
        await asyncio.get_running_loop().create_connection(lambda: stream, run.host, run.port)
    except OSError as exc:
        run.open -= 1
        run.streams.discard(stream)
        stream.finished = True
        run.error("connect", repr(exc))


def _request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        "Accept: text/event-stream",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _drive(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    body = Path(args.body).read_bytes()
    headers = json.loads(args.headers) if args.headers else {}
    target_pids = [int(p) for p in args.target_pids.split(",") if p]
    mock_pids = [int(p) for p in args.mock_pids.split(",") if p]
    pace = Pace(args.ttft, args.rate, args.events)
    run = _Run(args.host, args.port, _request(args.host, args.port, args.path, body, headers),
               args.events)  # fmt: skip
    out: dict[str, Any] = {"pace": pace.__dict__, "levels": [], "hold_s": args.hold}

    # Warm-up: a few short streams, then the idle memory figure.
    if args.warmup:
        warm_body = body.replace(pace.text().encode(), Pace(0.05, 50.0, 10).text().encode())
        warm = _Run(args.host, args.port,
                    _request(args.host, args.port, args.path, warm_body, headers), 10)  # fmt: skip
        for _ in range(args.warmup):
            await _open_one(warm)
        cap = loop.time() + 30
        while warm.open and loop.time() < cap:
            await asyncio.sleep(0.05)
        out["warmup"] = {"completed": warm.completed, "errors": warm.errors,
                         "error_detail": warm.error_detail}  # fmt: skip
        await asyncio.sleep(0.5)
    _, idle_rss = _cpu_rss(target_pids)
    out["idle_rss_bytes"] = idle_rss

    levels = [int(v) for v in args.levels.split(",")]
    tasks: set[asyncio.Task[None]] = set()  # connects in progress, referenced until done
    deadline = loop.time() + args.max_seconds
    stop_reason = ""
    for level in levels:
        if loop.time() + pace.seconds + args.hold > deadline:
            stop_reason = f"the time cap ({args.max_seconds:g} s) before level {level}"
            break
        arrivals = level / pace.seconds  # streams per second that keep `level` open
        step_start = loop.time()
        window_at = step_start + pace.seconds
        step_end = window_at + args.hold
        errors_before = sum(run.errors.values())
        launched = 0
        window: _Window | None = None
        marks: dict[str, Any] = {}
        rss_peak = 0
        next_sample = 0.0
        while True:
            now = loop.time()
            if now >= step_end:
                break
            due = int((now - step_start) * arrivals) + 1
            while launched < due:
                launched += 1
                task = loop.create_task(_open_one(run))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if window is None and now >= window_at:
                window = run.window = _Window()
                cpu_t, _ = _cpu_rss(target_pids)
                cpu_m, _ = _cpu_rss(mock_pids)
                marks = {"t": now, "target": cpu_t, "mock": cpu_m, "self": _own_cpu()}
            if window is not None and now >= next_sample:
                window.open_samples.append(run.open)
                _, rss = _cpu_rss(target_pids)
                rss_peak = max(rss_peak, rss)
                next_sample = now + 0.25
            await asyncio.sleep(0.005)
        run.window = None
        assert window is not None
        cpu_t, rss_end = _cpu_rss(target_pids)
        cpu_m, _ = _cpu_rss(mock_pids)
        own = _own_cpu()
        span = loop.time() - marks["t"]
        opened = window.open_samples
        events = window.events
        step_errors = sum(run.errors.values()) - errors_before
        entry = {
            "level": level,
            "arrivals_per_s": round(arrivals, 2),
            "window_s": round(span, 3),
            "open_mean": round(sum(opened) / len(opened), 1) if opened else 0,
            "open_max": max(opened, default=0),
            "events": events,
            "events_per_s": round(events / span, 1),
            "delay_ms": {
                "p50": _pct(window.delays, 0.50),
                "p99": _pct(window.delays, 0.99),
                "max": _pct(window.delays, 1.0),
            },
            "gap_growth_ms": {"p50": _pct(window.gaps, 0.5), "p99": _pct(window.gaps, 0.99)},
            "ttft_ms": {"p50": _pct(window.ttfts, 0.5), "p99": _pct(window.ttfts, 0.99)},
            "errors": step_errors,
            "target_cpu_s": round(cpu_t - marks["target"], 3),
            "mock_cpu_s": round(cpu_m - marks["mock"], 3),
            "client_cpu_s": round(own - marks["self"], 3),
            "target_rss_bytes": max(rss_peak, rss_end),
        }
        for who in ("target", "mock", "client"):
            cpu = entry[f"{who}_cpu_s"]
            entry[f"{who}_cpu_us_per_event"] = round(cpu * 1e6 / events, 2) if events else None
        out["levels"].append(entry)
        print(json.dumps({"step": entry}), flush=True)
        p99 = entry["delay_ms"]["p99"]
        if step_errors:
            stop_reason = f"{step_errors} errors at level {level}"
            break
        if p99 is None or p99 > args.stop_ms:
            stop_reason = f"event delay p99 {p99} ms > {args.stop_ms:g} ms at level {level}"
            break
    # Drain: the streams still open end on their own within one stream's length.
    cap = loop.time() + pace.seconds + 15
    while run.open and loop.time() < cap:
        await asyncio.sleep(0.1)
    left = list(run.streams)
    for stream in left:
        stream.finished = True
        run.error("unfinished")
        if stream.transport is not None:
            stream.transport.close()
    out.update(
        stop_reason=stop_reason,
        started=run.started,
        completed=run.completed,
        events=run.events,
        errors=run.errors,
        error_detail=run.error_detail,
    )
    await asyncio.sleep(0.2)
    return out


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.paced", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("mock", help="the paced SSE upstream")
    m.add_argument("--port", type=int, default=0)
    m.add_argument("--ready-file", type=Path, help="write the bound port here once listening")
    c = sub.add_parser("client", help="the open-loop load generator")
    c.add_argument("--host", default=HOST)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--path", default="/v1/chat/completions")
    c.add_argument("--body", required=True, help="file with the request body (holds PACE ...)")
    c.add_argument("--headers", default="", help="JSON object of extra request headers")
    c.add_argument("--levels", default="250,500,1000,2000,3000,4000",
                   help="open streams to hold, step by step")  # fmt: skip
    c.add_argument("--hold", type=float, default=6.0, help="measurement window per step, s")
    c.add_argument("--warmup", type=int, default=20, help="short streams before the ramp")
    c.add_argument(
        "--stop-ms",
        type=float,
        default=200.0,
        help="stop the ramp after a step whose event delay p99 exceeds this",
    )
    c.add_argument("--max-seconds", type=float, default=900.0, help="cap on the whole ramp")
    c.add_argument("--target-pids", default="", help="comma-separated pids of the target")
    c.add_argument("--mock-pids", default="", help="comma-separated pids of the mock")
    c.add_argument("--out", type=Path, help="write the summary JSON here")
    for sp in (m, c):
        sp.add_argument("--ttft", type=float, default=Pace.ttft)
        sp.add_argument("--rate", type=float, default=Pace.rate)
        sp.add_argument("--events", type=int, default=Pace.events)
    args = p.parse_args(argv)
    _raise_fd_limit()
    import uvloop

    if args.command == "mock":
        with contextlib.suppress(KeyboardInterrupt):
            pace = Pace(args.ttft, args.rate, args.events)
            uvloop.run(serve_mock(args.port, pace, args.ready_file))
        return 0
    result = uvloop.run(_drive(args))
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(json.dumps({"summary": {k: v for k, v in result.items() if k != "levels"}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
