"""Runs the real Codex CLI (`codex exec`, npm `@openai/codex`, pinned in the Makefile) against a
Responses endpoint on 127.0.0.1: a throwaway CODEX_HOME with a config.toml naming that endpoint as
a custom provider, every feature that would reach another host turned off, and a proxy that leads
nowhere as a second guard.

`python -m support.codex capture DIR` (with PYTHONPATH=tests) runs Codex through a two-turn
shell-tool loop against the capture server and writes its requests to DIR (tests/fixtures/codex)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CODEX_VERSION", "CodexRun", "codex_binary", "codex_config", "run_codex"]

CODEX_VERSION = "0.171.0"  # keep in step with CODEX_VERSION in the Makefile
KEY_ENV = "CROSSROADS_CODEX_KEY"
# A harness bound, not a performance claim: a two-turn loop takes a few seconds, but a busy
# 2-core CI box can stall a 300 MB binary's first start for much longer.
RUN_TIMEOUT = 300.0
_NOWHERE = "http://127.0.0.1:9"  # the discard port: a proxied request fails at once


def codex_binary() -> Path | None:
    """The pinned Codex CLI: $CROSSROADS_CODEX, else the npm prefix `make test` installs into
    (.venv/agents, beside the running interpreter's venv), else None."""
    override = os.environ.get("CROSSROADS_CODEX")
    if override:
        return Path(override)
    candidate = Path(sys.prefix) / "agents" / "node_modules" / ".bin" / "codex"
    return candidate if candidate.exists() and shutil.which("node") else None


def codex_config(base_url: str, model: str, *, web_search: bool = True) -> str:
    """config.toml for Codex against the gateway at `base_url` (ending in /v1). `web_search`
    False also drops the hosted `web_search` tool Codex offers by default."""
    search = "" if web_search else 'web_search = "disabled"\n'
    return f"""\
model = "{model}"
model_provider = "crossroads"
approval_policy = "never"
# Commands run unsandboxed in a throwaway workdir: Codex's bubblewrap/landlock sandbox needs
# user namespaces that a root container often lacks.
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false
{search}
[features]
plugins = false         # else `git ls-remote https://github.com/openai/plugins.git` at start
remote_plugin = false
apps = false

[analytics]
enabled = false

[feedback]
enabled = false

[model_providers.crossroads]
name = "Crossroads"
base_url = "{base_url}"
env_key = "{KEY_ENV}"
wire_api = "responses"
supports_websockets = false
request_max_retries = 0
stream_max_retries = 0
"""


@dataclass
class CodexRun:
    """What one `codex exec` did: its exit status, output, JSONL events and last message."""

    returncode: int
    stdout: str
    stderr: str
    last_message: str

    def events(self) -> list[dict[str, Any]]:
        """The `--json` events Codex printed on stdout."""
        lines = (line for line in self.stdout.splitlines() if line.startswith("{"))
        return [json.loads(line) for line in lines]

    def describe(self) -> str:
        """Everything, for an assertion message."""
        return f"exit {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def run_codex(
    binary: Path,
    base_url: str,
    prompt: str,
    workdir: Path,
    *,
    model: str = "m",
    key: str = "unused",
    web_search: bool = True,
    timeout: float = RUN_TIMEOUT,
) -> CodexRun:
    """Run `codex exec --json PROMPT` in `workdir` against `base_url` and wait for it. Codex
    gets a fresh CODEX_HOME and HOME (in a temporary directory removed afterwards), only PATH
    from this environment, the key in KEY_ENV, and proxies that lead nowhere for any host but
    127.0.0.1. Raises subprocess.TimeoutExpired (after killing Codex) past `timeout`."""
    with tempfile.TemporaryDirectory(prefix="codex-home-") as home_dir:
        home = Path(home_dir)
        (home / "config.toml").write_text(codex_config(base_url, model, web_search=web_search))
        last = home / "last_message.txt"
        environ = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "CODEX_HOME": str(home),
            KEY_ENV: key,
            "HTTPS_PROXY": _NOWHERE,
            "HTTP_PROXY": _NOWHERE,
            "ALL_PROXY": _NOWHERE,
            "NO_PROXY": "127.0.0.1,localhost",
        }
        command = [
            str(binary), "exec", "--json", "--strict-config", "--skip-git-repo-check",
            "--ephemeral", "--color", "never", "-C", str(workdir), "-o", str(last), prompt,
        ]  # fmt: skip
        done = subprocess.run(
            command,
            env=environ,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        message = last.read_text() if last.exists() else ""
    return CodexRun(done.returncode, done.stdout, done.stderr, message)


def _capture(directory: Path) -> None:
    """One two-turn loop against the capture server: turn 1 answers with reasoning and an
    `exec_command` call, turn 2 with text. Writes both request bodies and the first's headers."""
    from support.responses_capture import CaptureServer, function_call, message, reasoning

    binary = codex_binary()
    if binary is None:
        raise SystemExit("Codex is not installed: run `make test` (or set CROSSROADS_CODEX)")
    with CaptureServer() as capture, tempfile.TemporaryDirectory() as workdir:
        call = function_call("exec_command", {"cmd": "echo hello > hello.txt"})
        capture.script([reasoning("Writing the file."), call], [message("Done.")])
        run = run_codex(binary, capture.v1, "Write hello to hello.txt.", Path(workdir))
        if run.returncode:
            raise SystemExit(run.describe())
        first, second = capture.responses_requests()[:2]
    directory.mkdir(parents=True, exist_ok=True)
    for name, recorded in (("first_request", first), ("second_request", second)):
        (directory / f"{name}.json").write_text(json.dumps(recorded.json, indent=2) + "\n")
    headers = dict(sorted(first.headers.items()))
    (directory / "first_request_headers.json").write_text(json.dumps(headers, indent=2) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "capture":
        raise SystemExit("usage: python -m support.codex capture DIR")
    _capture(Path(sys.argv[2]))
