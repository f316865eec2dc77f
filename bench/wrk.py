"""wrk, the load generator: a Lua script per target and mode that POSTs the fixed chat request,
one bounded run, and the parsing of wrk's text report (with --latency) into numbers.

wrk is closed-loop: at N connections it keeps exactly N requests in flight, so latency at high N
is mostly queueing; pure overhead shows at 1 connection. It leaves responses slower than
--timeout out of its percentiles and counts them as timeouts."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}  # to milliseconds
_DURATION = r"([\d.]+)(us|ms|s|m|h)"


def write_script(path: Path, body: str, headers: Mapping[str, str]) -> Path:
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = [==[{body}]==]",
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    lines += [f'wrk.headers["{name}"] = [==[{value}]==]' for name, value in headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class WrkResult:
    requests: int  # responses wrk completed, any status
    seconds: float  # wrk's own measured run time
    rps: float
    latency_ms: dict[str, float]  # avg, max, p50, p75, p90, p99
    non_2xx: int  # "Non-2xx or 3xx responses"
    connect_errors: int
    read_errors: int
    write_errors: int
    timeouts: int

    @property
    def errors(self) -> int:
        return (
            self.non_2xx
            + self.connect_errors
            + self.read_errors
            + self.write_errors
            + self.timeouts
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "errors": self.errors}


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse(report: str) -> WrkResult:
    """Reads wrk 4's report. Raises ValueError when the report lacks the summary lines (wrk
    failed to connect at all, or was killed)."""
    done = re.search(r"(\d+) requests in " + _DURATION, report)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", report)
    if not done or not rate:
        raise ValueError(f"not a wrk report:\n{report}")
    latency: dict[str, float] = {}
    line = re.search(r"Latency\s+" + _DURATION + r"\s+\S+\s+" + _DURATION, report)
    if line:
        latency["avg"] = _ms(line.group(1), line.group(2))
        latency["max"] = _ms(line.group(3), line.group(4))
    for pct, value, unit in re.findall(r"^\s+(\d+)%\s+" + _DURATION, report, re.MULTILINE):
        latency[f"p{pct}"] = _ms(value, unit)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", report
    )
    connect, read, write, timeout = (int(v) for v in sockets.groups()) if sockets else (0,) * 4
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", report)
    return WrkResult(
        requests=int(done.group(1)),
        seconds=_ms(done.group(2), done.group(3)) / 1e3,
        rps=float(rate.group(1)),
        latency_ms=latency,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        connect_errors=connect,
        read_errors=read,
        write_errors=write,
        timeouts=timeout,
    )


def run(
    url: str,
    script: Path,
    *,
    connections: int,
    seconds: float,
    threads: int = 1,
    timeout_s: float = 30.0,
) -> WrkResult:
    """One wrk run of `seconds`. Raises RuntimeError if wrk fails or its report is unreadable."""
    wrk = shutil.which("wrk") or "/usr/bin/wrk"
    argv = [
        wrk,
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout_s:g}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + timeout_s + 30, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited with {proc.returncode}: {proc.stderr or proc.stdout}")
    try:
        return parse(proc.stdout)
    except ValueError as exc:
        raise RuntimeError(str(exc)) from None
