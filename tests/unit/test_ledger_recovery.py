"""Recovery files: what a gateway could not write to its store at exit is saved beside the
ledger, exactly (costs to the unit, times to the microsecond), and written at the next start."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from crossroads.ledger import recovery
from crossroads.ledger.record import LedgerRecord, Status
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.ledger.store import LedgerStoreError

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def record(n: int) -> LedgerRecord:
    return LedgerRecord(
        request_id=f"req-{n:05d}",
        created_at=T0 + timedelta(microseconds=n * 1001),
        endpoint="chat.completions",
        requested_model="fast",
        stream=n % 2 == 0,
        status=Status.OK if n % 3 else Status.ERROR,
        served_model="deepseek/deepseek-v3.2",
        deployment="up/ds",
        provider="up",
        open_weights=True,
        prompt_tokens=100 + n,
        completion_tokens=7,
        cost_usd=Decimal("0.0000123456") * (n + 1),
        latency_ms=12.345678 + n,
        ttft_ms=None,
        http_status=200 if n % 3 else 502,
        error_message=None if n % 3 else "upstream said ünïcödé \n and a newline",
        baseline_cost_usd=Decimal("0.0001"),
    )


def test_a_spilled_file_reads_back_every_record_exactly(tmp_path: Path) -> None:
    records = [record(n) for n in range(50)]
    path = recovery.spill(tmp_path / "data", records)
    assert path.parent == tmp_path / "data" and path.name.startswith("ledger-recovery-")
    assert recovery.files(tmp_path / "data") == [path]
    back, bad = recovery.read(path)
    assert (back, bad) == (records, 0)


def test_a_file_cut_short_by_a_crash_still_yields_its_complete_lines(tmp_path: Path) -> None:
    path = recovery.spill(tmp_path, [record(n) for n in range(10)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])  # the last line loses its end
    back, bad = recovery.read(path)
    assert back == [record(n) for n in range(9)] and bad == 1


def test_replay_writes_every_record_once_and_removes_the_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = recovery.spill(data, [record(n) for n in range(0, 600)])
    second = recovery.spill(data, [record(n) for n in range(550, 700)])  # overlaps the first
    copy = shutil.copy(second, tmp_path / "copy.jsonl")

    async def main() -> tuple[int, int, int]:
        store = SQLiteLedgerStore(data / "ledger.sqlite3")
        await store.open()
        try:
            replayed = await recovery.replay(store, data)
            shutil.copy(copy, data / second.name)  # as if another worker had not finished
            again = await recovery.replay(store, data)
            return replayed, again, await store.count()
        finally:
            await store.close()

    replayed, again, count = asyncio.run(main())
    assert (replayed, again, count) == (750, 150, 700)
    assert not first.exists() and not second.exists()
    assert recovery.files(data) == []


class RefusingStore:
    """A store whose every write fails, as on a full disk."""

    def __init__(self) -> None:
        self.writes = 0

    async def write(self, records: Sequence[LedgerRecord]) -> None:
        self.writes += 1
        raise LedgerStoreError("database or disk is full")


def test_a_store_that_refuses_leaves_the_file_for_the_next_start(tmp_path: Path) -> None:
    path = recovery.spill(tmp_path, [record(n) for n in range(3)])
    store = RefusingStore()
    with pytest.raises(LedgerStoreError):
        asyncio.run(recovery.replay(store, tmp_path))  # type: ignore[arg-type]
    assert store.writes == 1 and path.exists()


def test_a_file_of_another_format_is_set_aside_not_replayed(tmp_path: Path) -> None:
    stray = tmp_path / "ledger-recovery-1-20260101T000000000000Z.jsonl"
    stray.write_text('{"format": "something else"}\n[1, 2, 3]\n')
    store = RefusingStore()
    assert asyncio.run(recovery.replay(store, tmp_path)) == 0  # type: ignore[arg-type]
    assert store.writes == 0
    assert not stray.exists() and stray.with_name(stray.name + ".unreadable").exists()
