"""Recovery files: ledger records a gateway could not write to its store before it exited, kept
beside the ledger as JSON lines, and written to the store at the next start (`replay`).

A file is `ledger-recovery-<pid>-<UTC time>.jsonl` in the data directory (for PostgreSQL too):
a header line naming the format and the columns, then one record per line, each a JSON array
of the SQLite row encoding (`sqlite_rows.encode`: times in microseconds, costs in integer
units, so nothing is lost to floats). Every line stands alone, so a file cut short by a crash
still yields every complete line. Replaying is idempotent (stores ignore a repeated request
id); a file is deleted only after the store accepted every record in it."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson

from crossroads.ledger.record import LedgerRecord
from crossroads.ledger.sqlite_rows import COLUMNS, decode, encode
from crossroads.ledger.store import LedgerStore

__all__ = ["FORMAT", "PATTERN", "files", "read", "replay", "spill"]

log = logging.getLogger(__name__)

FORMAT = "crossroads-ledger-recovery/1"
PATTERN = "ledger-recovery-*.jsonl"
REPLAY_BATCH = 500


def spill(directory: Path, records: Sequence[LedgerRecord]) -> Path:
    """Writes `records` to a new recovery file in `directory` (created if missing), flushed to
    disk (the file and the directory entry are fsync'd) before it returns the file's path.
    Raises OSError when the disk refuses (full, read-only): then the file may hold some of the
    records, each complete line of which a replay still takes."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = directory / f"ledger-recovery-{os.getpid()}-{stamp}.jsonl"
    header = orjson.dumps({"format": FORMAT, "columns": COLUMNS})
    lines = [header, *(orjson.dumps(encode(record)) for record in records)]
    data = b"\n".join(lines) + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    _sync_directory(directory)
    return path


def files(directory: Path) -> list[Path]:
    """The recovery files in `directory`, oldest first (by name: pid, then time)."""
    if not directory.is_dir():
        return []
    return sorted(directory.glob(PATTERN), key=lambda p: (_stamp(p), p.name))


def read(path: Path) -> tuple[list[LedgerRecord], int]:
    """The records in a recovery file and how many lines could not be read (a line cut short
    by a crash while spilling, a damaged one); those are logged, with their line numbers.
    Raises ValueError when the header is not this format's, OSError when the file cannot be
    read."""
    with path.open("rb") as f:
        lines = f.read().split(b"\n")
    try:
        header = orjson.loads(lines[0])
    except orjson.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path} is not a ledger recovery file ({FORMAT})")
    if tuple(header.get("columns") or ()) != COLUMNS:
        raise ValueError(f"{path} holds columns this version does not write")
    records: list[LedgerRecord] = []
    bad = 0
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        try:
            row = orjson.loads(line)
            if not isinstance(row, list) or len(row) != len(COLUMNS):
                raise ValueError("not a row")
            records.append(decode(tuple(row)))
        except (ValueError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
            bad += 1
            log.error("%s line %d is not a readable record (%s); skipped", path, number, exc)
    return records, bad


async def replay(store: LedgerStore, directory: Path) -> int:
    """Writes the records of every recovery file in `directory` to `store` (open), deleting
    each file once the store accepted all of its records, and returns how many records it
    wrote (repeats included). A file that is not a recovery file of this version is renamed
    `<name>.unreadable` and logged. Raises what `store.write` raises (LedgerStoreError): the
    file it was replaying is then left in place for the next start. Several workers starting
    together may replay the same file; stores ignore repeated request ids, so that is only
    repeated work."""
    total = 0
    for path in files(directory):
        try:
            records, bad = read(path)
        except FileNotFoundError:  # another worker replayed it first
            continue
        except ValueError as exc:
            log.error("%s; left as %s.unreadable", exc, path.name)
            path.replace(path.with_name(path.name + ".unreadable"))
            continue
        for start in range(0, len(records), REPLAY_BATCH):
            await store.write(records[start : start + REPLAY_BATCH])
        total += len(records)
        path.unlink(missing_ok=True)
        _sync_directory(directory)
        log.warning(
            "replayed %d ledger records from %s%s",
            len(records),
            path.name,
            f" ({bad} unreadable lines skipped)" if bad else "",
        )
    return total


def _stamp(path: Path) -> str:
    """The UTC time in a recovery file's name (it sorts as text)."""
    return path.stem.rsplit("-", 1)[-1]


def _sync_directory(directory: Path) -> None:
    """Makes a file's creation or removal in `directory` durable (POSIX: fsync the directory)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
