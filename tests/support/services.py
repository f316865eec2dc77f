"""The test services `scripts/services start` runs (PostgreSQL, Redis): their URLs, failing the
test (never skipping it) when they are not set, and a fresh PostgreSQL database per test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest


def service_url(name: str) -> str:
    """The URL in the environment variable `name`; fails the test when it is unset."""
    url = os.environ.get(name)
    if not url:
        pytest.fail(
            f"{name} is not set: run `scripts/services start` and "
            '`eval "$(scripts/services env)"` first (make test does this)'
        )
    return url


@contextlib.contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """The URL of a new, empty database on the test PostgreSQL server, named
    `prefix_<random>`; dropped afterwards, connections and all."""
    import asyncpg

    base = service_url("CROSSROADS_TEST_POSTGRES_URL")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield base.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(run(f'DROP DATABASE "{name}" WITH (FORCE)'))
