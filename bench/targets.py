"""The servers wrk is pointed at, each started on 127.0.0.1 in front of the same nginx mock:
the mock itself, nginx as a reverse proxy, Crossroads, and (PEERS=1) LiteLLM and Portkey.
A `Target` says where to send each mode's request and which process tree is the server."""

from __future__ import annotations

import http.client
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bench import agent, nginx, payloads
from bench.processes import HOST, ManagedProcess, free_port

MODES = ("json", "stream")  # the small-JSON workload
AGENT_MODES = agent.MODES  # the agent-bodies workload (bench/agent.py)
PACED = "paced"  # the paced-streams workload (bench/paced.py, bench/paced_run.py)
MODELS = {
    "json": "bench-json",
    "stream": "bench-sse",
    **dict.fromkeys(AGENT_MODES, agent.MODEL),
    PACED: "bench-paced",
}
MOCK_PATHS = {
    "json": "/json/v1/chat/completions",
    "stream": "/sse/v1/chat/completions",
    "agent-openai": "/tools/v1/chat/completions",
    PACED: "/paced/v1/chat/completions",
}
# The upstream each gateway model goes to: a path prefix of the nginx mock, or the paced mock.
_UPSTREAM_MODES = ("json", "stream", "agent-openai", PACED)
# Where each wire format's requests go on a gateway.
GATEWAY_PATHS = {
    "json": "/v1/chat/completions",
    "stream": "/v1/chat/completions",
    "agent-openai": "/v1/chat/completions",
    "agent-anthropic": "/v1/messages",
    "agent-responses": "/v1/responses",
    PACED: "/v1/chat/completions",
}
ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}
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
    ports: dict[str, int] = field(default_factory=dict)  # a mode served on another port

    def port_for(self, mode: str) -> int:
        return self.ports.get(mode, self.port)

    def url(self, mode: str) -> str:
        return f"http://{HOST}:{self.port_for(mode)}{self.paths[mode]}"

    def body(self, mode: str) -> str:
        if mode in AGENT_MODES:
            return agent.request_body(mode, self.models[mode])
        return payloads.request_body(self.models[mode], stream=mode == "stream")

    def supports(self, mode: str) -> bool:
        return mode in self.paths


def _upstream_base(mode: str, mock_port: int, paced_port: int | None) -> str:
    """The base URL (ending in /v1) a gateway's model for `mode` sends to."""
    port = paced_port if mode == PACED else mock_port
    return f"http://{HOST}:{port}{MOCK_PATHS[mode].removesuffix('/chat/completions')}"


def _gateway_modes(paced_port: int | None) -> tuple[str, ...]:
    return (*MODES, *AGENT_MODES, *((PACED,) if paced_port else ()))


def start_mock(workdir: Path, paced_port: int | None = None) -> Target:
    """The nginx mock, direct. With the paced mock running, the `paced` mode goes straight to
    it (the baseline the gateways' added latency is measured from)."""
    prefix = workdir / "nginx-mock"
    proc, port = nginx.start("nginx mock", prefix, lambda p: nginx.mock_config(prefix, p))
    paths = {m: MOCK_PATHS[m] for m in (*MODES, "agent-openai")}
    ports = {}
    if paced_port:
        paths[PACED], ports[PACED] = MOCK_PATHS[PACED], paced_port
    return Target("mock", "nginx mock, direct", proc, port, paths, stop_signal=3, ports=ports)


def start_nginx_proxy(workdir: Path, mock_port: int, paced_port: int | None = None) -> Target:
    prefix = workdir / "nginx-proxy"
    proc, port = nginx.start(
        "nginx proxy", prefix, lambda p: nginx.proxy_config(prefix, p, mock_port, paced_port)
    )
    paths = {m: MOCK_PATHS[m] for m in (*MODES, "agent-openai")}
    if paced_port:
        paths[PACED] = MOCK_PATHS[PACED]
    return Target("nginx", "nginx reverse proxy", proc, port, paths, stop_signal=3)


SHADOW_SAMPLE = float(os.environ.get("BENCH_SHADOW_SAMPLE", "0.1"))


