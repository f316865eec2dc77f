"""The requests in flight in one gateway, so that shutdown can end those still running when its
grace period is over: each with its API's own error and its ledger record, where uvicorn's own
cancellation would answer a plain-text 500 and leave no record.

A handler runs its work inside `InFlight.region()`; `InFlight.stop_all` cancels every region's
task, and the region turns that cancellation into `ShuttingDownError` (a GatewayError, 503),
which the handler answers and records like any other error. Cancellation follows
`CancelOnDisconnect` (and `asyncio.timeout`): taken back on the way out with `Task.uncancel`,
so a cancellation from anywhere else still propagates."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any

from crossroads.errors import ShuttingDownError

__all__ = ["InFlight", "Region"]


class InFlight:
    """The regions running now. O(1) per request (a set add and discard). Not thread-safe:
    use it from the event loop's thread."""

    __slots__ = ("_regions", "_stopping")

    def __init__(self) -> None:
        self._regions: set[Region] = set()
        self._stopping = False

    def __len__(self) -> int:
        return len(self._regions)

    @property
    def stopping(self) -> bool:
        """True once `stop_all` has run: every region entered since raises at once."""
        return self._stopping

    def region(self) -> Region:
        """`async with inflight.region(): ...` runs one request's work as stoppable."""
        return Region(self)

    def stop_all(self) -> int:
        """Stops every running region (their tasks are cancelled; each raises ShuttingDownError
        when it next runs) and refuses new ones. Returns how many were stopped. Idempotent."""
        self._stopping = True
        regions = list(self._regions)
        for region in regions:
            region.stop()
        return len(regions)


class Region:
    """One request's stoppable work (see `InFlight`). If stopped, the block's task is cancelled
    and ShuttingDownError raised in place of the cancellation; a block that ended on its own
    before seeing it also raises ShuttingDownError, so what the block did last (a send, an
    upstream call) may or may not have happened. A block that raised another exception keeps
    it. Entering after `InFlight.stop_all` raises ShuttingDownError without running the
    block."""

    __slots__ = ("_cancelling", "_owner", "_stopped", "_task")

    def __init__(self, owner: InFlight) -> None:
        self._owner = owner
        self._task: asyncio.Task[Any] | None = None
        self._cancelling = 0
        self._stopped = False

    async def __aenter__(self) -> Region:
        if self._owner._stopping:
            raise ShuttingDownError
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("an in-flight region must run inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._owner._regions.add(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._owner._regions.discard(self)
        if not self._stopped:
            return
        assert self._task is not None
        delivered = exc_type is not None and issubclass(exc_type, asyncio.CancelledError)
        if not delivered:
            # The block ended before the cancellation reached it, which is still pending: take
            # it here, or it would land on the handler's next await (the error answer's send).
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0)
        if self._task.uncancel() > self._cancelling:
            # Cancelled from elsewhere too (uvicorn's own shutdown deadline): that one wins.
            if not delivered:
                raise asyncio.CancelledError
            return
        if delivered or exc_type is None:
            raise ShuttingDownError from None

    def stop(self) -> None:
        if not self._stopped and self._task is not None:
            self._stopped = True
            self._task.cancel()
