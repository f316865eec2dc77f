"""`make bench` (`bench/run`): starts an nginx mock upstream (and the paced mock), then each
target in turn in front of it (the mock itself, an nginx reverse proxy, Crossroads, and with
PEERS=1 LiteLLM and Portkey), drives each with three workloads in bounded runs, and prints and
saves the figures: `small` (a 350-byte chat request, whole and streamed; wrk), `agent` (a 40 KB
coding agent's request through three ingresses; wrk; bench/agent.py) and `paced` (slow streams,
open-loop, ramped to thousands open at once; bench/paced.py, bench/paced_run.py).

Settings come from flags or the environment: BENCH_DURATION (s per run, default 10),
BENCH_REPS (3), BENCH_WARMUP (2), BENCH_QUICK=1 (3 s, 1 repetition, 1 s warm-up), PEERS=1.
`--profile` instead records a py-spy profile of the gateway under load. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import deps, measure, paced_run, profiling, report, soak, system, targets, wrk
from bench.measure import RunResult
from bench.targets import Target

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
CONNECTIONS = (1, 50, 200)  # latency at 1 and 50; throughput at 50 and 200
AGENT_CONNECTIONS = (1, 50)  # the agent bodies: latency at 1, throughput at 50
WORKLOADS = ("small", "agent", "paced")
PACED_LEVELS = "50,100,250,500,1000,2000,3000,4000"
PACED_LEVELS_QUICK = "50,250,500,1000,2000"
BUSY_LOAD = 0.5  # a 1-minute load average above this before we start: someone else is busy


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    peers = os.environ.get("PEERS", "") not in ("", "0")
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", default=quick, help="3 s runs, 1 repetition")
    p.add_argument("--peers", action="store_true", default=peers, help="also LiteLLM, Portkey")
    p.add_argument("--duration", type=float, help="seconds per run (default 10; quick 3)")
    p.add_argument("--reps", type=int, help="repetitions (default 3; quick 1)")
    p.add_argument("--warmup", type=float, help="warm-up seconds per mode (default 2; quick 1)")
    p.add_argument(
        "--targets",
        help="comma-separated subset of mock,nginx,crossroads,crossroads-2w (two workers),"
        "crossroads-otel, crossroads-otel-sampled (OTLP export on), crossroads-shadow (every "
        "JSON request also shadowed to a candidate), crossroads-base (the code in "
        "$BENCH_BASE_SRC, for before/after ratios), litellm,portkey",
    )
    p.add_argument(
        "--workloads",
        default=os.environ.get("BENCH_WORKLOADS", ",".join(WORKLOADS)),
        help="comma-separated subset of small (350-byte chat, --modes), agent (40 KB agent "
        "bodies, three ingresses), paced (slow streams ramped open-loop)",
    )
    p.add_argument("--modes", default="json,stream", help="the small workload: json, stream")
    p.add_argument(
        "--agent-modes",
        default=",".join(targets.AGENT_MODES),
        help="the agent workload's modes: agent-openai, agent-anthropic, agent-responses",
    )
    p.add_argument(
        "--agent-connections",
        default=",".join(map(str, AGENT_CONNECTIONS)),
        help="wrk connection counts for the agent workload",
    )
    p.add_argument("--paced-levels", help=f"streams to hold open, step by step ({PACED_LEVELS})")
    p.add_argument("--paced-hold", type=float, help="seconds measured per step (6; quick 3)")
    p.add_argument("--paced-ttft", type=float, help="mock's seconds before a stream's first "
                   "byte (2; quick 1)")  # fmt: skip
    p.add_argument("--paced-rate", type=float, default=20.0, help="events per second per stream")
    p.add_argument("--paced-events", type=int, help="content events per stream (200; quick 60)")
    p.add_argument(
        "--paced-stop-ms",
        type=float,
        default=200.0,
        help="end a target's ramp after a step whose event delay p99 exceeds this",
    )
    p.add_argument(
        "--interleave",
        action="store_true",
        help="start every target at once and alternate them within each repetition "
        "(on/off pairs, e.g. --targets crossroads,crossroads-otel)",
    )
    p.add_argument(
        "--connections", default=",".join(map(str, CONNECTIONS)), help="wrk connection counts"
    )
    p.add_argument("--threads", type=int, default=int(_env_float("BENCH_WRK_THREADS", 1)))
    p.add_argument("--timeout", type=float, default=30.0, help="wrk --timeout, seconds")
    p.add_argument(
        "--retries",
        type=int,
        default=int(_env_float("BENCH_RETRIES", 2)),
        help="repeat a run spoiled by other processes' CPU load up to this many times",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=_env_float("BENCH_QUIET_WAIT", 30.0),
        help="before each run, wait up to this many seconds for other processes to go idle",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    p.add_argument(
        "--profile",
        choices=["json", "stream", *targets.AGENT_MODES, targets.PACED],
        help="record a py-spy profile of Crossroads under this load instead of benchmarking "
        "(paced: at --paced-levels' first level)",
    )
    p.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second")
    p.add_argument(
        "--soak",
        type=float,
        metavar="SECONDS",
        help="the memory soak instead of benchmarking: this long under load (bench/soak.py)",
    )
    p.add_argument("--soak-slice", type=float, default=30.0, help="seconds per soak slice")
    args = p.parse_args(argv)
    args.duration = args.duration or _env_float("BENCH_DURATION", 3.0 if args.quick else 10.0)
    args.reps = args.reps or int(_env_float("BENCH_REPS", 1 if args.quick else 3))
    if args.warmup is None:
        args.warmup = _env_float("BENCH_WARMUP", 1.0 if args.quick else 2.0)
    default_targets = "mock,nginx,crossroads,crossroads-2w" + (
        ",litellm,portkey" if args.peers else ""
    )
    args.targets = (args.targets or default_targets).split(",")
    args.workloads = [w for w in args.workloads.split(",") if w]
    unknown = set(args.workloads) - set(WORKLOADS)
    if unknown:
        p.error(f"unknown workloads {', '.join(sorted(unknown))}")
    args.modes = args.modes.split(",") if "small" in args.workloads else []
    args.agent_modes = args.agent_modes.split(",") if "agent" in args.workloads else []
    args.connections = [int(c) for c in args.connections.split(",")]
    args.agent_connections = [int(c) for c in args.agent_connections.split(",")]
    args.paced = "paced" in args.workloads or args.profile == targets.PACED
    args.paced_levels = args.paced_levels or (PACED_LEVELS_QUICK if args.quick else PACED_LEVELS)
    if args.paced_hold is None:
        args.paced_hold = 3.0 if args.quick else 6.0
    if args.paced_ttft is None:
        args.paced_ttft = 1.0 if args.quick else 2.0
    if args.paced_events is None:
        args.paced_events = 60 if args.quick else 200
    return args


def say(message: str) -> None:
    print(message, flush=True)


CROSSROADS_TARGETS = (
    "crossroads",
    "crossroads-2w",
    "crossroads-otel",
    "crossroads-otel-sampled",
    "crossroads-shadow",
    "crossroads-base",
)


class Bench:
    """One benchmark session: the temporary folder, the mock, the RSS sampler, every run."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="crossroads-bench-"))
        self.sampler = system.RssSampler()
        self.runs: list[RunResult] = []
        self.warnings: list[str] = []
        self.answer_checks: dict[str, dict[str, str]] = {}
        self.ledger: dict[str, dict[str, Any]] = {}  # by Crossroads target
        self.crossroads_log: dict[str, dict[str, Any]] = {}
        self.smoke_requests: dict[str, int] = {}
        self.mock: Target | None = None
        self.target_git: dict[str, dict[str, Any]] = {}
        self.paced_mock: Any = None  # the paced mock's ManagedProcess, when it runs
        self.paced_port: int | None = None
        self.paced: dict[str, dict[str, Any]] = {}  # ramp results by target

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        say(f"WARNING: {message}")

    # --- targets --------------------------------------------------------------------------

    def starter(self, name: str) -> Callable[[], Target]:
        assert self.mock is not None
        mock_port, paced = self.mock.port, self.paced_port
        if name == "mock":
            mock = self.mock
            return lambda: mock
        if name == "nginx":
            return lambda: targets.start_nginx_proxy(self.workdir, mock_port, paced)
        if name in CROSSROADS_TARGETS:
            binary = Path(sys.executable).parent / "crossroads"
            workers = 2 if name == "crossroads-2w" else 1
            otel = name.startswith("crossroads-otel")
            base = None
            if name == "crossroads-base":
                src = os.environ.get("BENCH_BASE_SRC")
                if not src:
                    raise SystemExit("crossroads-base needs BENCH_BASE_SRC: a source tree (src/)")
                base = Path(src)
            return lambda: targets.start_crossroads(
                self.workdir,
                mock_port,
                binary,
                workers,
                paced,
                otel=otel,
                ratio=0.1 if name == "crossroads-otel-sampled" else None,
                shadow=name == "crossroads-shadow",
                base_src=base,
            )
        if name == "litellm":
            return lambda: targets.start_litellm(
                self.workdir, mock_port, deps.ensure_litellm(), paced
            )
        if name == "portkey":
            return lambda: targets.start_portkey(
                self.workdir, mock_port, *deps.ensure_portkey(), paced
            )
        raise SystemExit(f"unknown target {name!r}")

    def wrk_modes(self, target: Target) -> list[str]:
        """The small and agent modes this target can serve (a mode it cannot is left out)."""
        return [m for m in (*self.args.modes, *self.args.agent_modes) if target.supports(m)]

    def connections_for(self, mode: str) -> list[int]:
        return self.args.agent_connections if mode in targets.AGENT_MODES else self.args.connections

    def check_answers(self, target: Target, modes: Sequence[str] | None = None) -> list[str]:
        """Checks one answer per mode; returns the modes to measure. A peer whose answer is
        wrong in an agent mode cannot do that workload: it is left out, with a warning."""
        modes = list(self.args.modes if modes is None else modes)
        checks = {mode: targets.check_answer(target, mode) for mode in modes}
        self.smoke_requests[target.name] = len(checks)
        self.answer_checks[target.name] = checks
        keep = []
        for mode, outcome in checks.items():
            if outcome == "ok":
                keep.append(mode)
                continue
            message = f"{target.name} {mode}: the answer is not the mock's: {outcome}"
            if target.name in ("mock", "nginx") or _ours(target.name):
                raise RuntimeError(message)
            if mode in targets.AGENT_MODES:
                self.warn(message + " (it cannot do this workload: not measured)")
                continue
            keep.append(mode)
            self.warn(message + " (measured anyway; read its figures with care)")
        return keep

    def bench_target(self, name: str) -> None:
        say(f"==> {report.LABELS.get(name, name)}: starting")
        # The code measured is the tree as it is now; record it, since the tree may move on.
        self.target_git[name] = git_state()
        started = time.monotonic()
        target = self.starter(name)()
        took = time.monotonic() - started
        say(f"    pid {target.process.pid}, port {target.port}, up in {took:.1f}s")
        try:
            self.sampler.watch(name, target.process.pid)
            modes = self.check_answers(target, self.wrk_modes(target))
            scripts = {
                mode: wrk.write_script(
                    self.workdir / f"wrk-{name}-{mode}.lua",
                    target.body(mode),
                    target.headers.get(mode, {}),
                )
                for mode in modes
            }
            for mode in modes:
                if self.args.warmup > 0:
                    self.runs.append(self.one(target, mode, 50, -1, scripts[mode], warmup=True))
            for rep in range(self.args.reps):
                for mode in modes:
                    for conns in self.connections_for(mode):
                        self.runs.append(self.one(target, mode, conns, rep, scripts[mode]))
            if self.args.paced and self.paced_mock is not None and target.supports(targets.PACED):
                say(f"    paced streams: ramp {self.args.paced_levels} open at once")
                self.paced[name] = paced_run.ramp(self, target, self.paced_mock.pid)
                # Every paced stream is a request the ledger records, warm-up included.
                ramp = self.paced[name]
                self.smoke_requests[name] = (
                    self.smoke_requests.get(name, 0)
                    + ramp.get("started", 0)
                    + ramp.get("warmup", {}).get("completed", 0)
                )
        except RuntimeError as exc:
            if target.process.alive():
                raise
            code = target.process.proc.returncode
            raise RuntimeError(
                f"{exc}\n{name} had exited with status {code}; its log ends:\n"
                + target.process.log_tail()
            ) from None
        finally:
            if target is not self.mock:
                self.stop(target)
            self.sampler.forget(name)
        if _ours(name):
            self.check_ledger(target)

    def bench_interleaved(self) -> None:
        """`--interleave`: every target started at once, then each repetition runs every target
        in turn, the order flipping from one repetition to the next (A B, B A, ...), so the
        runs compared within a repetition saw the same machine. For on/off pairs such as
        crossroads,crossroads-otel on a machine others share."""
        started: list[Target] = []
        try:
            for name in self.args.targets:
                say(f"==> {report.LABELS.get(name, name)}: starting")
                self.target_git[name] = git_state()
                target = self.starter(name)()
                started.append(target)
                say(f"    pid {target.process.pid}, port {target.port}")
                self.sampler.watch(name, target.process.pid)
                self.check_answers(target)
            scripts = {
                (t.name, mode): wrk.write_script(
                    self.workdir / f"wrk-{t.name}-{mode}.lua", t.body(mode), t.headers.get(mode, {})
                )
                for t in started
                for mode in self.args.modes
            }
            if self.args.warmup > 0:
                for t in started:
                    for mode in self.args.modes:
                        script = scripts[(t.name, mode)]
                        self.runs.append(self.one(t, mode, 50, -1, script, warmup=True))
            for rep in range(self.args.reps):
                order = started if rep % 2 == 0 else started[::-1]
                for mode in self.args.modes:
                    for t in order:
                        for conns in self.args.connections:
                            script = scripts[(t.name, mode)]
                            self.runs.append(self.one(t, mode, conns, rep, script))
        finally:
            for t in started:
                if t is not self.mock:
                    self.stop(t)
                self.sampler.forget(t.name)
        for t in started:
            if _ours(t.name):
                self.check_ledger(t)

    def one(
        self,
        target: Target,
        mode: str,
        conns: int,
        rep: int,
        script: Path,
        warmup: bool = False,
        retries: int | None = None,
        seconds: float | None = None,
        wait: bool = True,
        label: str | None = None,
    ) -> RunResult:
        """One run; a noisy one (others busy) is repeated, after waiting for quiet, up to
        `retries` (default --retries) times. Repeated runs stay in `self.runs`, discarded."""
        assert self.mock is not None
        what = label or ("warm-up" if warmup else f"rep {rep + 1}/{self.args.reps}")
        ours = {os.getpid(), *system.tree(target.process.pid), *system.tree(self.mock.process.pid)}
        retries = 0 if warmup else self.args.retries if retries is None else retries
        for attempt in range(1 + retries):
            if wait and not warmup:
                quiet, who = measure.wait_quiet(ours, max_wait=self.args.quiet_wait)
                if not quiet:
                    say(f"    (still busy after {self.args.quiet_wait:g}s: {who}; running anyway)")
            result = measure.run(
                target,
                self.mock,
                mode,
                connections=conns,
                seconds=seconds or (self.args.warmup if warmup else self.args.duration),
                rep=rep,
                script=script,
                sampler=self.sampler,
                threads=self.args.threads,
                timeout_s=self.args.timeout,
            )
            self.print_run(result, mode, conns, what)
            if warmup or not result.noisy:
                return result
            note = (
                f"{target.name} {mode} c={conns} {what}: other processes used "
                f"{result.other_cores:.2f} cores (steal {result.steal_cores:.2f}): "
                f"{', '.join(result.others) or 'short-lived processes'}"
            )
            if result.clock_stepped:
                note += (
                    f"; the wall clock was stepped (wrk counted {result.wrk.seconds:.1f} s "
                    f"in a {result.wall_s:.1f} s window), so its latencies are wrong"
                )
            if attempt < retries:
                say(f"    noisy ({note}); repeating it")
                self.runs.append(dataclasses.replace(result, discarded=True))
            else:
                self.warn(note + "; kept, but it is not a clean measurement")
        return result

    def print_run(self, result: RunResult, mode: str, conns: int, what: str) -> None:
        w = result.wrk
        cpu = result.cpu_ms_per_request
        say(
            f"    {mode:<6} c={conns:<3} {what:<9} {w.rps:>10,.0f} req/s  "
            f"p50 {w.latency_ms.get('p50', 0):8.3f} ms  p99 {w.latency_ms.get('p99', 0):8.3f} ms  "
            f"cpu {cpu if cpu is not None else 0:.4f} ms/req  "
            f"rss {result.server_peak_rss / 2**20:5.0f} MB  errors {w.errors}  "
            f"busy {result.machine_busy_cores:.2f} other {result.other_cores:.2f} cores"
        )

    def stop(self, target: Target) -> None:
        code = target.process.stop(target.stop_signal)
        # uvicorn re-raises the SIGTERM it handled once shutdown is complete: -15 is a clean exit.
        if _ours(target.name) and code not in (0, -signal.SIGTERM):
            self.warn(f"{target.name} exited with status {code} on SIGTERM")

    def check_ledger(self, target: Target) -> None:
        """After SIGTERM (every pending record flushed): one record per request wrk completed,
        warm-ups and the answer checks included. wrk does not count requests cut off when a
        run ends, whose records the gateway writes as cancelled, so a few more is expected."""
        assert target.data_dir is not None
        db = sqlite3.connect(target.data_dir / "ledger.sqlite3")
        try:
            rows = db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
            by_status = dict(db.execute("SELECT status, COUNT(*) FROM requests GROUP BY status"))
            by_stream = dict(db.execute("SELECT stream, COUNT(*) FROM requests GROUP BY stream"))
            priced = db.execute("SELECT COUNT(*) FROM requests WHERE cost_usd > 0").fetchone()[0]
        except sqlite3.Error as exc:
            self.warn(f"cannot read the ledger: {exc}")
            return
        finally:
            db.close()
        mine = [r for r in self.runs if r.target == target.name]
        completed = sum(r.wrk.requests for r in mine)
        expected = completed + self.smoke_requests.get(target.name, 0)
        # At most one request per connection is in flight when a run ends.
        in_flight = sum(r.connections for r in mine)
        ledger = self.ledger[target.name] = {
            "ledger_rows": rows,
            "wrk_completed_plus_checks": expected,
            "difference": rows - expected,
            "in_flight_at_run_ends_max": in_flight,
            "consistent": 0 <= rows - expected <= in_flight,
            "by_status": by_status,
            "by_stream": {str(k): v for k, v in by_stream.items()},
            "priced_rows": priced,
        }
        say(
            f"    ledger: {rows:,} rows; wrk completed {completed:,} + {expected - completed} "
            f"answer checks = {expected:,}; difference {rows - expected:+,} (at most {in_flight} "
            f"were in flight when runs ended); by status {by_status}"
        )
        if not ledger["consistent"]:
            self.warn(
                f"ledger rows minus completed requests is {rows - expected}, outside "
                f"[0, {in_flight}]: records are missing or duplicated"
            )
        log = target.process.log.read_text(errors="replace")
        problems = [line for line in log.splitlines() if "ERROR" in line or "Traceback" in line]
        self.crossroads_log[target.name] = {
            "lines": len(log.splitlines()),
            "error_lines": len(problems),
        }
        if problems:
            self.warn(f"{target.name} logged {len(problems)} error lines, first: {problems[0]}")

    # --- session --------------------------------------------------------------------------

    def run(self) -> Path:
        load_before = system.load_average()
        say("==> Load average before: " + " ".join(f"{v:.2f}" for v in load_before))
        if load_before[0] > BUSY_LOAD:
            self.warn(
                f"1-minute load average is {load_before[0]:.2f} before starting: something else "
                "is using the CPUs; the per-run 'other' column says how much it disturbs runs"
            )
        started = dt.datetime.now(dt.UTC)
        self.sampler.start()
        say(f"==> Working folder {self.workdir}")
        if self.args.paced:
            self.paced_mock, self.paced_port = paced_run.start_mock(self.workdir, self.args)
            say(f"==> paced mock upstream on 127.0.0.1:{self.paced_port} "
                f"(pid {self.paced_mock.pid})")  # fmt: skip
        self.mock = targets.start_mock(self.workdir, self.paced_port)
        self.sampler.watch("mock", self.mock.process.pid)
        say(f"==> nginx mock upstream on 127.0.0.1:{self.mock.port} (pid {self.mock.process.pid})")
        try:
            if self.args.interleave:
                self.bench_interleaved()
            for name in [] if self.args.interleave else self.args.targets:
                try:
                    self.bench_target(name)
                except RuntimeError as exc:
                    if name in ("litellm", "portkey"):
                        self.warn(f"{name} could not be measured: {exc}")
                    else:
                        raise
        finally:
            self.mock.process.stop(signal.SIGQUIT)
            if self.paced_mock is not None:
                self.paced_mock.stop()
            self.sampler.stop()
        load_after = system.load_average()
        say("==> Load average after: " + " ".join(f"{v:.2f}" for v in load_after))
        return self.write(started, load_before, load_after)

    def write(
        self,
        started: dt.datetime,
        load_before: tuple[float, float, float],
        load_after: tuple[float, float, float],
    ) -> Path:
        found = report.cells(self.runs)
        names, modes = self.args.targets, [*self.args.modes, *self.args.agent_modes]
        tables = report.tables(found, names, modes)
        agent_figures = report.agent_figures(found, names)
        paced = paced_run.summarize(self.paced) if self.paced else {}
        if paced:
            tables["paced"] = paced_run.table(paced, report.LABELS)
        added = report.added_latency(found, modes)
        ratios = report.ratios(found, names, modes)
        against_peers = report.peer_ratios(found, names, modes)
        stamp = started.strftime("%Y%m%dT%H%M%SZ")
        RESULTS.mkdir(parents=True, exist_ok=True)
        host = machine()
        noisy = sum(r.noisy for r in self.runs if r.rep >= 0 and not r.discarded)
        discarded = sum(r.discarded for r in self.runs)
        doc = {
            "started_at": started.isoformat(timespec="seconds"),
            "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": host,
            "git": git_state(),
            "git_at_target_start": self.target_git,
            "versions": deps.versions(),
            "settings": {
                k: getattr(self.args, k)
                for k in ("duration", "reps", "warmup", "connections", "threads", "timeout")
            }
            | {"quick": self.args.quick, "peers": self.args.peers, "targets": names}
            | {"workloads": self.args.workloads, "modes": modes}
            | {
                k: getattr(self.args, k)
                for k in (
                    "agent_connections",
                    "paced_levels",
                    "paced_hold",
                    "paced_ttft",
                    "paced_rate",
                    "paced_events",
                    "paced_stop_ms",
                )
            },
            "load_average": {"before": load_before, "after": load_after},
            "answer_checks": self.answer_checks,
            "summary": [c.to_json() for c in found.values()],
            "added_latency_ms": added,
            "ratios": ratios,
            "against_peers": against_peers,
            "agent": agent_figures,
            "paced": {"summary": paced, "ramps": self.paced},
            "ledger_check": self.ledger,
            "crossroads_log": self.crossroads_log,
            "noisy_runs": noisy,
            "discarded_runs": discarded,
            "warnings": self.warnings,
            "runs": [r.to_json() for r in self.runs],
        }
        out = RESULTS / f"{stamp}.json"
        out.write_text(json.dumps(doc, indent=2) + "\n")
        md = [f"Run {stamp}, {host['summary']}", ""]
        say("")
        for header, rows in tables.values():
            if not rows:
                continue
            say(report.text_table(header, rows))
            say("")
            md += [report.markdown_table(header, rows), ""]
        say("Cells: median (min-max) over repetitions; * marks a cell with a noisy run.")
        for mode, diffs in added.items():
            say(f"Crossroads added latency at 1 connection, {mode}: " + ", ".join(
                f"{k.replace('_', ' ')} {v:+.3f} ms" for k, v in diffs.items()
            ))  # fmt: skip
        for line in report.peer_lines(against_peers):
            say(line)
            md.append(line + "  ")
        if self.args.interleave:
            for other in names[1:]:
                for line in report.pair_lines(self.runs, names[0], other, modes):
                    say(line)
                    md.append(line + "  ")
        for line in report.agent_lines(agent_figures):
            say(line)
            md.append(line + "  ")
        if paced:
            explained = (f"Paced: a step passes with no error and the event delay p99 at most "
                f"{paced_run.ADDED_P99_MS:g} ms over the direct-to-mock run at the same step; "
                "streams open = the mean during the best passing step's window, with every "
                "step below it passing too; 'highest step within bound' ignores the steps "
                "below (one noisy step does not hide the rest); 'unfinished after stop' counts "
                "the streams of the overloaded last step still open when the drain gave up "
                "(one stream's length + 15 s after the ramp stopped), not errors within a "
                "measured step.")  # fmt: skip
            say(explained)
            md.append(explained + "  ")
        for name, check in self.ledger.items():
            say(f"Ledger check, {name}: {json.dumps(check)}")
        if noisy:
            say(f"{noisy} run(s) had other processes busy; see the warnings.")
        (RESULTS / f"{stamp}.md").write_text("\n".join(md))
        say(f"==> Results: {out.relative_to(REPO)} (and .md)")
        return out

    def cleanup(self) -> None:
        if self.args.keep:
            say(f"==> Kept {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _ours(name: str) -> bool:
    """Whether a target is Crossroads (one process or several workers)."""
    return name.startswith("crossroads")


def machine() -> dict[str, Any]:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    cores = os.cpu_count() or 0
    return {
        "cpu": cpu,
        "cores": cores,
        "memory_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "summary": f"{cores} cores ({cpu}), {mem_kb / 2**20:.0f} GiB, Linux {platform.release()}",
    }


def git_state() -> dict[str, Any]:
    """The commit measured and whether the working tree differed from it (read-only git)."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return out.stdout.strip()

    changed = [line for line in git("status", "--porcelain").splitlines() if line]
    diff = hashlib.sha256(git("diff", "HEAD").encode()).hexdigest()[:12]
    return {"commit": git("rev-parse", "HEAD"), "changed_files": len(changed), "diff_sha256": diff}


def _raise_fd_limit() -> None:
    """The soft open-files limit up to the hard one; the servers started inherit it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    deps.ensure_debian_tools()
    if args.peers and not (args.profile or args.soak):
        # Installed before any measurement, so a slow first install does not sit between runs.
        if "litellm" in args.targets:
            deps.ensure_litellm()
        if "portkey" in args.targets:
            deps.ensure_portkey()
    _raise_fd_limit()  # thousands of paced streams: two sockets each in a gateway
    if not (args.profile or args.soak):
        say(
            f"==> Targets {', '.join(args.targets)}; workloads {', '.join(args.workloads)}; "
            f"modes {', '.join([*args.modes, *args.agent_modes])}; connections "
            f"{args.connections} (agent {args.agent_connections}); {args.duration:g} s x "
            f"{args.reps} repetition(s), {args.warmup:g} s warm-up per mode"
        )
        if args.paced:
            say(
                f"==> Paced streams: levels {args.paced_levels} open at once, "
                f"{args.paced_hold:g} s measured per level; each stream waits "
                f"{args.paced_ttft:g} s, then {args.paced_events} events at "
                f"{args.paced_rate:g}/s"
            )
    bench = Bench(args)
    try:
        if args.profile:
            profiling.profile(bench, say, RESULTS, git_state(), REPO)
        elif args.soak:
            soak.soak(bench, say, RESULTS, git_state())
        else:
            bench.run()
    finally:
        bench.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