def otel_config(mock_port: int, ratio: float | None = None) -> str:
    """The `telemetry` section of the crossroads-otel target: traces and metrics exported over
    OTLP/HTTP to the nginx mock's sink, every other setting at its default (all requests
    sampled, a 2,048-span queue exported every 5 s or per 512 spans); with `ratio`, only that
    share of the traces is sampled (crossroads-otel-sampled: 0.1)."""
    text = f"telemetry:\n  enabled: true\n  endpoint: http://{HOST}:{mock_port}/otlp\n"
    if ratio is not None:
        text += f"  sampler: parentbased_traceidratio\n  sampler_arg: {ratio}\n"
    return text


def crossroads_config(
    mock_port: int,
    paced_port: int | None = None,
    *,
    shadow: bool = False,
    catalog_model: str = "deepseek/deepseek-v4-pro",
) -> str:
    """One provider per upstream (a path of the nginx mock, or the paced mock), each
    pretending to be the DeepSeek host so that every record is priced as in production; the key
    comes from the environment as the config rules demand. The three agent modes share one
    model: only the ingress differs. `shadow`: JSON requests are also shadowed to a candidate
    served by the same mock, a `BENCH_SHADOW_SAMPLE` share of them (default 0.1; 1.0 is the
    worst case, every request's work done twice on the same CPU)."""
    upstreams = [m for m in _UPSTREAM_MODES if m != PACED or paced_port]
    lines = ["embedded: {enabled: false}", "auto_providers: false", "providers:"]
    for mode in upstreams:
        lines += [
            f"  {MODELS[mode]}:",
            "    type: openai",
            "    host: deepseek",
            f"    base_url: {_upstream_base(mode, mock_port, paced_port)}",
            "    api_key_env: CROSSROADS_BENCH_KEY",
        ]
    lines.append("models:")
    for mode in upstreams:
        lines += [
            f"  - name: {MODELS[mode]}",
            f"    provider: {MODELS[mode]}",
            f"    upstream_model: {payloads.UPSTREAM_MODEL}",
            f"    catalog_model: {catalog_model}",
        ]
    if shadow:
        lines += [
            "  - name: bench-candidate",
            f"    provider: {MODELS['json']}",
            f"    upstream_model: {payloads.UPSTREAM_MODEL}",
            f"    catalog_model: {catalog_model}",
            "quality:",
            "  shadow:",
            f"    - {{model: {MODELS['json']}, candidate: bench-candidate,"
            f" sample: {SHADOW_SAMPLE}, max_in_flight: 64, budget_usd: 1000000}}",
        ]
    return "\n".join(lines) + "\n"


def start_crossroads(
    workdir: Path,
    mock_port: int,
    crossroads_bin: Path,
    workers: int = 1,
    paced_port: int | None = None,
    *,
    otel: bool = False,
    ratio: float | None = None,
    shadow: bool = False,
    base_src: Path | None = None,
) -> Target:
    """`crossroads serve` as in production: its own process (`workers` > 1: that many forked
    workers on one socket), uvloop + httptools, log level warning, ledger on, embedded model
    off. Port 0: the banner says which port it got. `otel`: with OpenTelemetry export on, to
    the mock's OTLP sink (target `crossroads-otel`). `shadow`: every JSON request shadowed
    (target `crossroads-shadow`). `base_src`: the gateway's code from that source tree instead
    (target `crossroads-base`, `BENCH_BASE_SRC`: a checkout of an earlier commit, measured in
    the same run for before/after ratios; its catalog may predate today's model ids, so its
    records are priced as DeepSeek V3.2 when it does not know V4 Pro)."""
    name = "crossroads" if workers == 1 else f"crossroads-{workers}w"
    if otel:
        name += "-otel" if ratio is None else "-otel-sampled"
    name += "-shadow" if shadow else ""
    name += "-base" if base_src is not None else ""
    home = workdir / name
    data_dir = home / "data"
    data_dir.mkdir(parents=True)
    config = home / "crossroads.yaml"
    model = "deepseek/deepseek-v4-pro"
    if base_src is not None and "deepseek-v4-pro" not in _base_models(base_src):
        model = "deepseek/deepseek-v3.2"  # a base from before the late-2026 catalog
    config.write_text(
        crossroads_config(mock_port, paced_port, shadow=shadow, catalog_model=model)
        + (otel_config(mock_port, ratio) if otel else "")
    )
    argv = [
        str(crossroads_bin), "serve", "--config", str(config), "--port", "0",
        "--data-dir", str(data_dir), "--log-level", "warning", "--workers", str(workers),
    ]  # fmt: skip
    env = {"CROSSROADS_BENCH_KEY": BENCH_KEY}
    if base_src is not None:
        env["PYTHONPATH"] = str(base_src)
    proc = ManagedProcess(name, argv, home / "crossroads.log", env=env)
    port = _wait_for(proc, lambda: _banner_port(proc.log), timeout=60, what="the Crossroads banner")
    _wait_ready(proc, port, "/readyz", timeout=30)
    label = "Crossroads" if workers == 1 else f"Crossroads ({workers} workers)"
    if otel:
        label += ", OTLP export on" if ratio is None else f", OTLP export on, {ratio:.0%} sampled"
    label += ", JSON shadowed" if shadow else ""
    label += f" (base: {base_src})" if base_src is not None else ""
    modes = _gateway_modes(paced_port)
    return Target(
        name, label, proc, port, {m: GATEWAY_PATHS[m] for m in modes}, data_dir=data_dir,
        headers={"agent-anthropic": dict(ANTHROPIC_HEADERS)},
    )  # fmt: skip


