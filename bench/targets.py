"""The servers wrk is pointed at, each started on 127.0.0.1 in front of the same nginx mock:
the mock itself, nginx as a reverse proxy, Crossroads, and (PEERS=1) LiteLLM and Portkey.
A `Target` says where to send each mode's request and which process tree is the server."""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bench import nginx, payloads
from bench.processes import HOST, ManagedProcess, free_port

MODES = ("json", "stream")
MODELS = {"json": "bench-json", "stream": "bench-sse"}
MOCK_PATHS = {"json": "/json/v1/chat/completions", "stream": "/sse/v1/chat/completions"}
BENCH_KEY = "sk-bench-not-a-secret"
LITELLM_MASTER_KEY = "sk-bench-master-key-not-a-secret"

T = TypeVar("T")


@dataclass
class Target:
    name: str
    label: str
    process: ManagedProcess
    port: int
    paths: dict[str, str]
    models: dict[str, str] = field(default_factory=lambda: dict(MODELS))
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    data_dir: Path | None = None  # Crossroads only: where its ledger is
    stop_signal: int = 15
    answer_checks: dict[str, str] = field(default_factory=dict)  # mode -> "ok" or the problem

    def url(self, mode: str) -> str:
        return f"http://{HOST}:{self.port}{self.paths[mode]}"

    def body(self, mode: str) -> str:
        return payloads.request_body(self.models[mode], stream=mode == "stream")


def start_mock(workdir: Path) -> Target:
    prefix = workdir / "nginx-mock"
    proc, port = nginx.start("nginx mock", prefix, lambda p: nginx.mock_config(prefix, p))
    return Target("mock", "nginx mock, direct", proc, port, dict(MOCK_PATHS), stop_signal=3)


def start_nginx_proxy(workdir: Path, mock_port: int) -> Target:
    prefix = workdir / "nginx-proxy"
    proc, port = nginx.start(
        "nginx proxy", prefix, lambda p: nginx.proxy_config(prefix, p, mock_port)
    )
    return Target("nginx", "nginx reverse proxy", proc, port, dict(MOCK_PATHS), stop_signal=3)


def otel_config(mock_port: int, ratio: float | None = None) -> str:
    """The `telemetry` section of the crossroads-otel target: traces and metrics exported over
    OTLP/HTTP to the nginx mock's sink, every other setting at its default (all requests
    sampled, a 2,048-span queue exported every 5 s or per 512 spans); with `ratio`, only that
    share of the traces is sampled (crossroads-otel-sampled: 0.1)."""
    text = f"telemetry:\n  enabled: true\n  endpoint: http://{HOST}:{mock_port}/otlp\n"
    if ratio is not None:
        text += f"  sampler: parentbased_traceidratio\n  sampler_arg: {ratio}\n"
    return text


def crossroads_config(mock_port: int, shadow: bool = False) -> str:
    """Two providers, one per mock path, each pretending to be the DeepSeek host so that every
    record is priced as in production; the key comes from the environment as the config rules
    demand. `shadow`: every JSON request is also shadowed to a candidate served by the same
    mock (the worst case: sample 1.0), to show that the client's latency does not change."""
    lines = ["embedded: {enabled: false}", "auto_providers: false", "providers:"]
    for mode in MODES:
        lines += [
            f"  {MODELS[mode]}:",
            "    type: openai",
            "    host: deepseek",
            f"    base_url: http://{HOST}:{mock_port}{MOCK_PATHS[mode].removesuffix('/chat/completions')}",
            "    api_key_env: CROSSROADS_BENCH_KEY",
        ]
    lines.append("models:")
    for mode in MODES:
        lines += [
            f"  - name: {MODELS[mode]}",
            f"    provider: {MODELS[mode]}",
            f"    upstream_model: {payloads.UPSTREAM_MODEL}",
            "    catalog_model: deepseek/deepseek-v4-pro",
        ]
    if shadow:
        lines += [
            "  - name: bench-candidate",
            f"    provider: {MODELS['json']}",
            f"    upstream_model: {payloads.UPSTREAM_MODEL}",
            "    catalog_model: deepseek/deepseek-v4-pro",
            "quality:",
            "  shadow:",
            f"    - {{model: {MODELS['json']}, candidate: bench-candidate, sample: 1.0,"
            " max_in_flight: 64, budget_usd: 1000000}",
        ]
    return "\n".join(lines) + "\n"


