"""The in-flight registry that shutdown stops requests through: a stopped region raises
ShuttingDownError in place of its cancellation, and any other cancellation still propagates."""

from __future__ import annotations

import asyncio

import pytest

from crossroads.errors import ShuttingDownError
from crossroads.ingress.inflight import InFlight


def test_stopping_a_waiting_region_raises_shutting_down_in_its_task() -> None:
    async def main() -> None:
        inflight = InFlight()
        entered = asyncio.Event()

        async def request() -> str:
            try:
                async with inflight.region():
                    entered.set()
                    await asyncio.sleep(3600)  # an upstream that never answers
            except ShuttingDownError:
                await asyncio.sleep(0)  # the handler's error answer can still await
                return "answered 503"
            return "finished"

        task = asyncio.create_task(request())
        await entered.wait()
        assert len(inflight) == 1
        assert inflight.stop_all() == 1
        assert await task == "answered 503"
        assert len(inflight) == 0 and task.cancelling() == 0

    asyncio.run(main())


def test_a_region_entered_after_stop_all_refuses_at_once() -> None:
    async def main() -> None:
        inflight = InFlight()
        inflight.stop_all()
        ran = False
        with pytest.raises(ShuttingDownError):
            async with inflight.region():
                ran = True
        assert not ran and inflight.stopping

    asyncio.run(main())


def test_a_block_that_ends_before_seeing_the_stop_still_raises_and_leaves_no_cancel() -> None:
    async def main() -> None:
        inflight = InFlight()

        async def request() -> str:
            try:
                async with inflight.region():
                    inflight.stop_all()  # the stop lands while the block has no await left
            except ShuttingDownError:
                await asyncio.sleep(0)  # the pending cancellation was taken by the region
                return "answered 503"
            return "finished"

        assert await asyncio.create_task(request()) == "answered 503"

    asyncio.run(main())


def test_another_cancellation_propagates_through_a_region() -> None:
    async def main() -> None:
        inflight = InFlight()
        entered = asyncio.Event()

        async def request() -> None:
            async with inflight.region():
                entered.set()
                await asyncio.sleep(3600)

        task = asyncio.create_task(request())
        await entered.wait()
        task.cancel()  # uvicorn's own deadline, say
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(inflight) == 0

        task = asyncio.create_task(request())
        entered.clear()
        await entered.wait()
        inflight.stop_all()
        task.cancel()  # both: the other cancellation wins
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
