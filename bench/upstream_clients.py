"""The upstream HTTP client, measured: aiohttp (what the adapters use) against httpx, each
POSTing the benchmark's chat request to the nginx mock from one uvloop event loop, the way a
gateway worker does. Per client and concurrency: requests/s and the process's CPU time per
request, alternating clients round by round so drift hits both alike.

    .venv/bin/python -m bench.upstream_clients [--requests 20000] [--rounds 3]

Needs nginx (bench/run installs it); everything listens on 127.0.0.1."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import uvloop

from bench import payloads, targets

Post = Callable[[], Awaitable[int]]


async def _drive(post: Post, total: int, concurrency: int) -> tuple[float, float]:
    """(requests/s, CPU ms per request) for `total` requests, `concurrency` at a time."""
    left = total

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            status = await post()
            if status != 200:
                raise RuntimeError(f"the mock answered {status}")

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return total / wall, cpu * 1000.0 / total


async def _aiohttp(url: str, body: bytes, total: int, concurrency: int) -> tuple[float, float]:
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer x"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def post() -> int:
            async with session.post(url, data=body) as response:
                await response.read()
                return response.status

        await _drive(post, 200, concurrency)  # warm the pool
        return await _drive(post, total, concurrency)


async def _httpx(url: str, body: bytes, total: int, concurrency: int) -> tuple[float, float]:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=concurrency)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer x"}
    async with httpx.AsyncClient(limits=limits, headers=headers, timeout=30) as client:

        async def post() -> int:
            response = await client.post(url, content=body)
            return response.status_code

        await _drive(post, 200, concurrency)
        return await _drive(post, total, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", default="1,50")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="crossroads-clients-"))
    mock = targets.start_mock(workdir)
    url = mock.url("json")
    body = payloads.request_body(targets.MODELS["json"], stream=False).encode()
    clients = {"aiohttp": _aiohttp, "httpx": _httpx}
    try:
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            seen: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
            for _ in range(args.rounds):
                for name, run in clients.items():
                    seen[name].append(uvloop.run(run(url, body, args.requests, concurrency)))
            for name, runs in seen.items():
                rps = statistics.median(r for r, _ in runs)
                cpu = statistics.median(c for _, c in runs)
                print(
                    f"{name:8} concurrency {concurrency:3}: {rps:8,.0f} req/s  "
                    f"{cpu:.3f} ms CPU/request  (median of {len(runs)})",
                    flush=True,
                )
    finally:
        mock.process.stop()


if __name__ == "__main__":
    main()