def _base_models(src: Path) -> str:
    """The base tree's catalog of models, as text (empty when it has none there)."""
    models = src / "crossroads/catalog/data/models.yaml"
    return models.read_text() if models.exists() else ""


def _banner_port(log: Path) -> int | None:
    match = re.search(r"serving on http://[\d.]+:(\d+)", log.read_text(errors="replace"))
    return int(match.group(1)) if match else None


def start_litellm(
    workdir: Path, mock_port: int, litellm_bin: Path, paced_port: int | None = None
) -> Target:
    """LiteLLM's proxy with 2 workers, no database (so no spend log), production mode, the local
    price map (without it, it downloads one at start and waits) and a master key (recent
    versions refuse to start without one); wrk sends that key."""
    home = workdir / "litellm"
    home.mkdir()
    config = home / "config.yaml"
    lines = ["model_list:"]
    for mode in (m for m in _UPSTREAM_MODES if m != PACED or paced_port):
        base = _upstream_base(mode, mock_port, paced_port)
        lines += [
            f"  - model_name: {MODELS[mode]}",
            "    litellm_params:",
            f"      model: openai/{payloads.UPSTREAM_MODEL}",
            f"      api_base: {base}",
            f"      api_key: {BENCH_KEY}",
        ]
    # Anthropic Messages in: through Chat Completions upstream, not the Responses API.
    lines += ["litellm_settings:", "  use_chat_completions_url_for_anthropic_messages: true"]
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
    modes = _gateway_modes(paced_port)
    headers = {mode: dict(auth) for mode in modes}
    headers["agent-anthropic"] |= {"x-api-key": LITELLM_MASTER_KEY, **ANTHROPIC_HEADERS}
    return Target(
        "litellm", "LiteLLM proxy (2 workers)", proc, port,
        {m: GATEWAY_PATHS[m] for m in modes}, headers=headers,
    )  # fmt: skip


def start_portkey(
    workdir: Path, mock_port: int, entry: Path, preload: Path, paced_port: int | None = None
) -> Target:
    """Portkey's gateway on Node, headless, the upstream chosen per request by headers."""
    home = workdir / "portkey"
    home.mkdir()
    port = free_port()
    argv = ["node", "--require", str(preload), str(entry), f"--port={port}", "--headless"]
    proc = ManagedProcess(
        "portkey", argv, home / "portkey.log", env={"NODE_ENV": "production"}, cwd=home
    )
    proc.wait_listening(port, timeout=60)
    modes = _gateway_modes(paced_port)
    headers = {
        mode: {
            "Authorization": f"Bearer {BENCH_KEY}",
            "x-portkey-provider": "openai",
            "x-portkey-custom-host": _upstream_base(
                "agent-openai" if mode in AGENT_MODES else mode, mock_port, paced_port
            ),
        }
        for mode in modes
    }
    headers["agent-anthropic"] |= ANTHROPIC_HEADERS
    return Target(
        "portkey", "Portkey gateway (Node)", proc, port,
        {m: GATEWAY_PATHS[m] for m in modes},
        models=dict.fromkeys(modes, payloads.UPSTREAM_MODEL), headers=headers,
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
    conn = http.client.HTTPConnection(HOST, target.port_for(mode), timeout=30)
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
        if mode in AGENT_MODES:
            if not content_type.startswith("text/event-stream"):
                return f"content-type {content_type!r}: {raw[:300]!r}"
            return agent.check(mode, raw.decode())
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
