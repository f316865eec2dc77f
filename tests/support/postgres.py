"""The test PostgreSQL server that `scripts/services` starts: a fresh schema per test, dropped
afterwards, so tests share one database without seeing each other's tables."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

URL_VARIABLE = "CROSSROADS_TEST_POSTGRES_URL"


def server_url() -> str:
    """The test server's URL. Fails the test (never skips it) when the variable is unset."""
    url = os.environ.get(URL_VARIABLE)
    if not url:
        pytest.fail(
            f"{URL_VARIABLE} is not set: these tests need the real PostgreSQL server. Run "
            '`scripts/services start` and `eval "$(scripts/services env)"`, then run them again.'
        )
    return url


class Schema:
    """One schema of the test database. Stores reach it through `settings` (a search_path)."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self.settings = {"search_path": name}

    async def connect(self) -> Any:
        return await asyncpg.connect(self.url, server_settings=self.settings)

    async def fetch(self, query: str, *args: object) -> list[tuple[Any, ...]]:
        conn = await self.connect()
        try:
            return [tuple(row) for row in await conn.fetch(query, *args)]
        finally:
            await conn.close()

    def query(self, query: str, *args: object) -> list[tuple[Any, ...]]:
        """`fetch` from synchronous test code."""
        return asyncio.run(self.fetch(query, *args))


@contextlib.contextmanager
def fresh_schema(prefix: str) -> Iterator[Schema]:
    """Creates an empty schema named `prefix_<random>`, yields it, then drops it and all in it."""
    url = server_url()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f"CREATE SCHEMA {name}"))
    try:
        yield Schema(url, name)
    finally:
        asyncio.run(admin(f"DROP SCHEMA {name} CASCADE"))
