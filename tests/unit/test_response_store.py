"""The stored-responses file: owners, retention and the size cap, on a real SQLite file, with
a clock the test moves instead of waiting."""

from __future__ import annotations

import asyncio
from pathlib import Path

from crossroads.ingress.responses.store import ResponseStore

DAY = 86400.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_owner_retention_and_restart(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "responses.sqlite3"

    async def first() -> None:
        store = ResponseStore(path, retention_days=2, clock=clock)
        await store.open()
        assert store.save("resp_a", "key1", {"id": "resp_a"}, [{"type": "message"}], [])
        assert (await store.get("resp_a", "key1")) is not None  # readable at once
        assert await store.get("resp_a", "key2") is None  # another key: not there
        assert await store.get("resp_a", None) is None
        await store.aclose()

    async def later() -> None:
        store = ResponseStore(path, retention_days=2, clock=clock)
        await store.open()
        found = await store.get("resp_a", "key1")
        assert found is not None and found.items() == [{"type": "message"}]
        clock.now += 3 * DAY
        assert await store.get("resp_a", "key1") is None  # expired
        await store.aclose()
        store = ResponseStore(path, retention_days=2, clock=clock)
        await store.open()  # the purge at start deletes it for good
        await store.aclose()

    run(first())
    run(later())
    import sqlite3

    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM responses").fetchone() == (0,)


def test_delete_and_the_size_cap(tmp_path: Path) -> None:
    async def main() -> None:
        store = ResponseStore(tmp_path / "r.sqlite3", max_bytes=2048)
        await store.open()
        assert not store.save("resp_big", None, {"id": "x"}, [{"text": "y" * 4096}], [])
        assert await store.get("resp_big", None) is None
        assert store.save("resp_small", None, {"id": "x"}, [], [])
        assert not await store.delete("resp_small", "someone-else")
        assert await store.delete("resp_small", None)
        assert await store.get("resp_small", None) is None
        await store.aclose()

    run(main())


def test_storage_off_keeps_nothing() -> None:
    async def main() -> None:
        store = ResponseStore(None)
        await store.open()
        assert not store.enabled
        assert not store.save("resp_a", None, {"id": "resp_a"}, [], [])
        assert await store.get("resp_a", None) is None
        await store.aclose()

    run(main())
