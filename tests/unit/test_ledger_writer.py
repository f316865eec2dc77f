"""The ledger writer: nothing submitted is lost or duplicated, whatever the store does."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crossroads.ledger.record import LedgerRecord, Status
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.ledger.writer import LedgerWriter

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
SECRET = "a prompt the ledger must never log"


def record(n: int) -> LedgerRecord:
    return LedgerRecord(
        request_id=f"req-{n:06d}",
        created_at=T0 + timedelta(microseconds=n),
        endpoint="chat.completions",
        requested_model="deepseek-v3.2",
        stream=True,
        status=Status.ERROR,
        error_message=SECRET,
        cost_usd=Decimal("0.0000001"),
    )


class MemoryStore:
    """A store that keeps every batch it accepted. `fail_first` writes raise; while `gate` is
    clear, writes wait on it."""

    def __init__(self, *, fail_first: int = 0) -> None:
        self.batches: list[list[str]] = []
        self.calls = 0
        self.fail_first = fail_first
        self.gate = asyncio.Event()
        self.gate.set()
        self.wrote = asyncio.Event()  # set by every accepted batch

    @property
    def ids(self) -> list[str]:
        return [request_id for batch in self.batches for request_id in batch]

    async def write(self, records: Sequence[LedgerRecord]) -> None:
        self.calls += 1
        await self.gate.wait()
        if self.calls <= self.fail_first:
            raise OSError(f"disk on fire (write {self.calls})")
        self.batches.append([r.request_id for r in records])
        self.wrote.set()

    async def open(self) -> None:
        pass

    async def recent(self, limit: int, since: datetime | None = None) -> list[LedgerRecord]:
        raise NotImplementedError

    async def totals(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        by: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def count(self) -> int:
        return len(self.ids)

    async def ping(self) -> None:
        pass

    async def close(self) -> None:
        pass


async def submit_from_tasks(writer: LedgerWriter, tasks: int, per_task: int) -> None:
    async def producer(t: int) -> None:
        for i in range(per_task):
            writer.submit(record(t * per_task + i))
            if i % 7 == 0:
                await asyncio.sleep(0)  # interleave with the other producers and the flusher

    async with asyncio.TaskGroup() as group:
        for t in range(tasks):
            group.create_task(producer(t))


def test_ten_thousand_concurrent_records_land_once_in_sqlite(tmp_path: Path) -> None:
    async def main() -> None:
        store = SQLiteLedgerStore(tmp_path / "ledger.db")
        await store.open()
        try:
            writer = LedgerWriter(store, batch_size=500, flush_interval=0.01)
            await writer.start()
            await submit_from_tasks(writer, tasks=100, per_task=100)
            await writer.aclose()
            assert writer.pending == 0
            assert writer.flushed == 10_000
            assert await store.count() == 10_000
            (totals,) = await store.totals()
            assert totals["cost_usd"] == Decimal("0.001")
            stored = {r.request_id for r in await store.recent(20_000)}
            assert stored == {record(n).request_id for n in range(10_000)}
        finally:
            await store.close()

    asyncio.run(main())


def test_every_record_written_exactly_once_in_bounded_batches() -> None:
    store = MemoryStore()

    async def main() -> None:
        writer = LedgerWriter(store, batch_size=300, flush_interval=0.005)
        await writer.start()
        await submit_from_tasks(writer, tasks=50, per_task=200)
        await writer.aclose()

    asyncio.run(main())
    counts = Counter(store.ids)
    assert len(counts) == 10_000
    assert set(counts.values()) == {1}
    assert max(len(batch) for batch in store.batches) <= 300


def test_failed_writes_are_retried_until_every_record_is_written_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryStore(fail_first=3)

    async def main() -> LedgerWriter:
        writer = LedgerWriter(store, batch_size=100, retry_delay=0.001, max_retry_delay=0.004)
        await writer.start()
        for n in range(1000):
            writer.submit(record(n))
        await writer.aclose()
        return writer

    with caplog.at_level(logging.ERROR, logger="crossroads.ledger.writer"):
        writer = asyncio.run(main())
    assert sorted(store.ids) == [record(n).request_id for n in range(1000)]
    assert writer.flushed == 1000 and writer.pending == 0
    assert writer.failed_writes == 3
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 3
    assert all(r.exc_info is not None for r in failures)
    assert SECRET not in caplog.text  # ids only, never record contents


def test_submit_never_awaits() -> None:
    assert not inspect.iscoroutinefunction(LedgerWriter.submit)
    store = MemoryStore()

    async def main() -> None:
        store.gate.clear()  # the store hangs
        writer = LedgerWriter(store, batch_size=10, flush_interval=0)
        await writer.start()
        writer.submit(record(0))
        await asyncio.sleep(0.01)  # the flusher is now stuck inside store.write
        assert store.calls == 1
        for n in range(1, 5000):
            writer.submit(record(n))
        assert writer.pending == 5000
        store.gate.set()
        await writer.aclose()
        assert writer.flushed == 5000

    asyncio.run(main())


def test_submit_before_start_outside_a_loop_is_kept() -> None:
    store = MemoryStore()
    writer = LedgerWriter(store)
    for n in range(3):
        writer.submit(record(n))
    assert writer.pending == 3
    asyncio.run(writer.aclose())  # never started: aclose starts the flush itself
    assert len(store.ids) == 3


def test_partial_batch_flushes_after_the_interval() -> None:
    store = MemoryStore()

    async def main() -> None:
        writer = LedgerWriter(store, batch_size=1000, flush_interval=0.01)
        await writer.start()
        writer.submit(record(1))
        async with asyncio.timeout(5):
            await store.wrote.wait()
        assert store.batches == [[record(1).request_id]]
        await writer.aclose()

    asyncio.run(main())


def test_aclose_flushes_at_once_without_waiting_for_the_interval() -> None:
    store = MemoryStore()

    async def main() -> None:
        writer = LedgerWriter(store, batch_size=1000, flush_interval=3600)
        await writer.start()
        for n in range(3):
            writer.submit(record(n))
        await asyncio.sleep(0)
        async with asyncio.timeout(5):
            await writer.aclose()
        assert len(store.ids) == 3

    asyncio.run(main())


def test_backlog_past_max_pending_logs_once_and_keeps_everything(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryStore()

    async def main() -> None:
        store.gate.clear()
        writer = LedgerWriter(store, batch_size=5, max_pending=10, flush_interval=0)
        await writer.start()
        for n in range(25):
            writer.submit(record(n))
            await asyncio.sleep(0)
        assert writer.pending == 25
        store.gate.set()
        await writer.aclose()
        assert writer.flushed == 25

    with caplog.at_level(logging.WARNING, logger="crossroads.ledger.writer"):
        asyncio.run(main())
    over = [r for r in caplog.records if "max_pending" in r.getMessage()]
    assert [r.levelno for r in over] == [logging.ERROR, logging.WARNING]  # over, then back under
    assert sorted(store.ids) == [record(n).request_id for n in range(25)]


def test_cancelled_aclose_keeps_flushing_and_loses_nothing() -> None:
    store = MemoryStore()

    async def main() -> None:
        store.gate.clear()
        writer = LedgerWriter(store, batch_size=10)
        await writer.start()
        for n in range(30):
            writer.submit(record(n))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await writer.aclose()
        assert writer.pending == 30
        store.gate.set()
        await writer.aclose()
        assert writer.pending == 0

    asyncio.run(main())
    assert sorted(store.ids) == [record(n).request_id for n in range(30)]


def test_submit_rejects_bad_records_and_submits_after_close() -> None:
    store = MemoryStore()
    writer = LedgerWriter(store)
    naive = LedgerRecord(
        request_id="naive",
        created_at=datetime(2026, 1, 1),
        endpoint="chat.completions",
        requested_model="m",
        stream=False,
        status=Status.OK,
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        writer.submit(naive)
    asyncio.run(writer.aclose())
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(record(1))
    assert writer.pending == 0


def test_aclose_within_hands_back_what_a_failing_store_did_not_take() -> None:
    """A store that keeps failing (a full disk) must not keep the process from exiting: past
    `within` seconds, aclose returns the unwritten records, oldest first, to be saved."""
    store = MemoryStore(fail_first=10**9)

    async def main() -> None:
        writer = LedgerWriter(store, batch_size=10, retry_delay=0.001, max_retry_delay=0.01)
        await writer.start()
        for n in range(25):
            writer.submit(record(n))
        while writer.failed_writes == 0:  # noqa: ASYNC110 - a condition, not a time
            await asyncio.sleep(0.001)
        assert writer.failing and not writer.healthy
        unwritten = await writer.aclose(within=0.05)
        assert [r.request_id for r in unwritten] == [record(n).request_id for n in range(25)]
        assert writer.pending == 0
        assert await writer.aclose(within=0.05) == []  # idempotent, nothing handed back twice

    asyncio.run(main())
    assert store.ids == []


def test_aclose_within_returns_nothing_when_the_store_takes_everything() -> None:
    store = MemoryStore()

    async def main() -> None:
        writer = LedgerWriter(store, batch_size=10, flush_interval=3600)
        await writer.start()
        for n in range(25):
            writer.submit(record(n))
        assert await writer.aclose(within=60) == []

    asyncio.run(main())
    assert sorted(store.ids) == [record(n).request_id for n in range(25)]


def test_failing_clears_once_a_write_succeeds_and_healthy_follows_the_backlog() -> None:
    store = MemoryStore(fail_first=2)

    async def main() -> None:
        writer = LedgerWriter(
            store, batch_size=5, max_pending=3, retry_delay=0.001, max_retry_delay=0.001
        )
        store.gate.clear()
        await writer.start()
        for n in range(5):
            writer.submit(record(n))
        assert not writer.failing and not writer.healthy  # 5 waiting > max_pending 3
        store.gate.set()
        await store.wrote.wait()  # after two failures, the batch went in
        assert writer.failed_writes == 2
        assert not writer.failing and writer.healthy
        await writer.aclose()

    asyncio.run(main())
