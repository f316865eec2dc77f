"""The real Codex CLI (`codex exec`, pinned; tests/support/codex.py) through the gateway's
/v1/responses: a shell-tool loop against a DeepSeek-style and an Anthropic upstream, each
reasoning before it calls Codex's `exec_command` tool; and the same loop against the capture
server, so a failure says whether Codex or the gateway moved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx
import pytest

from conftest import GatewayFactory
from crossroads.ledger.record import Status
from crossroads.mockupstream import MockUpstreamThread
from support.codex import codex_binary, run_codex
from support.responses_capture import CaptureServer, function_call, message, reasoning

JSON = dict[str, Any]
FIXTURES = Path(__file__).parent.parent / "fixtures" / "codex"
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


def upstream_config(mock: MockUpstreamThread) -> dict[str, Any]:
    base = mock.url  # ends in /v1; the Anthropic adapter wants the host root
    return {
        "embedded": {"enabled": False},
        "providers": {
            "ds": {"type": "openai", "base_url": base},
            "anth": {"type": "anthropic", "base_url": base.removesuffix("/v1")},
        },
        "models": [
            {"name": "deepseek", "provider": "ds", "upstream_model": "mock"},
            {"name": "anthropic", "provider": "anth", "upstream_model": "mock"},
        ],
    }


class ToolTurn(NamedTuple):
    """One tool-calling turn as the upstream got it back: the reasoning it came with, the call
    (name, arguments as a dict, id), and the tool result's call id and text."""

    reasoning: str
    name: str
    arguments: JSON
    call_id: str
    result_id: str
    result: str


def returned_turns(model: str, body: JSON) -> list[ToolTurn]:
    """The tool-calling turns of an upstream request, in order, in either wire format."""
    messages = body["messages"]
    if model == "anthropic":
        results = [
            b for m in messages if m["role"] == "user" and isinstance(m["content"], list)
            for b in m["content"] if b.get("type") == "tool_result"
        ]  # fmt: skip
        turns = []
        for assistant, result in zip(
            [m for m in messages if m["role"] == "assistant"], results, strict=True
        ):
            blocks = assistant["content"]
            assert blocks[0]["type"] == "thinking"  # Anthropic's rule for tool loops
            assert blocks[0]["signature"]  # the opaque signature survived the round trip
            (use,) = [b for b in blocks if b["type"] == "tool_use"]
            turns.append(
                ToolTurn(
                    blocks[0]["thinking"], use["name"], use["input"], use["id"],
                    result["tool_use_id"], json.dumps(result["content"]),
                )
            )  # fmt: skip
        return turns
    calling = [m for m in messages if m["role"] == "assistant" and m.get("tool_calls")]
    results = [m for m in messages if m["role"] == "tool"]
    turns = []
    for assistant, result in zip(calling, results, strict=True):
        (call,) = assistant["tool_calls"]
        turns.append(
            ToolTurn(
                assistant.get("reasoning_content") or "", call["function"]["name"],
                json.loads(call["function"]["arguments"]), call["id"],
                result["tool_call_id"], json.dumps(result["content"]),
            )
        )  # fmt: skip
    return turns


@pytest.mark.parametrize("model", ["deepseek", "anthropic"])
def test_codex_runs_a_shell_tool_through_the_gateway(
    gateway: GatewayFactory, mock: MockUpstreamThread, codex: Path, tmp_path: Path, model: str
) -> None:
    # Turns 1 and 2: reasoning, then a call to Codex's shell tool (write a file, then read it);
    # turn 3: text. The upstream refuses (DeepSeek's or Anthropic's 400) any request in which
    # a tool-calling turn lost its reasoning.
    write, read = {"cmd": COMMAND}, {"cmd": f"cat {PROOF}"}
    mock.script(
        [
            f"tool=exec_command,tool_args={quote(json.dumps(write))},reasoning=6",
            f"tool=exec_command,tool_args={quote(json.dumps(read))},reasoning=6,"
            "require_reasoning_replay",
            "reasoning=6,require_reasoning_replay",
        ]
    )
    gw = gateway(upstream_config(mock))
    workdir = tmp_path / "work"
    workdir.mkdir()

    run = run_codex(codex, gw.v1, PROMPT, workdir, model=model)

    assert run.returncode == 0, run.describe()
    assert (workdir / PROOF).read_text() == "made by codex"
    assert "mock answer:" in run.last_message, run.describe()
    first, _, third = [r["json"] for r in mock.requests()]
    offered = [t.get("name") or t["function"]["name"] for t in first["tools"]]
    assert "exec_command" in offered
    turns = returned_turns(model, third)
    assert [(t.name, t.arguments) for t in turns] == [
        ("exec_command", write),
        ("exec_command", read),
    ]
    for turn in turns:
        assert turn.result_id == turn.call_id
        assert "Process exited with code 0" in turn.result
        assert turn.reasoning == REASONING  # round-tripped through Codex in encrypted_content
    assert "made by codex" in turns[1].result  # the command's output reached the model
    gw.stop()
    records = gw.ledger()
    assert [r.endpoint for r in records] == ["responses"] * 3
    assert all(r.status is Status.OK and r.stream for r in records)
    assert all(r.requested_model == model for r in records)


