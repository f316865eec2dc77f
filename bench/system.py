"""What the harness reads from /proc: CPU seconds and resident memory of a process tree, the
machine's busy and stolen CPU time and its load average. Linux only; no process is touched."""

from __future__ import annotations

import os
import resource
import threading
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may hold spaces), or None if the
    process is gone. Index 0 is the state, 1 the parent pid, 11..14 utime stime cutime cstime."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2 :].split()


def tree(root: int) -> list[int]:
    """`root` and every live descendant (nginx workers, uvicorn or node workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def tree_cpu_seconds(root: int) -> float:
    """User plus system CPU of the tree: each live process (all its threads) and the children
    it has already reaped (cutime, cstime), so a worker that exits is not lost."""
    ticks = 0
    for pid in tree(root):
        fields = _stat_fields(pid)
        if fields is not None:
            ticks += sum(int(v) for v in fields[11:15])
    return ticks / _TICK


def tree_rss_bytes(root: int) -> int:
    """Sum of VmRSS over the tree. Pages shared between processes (forked workers) count once
    per process, so this over-states a multi-process server a little."""
    total = 0
    for pid in tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


@dataclass(frozen=True)
class MachineCpu:
    """Cumulative CPU seconds of the whole machine (all cores) from /proc/stat, plus our own
    process's and its reaped children's (wrk) usage, read at one instant."""

    busy: float  # user + nice + system + irq + softirq, every process on the machine
    steal: float  # time the hypervisor gave our virtual cores to someone else
    harness: float  # this Python process, sampler thread included
    reaped_children: float  # children of the harness already waited for: wrk runs

    @classmethod
    def read(cls) -> MachineCpu:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return cls(
            busy=(user + nice + system + irq + softirq) / _TICK,
            steal=steal / _TICK,
            harness=me.ru_utime + me.ru_stime,
            reaped_children=kids.ru_utime + kids.ru_stime,
        )


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


def process_cpu() -> dict[int, tuple[str, float]]:
    """Every live process's own CPU seconds (utime + stime), by pid, with its name: diff two
    readings to name whoever else used the machine during a run."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None:
            continue
        try:
            name = Path(f"/proc/{entry.name}/comm").read_text().strip()
        except (FileNotFoundError, ProcessLookupError):
            continue
        found[int(entry.name)] = (name, (int(fields[11]) + int(fields[12])) / _TICK)
    return found


class RssSampler:
    """Samples the RSS of some process trees every `interval` seconds on a daemon thread and
    keeps the maximum per tree since the last `reset`."""

    def __init__(self, interval: float = 0.1) -> None:
        self._interval = interval
        self._roots: dict[str, int] = {}
        self._peaks: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def watch(self, name: str, root: int) -> None:
        with self._lock:
            self._roots[name] = root
            self._peaks[name] = tree_rss_bytes(root)

    def forget(self, name: str) -> None:
        with self._lock:
            self._roots.pop(name, None)
            self._peaks.pop(name, None)

    def reset(self) -> None:
        with self._lock:
            for name, root in self._roots.items():
                self._peaks[name] = tree_rss_bytes(root)

    def peak(self, name: str) -> int:
        with self._lock:
            return self._peaks.get(name, 0)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                roots = dict(self._roots)
            samples = {name: tree_rss_bytes(root) for name, root in roots.items()}
            with self._lock:
                for name, rss in samples.items():
                    if name in self._peaks:
                        self._peaks[name] = max(self._peaks[name], rss)
