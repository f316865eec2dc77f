"""Stops work for a client that has gone away.

Starlette cancels nothing when a client disconnects from a plain handler, and uvicorn's `send`
drops a gone client's bytes silently, so a handler awaiting an upstream (or relaying a stream)
would go on until the upstream finishes, burning tokens nobody will read. `CancelOnDisconnect`
watches the connection while its block runs and cancels the block when the client leaves.

The watch costs a task, so it starts only once the block has run for `WATCH_AFTER` seconds:
most requests that finish sooner (cached answers, errors, fast hosts) never pay for it, and a
client that leaves is noticed at most that much later. Against a model that takes seconds the
watch is always on. Cancellation follows `asyncio.timeout`: the block's task is cancelled and
the cancellation is taken back on the way out (`Task.uncancel`), so a cancellation from
anywhere else (server shutdown) still propagates."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.types import Receive

from crossroads.ingress.body import ClientGone

T = TypeVar("T")

WATCH_AFTER = 0.02
"""Seconds a block runs before the connection is watched (see the module docstring)."""


class CancelOnDisconnect:
    """`async with CancelOnDisconnect(receive): ...` runs the block; if the client disconnects
    while it runs, the block is cancelled and ClientGone raised in its place. Use only after
    the request body has been read in full (the watch consumes `receive`)."""

    __slots__ = (
        "_after",
        "_cancelling",
        "_gone",
        "_inside",
        "_receive",
        "_task",
        "_timer",
        "_watcher",
    )

    def __init__(self, receive: Receive, after: float = WATCH_AFTER) -> None:
        self._receive = receive
        self._after = after
        self._task: asyncio.Task[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._cancelling = 0
        self._inside = False
        self._gone = False

    async def __aenter__(self) -> CancelOnDisconnect:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("CancelOnDisconnect must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._inside = True
        self._timer = asyncio.get_running_loop().call_later(self._after, self._watch)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._inside = False
        if self._timer is not None:
            self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None  # the task is not kept from its end (see `_wait`)
        if self._gone:
            assert self._task is not None
            if self._task.uncancel() <= self._cancelling and (
                exc_type is None or issubclass(exc_type, asyncio.CancelledError)
            ):
                raise ClientGone from None

    def _watch(self) -> None:
        self._timer = None
        if self._inside:
            self._watcher = asyncio.get_running_loop().create_task(self._wait())

    async def _wait(self) -> None:
        """Watches until the client leaves. Cancelled when the block ends (nearly always): the
        cancellation ends the task quietly instead of leaving it with a CancelledError whose
        traceback holds this frame, `self` and the server's receive frames in a reference cycle
        that only the garbage collector frees. With thousands of streams ending every minute
        those cycles made the collector's older generations big enough to pause every open
        stream for tens of milliseconds (docs/performance.md)."""
        try:
            while True:
                message = await self._receive()
                if message["type"] == "http.disconnect":
                    break
        except asyncio.CancelledError:
            return
        if self._inside and self._task is not None:
            self._gone = True
            self._task.cancel()


async def unless_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """Awaits `work` and returns its result, unless the client disconnects first: then `work`
    is cancelled (its upstream request with it) and ClientGone is raised. Call only after the
    request body has been read in full."""
    async with CancelOnDisconnect(request.receive):
        return await work