def start_crossroads(
    workdir: Path,
    mock_port: int,
    crossroads_bin: Path,
    workers: int = 1,
    otel: bool = False,
    ratio: float | None = None,
    shadow: bool = False,
) -> Target:
    """`crossroads serve` as in production: its own process (`workers` > 1: that many forked
    workers on one socket), uvloop + httptools, log level warning, ledger on, embedded model
    off. Port 0: the banner says which port it got. `otel`: with OpenTelemetry export on, to
    the mock's OTLP sink (target `crossroads-otel`). `shadow`: every JSON request shadowed
    (target `crossroads-shadow`)."""
    name = "crossroads" if workers == 1 else f"crossroads-{workers}w"
    if otel:
        name += "-otel" if ratio is None else "-otel-sampled"
    name += "-shadow" if shadow else ""
    home = workdir / name
    data_dir = home / "data"
    data_dir.mkdir(parents=True)
    config = home / "crossroads.yaml"
    config.write_text(
        crossroads_config(mock_port, shadow) + (otel_config(mock_port, ratio) if otel else "")
    )
    argv = [
        str(crossroads_bin), "serve", "--config", str(config), "--port", "0",
        "--data-dir", str(data_dir), "--log-level", "warning", "--workers", str(workers),
    ]  # fmt: skip
    proc = ManagedProcess(
        name, argv, home / "crossroads.log", env={"CROSSROADS_BENCH_KEY": BENCH_KEY}
    )
    port = _wait_for(proc, lambda: _banner_port(proc.log), timeout=60, what="the Crossroads banner")
    _wait_ready(proc, port, "/readyz", timeout=30)
    label = "Crossroads" if workers == 1 else f"Crossroads ({workers} workers)"
    if otel:
        label += ", OTLP export on" if ratio is None else f", OTLP export on, {ratio:.0%} sampled"
    label += ", JSON shadowed" if shadow else ""
    return Target(
        name, label, proc, port, dict.fromkeys(MODES, "/v1/chat/completions"), data_dir=data_dir
    )


def _banner_port(log: Path) -> int | None:
    match = re.search(r"serving on http://[\d.]+:(\d+)", log.read_text(errors="replace"))
    return int(match.group(1)) if match else None


