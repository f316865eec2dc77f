"""Runs the gateway under uvicorn (uvloop + httptools) on a socket we bind ourselves, so that
`--port 0` works and the real address can be printed before the first request."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys

import uvicorn
import uvloop

from crossroads.config import Settings
from crossroads.server.app import build_app

log = logging.getLogger(__name__)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
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


def serve(settings: Settings, *, log_level: str = "warning") -> None:
    """Serves until SIGINT or SIGTERM, then shuts down gracefully: stops accepting, lets requests
    in flight finish (up to 30 s), and flushes the ledger."""
    sock = bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
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
    )
    server = uvicorn.Server(config)

    async def run() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        # uvicorn offers no start-up callback; poll its flag until it serves or gives up.
        while not server.started and not task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if server.started:
            print(banner(settings, host, port), flush=True)
        await task

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run())
    finally:
        sock.close()
    if not server.started:
        sys.exit(1)
