"""Writes ledger records off the request path: `submit` appends to an in-memory queue, one
background task writes batches to the `LedgerStore`, retrying failures until they succeed, and
`aclose` drains everything on shutdown, or, past its timeout, hands back what the store would
not take (for `crossroads.ledger.recovery` to keep). Losing ledger data is the one thing it must
not do."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from crossroads.ledger.record import LedgerRecord
from crossroads.ledger.store import LedgerStore, check_record

__all__ = ["LedgerWriter"]

logger = logging.getLogger(__name__)


class LedgerWriter:
    """Batches records into `store.write` calls of at most `batch_size`, flushing whenever a full
    batch is waiting or `flush_interval` seconds after a partial one arrived.

    A failed write is logged and retried, same batch, after `retry_delay` seconds doubling up to
    `max_retry_delay`, for as long as it takes; records are never dropped. Stores ignore repeated
    request ids, so retrying a write whose outcome was unknown cannot duplicate rows.

    Memory: records wait in memory while the store is slow or down. Past `max_pending` the
    writer logs one error (again only after the backlog has drained below it), reports itself
    unhealthy (`healthy`, which the readiness probe reads) and keeps accepting: the bound is
    operational, not enforced, because dropping records is worse than memory growth. A record
    takes about 0.5 KB (more with long error messages), so 100,000 is some 50 to 100 MB.

    A process crash (SIGKILL, a fatal signal) loses what is in memory: the records submitted
    in the last `flush_interval` seconds plus the batch being written, or the whole backlog
    while the store is failing (docs/operations.md has the measured figure).

    Not thread-safe: call every method from the event loop's thread.
    """

    def __init__(
        self,
        store: LedgerStore,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.02,
        max_pending: int = 100_000,
        retry_delay: float = 0.1,
        max_retry_delay: float = 5.0,
    ) -> None:
        if batch_size < 1 or max_pending < 1:
            raise ValueError("batch_size and max_pending must be positive")
        if flush_interval < 0 or retry_delay < 0 or max_retry_delay < retry_delay:
            raise ValueError("delays must be non-negative and max_retry_delay >= retry_delay")
        self._store = store
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_pending = max_pending
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._queue: deque[LedgerRecord] = deque()
        self._in_flight = 0  # records of the batch being written, no longer in _queue
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._accepting = True
        self._over_limit = False
        self._flushed = 0
        self._failed_writes = 0
        self._failing = False  # the last write raised and none has succeeded since

    @property
    def pending(self) -> int:
        """Records submitted and not yet written, including the batch being written."""
        return len(self._queue) + self._in_flight

    @property
    def flushed(self) -> int:
        """Records the store has accepted (a repeated request id still counts)."""
        return self._flushed

    @property
    def failed_writes(self) -> int:
        """Store writes that raised and were retried."""
        return self._failed_writes

    @property
    def failing(self) -> bool:
        """True while the store is failing: the last write raised and none has succeeded since
        (a store that stays down keeps it True while the batch is retried)."""
        return self._failing

    @property
    def max_pending(self) -> int:
        return self._max_pending

    @property
    def healthy(self) -> bool:
        """False while the store is failing or the backlog is past `max_pending`."""
        return not self._failing and self.pending <= self._max_pending

    def submit(self, record: LedgerRecord) -> None:
        """Queues `record` for writing. O(1); never blocks, awaits or touches the store, so it is
        safe on the request path and may be called before `start`.

        Raises ValueError when the record fails `check_record` (a naive `created_at`, a cost out
        of range): a caller bug, reported where it happens rather than stalling a batch later.
        Raises RuntimeError after `aclose` has begun: shut the server's request handling down
        before the writer.
        """
        if not self._accepting:
            logger.error("ledger record %s submitted after close; not written", record.request_id)
            raise RuntimeError("the ledger writer is closed")
        check_record(record)
        self._queue.append(record)
        queued = len(self._queue)
        if queued == 1 or queued >= self._batch_size:
            self._wake.set()
        if not self._over_limit and queued + self._in_flight > self._max_pending:
            self._over_limit = True
            logger.error(
                "ledger backlog passed max_pending=%d records; the store is slow or failing. "
                "Records are kept in memory, none is dropped",
                self._max_pending,
            )

    async def start(self) -> None:
        """Starts the background flush task on the running loop. Raises RuntimeError if already
        started or closed."""
        if self._task is not None or not self._accepting:
            raise RuntimeError("the ledger writer is already started or closed")
        self._task = asyncio.create_task(self._run(), name="crossroads-ledger-writer")

    async def aclose(self, within: float | None = None) -> list[LedgerRecord]:
        """Stops accepting records, writes every pending one and returns [] when all are
        written (starting the flush task if `start` was never called). Idempotent.

        Without `within`, while the store keeps failing this keeps retrying and does not
        return; cancelling it then does not cancel the flush task, which carries on while the
        loop runs. With `within`, it gives up after that many seconds: the flush task is
        stopped (a batch it was writing goes back to the queue, though the store may still
        commit it: writes are idempotent, so writing it again later is harmless) and the
        records not known to be written are returned, oldest first, for the caller to keep
        elsewhere; the writer keeps no reference to them.
        """
        self._accepting = False
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="crossroads-ledger-writer")
        self._wake.set()
        task = self._task
        if within is None:
            if not task.cancelled():  # cancelled: an earlier aclose gave up, taking the queue
                await asyncio.shield(task)
            return []
        done, _ = await asyncio.wait([task], timeout=within)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        elif not task.cancelled() and task.exception() is not None:
            logger.error("the ledger writer's flush task failed", exc_info=task.exception())
        unwritten = list(self._queue)
        self._queue.clear()
        return unwritten

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if not self._accepting:
                    return
                self._wake.clear()
                await self._wake.wait()  # set by the first submit into an empty queue, or close
                continue
            if len(self._queue) < self._batch_size and self._accepting:
                self._wake.clear()
                # Set early by a full batch or by close.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._flush_interval):
                        await self._wake.wait()
            await self._write_batch()

    async def _write_batch(self) -> None:
        """Takes up to `batch_size` records off the queue and writes them, retrying until the
        store accepts them. If cancelled, puts them back at the head of the queue."""
        batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
        self._in_flight = len(batch)
        delay = self._retry_delay
        attempt = 0
        try:
            while True:
                attempt += 1
                try:
                    await self._store.write(batch)
                    self._failing = False
                    break
                except Exception:
                    # Anything: a store error, a driver bug. Retried, since dropping the batch
                    # would lose data; the log says which batch (ids only, never contents).
                    self._failed_writes += 1
                    self._failing = True
                    logger.error(
                        "ledger write of %d records (request ids %s..%s) failed, attempt %d; "
                        "retrying in %.2fs",
                        len(batch),
                        batch[0].request_id,
                        batch[-1].request_id,
                        attempt,
                        delay,
                        exc_info=True,
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_retry_delay)
        except BaseException:  # cancellation (or KeyboardInterrupt): keep the batch queued
            self._queue.extendleft(reversed(batch))
            raise
        finally:
            self._in_flight = 0
        self._flushed += len(batch)
        if self._over_limit and self.pending <= self._max_pending:
            self._over_limit = False
            logger.warning("ledger backlog is back under max_pending=%d", self._max_pending)
