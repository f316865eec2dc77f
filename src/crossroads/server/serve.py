"""Runs the gateway under uvicorn (uvloop + httptools) on a socket we bind ourselves, so that
`--port 0` works and the real address can be printed before the first request."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import resource
import signal
import socket
import sys

import uvicorn
import uvloop
from starlette.types import ASGIApp

from crossroads.config import Settings
from crossroads.scrub import scrubbing_logs
from crossroads.server.app import build_app
from crossroads.server.protocol import ConnectionLimits, default_max_connections, protocol_class

log = logging.getLogger(__name__)

GC_YOUNG_THRESHOLD = 10_000
"""Allocations between collections of the youngest generation (Python's default: 700)."""


REUSE_PORT = hasattr(socket, "SO_REUSEPORT")
"""Whether workers can each listen on their own socket of the same port (Linux, the BSDs)."""


def bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to (host, port), not yet listening. With `reuse_port`, other sockets
    of this user may bind the same port too (SO_REUSEPORT), and the kernel spreads new
    connections evenly across those that listen."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP (not 0), so asyncio recognises the socket as TCP and sets TCP_NODELAY on the
    # connections it accepts; without it every answer can wait ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def banner(settings: Settings, host: str, port: int) -> str:
    base = f"http://{host}:{port}"
    names = sorted({d.name for d in settings.deployments})
    example = names[0] if names else "MODEL"
    lines = [
        f"Crossroads is serving on {base} (config: {settings.source}, ledger: {settings.data_dir})",
        f"  models: {', '.join(names) if names else 'none configured'}",
        "  try it:",
        f"    curl {base}/v1/chat/completions -H 'content-type: application/json' \\",
        f'      -d \'{{"model": "{example}", "messages": '
        '[{"role": "user", "content": "Hello!"}]}\'',
        "  or with the openai client:",
        f'    OpenAI(base_url="{base}/v1", api_key="unused")',
        "  Stop with Ctrl-C; pending ledger records are flushed before exit.",
    ]
    return "\n".join(lines)


def serve(settings: Settings, *, log_level: str = "warning", workers: int = 1) -> None:
    """Serves until SIGINT or SIGTERM, then shuts down gracefully: stops accepting, lets requests
    in flight finish (up to 30 s), and flushes the ledger.

    With `workers` > 1 that many processes are forked, each with its own event loop,
    connection pools and ledger writer (SQLite in WAL mode, or PostgreSQL, takes their writes);
    the parent only supervises and forwards signals. Each worker listens on a socket of its own
    bound to the same port (SO_REUSEPORT), so the kernel spreads new connections evenly: on one
    shared socket, whichever worker is awake when a burst of connections arrives accepts most
    of them, and keep-alive clients then load that one worker for as long as they stay
    connected (measured: half of a soak's runs on two workers used one core). The parent holds
    the port, bound but not listening, until the workers are gone. Rate limits and budgets
    are exact across workers only with the Redis limits backend."""
    raise_open_file_limit()
    spread = workers > 1 and REUSE_PORT
    sock = bind(settings.host, settings.port, reuse_port=spread)
    host, port = sock.getsockname()[:2]
    if workers <= 1:
        try:
            ok = _run_worker(settings, sock, log_level, announce=(host, port))
        finally:
            sock.close()
        if not ok:
            sys.exit(1)
        return
    children: list[int] = []
    for index in range(workers):
        pid = os.fork()
        if pid == 0:  # the worker: no supervisor state, default signal handling
            code = 1
            try:
                own = sock
                if spread:
                    own = bind(host, port, reuse_port=True)
                    sock.close()  # the parent's copy keeps the port
                ok = _run_worker(
                    settings, own, log_level, announce=(host, port) if index == 0 else None
                )
                code = 0 if ok else 1
            finally:
                os._exit(code)
        children.append(pid)
    if not spread:
        sock.close()  # the workers share it; with SO_REUSEPORT the parent's keeps the port

    def forward(signum: int, _frame: object) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    failed = 0
    remaining = set(children)
    while remaining:
        pid, status = os.wait()
        if pid not in remaining:
            continue
        remaining.discard(pid)
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, -signal.SIGTERM, -signal.SIGINT):
            failed += 1
            print(f"crossroads: worker {pid} ended with status {code}", file=sys.stderr)
            # A worker that died (for instance at start-up) takes the others down with it,
            # rather than leaving a half-sized gateway running unnoticed.
            forward(signal.SIGTERM, None)
    sock.close()
    if failed:
        sys.exit(1)


def uvicorn_config(
    app: ASGIApp,
    settings: Settings,
    *,
    log_level: str = "warning",
    graceful_shutdown: int = 30,
) -> uvicorn.Config:
    """The uvicorn configuration `crossroads serve` runs `app` with (tests use it too): the
    httptools parser under `EdgeProtocol`, with the connection limits from `settings`. The
    connection cap defaults to one derived from this process's open-file limit."""
    edge = settings.edge
    limits = ConnectionLimits(
        max_header_bytes=edge.max_header_bytes,
        max_headers=edge.max_headers,
        header_timeout=edge.header_timeout,
        body_timeout=edge.body_timeout,
        body_idle_timeout=edge.body_idle_timeout,
        keep_alive_timeout=edge.keep_alive_timeout,
        max_connections=edge.max_connections
        or default_max_connections(resource.getrlimit(resource.RLIMIT_NOFILE)[0]),
    )
    return uvicorn.Config(
        app,
        loop="uvloop",
        http=protocol_class(limits),
        ws="none",
        lifespan="on",
        access_log=False,
        log_level=log_level,
        timeout_graceful_shutdown=graceful_shutdown,
        server_header=False,
        # Nothing reads the client's address, so uvicorn's X-Forwarded-For rewriting (a
        # middleware layer on every request) is off.
        proxy_headers=False,
    )


def raise_open_file_limit() -> int:
    """Raises this process's soft limit on open files to its hard limit (each client
    connection holds one, and one more upstream while in a request) and returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            log.warning("could not raise the open-file limit from %d to %d", soft, target)
    return soft


def _settle_heap() -> None:
    """Once started: moves everything built at start-up (config, catalog, routes, imported
    modules) out of the garbage collector's sight (`gc.freeze`), so its collections walk only
    what requests allocate, and lets the youngest generation grow larger before it is
    collected. Measured in docs/performance.md."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def _run_worker(
    settings: Settings, sock: socket.socket, log_level: str, announce: tuple[str, int] | None
) -> bool:
    """Runs one server process on `sock` until shutdown; True if it started. Prints the banner
    once it serves, when `announce` gives the address to show."""
    app = build_app(settings)
    server = uvicorn.Server(uvicorn_config(app, settings, log_level=log_level))

    async def run() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        # uvicorn offers no start-up callback; poll its flag until it serves or gives up.
        while not server.started and not task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if server.started:
            _settle_heap()
            if announce is not None:
                print(banner(settings, *announce), flush=True)
        await task

    # For the worker's whole life, not only the app's lifespan: uvicorn logs a failed start-up
    # (with the exception and its traceback) after the lifespan has ended.
    with (
        scrubbing_logs(app.state.gateway_object.scrub),
        asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
    ):
        runner.run(run())
    return bool(server.started)
