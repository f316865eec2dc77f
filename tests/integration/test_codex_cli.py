"""The real Codex CLI (`codex exec`, pinned; tests/support/codex.py) through the gateway's
/v1/responses: a shell-tool loop against a DeepSeek-style upstream that reasons before it calls
Codex's `exec_command` tool, and the same loop against the capture server, so a failure says
whether Codex or the gateway moved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from conftest import GatewayFactory
from crossroads.ledger.record import Status
from crossroads.mockupstream import MockUpstreamThread
from support.codex import codex_binary, run_codex
from support.responses_capture import CaptureServer, function_call, message, reasoning

PROOF = "proof.txt"
COMMAND = f"printf 'made by codex' > {PROOF}"
PROMPT = f"Create {PROOF} in the current directory."
REASONING = " ".join(["thinking"] * 6)  # what the mock's `reasoning=6` streams


@pytest.fixture(scope="module")
def codex() -> Path:
    binary = codex_binary()
    if binary is None:
        pytest.fail(
            "Codex CLI is missing: `make test` installs it (scripts/agents install), "
            "or set CROSSROADS_CODEX to a codex binary"
        )
    return binary


def deepseek_config(mock: MockUpstreamThread) -> dict[str, Any]:
    return {
        "embedded": {"enabled": False},
        "providers": {"ds": {"type": "openai", "base_url": mock.url}},
        "models": [{"name": "deepseek", "provider": "ds", "upstream_model": "mock"}],
    }


def tool_messages(body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The assistant turns that called tools, and the tool results, of a chat request."""
    messages = body["messages"]
    calls = [m for m in messages if m["role"] == "assistant" and m.get("tool_calls")]
    return calls, [m for m in messages if m["role"] == "tool"]


def test_codex_runs_a_shell_tool_through_the_gateway(
    gateway: GatewayFactory, mock: MockUpstreamThread, codex: Path, tmp_path: Path
) -> None:
    # Turn 1: reasoning, then a call to Codex's shell tool; turn 2: text, and the upstream
    # refuses (DeepSeek's 400) unless the tool-calling turn came back with its reasoning.
    arguments = quote(json.dumps({"cmd": COMMAND}))
    mock.script(
        [
            f"tool=exec_command,tool_args={arguments},reasoning=6",
            "reasoning=6,require_reasoning_replay",
        ]
    )
    gw = gateway(deepseek_config(mock))
    workdir = tmp_path / "work"
    workdir.mkdir()

    run = run_codex(codex, gw.v1, PROMPT, workdir, model="deepseek")

    assert run.returncode == 0, run.describe()
    assert (workdir / PROOF).read_text() == "made by codex"
    assert "mock answer:" in run.last_message, run.describe()
    first, second = [r["json"] for r in mock.requests()]
    offered = {t["function"]["name"] for t in first["tools"]}
    assert "exec_command" in offered
    (assistant,), (result,) = tool_messages(second)
    (call,) = assistant["tool_calls"]
    assert call["function"]["name"] == "exec_command"
    assert json.loads(call["function"]["arguments"]) == {"cmd": COMMAND}
    assert result["tool_call_id"] == call["id"]
    result_text = json.dumps(result["content"])
    assert "Process exited with code 0" in result_text
    assert assistant.get("reasoning_content") == REASONING  # round-tripped through Codex
    gw.stop()
    records = gw.ledger()
    assert [r.endpoint for r in records] == ["responses", "responses"]
    assert all(r.status is Status.OK and r.stream for r in records)
    assert all(r.requested_model == "deepseek" for r in records)


def test_codex_loop_against_the_capture_server(codex: Path, tmp_path: Path) -> None:
    """The same loop with a server that speaks the Responses API as OpenAI does: pins what Codex
    sends back in turn 2 (reasoning with its encrypted_content, the call, the output)."""
    with CaptureServer() as capture:
        capture.script(
            [reasoning("Writing it.", "sealed-1"), function_call("exec_command", {"cmd": COMMAND})],
            [message("Done.")],
        )
        run = run_codex(codex, capture.v1, PROMPT, tmp_path)
    assert run.returncode == 0, run.describe()
    assert (tmp_path / PROOF).read_text() == "made by codex"
    assert run.last_message.strip() == "Done."
    assert [r.path for r in capture.requests] == ["/v1/responses", "/v1/responses"]
    first, second = (r.json for r in capture.requests)
    assert first["stream"] is True and first["store"] is False
    assert first["include"] == ["reasoning.encrypted_content"]
    assert "previous_response_id" not in second
    echoed = second["input"][len(first["input"]) :]
    assert [item["type"] for item in echoed] == [
        "reasoning",
        "function_call",
        "function_call_output",
    ]
    assert echoed[0]["encrypted_content"] == "sealed-1"
    assert echoed[2]["call_id"] == echoed[1]["call_id"] == "call_capture_1"
    assert "Process exited with code 0" in echoed[2]["output"]
