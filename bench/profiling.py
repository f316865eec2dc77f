"""`bench/run --profile MODE`: py-spy on the gateway under one load. For json, stream and the
agent modes, wrk drives that mode at 50 connections; for `paced`, the open-loop client holds the
first of `--paced-levels` streams open and py-spy records once they are all open. Starts the
mock(s) and one Crossroads process, warms up, waits for a quiet machine, records `--duration`
seconds of samples (`--gil --idle`, see docs/performance.md), and prints the self and inclusive
tables; the raw stacks go to `bench/results/profile-<timestamp>-<mode>.txt`."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import deps, measure, paced_run, pyspy, system, targets, wrk

if TYPE_CHECKING:
    from bench.harness import Bench


def profile(bench: Bench, say: Any, results: Path, git: dict[str, Any], repo: Path) -> Path:
    """py-spy on the gateway while wrk drives `mode` at 50 connections."""
    mode = bench.args.profile
    if mode == targets.PACED:
        return profile_paced(bench, say, results, git, repo)
    tool = deps.ensure_pyspy()
    bench.sampler.start()
    bench.mock = targets.start_mock(bench.workdir)
    say(f"==> Profiling the tree at {json.dumps(git)}")
    # The first Crossroads target named (`--targets crossroads-otel` profiles export on).
    name = next((t for t in bench.args.targets if t.startswith("crossroads")), "crossroads")
    target = bench.starter(name)()
    results.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    collapsed = results / f"profile-{stamp}-{mode}.txt"
    try:
        bench.sampler.watch(name, target.process.pid)
        bench.check_answers(target, [mode])
        script = wrk.write_script(
            bench.workdir / f"wrk-{mode}.lua", target.body(mode), target.headers.get(mode, {})
        )
        bench.one(target, mode, 50, -1, script, warmup=True)
        argv = pyspy.command(
            tool, target.process.pid, bench.args.duration, collapsed, bench.args.profile_rate
        )
        ours = {
            os.getpid(),
            *system.tree(target.process.pid),
            *system.tree(bench.mock.process.pid),
        }
        quiet, who = measure.wait_quiet(ours, max_wait=bench.args.quiet_wait)
        if not quiet:
            bench.warn(f"profiling while others are busy: {who}")
        say("==> " + " ".join(argv))
        spy = pyspy.start(tool, target.process.pid, bench.args.duration, collapsed,
                          bench.args.profile_rate)  # fmt: skip
        time.sleep(0.5)  # py-spy attaches before the load starts
        # wrk runs a little longer than py-spy, so every sample is under load.
        run = bench.one(
            target,
            mode,
            50,
            0,
            script,
            retries=0,
            seconds=bench.args.duration + 2,
            wait=False,
            label="profiled",
        )
        out, _ = spy.communicate(timeout=bench.args.duration + 60)
        if spy.returncode != 0:
            raise RuntimeError(f"py-spy failed ({spy.returncode}): {out}")
    finally:
        bench.stop(target)
        bench.mock.process.stop(signal.SIGQUIT)
        bench.sampler.stop()
    show(bench, say, collapsed, repo, f"{run.wrk.rps:,.0f} req/s while profiled")
    return collapsed


def show(bench: Bench, say: Any, collapsed: Path, repo: Path, load: str) -> None:
    prof = pyspy.summarize(collapsed)
    seconds = max(1, round(bench.args.duration))
    say(
        f"\n{prof.samples} samples with the GIL held in {seconds} s at "
        f"{bench.args.profile_rate}/s ({prof.samples / (seconds * bench.args.profile_rate):.0%} "
        f"of the time); {load}. Stacks: {collapsed.relative_to(repo)}"
    )
    tables = (
        ("Self samples by package", prof.by_package),
        ("Top frames by self samples", prof.self_top),
        ("Top frames by inclusive samples", prof.inclusive_top),
    )
    for title, rows in tables:
        say(f"\n{title}:")
        for frame, count in rows[:25]:
            say(f"  {100 * count / max(prof.samples, 1):5.1f}%  {count:6d}  {frame}")


def profile_paced(bench: Bench, say: Any, results: Path, git: dict[str, Any], repo: Path) -> Path:
    """py-spy on one Crossroads process while the paced client holds the first of
    `--paced-levels` streams open (arrivals at the rate that keeps that many open)."""
    args = bench.args
    tool = deps.ensure_pyspy()
    level = int(args.paced_levels.split(",")[0])
    bench.sampler.start()
    bench.paced_mock, bench.paced_port = paced_run.start_mock(bench.workdir, args)
    bench.mock = targets.start_mock(bench.workdir, bench.paced_port)
    say(f"==> Profiling the tree at {json.dumps(git)}; {level} paced streams open")
    target = bench.starter("crossroads")()
    results.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    collapsed = results / f"profile-{stamp}-paced.txt"
    stream_s = args.paced_ttft + args.paced_events / args.paced_rate
    client: subprocess.Popen[str] | None = None
    try:
        body = bench.workdir / "paced-profile-body.json"
        body.write_bytes(paced_run.request_body(target, args))
        # One step: streams reach `level` after one stream's length, then the window (hold)
        # covers py-spy's recording.
        hold = args.duration + 3
        argv = [
            sys.executable, "-m", "bench.paced", "client",
            "--port", str(target.port), "--path", target.paths[targets.PACED],
            "--body", str(body), "--levels", str(level), "--hold", str(hold),
            "--ttft", str(args.paced_ttft), "--rate", str(args.paced_rate),
            "--events", str(args.paced_events),
            "--target-pids", ",".join(map(str, system.tree(target.process.pid))),
            "--mock-pids", str(bench.paced_mock.pid),
        ]  # fmt: skip
        client = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(stream_s + 2)  # warm-up streams, then the ramp to `level` open
        spy = pyspy.start(tool, target.process.pid, args.duration, collapsed, args.profile_rate)
        say("==> " + " ".join(pyspy.command(tool, target.process.pid, args.duration, collapsed,
                                             args.profile_rate)))  # fmt: skip
        out, _ = spy.communicate(timeout=args.duration + 60)
        if spy.returncode != 0:
            raise RuntimeError(f"py-spy failed ({spy.returncode}): {out}")
        log, _ = client.communicate(timeout=stream_s + hold + 120)
        steps = [line for line in log.splitlines() if line.startswith('{"step"')]
        if steps:
            paced_run.print_step(json.loads(steps[-1])["step"])
    finally:
        if client is not None and client.poll() is None:
            client.kill()
            client.wait()
        bench.stop(target)
        bench.mock.process.stop(signal.SIGQUIT)
        bench.paced_mock.stop()
        bench.sampler.stop()
    show(bench, say, collapsed, repo, f"{level} paced streams open")
    return collapsed
