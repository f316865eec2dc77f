"""CancelOnDisconnect: a block runs to its end unless the client leaves, a block that ends
quickly never starts the watch, and a cancellation from elsewhere still propagates."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from crossroads.ingress.body import ClientGone
from crossroads.ingress.disconnect import CancelOnDisconnect


class Client:
    """An ASGI `receive` that says `http.disconnect` once `leave()` is called."""

    def __init__(self) -> None:
        self.left = asyncio.Event()
        self.calls = 0

    async def receive(self) -> dict[str, Any]:
        self.calls += 1
        await self.left.wait()
        return {"type": "http.disconnect"}

    def leave(self) -> None:
        self.left.set()


def test_a_quick_block_returns_and_never_watches() -> None:
    async def main() -> None:
        client = Client()
        before = len(asyncio.all_tasks())
        async with CancelOnDisconnect(client.receive, after=0.05):
            assert len(asyncio.all_tasks()) == before  # no watcher task
            await asyncio.sleep(0)
        await asyncio.sleep(0.1)  # past `after`: the timer was cancelled with the block
        assert client.calls == 0 and len(asyncio.all_tasks()) == before

    asyncio.run(main())


def test_leaving_cancels_the_block_and_raises_client_gone() -> None:
    async def main() -> None:
        client = Client()
        cancelled = False

        async def upstream() -> None:
            nonlocal cancelled
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled = True
                raise

        asyncio.get_running_loop().call_later(0.05, client.leave)
        with pytest.raises(ClientGone):
            async with CancelOnDisconnect(client.receive, after=0.01):
                await upstream()
        assert cancelled
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0  # the cancellation was taken back
        await asyncio.sleep(0)  # and nothing is left pending on the task

    asyncio.run(asyncio.wait_for(main(), 5))


def test_staying_lets_a_slow_block_finish() -> None:
    async def main() -> str:
        client = Client()
        async with CancelOnDisconnect(client.receive, after=0.01):
            await asyncio.sleep(0.05)  # the watch is on, the client stays
            result = "answer"
        assert client.calls == 1
        return result

    assert asyncio.run(main()) == "answer"


def test_a_cancellation_from_elsewhere_is_not_mistaken_for_the_client() -> None:
    async def guarded(client: Client) -> None:
        async with CancelOnDisconnect(client.receive, after=0.01):
            await asyncio.sleep(30)

    async def main() -> None:
        client = Client()
        task = asyncio.create_task(guarded(client))
        await asyncio.sleep(0.05)  # the watch is on
        task.cancel()  # say, the server shutting down
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()

    asyncio.run(asyncio.wait_for(main(), 5))
