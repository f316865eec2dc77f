"""Does a flood of requests with wrong API keys slow valid ones? Measures valid requests'
latency alone, under a flood of wrong-key requests, and under an equal flood of requests that
are rejected for another cheap reason (an unknown model, with a valid key). If the wrong-key
flood costs no more than the control flood, checking keys adds nothing measurable: any flood
takes CPU on a 2-core machine, the key check itself does no store or network round trip.

    .venv/bin/python bench/auth_flood.py [VALID_REQUESTS]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from crossroads.mockupstream import run_in_thread
from support.gateway import gateway_for

ADMIN = "auth-flood-admin-key-0123456789"


async def measure(url: str, key: str, n: int, flood: dict[str, str] | None) -> list[float]:
    stop = asyncio.Event()
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}

    async def flooder(http: httpx.AsyncClient) -> None:
        assert flood is not None
        while not stop.is_set():
            await http.post(
                "/v1/chat/completions",
                json={**body, "model": flood["model"]},
                headers={"authorization": f"Bearer {flood['key']}"},
            )

    async with (
        httpx.AsyncClient(base_url=url, timeout=30) as http,
        httpx.AsyncClient(base_url=url, timeout=30) as flood_http,
    ):
        tasks = [asyncio.create_task(flooder(flood_http)) for _ in range(8)] if flood else []
        await asyncio.sleep(0.5 if flood else 0)
        times = []
        for _ in range(n):
            started = time.perf_counter()
            response = await http.post(
                "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
            )
            assert response.status_code == 200
            times.append((time.perf_counter() - started) * 1000)
        stop.set()
        await asyncio.gather(*tasks)
    return times


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    with tempfile.TemporaryDirectory() as tmp, run_in_thread() as mock:
        config = {
            "embedded": {"enabled": False},
            "auth": {"mode": "keys"},
            "providers": {"up": {"type": "openai", "base_url": mock.url}},
            "models": [{"name": "m", "provider": "up", "upstream_model": "mock"}],
        }
        with gateway_for(Path(tmp), config, environ={"CROSSROADS_ADMIN_KEY": ADMIN}) as gw:
            key = httpx.post(
                f"{gw.url}/admin/keys",
                json={"name": "bench"},
                headers={"authorization": f"Bearer {ADMIN}"},
            ).json()["key"]
            wrong = {"key": "crk_0000000000_" + "x" * 32, "model": "m"}
            control = {"key": key, "model": "no-such-model"}
            for label, flood in (
                ("alone", None),
                ("wrong-key flood", wrong),
                ("control flood (unknown model)", control),
                ("alone again", None),
            ):
                times = asyncio.run(measure(gw.url, key, n, flood))
                q = statistics.quantiles(times, n=100)
                print(
                    f"{label:32s} p50 {q[49]:6.2f} ms   p90 {q[89]:6.2f} ms   ({n} valid requests)"
                )


if __name__ == "__main__":
    main()