def start_litellm(workdir: Path, mock_port: int, litellm_bin: Path) -> Target:
    """LiteLLM's proxy with 2 workers, no database (so no spend log), production mode, the local
    price map (without it, it downloads one at start and waits) and a master key (recent
    versions refuse to start without one); wrk sends that key."""
    home = workdir / "litellm"
    home.mkdir()
    config = home / "config.yaml"
    lines = ["model_list:"]
    for mode in MODES:
        base = f"http://{HOST}:{mock_port}{MOCK_PATHS[mode].removesuffix('/chat/completions')}"
        lines += [
            f"  - model_name: {MODELS[mode]}",
            "    litellm_params:",
            f"      model: openai/{payloads.UPSTREAM_MODEL}",
            f"      api_base: {base}",
            f"      api_key: {BENCH_KEY}",
        ]
    config.write_text("\n".join(lines) + "\n")
    env = {
        "LITELLM_LOG": "ERROR",
        "LITELLM_MODE": "PRODUCTION",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "NO_DOCS": "True",
        "LITELLM_MASTER_KEY": LITELLM_MASTER_KEY,
    }
    port = free_port()
    argv = [
        str(litellm_bin), "--config", str(config), "--host", HOST, "--port", str(port),
        "--num_workers", "2",
    ]  # fmt: skip
    proc = ManagedProcess("litellm", argv, home / "litellm.log", env=env, cwd=home)
    _wait_ready(proc, port, "/health/liveliness", timeout=240)
    auth = {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"}
    return Target(
        "litellm", "LiteLLM proxy (2 workers)", proc, port,
        dict.fromkeys(MODES, "/v1/chat/completions"),
        headers={mode: dict(auth) for mode in MODES},
    )  # fmt: skip


def start_portkey(workdir: Path, mock_port: int, entry: Path, preload: Path) -> Target:
    """Portkey's gateway on Node, headless, the upstream chosen per request by headers."""
    home = workdir / "portkey"
    home.mkdir()
    port = free_port()
    argv = ["node", "--require", str(preload), str(entry), f"--port={port}", "--headless"]
    proc = ManagedProcess(
        "portkey", argv, home / "portkey.log", env={"NODE_ENV": "production"}, cwd=home
    )
    proc.wait_listening(port, timeout=60)
    headers = {
        mode: {
            "Authorization": f"Bearer {BENCH_KEY}",
            "x-portkey-provider": "openai",
            "x-portkey-custom-host": f"http://{HOST}:{mock_port}"
            + MOCK_PATHS[mode].removesuffix("/chat/completions"),
        }
        for mode in MODES
    }
    return Target(
        "portkey", "Portkey gateway (Node)", proc, port,
        dict.fromkeys(MODES, "/v1/chat/completions"),
        models=dict.fromkeys(MODES, payloads.UPSTREAM_MODEL), headers=headers,
    )  # fmt: skip


def _wait_for(
    proc: ManagedProcess, probe: Callable[[], T | None], *, timeout: float, what: str
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if not proc.alive():
            raise RuntimeError(
                f"{proc.name} exited with {proc.proc.returncode}:\n{proc.log_tail()}"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"{proc.name}: no {what} in {timeout:.0f}s:\n{proc.log_tail()}")
        time.sleep(0.1)


def _wait_ready(proc: ManagedProcess, port: int, path: str, timeout: float) -> None:
    def probe() -> bool | None:
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
            conn.request("GET", path)
            status = conn.getresponse().status
            conn.close()
        except OSError:
            return None
        return True if status == 200 else None

    _wait_for(proc, probe, timeout=timeout, what=f"200 from GET {path}")


def check_answer(target: Target, mode: str) -> str:
    """Sends one request as wrk will and checks the answer carries the mock's content: "ok", or
    what is wrong. Catches a target that answers fast because it answers wrongly."""
    conn = http.client.HTTPConnection(HOST, target.port, timeout=30)
    try:
        headers = {"Content-Type": "application/json", **target.headers.get(mode, {})}
        conn.request("POST", target.paths[mode], target.body(mode).encode(), headers)
        response = conn.getresponse()
        raw = response.read()
        content_type = response.getheader("content-type", "")
    except OSError as exc:
        return f"request failed: {exc!r}"
    finally:
        conn.close()
    if response.status != 200:
        return f"HTTP {response.status}: {raw[:300]!r}"
    try:
        if mode == "json":
            content = json.loads(raw)["choices"][0]["message"]["content"]
            if content != payloads.ANSWER_TEXT.strip():
                return f"unexpected content {content!r}"
            return "ok"
        if not content_type.startswith("text/event-stream"):
            return f"content-type {content_type!r}"
        events = [e for e in raw.decode().split("\n\n") if e.strip()]
        data = [e.removeprefix("data: ") for e in events]
        if data[-1] != "[DONE]":
            return f"last event is {data[-1][:80]!r}, not [DONE]"
        chunks = [json.loads(d) for d in data[:-1]]
        text = "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
        )
        if text != payloads.ANSWER_TEXT:
            return f"streamed content {text!r}"
        if not any(c.get("usage") for c in chunks):
            return "no usage chunk"
        if len(events) != payloads.SSE_CLIENT_EVENTS:
            return f"{len(events)} events, expected {payloads.SSE_CLIENT_EVENTS}"
        return "ok"
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        return f"unreadable answer ({exc!r}): {raw[:300]!r}"
