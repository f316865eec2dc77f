"""A py-spy profile of the running gateway under wrk load: py-spy samples the process from the
outside (no code change, no restart) while wrk drives it, writes collapsed stacks, and this module
sums them into the frames that hold the most samples, by self time and by inclusive time."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# "func (path/to/file.py)" or "func (path/to/file.py:123)"; py-spy's raw format.
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


@dataclass(frozen=True)
class Profile:
    samples: int
    self_top: list[tuple[str, int]]
    inclusive_top: list[tuple[str, int]]
    by_package: list[tuple[str, int]]  # self samples summed per library (crossroads per package)
    collapsed: Path


def package(frame: str) -> str:
    """'read (aiohttp/streams.py)' -> 'aiohttp'; 'cost (crossroads/ledger/pricing.py)' ->
    'crossroads.ledger'; the standard library's modules keep their own name ('asyncio')."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    parts = match.group("file").removesuffix(".py").split("/")
    if parts[0] == "crossroads" and len(parts) > 2:
        return f"crossroads.{parts[1]}"
    return parts[0]


def command(pyspy: Path, pid: int, seconds: float, out: Path, rate: int) -> list[str]:
    """py-spy record, blocking mode (each sample briefly stops the process: exact stacks, a little
    less throughput while profiling), keeping only samples where a thread holds the GIL, that is
    runs Python or C-extension code. `--gil` replaces py-spy's idle detection (`--idle` turns
    that off): on this VM it marked the busy event-loop thread idle and dropped ~98% of samples.
    Time uvloop spends in epoll, and idle worker threads, do not hold the GIL, so they drop out;
    a system call made with the GIL held (uvloop's socket writes) counts, in its Python caller."""
    return [
        str(pyspy), "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
        "--rate", str(rate), "--gil", "--idle", "--format", "raw", "--nolineno",
        "--output", str(out),
    ]  # fmt: skip


def start(pyspy: Path, pid: int, seconds: float, out: Path, rate: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(pyspy, pid, seconds, out, rate),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def short(frame: str) -> str:
    """'read (/x/.venv/lib/python3.11/site-packages/aiohttp/streams.py)' ->
    'read (aiohttp/streams.py)'."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match.group("file")
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match.group('func')} ({path})"


def summarize(collapsed: Path, top: int = 30) -> Profile:
    """Self samples count where a frame is the innermost; inclusive samples count every stack
    a frame appears in, once per stack (recursion does not double count)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [short(f) for f in stack.split(";") if f]
        # The first element names the process or thread, not code.
        if frames and not _FRAME.match(stack.split(";")[0]):
            frames = frames[1:]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        packages[package(frames[-1])] += count
        for frame in set(frames):
            inclusive[frame] += count
    return Profile(
        total, own.most_common(top), inclusive.most_common(top), packages.most_common(), collapsed
    )
