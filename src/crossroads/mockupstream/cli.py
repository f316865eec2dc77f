"""The mock upstream's command line: `python -m crossroads.mockupstream --port 9000 --seed 1`."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence

from crossroads.mockupstream.script import ScriptError, parse_script
from crossroads.mockupstream.server import MockUpstream

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m crossroads.mockupstream",
        description="A scripted, fault-injecting OpenAI-compatible upstream for tests.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=9000, help="port, 0 for any (9000)")
    parser.add_argument("--seed", type=int, default=0, help="seed for mix= choices (0)")
    parser.add_argument(
        "--script", default="", help="script for requests that bring none, e.g. 'mix=...'"
    )
    parser.add_argument(
        "--model", action="append", dest="models", help="a model for /v1/models (repeatable)"
    )
    return parser


async def _serve(upstream: MockUpstream, host: str, port: int) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await upstream.start(host, port)
    print(f"mock upstream listening on {upstream.url}", flush=True)
    try:
        await stopping.wait()
    finally:
        await upstream.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGINT or SIGTERM; return the exit status. Exits with status 2 on a bad
    argument or script."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        parse_script(args.script)
    except ScriptError as exc:
        parser.error(str(exc))
    upstream = MockUpstream(
        seed=args.seed, default_script=args.script, models=args.models or ("mock",)
    )
    asyncio.run(_serve(upstream, args.host, args.port))
    return 0
