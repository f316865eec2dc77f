"""Runs the fault-mix load (tests/support/faultmix.py) at a larger size and prints the figures:
success share, failures by type, latency percentiles, requests past their deadline, and the
ledger's record count. Usage: .venv/bin/python bench/faultmix.py [REQUESTS] [CONCURRENCY]"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.faultmix import DEFAULT_MIX, run_mix


def main() -> None:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    with tempfile.TemporaryDirectory() as tmp:
        report = run_mix(Path(tmp), requests=requests, concurrency=concurrency, deadline=8.0)
    print(f"mix per upstream: {DEFAULT_MIX}")
    print(json.dumps(report.summary(), indent=2))


if __name__ == "__main__":
    main()