@pytest.mark.parametrize(
    ("script", "said"),
    [
        ("error_event", "reported an error mid-stream"),
        ("truncate", "stream ended before the answer was complete"),
    ],
)
def test_codex_reports_an_upstream_failure_mid_stream(
    gateway: GatewayFactory,
    mock: MockUpstreamThread,
    codex: Path,
    tmp_path: Path,
    script: str,
    said: str,
) -> None:
    """A stream that breaks after it began reaches Codex as a failed response, not as a
    completed one: Codex fails the turn with the gateway's reason and exits non-zero."""
    mock.script([script])
    gw = gateway(upstream_config(mock))

    run = run_codex(codex, gw.v1, PROMPT, tmp_path, model="deepseek")

    assert run.returncode != 0, run.describe()
    (failed,) = [e for e in run.events() if e.get("type") == "turn.failed"]
    assert said in failed["error"]["message"]
    assert len(mock.requests()) == 1
    gw.stop()
    (record,) = gw.ledger()
    assert (record.endpoint, record.status) == ("responses", Status.ERROR)


def test_codex_presents_its_key_in_keys_mode(
    gateway: GatewayFactory, mock: MockUpstreamThread, codex: Path, tmp_path: Path
) -> None:
    """Codex sends the key from its provider's `env_key` as a bearer token: a Crossroads key
    is served and recorded under its id; a wrong one is a 401 Codex reports, with no upstream
    call and without the presented key in what Codex shows."""
    admin = "admin-key-for-codex-0123456789"
    config = upstream_config(mock) | {"auth": {"mode": "keys", "refresh_interval": 0.2}}
    gw = gateway(config, environ={"CROSSROADS_ADMIN_KEY": admin})
    created = httpx.post(
        f"{gw.url}/admin/keys",
        json={"name": "codex"},
        headers={"authorization": f"Bearer {admin}"},
        timeout=30,
    )
    key = created.json()["key"]
    wrong = "crk_0000000000_" + "w" * 32

    refused = run_codex(codex, gw.v1, PROMPT, tmp_path, model="deepseek", key=wrong)
    assert refused.returncode != 0, refused.describe()
    assert "401" in refused.stdout and wrong not in refused.stdout + refused.stderr
    assert mock.requests() == []

    served = run_codex(codex, gw.v1, PROMPT, tmp_path, model="deepseek", key=key)
    assert served.returncode == 0, served.describe()
    assert "mock answer:" in served.last_message
    gw.stop()
    ok = [r for r in gw.ledger() if r.status is Status.OK]
    assert len(ok) == 1 and ok[0].api_key_id is not None and ok[0].api_key_id in key


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


@pytest.mark.parametrize("name", ["first_request", "second_request"])
def test_recorded_codex_requests_are_served(
    gateway: GatewayFactory, mock: MockUpstreamThread, name: str
) -> None:
    """Codex's recorded requests (tests/fixtures/codex, `python -m support.codex capture`),
    replayed without Codex: every function tool reaches the upstream, the namespace's under
    their own names; the hosted web_search tool is dropped and named; the stream completes.
    The second request's reasoning came from another server: its encrypted_content is not the
    gateway's, so it is ignored, not an error."""
    body = json.loads((FIXTURES / f"{name}.json").read_text())
    body["model"] = "deepseek"
    gw = gateway(upstream_config(mock))
    with (
        httpx.Client(timeout=60) as http,
        http.stream("POST", f"{gw.v1}/responses", json=body) as answer,
    ):
        events = [line[7:] for line in answer.iter_lines() if line.startswith("event: ")]
    assert answer.status_code == 200
    assert answer.headers["x-crossroads-dropped-params"] == "tools.web_search"
    assert events[0] == "response.created" and events[-1] == "response.completed"
    sent = mock.requests()[0]["json"]
    functions = [t["name"] for t in body["tools"] if t["type"] == "function"]
    namespaced = [
        t["name"] for ns in body["tools"] if ns["type"] == "namespace" for t in ns["tools"]
    ]
    names = [t["function"]["name"] for t in sent["tools"]]
    assert sorted(names) == sorted(functions + namespaced)
    assert "close_agent" in namespaced
    roles = [m["role"] for m in sent["messages"]]
    assert roles[0] == "system"
    if name == "second_request":
        assert roles[-2:] == ["assistant", "tool"]
