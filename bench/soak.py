"""`bench/run --soak SECONDS`: the memory soak. One Crossroads target (`--targets crossroads`
or `crossroads-2w`) under full load for SECONDS, in slices of `--soak-slice` seconds that
alternate JSON and streams at 50 connections, with no pause between them. After each slice
the harness notes the server tree's peak RSS during it; at the end it compares the slices of
the first minute after warm-up with those of the last minute (a leak grows from one to the
other), and checks the ledger as `make bench` does: one record per request, none lost.

Writes `bench/results/soak-<UTC timestamp>.json` (every slice) and prints a summary."""

from __future__ import annotations

import datetime as dt
import json
import signal
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import report, targets, wrk

if TYPE_CHECKING:
    from bench.harness import Bench

MINUTE = 60.0


def soak(bench: Bench, say: Any, results: Path, git: dict[str, Any]) -> Path:
    args = bench.args
    name = next((t for t in args.targets if t.startswith("crossroads")), "crossroads")
    seconds, piece = float(args.soak), float(args.soak_slice)
    bench.sampler.start()
    bench.mock = targets.start_mock(bench.workdir)
    target = bench.starter(name)()
    started = dt.datetime.now(dt.UTC)
    slices: list[dict[str, Any]] = []
    try:
        bench.sampler.watch(name, target.process.pid)
        bench.check_answers(target)
        scripts = {
            mode: wrk.write_script(
                bench.workdir / f"wrk-soak-{mode}.lua",
                target.body(mode),
                target.headers.get(mode, {}),
            )
            for mode in targets.MODES
        }
        for mode in targets.MODES:  # warm-up, not counted in the comparison
            bench.runs.append(bench.one(target, mode, 50, -1, scripts[mode], warmup=True))
        say(f"==> Soak: {name}, {seconds:g} s of load in {piece:g} s slices")
        elapsed, index = 0.0, 0
        while elapsed < seconds:
            mode = targets.MODES[index % len(targets.MODES)]
            run = bench.one(target, mode, 50, index, scripts[mode], retries=0, seconds=piece,
                            wait=False, label=f"soak {elapsed / MINUTE:4.1f} min")  # fmt: skip
            bench.runs.append(run)
            slices.append(
                {
                    "at_s": round(elapsed + run.wall_s, 1),
                    "mode": mode,
                    "rps": round(run.wrk.rps),
                    "requests": run.wrk.requests,
                    "errors": run.wrk.errors,
                    "cpu_ms_per_request": run.cpu_ms_per_request,
                    "peak_rss_mb": round(run.server_peak_rss / 2**20, 1),
                }
            )
            elapsed += run.wall_s
            index += 1
    finally:
        bench.stop(target)
        bench.mock.process.stop(signal.SIGQUIT)
        bench.sampler.stop()
    bench.check_ledger(target)
    summary = _summary(slices)
    doc = {
        "started_at": started.isoformat(timespec="seconds"),
        "target": name,
        "seconds": seconds,
        "slice_seconds": piece,
        "git": git,
        "summary": summary,
        "ledger_check": bench.ledger.get(name),
        "warnings": bench.warnings,
        "slices": slices,
    }
    results.mkdir(parents=True, exist_ok=True)
    out = results / f"soak-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(doc, indent=2) + "\n")
    say("")
    say(report.text_table(list(summary), [[str(v) for v in summary.values()]]))
    say(f"==> Results: {out}")
    return out


def _summary(slices: list[dict[str, Any]]) -> dict[str, Any]:
    """Peak RSS in the first and the last minute of load, and how far it moved."""
    first = [s["peak_rss_mb"] for s in slices if s["at_s"] <= MINUTE] or [slices[0]["peak_rss_mb"]]
    end = slices[-1]["at_s"]
    last = [s["peak_rss_mb"] for s in slices if s["at_s"] > end - MINUTE]
    high = max(s["peak_rss_mb"] for s in slices)
    return {
        "minutes": round(end / MINUTE, 1),
        "requests": sum(s["requests"] for s in slices),
        "rss_first_min_mb": max(first),
        "rss_last_min_mb": max(last),
        "rss_max_mb": high,
        "growth_pct": round(100.0 * (max(last) - max(first)) / max(first), 1),
        "errors": sum(s["errors"] for s in slices),
        **{
            f"rps_median_{mode}": round(
                statistics.median(s["rps"] for s in slices if s["mode"] == mode)
            )
            for mode in sorted({s["mode"] for s in slices})
        },
    }
