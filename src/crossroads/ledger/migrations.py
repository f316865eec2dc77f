"""The SQLite ledger schema as an ordered list of named migrations, each applied once.

A migration is a function of a connection, named for what it does; its name is recorded in the
`_migrations` table when it succeeds. Never edit or reorder a migration that has shipped: add a new
one at the end of `MIGRATIONS`. Tested from an empty database.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from crossroads.ledger import sqlite_rollups

__all__ = ["MIGRATIONS", "Migration", "applied", "migrate", "recreate_rollups"]

Migration = Callable[[sqlite3.Connection], None]


def m001_create_requests(conn: sqlite3.Connection) -> None:
    """One row per `LedgerRecord`, one column per field, named as the field.

    Encodings: `created_at` is integer microseconds since the Unix epoch, UTC (exact, compact,
    sorts and ranges as integers); `cost_usd` is an integer count of 1e-10 USD so SUM is exact;
    booleans are 0/1; `status` is the `Status` value; NULL wherever the field is None.
    """
    conn.execute(
        """
        CREATE TABLE requests (
            request_id TEXT PRIMARY KEY,
            created_at INTEGER NOT NULL,    -- microseconds since 1970-01-01T00:00:00Z
            endpoint TEXT NOT NULL,
            requested_model TEXT NOT NULL,
            stream INTEGER NOT NULL,        -- 0 or 1
            status TEXT NOT NULL,           -- 'ok', 'error', 'cancelled'
            served_model TEXT,
            deployment TEXT,
            provider TEXT,
            host_jurisdiction TEXT,
            maker TEXT,
            origin_country TEXT,
            open_weights INTEGER,           -- 0, 1 or NULL
            prompt_tokens INTEGER NOT NULL,
            cached_tokens INTEGER NOT NULL,
            cache_write_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            reasoning_tokens INTEGER NOT NULL,
            cost_usd INTEGER,               -- units of 1e-10 USD; NULL when unpriced
            latency_ms REAL,
            ttft_ms REAL,
            http_status INTEGER NOT NULL,
            error_type TEXT,
            error_message TEXT,
            attempts INTEGER NOT NULL,
            api_key_id TEXT
        )
        """
    )
    conn.execute("CREATE INDEX requests_created_at ON requests (created_at)")
    # Leading served_model serves per-model lookups; created_at second serves them over a window.
    conn.execute("CREATE INDEX requests_served_model ON requests (served_model, created_at)")


def m002_add_economics_columns(conn: sqlite3.Connection) -> None:
    """The team, the baseline model, and two more costs in integer units of 1e-10 USD (named
    `_units` for what they hold): the same tokens priced at the baseline model, and what the
    upstream itself said the request cost. NULL in rows written before; nothing is backfilled."""
    for column in (
        "team_id TEXT",
        "baseline_model TEXT",
        "baseline_cost_units INTEGER",  # units of 1e-10 USD; NULL when there is no baseline
        "upstream_cost_units INTEGER",  # units of 1e-10 USD; NULL when the upstream gave none
    ):
        conn.execute(f"ALTER TABLE requests ADD COLUMN {column}")


def m003_create_rollups(conn: sqlite3.Connection) -> None:
    """The hourly and daily rollups (`ledger/sqlite_rollups.py`), filled from the rows already
    stored. Rollups are derived data: this step creates and fills them as the code currently
    defines them (`recreate_rollups`), so a later change to their shape ships as a new
    migration that calls `recreate_rollups` again, and this step stays correct."""
    recreate_rollups(conn)


def m004_add_usage_source(conn: sqlite3.Connection) -> None:
    """Where each record's token counts came from (`UsageSource`): 'reported' by the upstream,
    'estimated' by the gateway when the upstream reported none; NULL when the request has no
    usage. NULL in rows written before, whose source is unknown; nothing is backfilled."""
    conn.execute("ALTER TABLE requests ADD COLUMN usage_source TEXT")


def m005_rollups_count_estimates(conn: sqlite3.Connection) -> None:
    """The rollups gain `estimated_requests` and `estimated_cost_units`: recreated and refilled
    from the stored rows (old rows, without a usage source, count as not estimated)."""
    recreate_rollups(conn)


MIGRATIONS: tuple[Migration, ...] = (
    m001_create_requests,
    m002_add_economics_columns,
    m003_create_rollups,
    m004_add_usage_source,
    m005_rollups_count_estimates,
)


def recreate_rollups(conn: sqlite3.Connection) -> None:
    """Drops the rollup tables if they exist, creates them as `sqlite_rollups` defines them now
    and fills them from the stored requests. The fill waits while `requests` lacks a column the
    rollups read: on an upgrade across several migrations, an early rollup step runs before the
    step that adds that column, and the later rollup step that comes with the column fills
    them. So every migration that calls this stays correct on every upgrade path."""
    for table, _, _ in sqlite_rollups.TABLES:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    sqlite_rollups.create_tables(conn)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
    if set(sqlite_rollups.SOURCE_COLUMNS) <= columns:
        sqlite_rollups.rebuild(conn)


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> list[str]:
    """Applies the migrations not yet recorded in `_migrations`, in order, and returns the names
    of those it applied (empty when the schema was up to date).

    Each migration runs in its own BEGIN IMMEDIATE transaction together with its `_migrations`
    row, so it is applied entirely or not at all, and a second process migrating the same file at
    the same time waits for the lock and then skips what the first applied. Raises the migration's
    own error (after rolling it back) or sqlite3.Error; raises ValueError if two migrations share
    a name. `conn` must not be inside a transaction.
    """
    names = [m.__name__ for m in migrations]
    if len(set(names)) != len(names):
        raise ValueError("migration names must be unique")
    if conn.in_transaction:
        raise ValueError("migrate() needs a connection outside any transaction")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    done: list[str] = []
    for name, migration in zip(names, migrations, strict=True):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Checked inside the lock, so a concurrent migrator cannot apply it twice.
            if conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone():
                conn.execute("COMMIT")
                continue
            migration(conn)
            conn.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                (name, datetime.now(UTC).isoformat()),
            )
            conn.execute("COMMIT")
        except BaseException:
            # BaseException too: a KeyboardInterrupt mid-migration must not leave it half done.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        done.append(name)
    return done


def applied(conn: sqlite3.Connection) -> list[tuple[str, datetime]]:
    """The recorded migrations as (name, applied_at in UTC), in the order they were applied.
    Raises sqlite3.Error if `_migrations` does not exist yet."""
    rows = conn.execute("SELECT name, applied_at FROM _migrations ORDER BY rowid")
    return [(name, datetime.fromisoformat(at)) for name, at in rows]
