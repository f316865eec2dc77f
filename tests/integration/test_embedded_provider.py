"""The embedded provider against the real SmolLM2-135M model, loaded once for the module: answer
and stream shapes, usage, queueing, cancellation, deadlines, request errors and a free event loop.

The tests share one event loop (an `asyncio.Runner`), as a server does: the provider's slot
semaphore belongs to the loop it first waits on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest

from crossroads.errors import ConfigError, UpstreamError, UpstreamTimeoutError
from crossroads.providers.base import Provider, ProviderSpec, StreamChunk, UpstreamCall
from crossroads.providers.embedded import EmbeddedProvider, create
from crossroads.providers.embedded.model_file import locate_model
from crossroads.providers.registry import load_factory

pytestmark = pytest.mark.model

T = TypeVar("T")
SERVED = "local/smollm2-135m"
SLOTS = 2
HELLO = [{"role": "user", "content": "Say hello."}]
# Greedy decoding runs this one to any max_tokens we ask for (1,500 measured): a generation that
# only stops if we stop it.
LONG = [{"role": "user", "content": "Write a very long story about a dragon, with many chapters."}]


@dataclass
class Harness:
    runner: asyncio.Runner
    provider: EmbeddedProvider

    def run(self, make: Callable[[EmbeddedProvider], Awaitable[T]]) -> T:
        async def main() -> T:
            return await make(self.provider)

        return self.runner.run(main())


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    spec = ProviderSpec(id="embedded", type="embedded", options={"parallel": SLOTS})
    provider = load_factory("embedded")(spec)  # the entry-point path config takes
    assert isinstance(provider, EmbeddedProvider)
    with asyncio.Runner() as runner:
        runner.run(provider.start())
        try:
            yield Harness(runner, provider)
        finally:
            runner.run(provider.aclose())


def call(body: dict[str, Any], *, seconds: float = 120.0) -> UpstreamCall:
    deadline = asyncio.get_running_loop().time() + seconds
    return UpstreamCall(body={"model": "smollm2-135m", **body}, deadline=deadline, request_id="t")


async def collect(provider: Provider, body: dict[str, Any]) -> list[StreamChunk]:
    return [chunk async for chunk in provider.stream(call(body))]


async def until_idle(provider: EmbeddedProvider, seconds: float = 30.0) -> float:
    """Seconds until no generation runs; fails the test past `seconds`."""
    started = time.monotonic()
    async with asyncio.timeout(seconds):
        while provider.busy_slots:  # noqa: ASYNC110 - polling a gauge; no event to wait on
            await asyncio.sleep(0.005)
    return time.monotonic() - started


def test_complete_has_the_openai_shape_and_usage(harness: Harness) -> None:
    body = {"messages": HELLO, "max_tokens": 8, "temperature": 0}
    completion = harness.run(lambda p: p.complete(call(body)))

    data = orjson.loads(completion.body)
    assert data == completion.data
    assert data["object"] == "chat.completion"
    assert data["model"] == SERVED
    assert data["id"].startswith("chatcmpl-")
    assert "timings" not in data
    [choice] = data["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str) and choice["message"]["content"]
    assert choice["finish_reason"] in {"stop", "length"}
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == data["usage"]["prompt_tokens"] > 0
    assert 0 < completion.usage.completion_tokens == data["usage"]["completion_tokens"] <= 8


def test_greedy_answers_are_deterministic_and_match_the_stream(harness: Harness) -> None:
    body = {"messages": HELLO, "max_tokens": 16, "temperature": 0}

    async def both(provider: EmbeddedProvider) -> tuple[str, str, str]:
        first = await provider.complete(call(body))
        second = await provider.complete(call(body))
        chunks = await collect(provider, body)
        streamed = "".join(
            choice["delta"].get("content") or ""
            for chunk in chunks
            for choice in orjson.loads(chunk.data)["choices"]
        )
        return _content(first.data), _content(second.data), streamed

    first, second, streamed = harness.run(both)
    assert first == second == streamed


def test_complete_matches_what_llama_cpp_returns_unstreamed(
    harness: Harness, tmp_path: Path
) -> None:
    # complete() streams and reassembles (so it can be stopped); it must equal the real thing.
    import xllamacpp

    body = {"messages": HELLO, "max_tokens": 12, "temperature": 0, "logprobs": True}
    params = xllamacpp.CommonParams()
    params.model.path = str(locate_model())
    params.n_parallel = 1
    params.n_ctx = 2048
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = 1
    params.verbosity = 1
    params.hostnames = [str(tmp_path / "http.sock")]  # no TCP listener, even in a test
    server = xllamacpp.Server(params)
    native = server.handle_chat_completions(body)
    del server

    ours = harness.run(lambda p: p.complete(call(body))).data
    [mine], [theirs] = ours["choices"], native["choices"]
    assert mine["message"] == theirs["message"]
    assert mine["finish_reason"] == theirs["finish_reason"]
    tokens = [[t["token"] for t in c["logprobs"]["content"]] for c in (mine, theirs)]
    assert tokens[0] == tokens[1] and tokens[0]
    assert ours["usage"]["completion_tokens"] == native["usage"]["completion_tokens"]


def test_stream_yields_role_content_finish_then_usage(harness: Harness) -> None:
    chunks = harness.run(
        lambda p: collect(p, {"messages": HELLO, "max_tokens": 8, "temperature": 0})
    )

    docs = [orjson.loads(chunk.data) for chunk in chunks]
    assert all(doc["model"] == SERVED and "timings" not in doc for doc in docs)
    assert all(doc["object"] == "chat.completion.chunk" for doc in docs)
    assert docs[0]["choices"][0]["delta"]["role"] == "assistant"
    content = [doc["choices"][0]["delta"].get("content") for doc in docs[1:-2]]
    assert content and all(isinstance(piece, str) for piece in content)
    assert docs[-2]["choices"][0]["finish_reason"] in {"stop", "length"}
    *body, last = chunks
    assert last.usage_only and docs[-1]["choices"] == []
    assert last.usage is not None and 0 < last.usage.completion_tokens <= 8
    assert last.usage.completion_tokens == docs[-1]["usage"]["completion_tokens"]
    assert all(chunk.usage is None and not chunk.usage_only for chunk in body)


def test_more_streams_than_slots_queue_and_all_finish(harness: Harness) -> None:
    async def six(provider: EmbeddedProvider) -> tuple[list[list[StreamChunk]], int]:
        peak = 0

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, provider.busy_slots)
                await asyncio.sleep(0.002)

        watcher = asyncio.create_task(watch())
        bodies = [{"messages": HELLO, "max_tokens": 12, "seed": n} for n in range(6)]
        try:
            streams = await asyncio.gather(*(collect(provider, b) for b in bodies))
        finally:
            watcher.cancel()
        return streams, peak

    streams, peak = harness.run(six)
    assert peak == SLOTS  # the extra four waited for a slot instead of failing
    for chunks in streams:
        reasons = [
            choice["finish_reason"]
            for chunk in chunks
            for choice in orjson.loads(chunk.data)["choices"]
            if choice["finish_reason"]
        ]
        assert reasons in (["stop"], ["length"])
        assert chunks[-1].usage_only and chunks[-1].usage is not None


def test_closing_streams_stops_generation_and_frees_their_slots(harness: Harness) -> None:
    async def scenario(provider: EmbeddedProvider) -> tuple[float, float, str]:
        body = {"messages": LONG, "max_tokens": 1500, "temperature": 0}
        streams = [provider.stream(call(body)) for _ in range(SLOTS)]  # every slot taken
        for stream in streams:
            await anext(stream)
        # The decoding rate, to know how long these generations would still run if not stopped.
        started = time.monotonic()
        for _ in range(20):
            await anext(streams[0])
        rate = 20 / (time.monotonic() - started)
        for stream in streams:
            await stream.aclose()  # type: ignore[attr-defined]
        idle_after = await until_idle(provider)
        async with asyncio.timeout(60):  # hangs here if a slot leaked
            after = await provider.complete(call({"messages": HELLO, "max_tokens": 4}))
        return idle_after, (1500 - 21) / rate, after.data["choices"][0]["finish_reason"]

    idle_after, left_to_run, finish = harness.run(scenario)
    assert idle_after < left_to_run / 10  # llama.cpp stopped; it did not run to max_tokens
    assert finish in {"stop", "length"}


def test_cancelling_the_consumer_task_stops_its_generation(harness: Harness) -> None:
    async def scenario(provider: EmbeddedProvider) -> str:
        first = asyncio.Event()

        async def consume() -> None:
            async for _ in provider.stream(call({"messages": LONG, "max_tokens": 1500})):
                first.set()

        task = asyncio.create_task(consume())
        await first.wait()
        assert provider.busy_slots == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await until_idle(provider, seconds=10)
        after = await provider.complete(call({"messages": HELLO, "max_tokens": 4}))
        return str(after.data["choices"][0]["finish_reason"])

    assert harness.run(scenario) in {"stop", "length"}


def test_the_deadline_stops_generation_with_a_timeout_error(harness: Harness) -> None:
    async def scenario(provider: EmbeddedProvider) -> None:
        body = {"messages": LONG, "max_tokens": 1500, "temperature": 0}
        with pytest.raises(UpstreamTimeoutError) as caught:
            await provider.complete(call(body, seconds=0.5))
        assert caught.value.retryable and caught.value.status == 504
        with pytest.raises(UpstreamTimeoutError):
            async for _ in provider.stream(call(body, seconds=0.5)):
                pass
        await until_idle(provider, seconds=10)

    harness.run(scenario)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"messages": "hello"}, "messages"),
        ({"messages": HELLO, "max_tokens": "many"}, "max_tokens"),
        ({"messages": HELLO, "n": 2}, "n must be 1"),
        ({"messages": [{"role": "user", "content": "hi " * 3000}]}, "context"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "data:,"}}],
                    }
                ]
            },
            "text only",
        ),
        (
            {
                "messages": HELLO,
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            },
            "tool calling",
        ),
    ],
)
def test_requests_the_model_cannot_serve_are_400s(
    harness: Harness, body: dict[str, Any], says: str
) -> None:
    async def both(provider: EmbeddedProvider) -> list[UpstreamError]:
        errors = []
        with pytest.raises(UpstreamError) as caught:
            await provider.complete(call(body))
        errors.append(caught.value)
        with pytest.raises(UpstreamError) as caught:
            await anext(provider.stream(call(body)))  # before the first chunk
        errors.append(caught.value)
        return errors

    for error in harness.run(both):
        assert type(error) is UpstreamError
        assert error.status == 400 and not error.retryable
        assert says in error.message


def test_the_event_loop_stays_free_while_the_model_generates(harness: Harness) -> None:
    async def scenario(provider: EmbeddedProvider) -> tuple[int, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        try:
            body = {"messages": LONG, "max_tokens": 64, "temperature": 0}
            completion = await provider.complete(call(body))
        finally:
            task.cancel()
        assert completion.usage is not None
        return ticks, completion.usage.completion_tokens

    ticks, tokens = harness.run(scenario)
    assert tokens == 64
    assert ticks >= 3


def test_closing_the_provider_ends_running_streams_and_it_can_start_again(
    harness: Harness,
) -> None:
    async def scenario(provider: EmbeddedProvider) -> tuple[UpstreamError, UpstreamError, str]:
        stream = provider.stream(call({"messages": LONG, "max_tokens": 1500}))
        await anext(stream)
        await provider.aclose()
        assert provider.busy_slots == 0
        with pytest.raises(UpstreamError) as during:
            async for _ in stream:
                pass
        with pytest.raises(UpstreamError) as after:
            await provider.complete(call({"messages": HELLO}))
        await provider.start()
        again = await provider.complete(call({"messages": HELLO, "max_tokens": 4}))
        return during.value, after.value, str(again.data["choices"][0]["finish_reason"])

    during, after, finish = harness.run(scenario)
    assert during.status == after.status == 503 and during.retryable and after.retryable
    assert finish in {"stop", "length"}


def test_calls_before_start_are_retryable_503s() -> None:
    provider = create(ProviderSpec(id="cold", type="embedded"))

    async def scenario() -> UpstreamError:
        with pytest.raises(UpstreamError) as caught:
            await provider.complete(call({"messages": HELLO}))
        return caught.value

    error = asyncio.run(scenario())
    assert error.status == 503 and error.retryable


def test_bad_options_and_a_missing_model_file_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="n_ctx"):
        create(ProviderSpec(id="x", type="embedded", options={"n_ctx": "big"}))
    with pytest.raises(ConfigError, match="unknown option"):
        create(ProviderSpec(id="x", type="embedded", options={"contxt": 4096}))
    missing = create(
        ProviderSpec(id="x", type="embedded", options={"model_path": str(tmp_path / "no.gguf")})
    )
    with pytest.raises(ConfigError, match="not a file"):
        asyncio.run(missing.start())


def _content(data: Any) -> str:
    return str(data["choices"][0]["message"]["content"])
