"""One measured run: wrk against a target for a bounded time, with the CPU the server, the mock
and wrk used over the same window, the server's peak RSS, and the CPU anybody else used (a run
during which other processes were busy is flagged as noisy, not silently kept)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import system, wrk
from bench.targets import Target

# Above this much CPU (in cores) used by processes that are not ours, or stolen by the
# hypervisor, during a run, the run is flagged noisy. Idle, this machine shows ~0.01.
NOISY_CORES = 0.10


SETTLE_S = 0.2
"""The pause after wrk inside a run's window (`run`)."""


@dataclass(frozen=True)
class RunResult:
    target: str
    mode: str
    connections: int
    rep: int  # 0-based; -1 for a warm-up
    wrk: wrk.WrkResult
    wall_s: float  # the window the CPU figures cover: wrk's run plus the settle pause
    server_cpu_s: float
    mock_cpu_s: float  # the upstream's CPU (0 when the target is the mock itself)
    wrk_cpu_s: float
    machine_busy_cores: float  # everything on the machine, averaged over the window
    other_cores: float  # busy minus ours (server, mock, wrk, harness): somebody else's load
    steal_cores: float
    server_peak_rss: int
    others: tuple[str, ...]  # "pid name cpu_s" of other processes that used CPU
    discarded: bool = False  # noisy, and repeated: left out of the figures, kept for the ledger

    @property
    def cpu_ms_per_request(self) -> float | None:
        return self.server_cpu_s * 1e3 / self.wrk.requests if self.wrk.requests else None

    @property
    def clock_stepped(self) -> bool:
        """wrk's own measure of its run disagrees with the monotonic window by over a second:
        the wall clock it times requests with was stepped (a VM's clock sync), so its
        latencies and rate are wrong (one run on 2026-12-03 reported a p99 of 10.7 s for a 5 s
        run at one connection, and "16.01 s" for it)."""
        return abs(self.wrk.seconds - (self.wall_s - SETTLE_S)) > 1.0

    @property
    def noisy(self) -> bool:
        return (
            self.other_cores > NOISY_CORES or self.steal_cores > NOISY_CORES or self.clock_stepped
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "mode": self.mode,
            "connections": self.connections,
            "rep": self.rep,
            "wrk": self.wrk.to_json(),
            "wall_s": round(self.wall_s, 3),
            "server_cpu_s": round(self.server_cpu_s, 3),
            "server_cpu_ms_per_request": _round(self.cpu_ms_per_request, 4),
            "mock_cpu_s": round(self.mock_cpu_s, 3),
            "wrk_cpu_s": round(self.wrk_cpu_s, 3),
            "machine_busy_cores": round(self.machine_busy_cores, 3),
            "other_cores": round(self.other_cores, 3),
            "steal_cores": round(self.steal_cores, 3),
            "noisy": self.noisy,
            "clock_stepped": self.clock_stepped,
            "discarded": self.discarded,
            "others": list(self.others),
            "server_peak_rss_bytes": self.server_peak_rss,
        }


def wait_quiet(ours: set[int], *, max_wait: float, window: float = 1.0) -> tuple[bool, str]:
    """Waits, up to `max_wait` s, for a `window` during which processes outside `ours` use at
    most NOISY_CORES. Returns (quiet, who was busy at the last look)."""
    deadline = time.monotonic() + max_wait
    while True:
        before, procs = system.MachineCpu.read(), system.process_cpu()
        time.sleep(window)
        after, procs_after = system.MachineCpu.read(), system.process_cpu()
        mine = sum(
            cpu - procs.get(pid, (name, cpu))[1]
            for pid, (name, cpu) in procs_after.items()
            if pid in ours
        )
        other = (after.busy - before.busy) - mine
        if other / window <= NOISY_CORES:
            return True, ""
        busy = sorted(
            (
                (cpu - procs.get(pid, (name, 0.0))[1], f"{pid} {name}")
                for pid, (name, cpu) in procs_after.items()
                if pid not in ours
            ),
            reverse=True,
        )
        who = ", ".join(f"{label} {used / window:.2f}" for used, label in busy[:3] if used > 0)
        if time.monotonic() > deadline:
            return False, who
        time.sleep(1.0)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def run(
    target: Target,
    mock: Target,
    mode: str,
    *,
    connections: int,
    seconds: float,
    rep: int,
    script: Path,
    sampler: system.RssSampler,
    threads: int,
    timeout_s: float,
    settle_s: float = SETTLE_S,
) -> RunResult:
    """Runs wrk once and accounts for the CPU over the same window. The settle pause after wrk
    lets the server finish work it defers (the gateway's ledger batches) inside the window."""
    ours = {os.getpid(), *system.tree(target.process.pid), *system.tree(mock.process.pid)}
    sampler.reset()
    procs_before = system.process_cpu()
    machine_before = system.MachineCpu.read()
    server_before = system.tree_cpu_seconds(target.process.pid)
    mock_before = system.tree_cpu_seconds(mock.process.pid)
    start = time.monotonic()
    result = wrk.run(
        target.url(mode),
        script,
        connections=connections,
        seconds=seconds,
        threads=threads,
        timeout_s=timeout_s,
    )
    time.sleep(settle_s)
    wall = time.monotonic() - start
    server = system.tree_cpu_seconds(target.process.pid) - server_before
    upstream = system.tree_cpu_seconds(mock.process.pid) - mock_before
    if target is mock:
        upstream = 0.0
    machine = system.MachineCpu.read()
    procs_after = system.process_cpu()
    wrk_cpu = machine.reaped_children - machine_before.reaped_children
    harness = machine.harness - machine_before.harness
    busy = machine.busy - machine_before.busy
    other = busy - server - upstream - wrk_cpu - harness
    others = []
    for pid, (name, cpu) in procs_after.items():
        used = cpu - procs_before.get(pid, (name, 0.0))[1]
        if pid not in ours and used > 0.02 * wall:
            others.append(f"{pid} {name} {used:.2f}s")
    return RunResult(
        target=target.name,
        mode=mode,
        connections=connections,
        rep=rep,
        wrk=result,
        wall_s=wall,
        server_cpu_s=server,
        mock_cpu_s=upstream,
        wrk_cpu_s=wrk_cpu,
        machine_busy_cores=busy / wall,
        other_cores=max(other, 0.0) / wall,
        steal_cores=(machine.steal - machine_before.steal) / wall,
        server_peak_rss=sampler.peak(target.name),
        others=tuple(others),
    )
