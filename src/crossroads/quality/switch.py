"""The switch report assembled from the files in the data directory: the quality store's
verdicts and answers, the eval ledger's costs, and the production ledger's volume (`report.py`
computes; this module reads). Used by `crossroads report switch` and the dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.ledger.store import LedgerStore
from crossroads.quality.report import production_cost, switch_report
from crossroads.quality.store import EVAL_LEDGER_FILE, QUALITY_FILE, QualityStore

__all__ = ["load_switch_report"]

_EVAL_RECORDS = 1_000_000  # the eval ledger is read whole: it holds replays, not production


async def load_switch_report(
    data_dir: Path,
    production: LedgerStore | None,
    source: str,
    target: str,
    run: str | None = None,
) -> dict[str, Any]:
    """The report for moving `source` to `target` (optionally from one run only). An empty
    report (no items) when nothing was replayed yet; no production volume (so no saving) when
    there is no production ledger."""
    quality_path = data_dir / QUALITY_FILE
    if not quality_path.exists():
        return switch_report(source, target, [], [], [], {})
    store = QualityStore(quality_path)
    try:
        verdicts = store.verdicts(source, target, run)
        runs = {v.run for v in verdicts}
        answers = [a for a in store.answers() if a[0] in runs]
    finally:
        store.close()
    records = []
    eval_path = data_dir / EVAL_LEDGER_FILE
    if eval_path.exists():
        ledger = SQLiteLedgerStore(eval_path, create=False)
        await ledger.open()
        try:
            records = await ledger.recent(_EVAL_RECORDS)
        finally:
            await ledger.close()
    volumes = {}
    if production is not None:
        for name in {v.served for v in verdicts}:
            volumes[name] = await production_cost(production, name)
    return switch_report(source, target, verdicts, answers, records, volumes)
