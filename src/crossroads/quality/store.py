"""The quality store: one SQLite file (`quality.sqlite3` in the data directory) holding the
captured requests and answers, the answers of replays and shadow calls, and every verdict with
its reasons. Synchronous; the gateway calls it from a worker thread (`capture.CaptureWriter`),
the CLI directly. WAL mode, so the CLI reads while the gateway writes."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

__all__ = ["EVAL_LEDGER_FILE", "QUALITY_FILE", "Answer", "Captured", "QualityStore", "Verdict"]

QUALITY_FILE = "quality.sqlite3"
EVAL_LEDGER_FILE = "eval-ledger.sqlite3"
"""The ledger of eval traffic (replay, shadow, judge), in the data directory, apart from the
production ledger so that no production report counts it."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS captures (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        request_id TEXT NOT NULL,
        created_at REAL NOT NULL,          -- seconds since the epoch, UTC
        endpoint TEXT NOT NULL,            -- 'chat.completions', 'messages', 'responses'
        api_key_id TEXT,
        team_id TEXT,
        model TEXT NOT NULL,               -- the served name the client asked for
        task TEXT,                         -- the client's x-crossroads-task tag
        request BLOB NOT NULL,             -- the request body, JSON, scrubbed
        response BLOB,                     -- the answer, JSON, scrubbed; NULL for streams
        bytes INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS captures_created_at ON captures (created_at)",
    """CREATE TABLE IF NOT EXISTS answers (
        run TEXT NOT NULL,
        item TEXT NOT NULL,
        model TEXT NOT NULL,
        request_id TEXT,
        status INTEGER NOT NULL,           -- HTTP status; 0 when no answer came
        latency_ms REAL,
        body BLOB,                         -- the answer, JSON
        error TEXT,
        PRIMARY KEY (run, item, model)
    )""",
    """CREATE TABLE IF NOT EXISTS verdicts (
        run TEXT NOT NULL,
        item TEXT NOT NULL,
        baseline TEXT NOT NULL,
        candidate TEXT NOT NULL,
        served TEXT NOT NULL,              -- the served name of the original request
        task TEXT,
        outcome TEXT NOT NULL,             -- the candidate's 'win', 'tie' or 'loss'
        decided_by TEXT NOT NULL,          -- 'checks', 'judge', or 'none'
        tool_agree INTEGER,                -- 1/0; NULL when neither answer called a tool
        reasons BLOB NOT NULL,             -- JSON list of strings
        created_at REAL NOT NULL,
        PRIMARY KEY (run, item, baseline, candidate)
    )""",
)


@dataclass(frozen=True, slots=True)
class Captured:
    id: str  # the item id: "cap-<n>" for a capture, the file's own id for a JSONL item
    endpoint: str
    model: str
    request: dict[str, Any]
    response: dict[str, Any] | None = None
    team_id: str | None = None
    task: str | None = None
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Answer:
    model: str
    status: int
    body: dict[str, Any] | None
    latency_ms: float | None = None
    request_id: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    run: str
    item: str
    baseline: str
    candidate: str
    served: str
    task: str | None
    outcome: str  # 'win' | 'tie' | 'loss', from the candidate's side
    decided_by: str
    tool_agree: bool | None
    reasons: tuple[str, ...]


