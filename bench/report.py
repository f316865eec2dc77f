"""Turns runs into figures: median, min and max over the repetitions of each (target, mode,
connections); the tables printed at the end (plain text and Markdown); the added latency of
Crossroads over the mock and the proxy; and ratios."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.measure import RunResult

LABELS = {
    "mock": "nginx mock (direct)",
    "nginx": "nginx proxy",
    "crossroads": "Crossroads",
    "crossroads-2w": "Crossroads (2 workers)",
    "crossroads-otel": "Crossroads, OTLP export on",
    "crossroads-otel-sampled": "Crossroads, OTLP export on, 10% of traces sampled",
    "crossroads-shadow": "Crossroads, JSON shadowed",
    "litellm": "LiteLLM proxy",
    "portkey": "Portkey gateway",
}


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Spread | None:
        found = [v for v in values if v is not None]
        if not found:
            return None
        return cls(statistics.median(found), min(found), max(found), len(found))

    def to_json(self, digits: int = 3) -> dict[str, float | int]:
        return {
            "median": round(self.median, digits),
            "min": round(self.low, digits),
            "max": round(self.high, digits),
            "n": self.n,
        }


@dataclass(frozen=True)
class Cell:
    """Every repetition of one (target, mode, connections)."""

    target: str
    mode: str
    connections: int
    runs: tuple[RunResult, ...]

    def spread(self, get: Callable[[RunResult], float | None]) -> Spread | None:
        return Spread.of(get(r) for r in self.runs)

    @property
    def rps(self) -> Spread | None:
        return self.spread(lambda r: r.wrk.rps)

    def latency(self, key: str) -> Spread | None:
        return self.spread(lambda r: r.wrk.latency_ms.get(key))

    @property
    def cpu_ms(self) -> Spread | None:
        return self.spread(lambda r: r.cpu_ms_per_request)

    @property
    def errors(self) -> int:
        return sum(r.wrk.errors for r in self.runs)

    @property
    def noisy(self) -> int:
        return sum(r.noisy for r in self.runs)

    @property
    def peak_rss(self) -> int:
        return max(r.server_peak_rss for r in self.runs)

    def to_json(self) -> dict[str, Any]:
        def j(s: Spread | None, digits: int = 3) -> dict[str, float | int] | None:
            return s.to_json(digits) if s else None

        return {
            "target": self.target,
            "mode": self.mode,
            "connections": self.connections,
            "requests_per_s": j(self.rps, 1),
            "latency_ms": {k: j(self.latency(k)) for k in ("p50", "p75", "p90", "p99", "avg")},
            "server_cpu_ms_per_request": j(self.cpu_ms, 4),
            "server_peak_rss_bytes": self.peak_rss,
            "requests": sum(r.wrk.requests for r in self.runs),
            "errors": self.errors,
            "error_detail": {
                "non_2xx": sum(r.wrk.non_2xx for r in self.runs),
                "connect": sum(r.wrk.connect_errors for r in self.runs),
                "read": sum(r.wrk.read_errors for r in self.runs),
                "write": sum(r.wrk.write_errors for r in self.runs),
                "timeout": sum(r.wrk.timeouts for r in self.runs),
            },
            "noisy_runs": self.noisy,
            "machine_busy_cores": j(self.spread(lambda r: r.machine_busy_cores), 2),
        }


def cells(runs: Sequence[RunResult]) -> dict[tuple[str, str, int], Cell]:
    grouped: dict[tuple[str, str, int], list[RunResult]] = {}
    for r in runs:
        if r.rep >= 0 and not r.discarded:
            grouped.setdefault((r.target, r.mode, r.connections), []).append(r)
    return {k: Cell(*k, tuple(v)) for k, v in grouped.items()}


def _fmt(s: Spread | None, digits: int, *, spread: bool = True) -> str:
    if s is None:
        return "-"
    text = f"{s.median:,.{digits}f}"
    if spread and s.n > 1:
        text += f" ({s.low:,.{digits}f}-{s.high:,.{digits}f})"
    return text


def _star(cell: Cell | None) -> str:
    return "*" if cell and cell.noisy else ""


def tables(
    found: dict[tuple[str, str, int], Cell], targets: Sequence[str], modes: Sequence[str]
) -> dict[str, tuple[list[str], list[list[str]]]]:
    """Two tables as (header, rows): throughput and cost; latency."""
    throughput: list[list[str]] = []
    latency: list[list[str]] = []
    for target in targets:
        for mode in modes:
            c1, c50, c200 = (found.get((target, mode, c)) for c in (1, 50, 200))
            if not (c1 or c50 or c200):
                continue
            name = LABELS.get(target, target)
            errors = sum(c.errors for c in (c1, c50, c200) if c)
            rss = max(c.peak_rss for c in (c1, c50, c200) if c)
            throughput.append(
                [
                    name,
                    mode,
                    _fmt(c50.rps if c50 else None, 0) + _star(c50),
                    _fmt(c200.rps if c200 else None, 0) + _star(c200),
                    _fmt(c50.cpu_ms if c50 else None, 3),
                    f"{rss / 2**20:,.0f}",
                    str(errors),
                ]
            )
            latency.append(
                [
                    name,
                    mode,
                    _fmt(c1.latency("p50") if c1 else None, 3) + _star(c1),
                    _fmt(c1.latency("p99") if c1 else None, 3),
                    _fmt(c50.latency("p50") if c50 else None, 2) + _star(c50),
                    _fmt(c50.latency("p99") if c50 else None, 2),
                ]
            )
    return {
        "throughput": (
            [
                "target",
                "mode",
                "req/s @50",
                "req/s @200",
                "server CPU ms/req @50",
                "peak RSS MB",
                "errors",
            ],
            throughput,
        ),
        "latency": (
            ["target", "mode", "p50 ms @1", "p99 ms @1", "p50 ms @50", "p99 ms @50"],
            latency,
        ),
    }


def added_latency(
    found: dict[tuple[str, str, int], Cell], modes: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Crossroads' p50 and p99 at 1 connection minus the mock's and the nginx proxy's (medians
    over repetitions), in ms, per mode."""
    out: dict[str, dict[str, float]] = {}
    for mode in modes:
        ours = found.get(("crossroads", mode, 1))
        if not ours:
            continue
        for base in ("mock", "nginx"):
            other = found.get((base, mode, 1))
            if not other:
                continue
            for key in ("p50", "p99"):
                a, b = ours.latency(key), other.latency(key)
                if a and b:
                    out.setdefault(mode, {})[f"{key}_over_{base}"] = round(a.median - b.median, 3)
    return out


