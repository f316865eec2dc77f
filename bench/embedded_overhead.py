"""How much does the gateway add to llama.cpp's own speed for the embedded model? Generates the
same greedy completions (fixed max_tokens, ignoring end of sequence is not possible here, so
token counts come from each answer's usage) straight through the embedded provider, in-process,
and through the running gateway over HTTP with the official openai client, alternating, and
compares completion tokens per second of wall time.

    .venv/bin/python bench/embedded_overhead.py [ROUNDS]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from crossroads.providers.base import ProviderSpec, UpstreamCall
from crossroads.providers.embedded import create
from support.gateway import gateway_for

PROMPT = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]
TOKENS = 128


async def direct(rounds: int) -> list[float]:
    provider = create(ProviderSpec(id="local", type="embedded", options={"parallel": 1}))
    await provider.start()
    rates = []
    try:
        for _ in range(rounds):
            body = {
                "model": "smollm2-135m",
                "messages": PROMPT,
                "max_tokens": TOKENS,
                "temperature": 0,
            }
            call = UpstreamCall(
                body=body, deadline=asyncio.get_running_loop().time() + 120, request_id="bench"
            )
            started = time.perf_counter()
            completion = await provider.complete(call)
            elapsed = time.perf_counter() - started
            assert completion.usage is not None
            rates.append(completion.usage.completion_tokens / elapsed)
    finally:
        await provider.aclose()
    return rates


def via_gateway(rounds: int) -> list[float]:
    rates = []
    config = {"embedded": {"enabled": True, "parallel": 1}}
    with (
        tempfile.TemporaryDirectory() as tmp,
        gateway_for(Path(tmp), config) as gw,
        OpenAI(base_url=gw.v1, api_key="unused", max_retries=0, timeout=120) as client,
    ):
        for _ in range(rounds):
            started = time.perf_counter()
            reply = client.chat.completions.create(
                model="local/smollm2-135m",
                messages=PROMPT,  # type: ignore[arg-type]
                max_tokens=TOKENS,
                temperature=0,
            )
            elapsed = time.perf_counter() - started
            assert reply.usage is not None
            rates.append(reply.usage.completion_tokens / elapsed)
    return rates


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    d1 = asyncio.run(direct(rounds))
    g1 = via_gateway(rounds)
    d2 = asyncio.run(direct(rounds))
    g2 = via_gateway(rounds)
    direct_rate = statistics.median(d1 + d2)
    gateway_rate = statistics.median(g1 + g2)
    print(f"llama.cpp in-process: median {direct_rate:.1f} completion tokens/s ({2 * rounds} runs)")
    print(
        f"through the gateway:  median {gateway_rate:.1f} completion tokens/s ({2 * rounds} runs)"
    )
    print(f"gateway cost: {100 * (1 - gateway_rate / direct_rate):+.2f}% of llama.cpp's speed")


if __name__ == "__main__":
    main()
