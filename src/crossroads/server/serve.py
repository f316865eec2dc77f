"""Runs the gateway under uvicorn (uvloop + httptools) on a socket we bind ourselves, so that
`--port 0` works and the real address can be printed before the first request."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import faulthandler
import gc
import logging
import os
import resource
import signal
import socket
import sys
from types import FrameType

import uvloop

from crossroads.config import Settings
from crossroads.scrub import scrubbing_logs
from crossroads.server import instance
from crossroads.server.app import build_app
from crossroads.server.graceful import gateway_server
from crossroads.server.runtime import Gateway

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
    in flight finish for up to `settings.shutdown_grace` seconds, ends the rest with a 503 in
    their API's shape (each recorded), and flushes the ledger for up to
    `settings.ledger_drain_timeout` seconds, spilling what the store did not take to a recovery
    file (`crossroads.server.graceful`, `crossroads.server.runtime`). Exits 1 when records were
    lost (the store and the disk both refused them) or a worker failed; otherwise it ends by
    the signal it was stopped with, as uvicorn does.

    Refuses to start (exit 1, one line on stderr) while another process holds the data
    directory's lock or the port (`crossroads.server.instance`).

    With `workers` > 1 that many processes are forked, each with its own event loop,
    connection pools and ledger writer (SQLite in WAL mode, or PostgreSQL, takes their writes);
    the parent only supervises and forwards signals, and the workers die with it (they get
    SIGTERM if it is killed). Each worker listens on a socket of its own
    bound to the same port (SO_REUSEPORT), so the kernel spreads new connections evenly: on one
    shared socket, whichever worker is awake when a burst of connections arrives accepts most
    of them, and keep-alive clients then load that one worker for as long as they stay
    connected (measured: half of a soak's runs on two workers used one core). The parent holds
    the port, bound but not listening, until the workers are gone. Rate limits and budgets
    are exact across workers only with the Redis limits backend."""
    raise_open_file_limit()
    faulthandler.enable()  # a fatal signal (SIGSEGV, SIGBUS) at least logs where it struck
    spread = workers > 1 and REUSE_PORT
    try:
        lock_fd = instance.lock(settings.data_dir)
        if spread:
            instance.check_port_free(settings.host, settings.port)
        try:
            sock = bind(settings.host, settings.port, reuse_port=spread)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise instance.port_in_use(settings.host, settings.port) from None
            raise
    except instance.AlreadyServingError as exc:
        print(f"crossroads: {exc}", file=sys.stderr)
        sys.exit(1)
    host, port = sock.getsockname()[:2]
    if workers <= 1:
        try:
            code = _run_worker(settings, sock, log_level, announce=(host, port))
        finally:
            sock.close()
            os.close(lock_fd)
        _exit(code)
        return
    children: list[int] = []
    parent = os.getpid()
    for index in range(workers):
        pid = os.fork()
        if pid == 0:  # the worker: no supervisor state, default signal handling
            code = 1
            try:
                instance.die_with_parent(parent)
                own = sock
                if spread:
                    own = bind(host, port, reuse_port=True)
                    sock.close()  # the parent's copy keeps the port
                code = _run_worker(
                    settings, own, log_level, announce=(host, port) if index == 0 else None
                )
            finally:
                _exit(code, hard=True)
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
    os.close(lock_fd)
    if failed:
        sys.exit(1)


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


def _exit(code: int, *, hard: bool = False) -> None:
    """Ends the process with `code`: a negative one by that signal (default action), as a
    server stopped by SIGTERM is expected to end; with `hard`, never returns (a forked worker
    must not run its parent's code on the way out)."""
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        signal.raise_signal(-code)
    if hard:
        os._exit(max(code, 1) if code < 0 else code)
    if code > 0:
        sys.exit(code)


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
) -> int:
    """Runs one server process on `sock` until shutdown and returns its exit code: 0 after a
    clean stop, 1 if it did not start or lost ledger records at shutdown, or minus the signal
    (SIGTERM) that stopped it, for the caller to end by. Prints the banner once it serves,
    when `announce` gives the address to show."""
    app = build_app(settings)
    gateway: Gateway = app.state.gateway_object
    server = gateway_server(app, log_level=log_level)
    stopped_by: list[int] = []

    def note_stop(signum: int, frame: FrameType | None) -> None:
        # Installed before uvicorn's own handler, so uvicorn restores it and re-raises the
        # signal into it once shut down: the exit code is decided below, not by the default
        # action, and a signal arriving before uvicorn listens still stops the server.
        stopped_by.append(signum)
        server.handle_exit(signum, frame)

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

    signal.signal(signal.SIGTERM, note_stop)
    # For the worker's whole life, not only the app's lifespan: uvicorn logs a failed start-up
    # (with the exception and its traceback) after the lifespan has ended.
    with (
        scrubbing_logs(gateway.scrub),
        asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
    ):
        runner.run(run())
    if not server.started or gateway.unsaved_records:
        return 1
    return -signal.SIGTERM if stopped_by else 0
