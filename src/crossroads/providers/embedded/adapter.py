"""The embedded provider: a GGUF model run in this process by llama.cpp's server loop through
xllamacpp, behind the Provider seam. Each generation blocks a worker thread; its chunks cross to
the event loop through a queue, and closing a stream (or its deadline) stops the generation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import tempfile
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from crossroads.errors import ConfigError, UpstreamError, UpstreamTimeoutError
from crossroads.providers.base import Completion, ProviderSpec, StreamChunk, UpstreamCall
from crossroads.providers.embedded.convert import (
    CompletionAssembler,
    build_request,
    error_for_exception,
    parse_document,
    to_stream_chunk,
)
from crossroads.providers.embedded.model_file import locate_model
from crossroads.providers.embedded.settings import Settings

logger = logging.getLogger(__name__)


class EmbeddedProvider:
    """Serves chat completions from a local GGUF model (SmolLM2-135M unless `model_path`).

    At most `parallel` generations run at once, one per llama.cpp slot; further requests are
    queued (not rejected) until a slot frees or their deadline passes. Errors follow the Provider
    contract: UpstreamError(status 400) for requests this model cannot serve, UpstreamError(502)
    for llama.cpp failures, UpstreamTimeoutError when `call.deadline` passes (waiting included),
    UpstreamError(503, retryable) before `start()` or after `aclose()`.
    """

    def __init__(self, spec: ProviderSpec) -> None:
        """Checks the options (ConfigError on a bad one); loads nothing until `start()`."""
        self.id = spec.id
        self._settings = Settings.from_options(spec.options)
        self._slots = asyncio.Semaphore(self._settings.parallel)
        self._server: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._socket_dir: tempfile.TemporaryDirectory[str] | None = None
        self._running: set[_Generation] = set()

    @property
    def busy_slots(self) -> int:
        """Generations llama.cpp is running now, including ones stopped but not yet wound down
        (for health and metrics; 0 when idle)."""
        return len(self._running)

    async def start(self) -> None:
        """Finds and loads the model. Does nothing if already started.

        Raises ConfigError when the model file is missing or llama.cpp cannot load it (llama.cpp
        logs why on stderr). Runs in a worker thread, but xllamacpp holds the GIL while loading,
        so the event loop stalls for the load (about half a second for SmolLM2-135M): call it
        before serving traffic. Cancelling it does not stop a load already begun.
        """
        if self._server is not None:
            return
        settings = self._settings
        model = locate_model(settings.model_path)
        try:
            import xllamacpp
        except ImportError as exc:
            raise ConfigError(f"the embedded provider needs xllamacpp: {exc}") from None
        socket_dir = tempfile.TemporaryDirectory(prefix="crossroads-llama-")
        params = _server_params(xllamacpp, settings, model, Path(socket_dir.name) / "http.sock")
        try:
            server = await asyncio.to_thread(xllamacpp.Server, params)
        except RuntimeError:
            socket_dir.cleanup()
            raise ConfigError(
                f"llama.cpp could not load the model file {str(model)!r} (its log says why)"
            ) from None
        except BaseException:
            socket_dir.cleanup()
            raise
        self._server, self._socket_dir = server, socket_dir
        self._executor = ThreadPoolExecutor(settings.parallel, thread_name_prefix="llama-slot")

    async def aclose(self) -> None:
        """Stops every running generation (their consumers get UpstreamError 503, retryable),
        waits for the worker threads, then frees the model. Idempotent; `start()` may follow."""
        server, executor, socket_dir = self._server, self._executor, self._socket_dir
        self._server, self._executor, self._socket_dir = None, None, None
        for generation in self._running:
            generation.stop("shutdown")
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, True)
        if server is not None:
            # llama.cpp's destructor joins its loop thread: let the last reference die off-loop.
            holder = [server]
            del server
            await asyncio.to_thread(holder.clear)
        if socket_dir is not None:
            socket_dir.cleanup()

    async def complete(self, call: UpstreamCall) -> Completion:
        """One whole answer, generated as a stream and assembled, so that cancelling the awaiting
        task or passing the deadline stops llama.cpp at the next token. Raises as the class says."""
        assembler = CompletionAssembler()
        async with contextlib.aclosing(self._documents(call)) as documents:
            async for doc in documents:
                assembler.add(doc)
        return assembler.completion(self._settings.served_model)

    async def stream(self, call: UpstreamCall) -> AsyncIterator[StreamChunk]:
        """The chunks as llama.cpp makes them: a role chunk, content chunks, a finish chunk, then
        a usage-only chunk (`usage_only=True`). Errors before the first chunk raise from the first
        `__anext__`. Closing the iterator or cancelling its consumer stops generation at the next
        token and frees the slot; other streams are not affected."""
        served_model = self._settings.served_model
        async with contextlib.aclosing(self._documents(call)) as documents:
            async for doc in documents:
                yield to_stream_chunk(doc, served_model)

    async def _documents(self, call: UpstreamCall) -> AsyncGenerator[dict[str, Any], None]:
        request = build_request(call.body, tools=self._settings.tools, n_ctx=self._settings.n_ctx)
        if self._server is None:
            raise _not_ready()
        await self._acquire_slot(call.deadline)
        generation = self._launch(request, call.deadline)
        try:
            while (raw := await generation.next_chunk(call.deadline)) is not None:
                yield parse_document(raw)
            generation.raise_outcome()
        finally:
            generation.stop("consumer")

    async def _acquire_slot(self, deadline: float) -> None:
        try:
            async with asyncio.timeout_at(deadline):
                await self._slots.acquire()
        except TimeoutError:
            raise UpstreamTimeoutError(
                "the embedded model had no free slot before the request's deadline"
            ) from None

    def _launch(self, request: bytes, deadline: float) -> _Generation:
        """Starts a generation on the slot just acquired; the slot is released when its worker
        thread returns, not when its consumer leaves, so llama.cpp never runs more than
        `parallel` of them."""
        server, executor = self._server, self._executor
        if server is None or executor is None:  # aclose() ran while we waited for the slot
            self._slots.release()
            raise _not_ready()
        loop = asyncio.get_running_loop()
        generation = _Generation(loop, deadline)
        try:
            future = loop.run_in_executor(executor, generation.run, server, request)
        except RuntimeError:  # the executor was shut down (aclose) under us
            self._slots.release()
            raise _not_ready() from None
        self._running.add(generation)

        def finished(done: asyncio.Future[None]) -> None:
            self._running.discard(generation)
            self._slots.release()
            generation.finish(done)

        future.add_done_callback(finished)
        return generation


class _Generation:
    """One llama.cpp call: `run` blocks a worker thread, whose `_on_chunk` calls hand each chunk
    to the event loop, where `next_chunk` reads them until None (the worker has returned)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._stop = threading.Event()
        self._stop_lock = threading.Lock()
        self._stopped_by: str | None = None
        self._error: BaseException | None = None
        # The same deadline on the worker's clock, so it stops even if nobody reads.
        self._worker_deadline = time.monotonic() + (deadline - loop.time())

    def run(self, server: Any, request: bytes) -> None:
        """In the worker thread: returns when llama.cpp is done or `_on_chunk` stopped it."""
        server.handle_chat_completions(request, self._on_chunk)

    def _on_chunk(self, raw: bytes) -> bool:
        # Runs in the worker thread for every chunk; returning True makes llama.cpp cancel the
        # task and free its slot. xllamacpp swallows exceptions raised here (and cancels), so
        # this must not raise.
        if self._stop.is_set():
            return True
        if time.monotonic() >= self._worker_deadline:
            self.stop("deadline")
            return True
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, raw)
        except RuntimeError:  # the event loop is closed: nobody will ever read this stream
            self.stop("loop closed")
            return True
        return False

    def stop(self, reason: str) -> None:
        """Asks the worker to stop at its next chunk. Thread-safe; the first reason sticks."""
        with self._stop_lock:
            if not self._stop.is_set():
                self._stopped_by = reason
                self._stop.set()

    def finish(self, done: asyncio.Future[None]) -> None:
        """On the loop, once the worker returned: records its outcome and ends the queue."""
        if not done.cancelled():
            self._error = done.exception()
            if self._error is not None and not isinstance(self._error, ValueError):
                logger.warning("llama.cpp failed: %r", self._error)
        self._queue.put_nowait(None)

    async def next_chunk(self, deadline: float) -> bytes | None:
        """The next raw chunk, or None once the worker has returned. Raises UpstreamTimeoutError
        at the deadline (and stops the worker)."""
        try:
            async with asyncio.timeout_at(deadline):
                return await self._queue.get()
        except TimeoutError:
            self.stop("deadline")
            raise _timeout() from None

    def raise_outcome(self) -> None:
        """After the last chunk: raises what ended the generation early, if anything did."""
        error = self._error
        if error is not None:
            if isinstance(error, Exception):
                raise error_for_exception(error) from error
            raise error
        if self._stopped_by == "deadline":
            raise _timeout()
        if self._stopped_by == "shutdown":
            raise _not_ready("the embedded model was shut down during the request")


def _not_ready(message: str = "the embedded model is not loaded") -> UpstreamError:
    return UpstreamError(message, retryable=True, status=503, code="not_ready")


def _timeout() -> UpstreamTimeoutError:
    return UpstreamTimeoutError("the embedded model did not finish before the request's deadline")


def _server_params(xllamacpp: Any, settings: Settings, model: Path, socket: Path) -> Any:
    params = xllamacpp.CommonParams()
    params.model.path = str(model)
    params.n_ctx = settings.n_ctx
    params.n_parallel = settings.parallel
    params.cpuparams.n_threads = settings.threads
    params.cpuparams_batch.n_threads = settings.threads
    params.verbosity = settings.log_verbosity
    # xllamacpp.Server also starts llama.cpp's HTTP server (on 127.0.0.1, no API key, CORS "*")
    # beside the in-process calls we make. We never use it, so it listens on a Unix socket in a
    # private directory and demands a random key nobody holds: the model cannot be reached
    # around the gateway's authentication, budgets and ledger.
    params.hostnames = [str(socket)]
    params.api_keys = [secrets.token_urlsafe(32)]
    params.n_threads_http = 1
    params.ui = False
    params.endpoint_slots = False
    return params
