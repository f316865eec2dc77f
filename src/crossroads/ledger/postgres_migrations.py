"""The PostgreSQL ledger schema as an ordered list of named migrations, mirroring
`ledger/migrations.py` step for step (same names, tables and columns), applied by
`crossroads.postgres.migrate` and recorded in `ledger_migrations`. Never edit or reorder a
migration that has shipped: add a new one at the end."""

from __future__ import annotations

from typing import Any

from crossroads.ledger import postgres_rollups
from crossroads.ledger.sqlite_rollups import TABLES
from crossroads.postgres import PgMigration

__all__ = ["LEDGER_LOCK", "MIGRATIONS", "MIGRATIONS_TABLE", "recreate_rollups"]

MIGRATIONS_TABLE = "ledger_migrations"
LEDGER_LOCK = 0x63_72_6C_64_67  # the advisory lock key: "crldg" in ASCII, to spot in pg_locks


async def m001_create_requests(conn: Any) -> None:
    """One row per `LedgerRecord`, one column per field, named as the field, encoded as in
    SQLite: `created_at` integer microseconds since the Unix epoch (UTC), `cost_usd` integer
    units of 1e-10 USD, `status` the `Status` value, NULL wherever the field is None. Booleans
    are BOOLEAN; every integer is BIGINT so PostgreSQL accepts exactly what SQLite accepts."""
    await conn.execute(
        """
        CREATE TABLE requests (
            request_id TEXT PRIMARY KEY,
            created_at BIGINT NOT NULL,
            endpoint TEXT NOT NULL,
            requested_model TEXT NOT NULL,
            stream BOOLEAN NOT NULL,
            status TEXT NOT NULL,
            served_model TEXT,
            deployment TEXT,
            provider TEXT,
            host_jurisdiction TEXT,
            maker TEXT,
            origin_country TEXT,
            open_weights BOOLEAN,
            prompt_tokens BIGINT NOT NULL,
            cached_tokens BIGINT NOT NULL,
            cache_write_tokens BIGINT NOT NULL,
            completion_tokens BIGINT NOT NULL,
            reasoning_tokens BIGINT NOT NULL,
            cost_usd BIGINT,
            latency_ms DOUBLE PRECISION,
            ttft_ms DOUBLE PRECISION,
            http_status BIGINT NOT NULL,
            error_type TEXT,
            error_message TEXT,
            attempts BIGINT NOT NULL,
            api_key_id TEXT
        );
        COMMENT ON COLUMN requests.created_at IS 'microseconds since 1970-01-01T00:00:00Z';
        COMMENT ON COLUMN requests.cost_usd IS 'units of 1e-10 USD; NULL when unpriced';
        CREATE INDEX requests_created_at ON requests (created_at);
        CREATE INDEX requests_served_model ON requests (served_model, created_at);
        """
    )


async def m002_add_economics_columns(conn: Any) -> None:
    """The team, the baseline model, and two more costs in integer units of 1e-10 USD."""
    await conn.execute(
        """
        ALTER TABLE requests
            ADD COLUMN team_id TEXT,
            ADD COLUMN baseline_model TEXT,
            ADD COLUMN baseline_cost_units BIGINT,
            ADD COLUMN upstream_cost_units BIGINT;
        """
    )


async def m003_create_rollups(conn: Any) -> None:
    """The hourly and daily rollups (`ledger/postgres_rollups.py`), filled from the rows already
    stored. As in SQLite, a later change to their shape ships as a new migration that calls
    `recreate_rollups` again."""
    await recreate_rollups(conn)


async def m004_add_usage_source(conn: Any) -> None:
    """Where each record's token counts came from: 'reported', 'estimated' or NULL (no usage,
    or a row written before), as in SQLite."""
    await conn.execute("ALTER TABLE requests ADD COLUMN usage_source TEXT")


async def m005_rollups_count_estimates(conn: Any) -> None:
    """The rollups gain `estimated_requests` and `estimated_cost_units`: recreated and refilled."""
    await recreate_rollups(conn)


MIGRATIONS: tuple[PgMigration, ...] = (
    m001_create_requests,
    m002_add_economics_columns,
    m003_create_rollups,
    m004_add_usage_source,
    m005_rollups_count_estimates,
)


async def recreate_rollups(conn: Any) -> None:
    """Drops the rollup tables if they exist, creates them as `postgres_rollups` defines them
    now and fills them from the stored requests, unless `requests` still lacks a column the
    rollups read (see `migrations.recreate_rollups`: a later step adds it and fills them)."""
    tables = ", ".join(table for table, _, _ in TABLES)
    await conn.execute(f"DROP TABLE IF EXISTS {tables}")
    await conn.execute(postgres_rollups.create_tables_sql())
    rows = await conn.fetch(
        "SELECT attname::text FROM pg_attribute"
        " WHERE attrelid = 'requests'::regclass AND attnum > 0 AND NOT attisdropped"
    )
    if set(postgres_rollups.SOURCE_COLUMNS) <= {row[0] for row in rows}:
        await postgres_rollups.rebuild(conn)
