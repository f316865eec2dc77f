"""`bench/run --profile json|stream`: py-spy on the gateway while wrk drives that mode at 50
connections. Starts the mock and one Crossroads process, warms up, waits for a quiet machine,
records `--duration` seconds of samples (`--gil --idle`, see docs/performance.md), and prints the
self and inclusive tables; the raw stacks go to `bench/results/profile-<timestamp>-<mode>.txt`."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import deps, measure, pyspy, system, targets, wrk

if TYPE_CHECKING:
    from bench.harness import Bench


def profile(bench: Bench, say: Any, results: Path, git: dict[str, Any], repo: Path) -> Path:
    """py-spy on the gateway while wrk drives `mode` at 50 connections."""
    mode = bench.args.profile
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
        bench.check_answers(target)
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
    prof = pyspy.summarize(collapsed)
    seconds = max(1, round(bench.args.duration))
    say(
        f"\n{prof.samples} samples with the GIL held in {seconds} s at "
        f"{bench.args.profile_rate}/s ({prof.samples / (seconds * bench.args.profile_rate):.0%} "
        f"of the time); {run.wrk.rps:,.0f} req/s while profiled. "
        f"Stacks: {collapsed.relative_to(repo)}"
    )
    tables = (
        ("Self samples by package", prof.by_package),
        ("Top frames by self samples", prof.self_top),
        ("Top frames by inclusive samples", prof.inclusive_top),
    )
    for title, rows in tables:
        say(f"\n{title}:")
        for frame, count in rows[:25]:
            say(f"  {100 * count / prof.samples:5.1f}%  {count:6d}  {frame}")
    return collapsed
