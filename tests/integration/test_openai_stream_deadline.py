"""The OpenAI-compatible adapter's stream deadline against the mock upstream over real HTTP:
one timer bounds a whole stream body (not one per read), so it must still end a stream that
runs past the request's deadline, whether the deadline passes while a read waits or while the
consumer is busy between reads, on Chat Completions and on the Responses pass-through; and a
stream that ends in time is untouched by it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from crossroads.errors import UpstreamTimeoutError
from crossroads.mockupstream import MockUpstreamThread, run_in_thread
from crossroads.providers.base import ProviderSpec, StreamChunk, Timeouts, UpstreamCall
from crossroads.providers.http import DeadlinePassed, StreamDeadline
from crossroads.providers.registry import load_factory

USER = [{"role": "user", "content": "hello world"}]


@pytest.fixture(scope="module")
def server() -> Iterator[MockUpstreamThread]:
    with run_in_thread() as upstream:
        yield upstream


@pytest.fixture
def mock(server: MockUpstreamThread) -> MockUpstreamThread:
    server.wait_idle()
    server.clear()
    return server


def provider_for(mock: MockUpstreamThread) -> Any:
    spec = ProviderSpec(
        id="up",
        type="openai",
        base_url=mock.url,
        api_key="sk-test",
        timeouts=Timeouts(connect=2, first_byte=5, total=30),
        options={"responses": True},
    )
    return load_factory("openai")(spec)


def call(model: str, seconds: float, **body: Any) -> UpstreamCall:
    deadline = asyncio.get_running_loop().time() + seconds
    return UpstreamCall(
        body={"model": model, "messages": USER, "input": "hello world", "stream": True, **body},
        deadline=deadline,
        request_id="r1",
    )


async def drain(chunks: AsyncIterator[StreamChunk], pause: float = 0.0) -> int:
    count = 0
    async for _ in chunks:
        count += 1
        if pause:
            await asyncio.sleep(pause)
    return count


def run(mock: MockUpstreamThread, endpoint: str, model: str, seconds: float, pause: float) -> int:
    async def go() -> int:
        provider = provider_for(mock)
        await provider.start()
        try:
            chosen = provider.stream if endpoint == "chat" else provider.respond_stream
            return await drain(chosen(call(model, seconds)), pause)
        finally:
            await provider.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_the_deadline_ends_a_stream_while_a_read_waits(
    mock: MockUpstreamThread, endpoint: str
) -> None:
    with pytest.raises(UpstreamTimeoutError) as raised:
        run(mock, endpoint, "mock:drip=0.3,chunks=40", seconds=1.0, pause=0.0)
    assert "deadline" in str(raised.value)
    mock.wait_idle()
    assert mock.stats()["cancelled"] == 1  # the upstream learnt: its connection was closed


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_the_deadline_ends_a_stream_whose_reader_was_busy_when_it_passed(
    mock: MockUpstreamThread, endpoint: str
) -> None:
    """The events come quickly; the consumer sleeps past the deadline after the first, so no
    read is waiting when it passes: the next read fails."""
    with pytest.raises(UpstreamTimeoutError) as raised:
        run(mock, endpoint, "mock:drip=0.01,chunks=40", seconds=0.5, pause=0.6)
    assert "deadline" in str(raised.value)


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_a_stream_that_ends_in_time_is_not_cut_by_its_deadline(
    mock: MockUpstreamThread, endpoint: str
) -> None:
    async def go() -> tuple[int, int]:
        provider = provider_for(mock)
        await provider.start()
        try:
            chosen = provider.stream if endpoint == "chat" else provider.respond_stream
            loop = asyncio.get_running_loop()
            timed = call("mock:chunks=5", 5.0)  # room for a busy machine to finish in time
            first = await drain(chosen(timed))
            # Past the first stream's deadline: the next stream on the pooled connection is
            # not touched by it.
            await asyncio.sleep(max(0.0, timed.deadline - loop.time()) + 0.1)
            second = await drain(chosen(call("mock:chunks=5", 10.0)))
            return first, second
        finally:
            await provider.aclose()

    first, second = asyncio.run(go())
    assert first > 0 and first == second


def test_a_cancelled_stream_deadline_never_fires() -> None:
    """The mechanism itself, on a real aiohttp body reader: armed, it fails the reader at the
    deadline; cancelled before it (what the adapters do when a body ends), it does nothing."""

    async def go() -> tuple[BaseException | None, BaseException | None]:
        loop = asyncio.get_running_loop()
        readers = []
        for cancel in (False, True):
            reader = aiohttp.StreamReader(_Protocol(), 2**16, loop=loop)
            timer = StreamDeadline(
                reader, UpstreamCall(body={}, deadline=loop.time() + 0.05, request_id="r")
            )
            if cancel:
                timer.cancel()
            readers.append(reader)
        await asyncio.sleep(0.2)  # timers fire in order: the deadline has come, however busy
        return readers[0].exception(), readers[1].exception()

    armed, cancelled = asyncio.run(go())
    assert isinstance(armed, DeadlinePassed)
    assert cancelled is None


class _Protocol:
    """What aiohttp's StreamReader needs of a protocol when nothing is fed into it."""

    _reading_paused = False

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...