class QualityStore:
    """Opens (and creates) the file at once. Raises sqlite3.Error on a broken file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        for statement in _SCHEMA:
            self._db.execute(statement)

    def close(self) -> None:
        self._db.close()

    # Captures

    def add_captures(
        self, rows: Sequence[tuple[Any, ...]], *, retention_days: float, max_bytes: int
    ) -> None:
        """Writes captures (columns of `captures` but `id`), then deletes those past the
        retention period and the oldest until the store holds at most `max_bytes`."""
        now = time.time()
        with self._transaction():
            self._db.executemany(
                "INSERT INTO captures (request_id, created_at, endpoint, api_key_id, team_id,"
                " model, task, request, response, bytes) VALUES (?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            self._db.execute(
                "DELETE FROM captures WHERE created_at < ?", (now - retention_days * 86400.0,)
            )
            (total,) = self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM captures").fetchone()
            if total > max_bytes:
                # The newest rows whose running total fits are kept; the rest go.
                self._db.execute(
                    "DELETE FROM captures WHERE id NOT IN (SELECT id FROM (SELECT id,"
                    " SUM(bytes) OVER (ORDER BY id DESC) AS kept FROM captures) WHERE kept <= ?)",
                    (max_bytes,),
                )

    def captures(
        self,
        *,
        model: str | None = None,
        team: str | None = None,
        limit: int | None = None,
    ) -> list[Captured]:
        """Stored captures, oldest first, optionally of one served name and one team."""
        where, params = [], []
        if model is not None:
            where.append("model = ?")
            params.append(model)
        if team is not None:
            where.append("team_id = ?")
            params.append(team)
        sql = "SELECT id, endpoint, model, request, response, team_id, task, created_at"
        sql += " FROM captures" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY id" + (f" LIMIT {int(limit)}" if limit else "")
        return [
            Captured(
                id=f"cap-{row[0]}",
                endpoint=row[1],
                model=row[2],
                request=orjson.loads(row[3]),
                response=orjson.loads(row[4]) if row[4] is not None else None,
                team_id=row[5],
                task=row[6],
                created_at=row[7],
            )
            for row in self._db.execute(sql, params)
        ]

    def capture_stats(self) -> tuple[int, int]:
        """(captures, bytes) held."""
        count, total = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM captures"
        ).fetchone()
        return int(count), int(total)

    # Answers and verdicts

    def answer(self, run: str, item: str, model: str) -> Answer | None:
        row = self._db.execute(
            "SELECT model, status, body, latency_ms, request_id, error FROM answers"
            " WHERE run = ? AND item = ? AND model = ?",
            (run, item, model),
        ).fetchone()
        if row is None:
            return None
        body = orjson.loads(row[2]) if row[2] is not None else None
        return Answer(row[0], row[1], body, row[3], row[4], row[5])

    def save_answer(self, run: str, item: str, answer: Answer) -> None:
        body = orjson.dumps(answer.body) if answer.body is not None else None
        self._db.execute(
            "INSERT OR REPLACE INTO answers VALUES (?,?,?,?,?,?,?,?)",
            (
                run,
                item,
                answer.model,
                answer.request_id,
                answer.status,
                answer.latency_ms,
                body,
                answer.error,
            ),
        )

    def answers(self, run: str | None = None) -> list[tuple[str, str, Answer]]:
        """(run, item, answer) of every stored answer, or of one run."""
        sql = "SELECT run, item, model, status, body, latency_ms, request_id, error FROM answers"
        rows = self._db.execute(sql + (" WHERE run = ?" if run else ""), (run,) if run else ())
        return [
            (
                r[0],
                r[1],
                Answer(r[2], r[3], orjson.loads(r[4]) if r[4] else None, r[5], r[6], r[7]),
            )
            for r in rows
        ]

    def has_verdict(self, run: str, item: str, baseline: str, candidate: str) -> bool:
        return (
            self._db.execute(
                "SELECT 1 FROM verdicts WHERE run = ? AND item = ? AND baseline = ?"
                " AND candidate = ?",
                (run, item, baseline, candidate),
            ).fetchone()
            is not None
        )

    def save_verdict(self, verdict: Verdict) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO verdicts VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                verdict.run,
                verdict.item,
                verdict.baseline,
                verdict.candidate,
                verdict.served,
                verdict.task,
                verdict.outcome,
                verdict.decided_by,
                None if verdict.tool_agree is None else int(verdict.tool_agree),
                orjson.dumps(list(verdict.reasons)),
                time.time(),
            ),
        )

    def verdicts(self, baseline: str, candidate: str, run: str | None = None) -> list[Verdict]:
        sql = (
            "SELECT run, item, baseline, candidate, served, task, outcome, decided_by,"
            " tool_agree, reasons FROM verdicts WHERE baseline = ? AND candidate = ?"
        )
        params: list[str] = [baseline, candidate]
        if run is not None:
            sql += " AND run = ?"
            params.append(run)
        return [
            Verdict(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                r[6],
                r[7],
                None if r[8] is None else bool(r[8]),
                tuple(orjson.loads(r[9])),
            )
            for r in self._db.execute(sql + " ORDER BY run, item", params)
        ]

    def _transaction(self) -> _Tx:
        return _Tx(self._db)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *rest: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")
