"""Runs the gateway under uvicorn (uvloop + httptools) on a socket we bind ourselves, so that
`--port 0` works and the real address can be printed before the first request."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys

import uvicorn
import uvloop

from crossroads.config import Settings
from crossroads.server.app import build_app

log = logging.getLogger(__name__)

GC_YOUNG_THRESHOLD = 10_000
"""Allocations between collections of the youngest generation (Python's default: 700)."""


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP (not 0), so asyncio recognises the socket as TCP and sets TCP_NODELAY on the
    # connections it accepts; without it every answer can wait ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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

    With `workers` > 1 the socket is bound once and shared by that many forked processes, each
    with its own event loop, connection pools and ledger writer (SQLite in WAL mode, or
    PostgreSQL, takes their writes); the parent only supervises and forwards signals. Rate
    limits and budgets are exact across workers only with the Redis limits backend."""
    sock = bind(settings.host, settings.port)
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
                ok = _run_worker(
                    settings, sock, log_level, announce=(host, port) if index == 0 else None
                )
                code = 0 if ok else 1
            finally:
                os._exit(code)
        children.append(pid)
    sock.close()

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
    if failed:
        sys.exit(1)


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
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level=log_level,
        timeout_graceful_shutdown=30,
        server_header=False,
        # Nothing reads the client's address, so uvicorn's X-Forwarded-For rewriting (a
        # middleware layer on every request) is off.
        proxy_headers=False,
    )
    server = uvicorn.Server(config)

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

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run())
    return bool(server.started)
