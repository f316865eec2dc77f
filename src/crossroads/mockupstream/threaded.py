"""Run a `MockUpstream` on its own event loop in a background thread, for synchronous tests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from crossroads.mockupstream.server import MockUpstream

__all__ = ["MockUpstreamThread", "run_in_thread"]

T = TypeVar("T")
JSON = dict[str, Any]

_CALL_TIMEOUT = 10.0


class MockUpstreamThread:
    """A started mock upstream served from a daemon thread; a context manager that stops it.

    Every method may be called from any thread; each runs on the server's loop and waits for it.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        seed: int = 0,
        default_script: str = "",
        models: Sequence[str] = ("mock",),
    ) -> None:
        """Raises ScriptError if `default_script` does not parse. Call `start` to serve."""
        self._upstream = MockUpstream(seed=seed, default_script=default_script, models=models)
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="mock-upstream", daemon=True)

    def start(self) -> None:
        """Start serving; return once the socket listens. Raises OSError if it cannot bind,
        TimeoutError if the server does not come up within 10 s."""
        self._thread.start()
        if not self._ready.wait(_CALL_TIMEOUT):
            raise TimeoutError("mock upstream did not start")
        if self._error is not None:
            self._thread.join()
            raise self._error

    def close(self) -> None:
        """Stop the server (answers in progress are cancelled) and join the thread. Idempotent."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and self._thread.is_alive():
            loop.call_soon_threadsafe(stopping.set)
        if self._thread.ident is not None:
            self._thread.join(_CALL_TIMEOUT)

    def __enter__(self) -> MockUpstreamThread:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The OpenAI base URL, "http://HOST:PORT/v1"."""
        return self._upstream.url

    def requests(self) -> list[JSON]:
        """A copy of the recorded requests (see `RequestRecord.to_json`)."""
        return self._call(self._upstream.requests)

    def stats(self) -> dict[str, int]:
        """The counters: requests, completed, cancelled, aborted, in_flight."""
        return self._call(self._upstream.stats)

    def script(self, scripts: Sequence[str]) -> int:
        """Queue scripts for the next chat requests; raises ScriptError if one does not parse."""
        return self._call(lambda: self._upstream.enqueue(scripts))

    def clear(self) -> None:
        """Forget recorded requests, zero the counters and empty the script queue."""
        self._call(self._upstream.clear)

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until no answer is in progress, so the log shows every outcome (a client's
        disconnect reaches the server a moment after the client gives up). Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while self.stats()["in_flight"]:
            if time.monotonic() > deadline:
                raise TimeoutError("mock upstream still has answers in progress")
            time.sleep(0.005)

    def _call(self, function: Callable[[], T]) -> T:
        if self._loop is None:
            raise RuntimeError("mock upstream thread not started")

        async def invoke() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(invoke(), self._loop).result(_CALL_TIMEOUT)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            await self._upstream.start(self._host, self._port)
        except OSError as exc:
            self._error = exc
            return
        finally:
            self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await self._upstream.stop()


def run_in_thread(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    seed: int = 0,
    default_script: str = "",
    models: Sequence[str] = ("mock",),
) -> MockUpstreamThread:
    """Start a mock upstream in a background thread and return it, already listening.
    Use it as a context manager, or call `close()`. Raises OSError if it cannot bind."""
    server = MockUpstreamThread(host, port, seed=seed, default_script=default_script, models=models)
    server.start()
    return server
