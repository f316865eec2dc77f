"""The stored responses on both backends, real ones: a SQLite file and the test PostgreSQL
server. Owners, retention, the size cap and deletes, with a clock the test moves instead of
waiting; and a store whose backend cannot open leaves the gateway answering, unstored."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crossroads.ingress.responses.store import (
    Backend,
    PostgresResponses,
    ResponseStore,
    SQLiteResponses,
)
from support.postgres import fresh_schema

DAY = 86400.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Backend]]:
    """A factory of backends that all reach the same storage (as a restarted gateway would)."""
    if request.param == "sqlite":
        yield lambda: SQLiteResponses(tmp_path / "responses.sqlite3")
        return
    with fresh_schema("responses") as schema:
        yield lambda: PostgresResponses(schema.url, schema.settings)


def test_owner_retention_and_restart(backend: Callable[[], Backend]) -> None:
    clock = Clock()

    async def first() -> None:
        store = ResponseStore(backend(), retention_days=2, clock=clock)
        await store.open()
        assert store.save("resp_a", "key1", {"id": "resp_a"}, [{"type": "message"}], [])
        assert (await store.get("resp_a", "key1")) is not None  # readable at once
        assert await store.get("resp_a", "key2") is None  # another key: not there
        assert await store.get("resp_a", None) is None
        await store.aclose()

    async def later() -> None:
        store = ResponseStore(backend(), retention_days=2, clock=clock)
        await store.open()
        found = await store.get("resp_a", "key1")
        assert found is not None and found.items() == [{"type": "message"}]
        clock.now += 3 * DAY
        assert await store.get("resp_a", "key1") is None  # expired
        await store.aclose()
        raw = backend()
        store = ResponseStore(raw, retention_days=2, clock=clock)
        await store.open()  # the purge at start deletes it for good
        assert await raw.get("resp_a") is None
        await store.aclose()

    asyncio.run(first())
    asyncio.run(later())


def test_delete_and_the_size_cap(backend: Callable[[], Backend]) -> None:
    async def main() -> None:
        store = ResponseStore(backend(), max_bytes=2048)
        await store.open()
        assert not store.save("resp_big", None, {"id": "x"}, [{"text": "y" * 4096}], [])
        assert await store.get("resp_big", None) is None
        assert store.save("resp_small", None, {"id": "x"}, [], [])
        assert not await store.delete("resp_small", "someone-else")
        assert await store.delete("resp_small", None)
        assert await store.get("resp_small", None) is None
        await store.aclose()

    asyncio.run(main())


def test_storage_off_keeps_nothing() -> None:
    async def main() -> None:
        store = ResponseStore(None)
        await store.open()
        assert not store.enabled
        assert not store.save("resp_a", None, {"id": "resp_a"}, [], [])
        assert await store.get("resp_a", None) is None
        await store.aclose()

    asyncio.run(main())


def test_a_backend_that_cannot_open_leaves_requests_unstored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PostgreSQL down at start: logged, without the password; nothing is kept, nothing
    raises."""

    async def main() -> None:
        dead = PostgresResponses("postgresql://crossroads:hunter2-secret@127.0.0.1:9/x")
        store = ResponseStore(dead)
        await store.open()
        assert not store.save("resp_a", None, {"id": "resp_a"}, [], [])
        assert await store.get("resp_a", None) is None
        await store.aclose()

    asyncio.run(main())
    assert "stored responses unavailable" in caplog.text
    assert "hunter2-secret" not in caplog.text


def test_a_stalled_store_does_not_pile_responses_up_in_memory(tmp_path: Path) -> None:
    """Writes that never finish (a hung database): past MAX_PENDING waiting, new responses are
    not kept (and say so) instead of growing memory without bound."""
    from crossroads.ingress.responses import store as module

    class Stalled(SQLiteResponses):
        async def put(self, entry: object) -> None:
            await asyncio.Event().wait()

    async def main() -> None:
        store = ResponseStore(Stalled(tmp_path / "r.sqlite3"))
        await store.open()
        kept = [store.save(f"resp_{i}", None, {"id": i}, [], []) for i in range(module.MAX_PENDING)]
        assert all(kept)
        assert not store.save("resp_over", None, {"id": "over"}, [], [])
        for task in list(store._writes.values()):
            task.cancel()
        await store.aclose()

    asyncio.run(main())
