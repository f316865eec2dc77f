"""Stops work for a client that has gone away.

Starlette cancels a streaming response when its client disconnects, but a plain handler awaiting
an upstream would go on until the upstream answers, burning tokens nobody will read. This runs
such work beside a watch on the connection and cancels it when the client leaves."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.requests import Request

from crossroads.ingress.body import ClientGone

T = TypeVar("T")


async def unless_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """Runs `work` to completion and returns its result, unless the client disconnects first:
    then `work` is cancelled (its upstream request with it) and ClientGone is raised. Call only
    after the request body has been read in full."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_for_disconnect(request))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise ClientGone
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()


async def _wait_for_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
