"""nginx from Debian as the fixed-answer mock upstream and as a plain C reverse proxy: each gets
its own prefix folder, config and pid file, one worker, `daemon off`, and only 127.0.0.1.

How the mock tells the two answers apart: by path. `/json/v1/chat/completions` answers one
`chat.completion`; `/sse/v1/chat/completions` answers the SSE stream. A gateway gets two
providers with those two base URLs, so the mock never looks at the request body.

nginx refuses a config token over 4 KiB and the stream is ~5.3 KB, so the stream is cut into
pieces of at most 3,000 bytes, each held in a `map` variable, and `return 200 "$p0$p1..."` joins
them. Serving a static file instead does not work: nginx's static module answers POST with 405."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from bench import agent, payloads
from bench.processes import HOST, ManagedProcess, free_port

_PIECE = 3000  # bytes per map variable, well under nginx's 4 KiB token limit
_ATTEMPTS = 5  # another process may take a port between free_port() and nginx binding it


def _quote(text: str) -> str:
    """An nginx single-quoted string; nginx reads \\n, \\' and \\\\ back as what they stand for.
    A `$` would start a variable: our payloads never contain one."""
    if "$" in text:
        raise ValueError("nginx would expand '$' in a literal")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _pieces(events: list[str]) -> list[str]:
    pieces, current = [], ""
    for event in events:
        if current and len(current) + len(event) > _PIECE:
            pieces.append(current)
            current = ""
        current += event
    return [*pieces, current]


def _common(prefix: Path) -> str:
    return f"""daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; }}
"""


def _http_common(prefix: Path) -> str:
    temp = prefix / "tmp"
    return f"""    access_log off;
    server_tokens off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_buffer_size 256k;
"""


def _maps(name: str, events: list[str]) -> tuple[str, str]:
    """`map` blocks holding a stream in pieces, and the `$a$b...` that joins them."""
    pieces = _pieces(events)
    maps = "\n".join(
        f"    map $request_method ${name}{i} {{ default {_quote(p)}; }}"
        for i, p in enumerate(pieces)
    )
    return maps, "".join(f"${name}{i}" for i in range(len(pieces)))


def mock_config(prefix: Path, port: int) -> str:
    """`/json/...` a whole answer, `/sse/...` the 22-event stream, `/tools/...` the agent
    workload's streamed tool call (bench/agent.py)."""
    maps, joined = _maps("sse_piece", payloads.sse_events())
    tool_maps, tool_joined = _maps("tool_piece", agent.sse_events())
    return f"""{_common(prefix)}http {{
{_http_common(prefix)}{maps}
{tool_maps}
    server {{
        listen {HOST}:{port} backlog=4096;
        location = /json/v1/chat/completions {{
            default_type application/json;
            return 200 {_quote(payloads.completion_json())};
        }}
        location = /sse/v1/chat/completions {{
            default_type text/event-stream;
            return 200 "{joined}";
        }}
        location ^~ /otlp/v1/ {{
            # An OTLP/HTTP sink for the crossroads-otel target: an empty body is a valid
            # Export*ServiceResponse; the exported batch is read and dropped.
            client_max_body_size 64m;
            default_type application/x-protobuf;
            return 200 "";
        }}
        location = /tools/v1/chat/completions {{
            default_type text/event-stream;
            return 200 "{tool_joined}";
        }}
        location / {{ return 404; }}
    }}
}}
"""


def proxy_config(prefix: Path, port: int, upstream_port: int, paced_port: int | None = None) -> str:
    """A reverse proxy as one would put in front of an LLM host: HTTP/1.1 keep-alive to the
    upstream and no response buffering, so streams are relayed as they arrive. `/paced/` goes
    to the paced mock (bench/paced.py) when there is one."""
    paced = ""
    if paced_port:
        paced = """        location /paced/ {
            proxy_pass http://paced;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 300s;
        }
"""
    paced_upstream = (
        f"""    upstream paced {{
        server {HOST}:{paced_port};
        keepalive 4096;
        keepalive_requests 10000000;
        keepalive_timeout 300s;
    }}
"""
        if paced_port
        else ""
    )
    return f"""{_common(prefix)}http {{
{_http_common(prefix)}    upstream mock {{
        server {HOST}:{upstream_port};
        keepalive 512;
        keepalive_requests 10000000;
        keepalive_timeout 300s;
    }}
{paced_upstream}    server {{
        listen {HOST}:{port} backlog=4096;
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
{paced}    }}
}}
"""


def start(
    name: str, prefix: Path, config_for_port: Callable[[int], str]
) -> tuple[ManagedProcess, int]:
    """Writes the config for a free port into `prefix`, starts nginx and waits until it
    listens (a bad config makes nginx exit at once, with the reason in the error). Returns the
    process (its pid is the master) and the port."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    for directory in ("logs", "tmp"):
        (prefix / directory).mkdir(parents=True, exist_ok=True)
    last_error: Exception | None = None
    for _ in range(_ATTEMPTS):
        port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(config_for_port(port))
        argv = [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "logs/error.log")]
        proc = ManagedProcess(name, argv, prefix / "logs/stdout.log")
        try:
            proc.wait_listening(port, timeout=10)
            return proc, port
        except RuntimeError as exc:
            last_error = exc
            proc.stop()
    raise RuntimeError(f"{name}: nginx would not start: {last_error}")
