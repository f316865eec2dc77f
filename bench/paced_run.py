"""The paced-streams workload in the harness: starts the paced mock (bench/paced.py) once per
session, and ramps each target with the open-loop client in its own process, then turns the
steps into figures.

Per target and step (a number of streams held open at once): the event delay p99 (from the
mock writing an event to the client reading it) minus the direct-to-mock baseline's at the same
step is the target's *added* latency; a step passes when that is under `ADDED_P99_MS` and no
stream failed. Reported per target: the most streams open at once in a passing step (every
lower step passing too), the added time to first token, the CPU per relayed event, the resident
memory per open stream over the idle figure, and errors; and the mock's and the client's own
CPU per event, which must stay below the gateway's for the figures to mean anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import measure, system
from bench.processes import HOST, ManagedProcess
from bench.targets import PACED, Target

if TYPE_CHECKING:
    import argparse

    from bench.harness import Bench

ADDED_P99_MS = 10.0  # the bound on the gateway's added inter-token latency, p99
PACED_BODY_TEXT = "Think it over, then answer at length."


def start_mock(workdir: Path, args: argparse.Namespace) -> tuple[ManagedProcess, int]:
    home = workdir / "paced-mock"
    home.mkdir(parents=True, exist_ok=True)
    ready = home / "port"
    argv = [
        sys.executable, "-m", "bench.paced", "mock", "--ready-file", str(ready),
        "--ttft", str(args.paced_ttft), "--rate", str(args.paced_rate),
        "--events", str(args.paced_events),
    ]  # fmt: skip
    proc = ManagedProcess("paced mock", argv, home / "mock.log", cwd=Path.cwd())
    deadline = time.monotonic() + 20
    while not (ready.exists() and ready.read_text().strip()):
        if not proc.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the paced mock did not start:\n{proc.log_tail()}")
        time.sleep(0.05)
    port = int(ready.read_text())
    proc.wait_listening(port, timeout=10)
    return proc, port


def request_body(target: Target, args: argparse.Namespace) -> bytes:
    """A small streamed chat request whose text carries the pacing for the mock."""
    from bench.paced import Pace

    pace = Pace(args.paced_ttft, args.paced_rate, args.paced_events)
    body = {
        "model": target.models[PACED],
        "messages": [{"role": "user", "content": f"{PACED_BODY_TEXT} {pace.text()}"}],
        "max_tokens": 4096,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    return json.dumps(body, separators=(",", ":")).encode()


def ramp(bench: Bench, target: Target, mock_pid: int, levels: str | None = None) -> dict[str, Any]:
    """One ramp of `target` with the client process; returns its summary with the steps."""
    args = bench.args
    out = bench.workdir / f"paced-{target.name}.json"
    body = bench.workdir / f"paced-{target.name}-body.json"
    body.write_bytes(request_body(target, args))
    mock_pids = system.tree(mock_pid)
    # Direct to the mock (the baseline), the mock is the target.
    target_pids = mock_pids if target.name == "mock" else system.tree(target.process.pid)
    argv = [
        sys.executable, "-m", "bench.paced", "client",
        "--host", HOST, "--port", str(target.port_for(PACED)), "--path", target.paths[PACED],
        "--body", str(body), "--headers", json.dumps(target.headers.get(PACED, {})),
        "--levels", levels or args.paced_levels, "--hold", str(args.paced_hold),
        "--stop-ms", str(args.paced_stop_ms),
        "--ttft", str(args.paced_ttft), "--rate", str(args.paced_rate),
        "--events", str(args.paced_events),
        "--target-pids", ",".join(map(str, target_pids)),
        "--mock-pids", ",".join(map(str, mock_pids)),
        "--out", str(out),
    ]  # fmt: skip
    ours = {os.getpid(), *target_pids, *mock_pids}
    quiet, who = measure.wait_quiet(ours, max_wait=args.quiet_wait)
    if not quiet:
        print(f"    (still busy after {args.quiet_wait:g}s: {who}; running anyway)", flush=True)
    machine_before = system.MachineCpu.read()
    procs_before = system.process_cpu()
    cpu_before = sum(system.tree_cpu_seconds(p) for p in {target.process.pid, mock_pid})
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    log: list[str] = []
    for line in proc.stdout:
        log.append(line)
        if line.startswith('{"step"'):
            print_step(json.loads(line)["step"])
    code = proc.wait()
    wall = time.monotonic() - started
    if code != 0 or not out.exists():
        raise RuntimeError(f"the paced client failed ({code}):\n{''.join(log[-20:])}")
    machine = system.MachineCpu.read()
    procs_after = system.process_cpu()
    cpu_after = sum(system.tree_cpu_seconds(p) for p in {target.process.pid, mock_pid})
    ours_cpu = (cpu_after - cpu_before) + (machine.reaped_children - machine_before.reaped_children)
    ours_cpu += machine.harness - machine_before.harness
    other = max(0.0, (machine.busy - machine_before.busy) - ours_cpu) / wall
    result: dict[str, Any] = json.loads(out.read_text())
    others = [
        f"{pid} {name} {cpu - procs_before.get(pid, (name, 0.0))[1]:.1f}s"
        for pid, (name, cpu) in procs_after.items()
        if pid not in ours and cpu - procs_before.get(pid, (name, 0.0))[1] > 0.02 * wall
    ]
    result.update(
        target=target.name,
        wall_s=round(wall, 1),
        other_cores=round(other, 3),
        noisy=other > measure.NOISY_CORES,
        others=others[:8],
    )
    if result["noisy"]:
        bench.warn(
            f"{target.name} paced: other processes used {other:.2f} cores during the ramp: "
            + (", ".join(others[:4]) or "short-lived processes")
        )
    warm = result.get("warmup", {})
    if warm.get("errors"):
        bench.warn(f"{target.name} paced warm-up errors: {warm['errors']} {warm['error_detail']}")
    if result.get("errors"):
        print(f"    errors {result['errors']}: {result.get('error_detail')}", flush=True)
    print(f"    ramp ended: {result.get('stop_reason') or 'every level ran'}", flush=True)
    return result


def print_step(step: dict[str, Any]) -> None:
    d, g, t = step["delay_ms"], step["gap_growth_ms"], step["ttft_ms"]
    print(
        f"    paced  open {step['open_mean']:>7,.0f}  {step['events_per_s']:>8,.0f} ev/s  "
        f"delay p50 {_ms(d['p50'])} p99 {_ms(d['p99'])}  gap+ p99 {_ms(g['p99'])}  "
        f"ttft p50 {_ms(t['p50'], 0)}  cpu {_us(step['target_cpu_us_per_event'])} us/ev "
        f"(mock {_us(step['mock_cpu_us_per_event'])}, client "
        f"{_us(step['client_cpu_us_per_event'])})  rss {step['target_rss_bytes'] / 2**20:,.0f} MB"
        f"  errors {step['errors']}",
        flush=True,
    )


def _ms(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:8,.{digits}f} ms"


def _us(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


def summarize(ramps: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per target: the figures at its best passing step, against the baseline (`mock`)."""
    base = {s["level"]: s for s in ramps.get("mock", {}).get("levels", [])}
    out: dict[str, dict[str, Any]] = {}
    for name, ramp_ in ramps.items():
        best: dict[str, Any] | None = None
        verdicts = []
        for step in ramp_.get("levels", []):
            ref = base.get(step["level"])
            p99 = step["delay_ms"]["p99"]
            added = None
            if p99 is not None:
                added = p99 - (ref["delay_ms"]["p99"] or 0.0) if ref and name != "mock" else 0.0
            ttft_added = None
            if ref and step["ttft_ms"]["p50"] is not None and ref["ttft_ms"]["p50"] is not None:
                ttft_added = step["ttft_ms"]["p50"] - ref["ttft_ms"]["p50"]
            passed = (
                step["errors"] == 0
                and added is not None
                and added <= ADDED_P99_MS
                and (ref is not None or name == "mock")
            )
            verdicts.append(
                {
                    "level": step["level"],
                    "open_mean": step["open_mean"],
                    "added_delay_p99_ms": _r(added),
                    "added_ttft_p50_ms": _r(ttft_added),
                    "passed": passed,
                }
            )
            if all(v["passed"] for v in verdicts):  # this step and every one below it
                best = step | {"added_delay_p99_ms": _r(added), "added_ttft_p50_ms": _r(ttft_added)}
        idle = ramp_.get("idle_rss_bytes", 0)
        # Memory per stream as the slope between the least and the most streams held open
        # without errors (latency aside): what one more open stream costs, free of the fixed
        # growth (allocator arenas, caches) of the first streams after the warm-up.
        clean = [s for s in ramp_.get("levels", []) if s["errors"] == 0 and s["open_mean"] > 0]
        slope = None
        if len(clean) >= 2 and clean[-1]["open_mean"] > clean[0]["open_mean"]:
            slope = round(
                (clean[-1]["target_rss_bytes"] - clean[0]["target_rss_bytes"])
                / (clean[-1]["open_mean"] - clean[0]["open_mean"])
            )
        # Errors inside the ramp's steps (a refused, cut or short stream) are the target's; what
        # is counted after the ramp stopped is the streams of the overloaded last step still
        # open when the drain gave up (one stream's length + 15 s), past the bound by then.
        in_steps = sum(s["errors"] for s in ramp_.get("levels", []))
        total = sum(ramp_.get("errors", {}).values())
        entry: dict[str, Any] = {
            "steps": verdicts,
            "errors": ramp_.get("errors", {}),
            "errors_in_steps": in_steps,
            "unfinished_after_stop": max(0, total - in_steps),
            "highest_step_within_bound": max(
                (v["open_mean"] for v in verdicts if v["passed"]), default=0
            ),
            "stop_reason": ramp_.get("stop_reason", ""),
            "noisy": ramp_.get("noisy", False),
            "rss_slope_bytes_per_open_stream": slope,
            "rss_slope_between": [clean[0]["open_mean"], clean[-1]["open_mean"]] if slope else None,
        }
        if best is not None:
            open_ = max(best["open_mean"], 1)
            entry.update(
                max_open_within_bound=best["open_mean"],
                at_level=best["level"],
                added_delay_p99_ms=best["added_delay_p99_ms"],
                added_ttft_p50_ms=best["added_ttft_p50_ms"],
                gap_growth_p99_ms=best["gap_growth_ms"]["p99"],
                cpu_us_per_event=best["target_cpu_us_per_event"],
                mock_cpu_us_per_event=best["mock_cpu_us_per_event"],
                client_cpu_us_per_event=best["client_cpu_us_per_event"],
                rss_bytes=best["target_rss_bytes"],
                rss_per_open_stream_bytes=round(max(0, best["target_rss_bytes"] - idle) / open_),
            )
        else:
            entry["max_open_within_bound"] = 0
        out[name] = entry
    return out


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def table(
    summary: dict[str, dict[str, Any]], labels: dict[str, str]
) -> tuple[list[str], list[list[str]]]:
    header = [
        "target", "streams open (bound met)", "added delay p99 ms", "added TTFT p50 ms",
        "CPU us/event", "RSS KB/open stream", "RSS KB/stream (slope)", "mock / client us/event",
        "highest step within bound", "errors in steps", "unfinished after stop",
    ]  # fmt: skip
    rows = []
    for name, s in summary.items():
        tail = [
            f"{s.get('highest_step_within_bound', 0):,.0f}",
            str(s.get("errors_in_steps", 0)),
            str(s.get("unfinished_after_stop", 0)),
        ]
        if "at_level" not in s:
            rows.append([labels.get(name, name), "0", "-", "-", "-", "-", _kb(s), "-", *tail])
            continue
        rows.append(
            [
                labels.get(name, name) + ("*" if s["noisy"] else ""),
                f"{s['max_open_within_bound']:,.0f}",
                f"{s['added_delay_p99_ms']:.2f}",
                "-" if s["added_ttft_p50_ms"] is None else f"{s['added_ttft_p50_ms']:.1f}",
                "-" if s["cpu_us_per_event"] is None else f"{s['cpu_us_per_event']:.1f}",
                f"{s['rss_per_open_stream_bytes'] / 1024:,.1f}",
                _kb(s),
                f"{_us(s['mock_cpu_us_per_event'])} / {_us(s['client_cpu_us_per_event'])}",
                *tail,
            ]
        )
    return header, rows


def _kb(s: dict[str, Any]) -> str:
    slope = s.get("rss_slope_bytes_per_open_stream")
    if slope is None:
        return "-"
    low, high = s["rss_slope_between"]
    return f"{slope / 1024:,.1f} ({low:,.0f}-{high:,.0f})"
