"""A fault-mix load run: three mock upstreams behind one served name, each failing a share of
requests in scripted ways, and many concurrent clients. Used by the CI test (a few hundred
requests) and by bench/faultmix.py (thousands, for the figures in docs/resilience.md)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from crossroads.ledger.record import LedgerRecord
from crossroads.mockupstream import run_in_thread
from support.gateway import GatewayThread, gateway_for

DEFAULT_MIX = (
    "mix=status=500:0.2|status=429,retry_after=1:0.1|reset=during,chunks=10:0.05|hang:0.05"
)


@dataclass
class Outcome:
    status: int
    elapsed: float
    error: str | None  # the error type for failures (stream error events included)
    stream: bool


@dataclass
class MixReport:
    requests: int
    outcomes: list[Outcome]
    ledger: list[LedgerRecord]
    deadline: float
    wall: float
    by_error: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> int:
        return sum(1 for o in self.outcomes if o.status == 200 and o.error is None)

    def p(self, q: float) -> float:
        times = sorted(o.elapsed for o in self.outcomes)
        return times[min(len(times) - 1, int(q * len(times)))]

    def summary(self) -> dict[str, Any]:
        failures = Counter(o.error or str(o.status) for o in self.outcomes if o.error)
        ids = [r.request_id for r in self.ledger]
        return {
            "requests": self.requests,
            "succeeded": self.ok,
            "success_share": round(self.ok / self.requests, 4),
            "failures_by_type": dict(failures.most_common()),
            "latency_p50_s": round(self.p(0.50), 3),
            "latency_p99_s": round(self.p(0.99), 3),
            "latency_max_s": round(max(o.elapsed for o in self.outcomes), 3),
            "deadline_s": self.deadline,
            "past_deadline": sum(1 for o in self.outcomes if o.elapsed > self.deadline + 1.0),
            "ledger_records": len(self.ledger),
            "ledger_unique_ids": len(set(ids)),
            "ledger_statuses": dict(Counter(r.status.value for r in self.ledger)),
            "wall_s": round(self.wall, 1),
            "requests_per_s": round(self.requests / self.wall, 1),
        }


@contextmanager
def mix_gateway(tmp: Path, mix: str, deadline: float) -> Iterator[GatewayThread]:
    with ExitStack() as stack:
        mocks = [
            stack.enter_context(run_in_thread(seed=seed, default_script=mix)) for seed in (1, 2, 3)
        ]
        providers = {
            f"up{i}": {"type": "openai", "base_url": m.url, "timeouts": {"first_byte": 1.0}}
            for i, m in enumerate(mocks)
        }
        config = {
            "embedded": {"enabled": False},
            "server": {"request_timeout": deadline},
            "providers": providers,
            "models": [{"name": "m", "provider": p, "upstream_model": "mock"} for p in providers],
            "routing": {"retries": 1, "backoff_base": 0.05, "backoff_max": 0.5},
        }
        gw = stack.enter_context(gateway_for(tmp, config))
        yield gw


async def _drive(url: str, requests: int, concurrency: int) -> list[Outcome]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:

        async def one(i: int) -> Outcome:
            stream = i % 2 == 1
            body = {
                "model": "m",
                "messages": [{"role": "user", "content": f"q{i}"}],
                "stream": stream,
            }
            async with semaphore:
                started = time.monotonic()
                if not stream:
                    response = await http.post("/v1/chat/completions", json=body)
                    error = (
                        None
                        if response.status_code == 200
                        else (
                            response.json()["error"].get("code") or response.json()["error"]["type"]
                        )
                    )
                    return Outcome(response.status_code, time.monotonic() - started, error, False)
                error = None
                async with http.stream("POST", "/v1/chat/completions", json=body) as response:
                    if response.status_code != 200:
                        payload = await response.aread()
                        error = httpx.Response(200, content=payload).json()["error"]["code"]
                    else:
                        last = ""
                        async for line in response.aiter_lines():
                            if line.startswith("data: "):
                                last = line[6:]
                        if last != "[DONE]":
                            error = "stream_error_event"
                return Outcome(response.status_code, time.monotonic() - started, error, True)

        return await asyncio.gather(*(one(i) for i in range(requests)))


def run_mix(
    tmp: Path,
    *,
    requests: int = 300,
    concurrency: int = 30,
    mix: str = DEFAULT_MIX,
    deadline: float = 8.0,
) -> MixReport:
    started = time.monotonic()
    with mix_gateway(tmp, mix, deadline) as gw:
        outcomes = asyncio.run(_drive(gw.url, requests, concurrency))
        wall = time.monotonic() - started
        gw.stop()
        ledger = gw.ledger()
    return MixReport(requests, outcomes, ledger, deadline, wall)