def ratios(
    found: dict[tuple[str, str, int], Cell], targets: Sequence[str], modes: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Each target's throughput at 50 and 200 connections as a share of the nginx proxy's and
    the mock's, and its CPU per request as a multiple of the nginx proxy's."""
    out: dict[str, dict[str, float]] = {}
    for target in targets:
        for mode in modes:
            entry: dict[str, float] = {}
            for conns in (50, 200):
                mine = found.get((target, mode, conns))
                for base in ("nginx", "mock"):
                    theirs = found.get((base, mode, conns))
                    if mine and theirs and mine.rps and theirs.rps and theirs.rps.median:
                        entry[f"rps@{conns}_vs_{base}"] = round(
                            mine.rps.median / theirs.rps.median, 4
                        )
            mine, proxy = found.get((target, mode, 50)), found.get(("nginx", mode, 50))
            if mine and proxy and mine.cpu_ms and proxy.cpu_ms and proxy.cpu_ms.median:
                entry["cpu_per_request_vs_nginx"] = round(
                    mine.cpu_ms.median / proxy.cpu_ms.median, 1
                )
            if entry:
                out[f"{target}/{mode}"] = entry
    return out


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), line]
    for row in rows:
        cells_ = [
            v.ljust(w) if i < 2 else v.rjust(w)
            for i, (v, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  ".join(cells_))
    return "\n".join(out)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |"]
    out.append("| " + " | ".join("---" if i < 2 else "---:" for i in range(len(header))) + " |")
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


PEERS = ("litellm", "portkey")


def peer_ratios(
    found: dict[tuple[str, str, int], Cell], targets: Sequence[str], modes: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Each Crossroads target's requests/s over each peer's, at 50 and 200 connections, and
    the peer's CPU per request over Crossroads' (both > 1 when Crossroads is ahead), from the
    medians of this run."""
    out: dict[str, dict[str, float]] = {}
    for ours in (t for t in targets if t.startswith("crossroads")):
        for peer in (t for t in targets if t in PEERS):
            for mode in modes:
                entry: dict[str, float] = {}
                for conns in (50, 200):
                    a, b = found.get((ours, mode, conns)), found.get((peer, mode, conns))
                    if a and b and a.rps and b.rps and b.rps.median:
                        entry[f"rps@{conns}"] = round(a.rps.median / b.rps.median, 2)
                a, b = found.get((ours, mode, 50)), found.get((peer, mode, 50))
                if a and b and a.cpu_ms and b.cpu_ms and a.cpu_ms.median:
                    entry["cpu_per_request"] = round(b.cpu_ms.median / a.cpu_ms.median, 2)
                if entry:
                    out[f"{ours}/{peer}/{mode}"] = entry
    return out


def peer_lines(ratios: dict[str, dict[str, float]]) -> list[str]:
    """One line per comparison, e.g. `Crossroads vs LiteLLM proxy, json: 18.2x req/s @50`."""
    lines = []
    for key, entry in ratios.items():
        ours, peer, mode = key.split("/")
        figures = ", ".join(
            f"{value:g}x " + ("req/s @" + name[4:] if name.startswith("rps@") else "less CPU/req")
            for name, value in entry.items()
        )
        lines.append(f"{LABELS.get(ours, ours)} vs {LABELS.get(peer, peer)}, {mode}: {figures}")
    return lines


def pair_lines(runs: Sequence[Any], base: str, other: str, modes: Sequence[str]) -> list[str]:
    """`--interleave`: per repetition and mode, `other`'s throughput and CPU per request as
    ratios of `base`'s (the first connection count run), and the median of those ratios."""
    kept = [r for r in runs if r.rep >= 0 and not r.discarded]
    lines = []
    for mode in modes:
        rps, cpu = [], []
        for rep in sorted({r.rep for r in kept}):
            a = [r for r in kept if (r.target, r.mode, r.rep) == (base, mode, rep)]
            b = [r for r in kept if (r.target, r.mode, r.rep) == (other, mode, rep)]
            if not a or not b or not a[0].wrk.rps or not a[0].cpu_ms_per_request:
                continue
            rps.append(b[0].wrk.rps / a[0].wrk.rps)
            cpu.append((b[0].cpu_ms_per_request or 0) / a[0].cpu_ms_per_request)
            lines.append(
                f"pair {rep + 1} {mode}: {other}/{base} req/s {rps[-1]:.3f}, CPU per request "
                f"{cpu[-1]:.3f} ({a[0].cpu_ms_per_request:.4f} -> "
                f"{b[0].cpu_ms_per_request or 0:.4f} ms)"
            )
        if rps:
            lines.append(
                f"median over {len(rps)} pairs, {mode}: req/s x{statistics.median(rps):.3f}, "
                f"CPU per request x{statistics.median(cpu):.3f}"
            )
    return lines


AGENT = ("agent-openai", "agent-anthropic", "agent-responses")


def agent_figures(
    found: dict[tuple[str, str, int], Cell], targets: Sequence[str]
) -> dict[str, dict[str, float]]:
    """The agent workload's derived figures, from the medians of this run: for each target, the
    CPU per request of translating (Anthropic in, and Responses in) over passing through the
    same body (OpenAI in), at 50 connections; and each Crossroads target's requests per second
    over each peer's, per mode, at 1 and 50 connections."""
    out: dict[str, dict[str, float]] = {}
    for target in targets:
        entry: dict[str, float] = {}
        base = found.get((target, "agent-openai", 50))
        for mode in AGENT[1:]:
            mine = found.get((target, mode, 50))
            if base and mine and base.cpu_ms and mine.cpu_ms and base.cpu_ms.median:
                entry[f"cpu_{mode.removeprefix('agent-')}_over_openai"] = round(
                    mine.cpu_ms.median / base.cpu_ms.median, 2
                )
        if entry:
            out[target] = entry
    for ours in (t for t in targets if t.startswith("crossroads")):
        for peer in (t for t in targets if t in PEERS):
            entry = {}
            for mode in AGENT:
                for conns in (1, 50):
                    a, b = found.get((ours, mode, conns)), found.get((peer, mode, conns))
                    if a and b and a.rps and b.rps and b.rps.median:
                        entry[f"{mode}_rps@{conns}"] = round(a.rps.median / b.rps.median, 2)
            if entry:
                out[f"{ours}/{peer}"] = entry
    return out


def agent_lines(figures: dict[str, dict[str, float]]) -> list[str]:
    lines = []
    for key, entry in figures.items():
        if "/" in key:
            ours, peer = key.split("/")
            text = ", ".join(f"{k.replace('_rps@', ' req/s @')} {v:g}x" for k, v in entry.items())
            lines.append(
                f"Agent bodies, {LABELS.get(ours, ours)} over {LABELS.get(peer, peer)}: {text}"
            )
        else:
            text = ", ".join(
                f"{k.removeprefix('cpu_').replace('_over_openai', '')} {v:g}x"
                for k, v in entry.items()
            )
            lines.append(
                f"Agent bodies, {LABELS.get(key, key)}: CPU per request translated over passed "
                f"through (agent-openai), at 50 connections: {text}"
            )
    return lines
