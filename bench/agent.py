"""The agent-bodies workload's fixed bytes: one coding agent's request (a long system prompt, 24
tools with JSON schemas, a multi-turn history with tool calls and tool results; about 40 KB) in
the three wire formats the gateway accepts, the mock upstream's streamed tool-call answer in
OpenAI's format, and the check that each format's answer carries that tool call back.

Three modes, the same conversation each time:

- `agent-openai`: Chat Completions in, Chat Completions upstream (pass-through);
- `agent-anthropic`: Anthropic Messages in, Chat Completions upstream (translated both ways,
  the tool call streamed back as `input_json_delta` events);
- `agent-responses`: the Responses API in, Chat Completions upstream (translated both ways).

Deterministic: no randomness, no clock; the same bytes every run. No I/O here."""

from __future__ import annotations

import json
from typing import Any

MODES = ("agent-openai", "agent-anthropic", "agent-responses")
MODEL = "bench-agent"
TOOL_CALL_ID = "call_bench_0001"
TOOL_NAME = "Edit"
TOOL_ARGS: dict[str, Any] = {
    "file_path": "/repo/src/service/handlers/payments.py",
    "old_string": "    if amount <= 0:\n        raise ValueError('amount')\n",
    "new_string": "    if amount <= 0:\n        raise InvalidAmount(amount, currency=currency)\n",
    "replace_all": False,
}
ARG_PIECES = 20  # the arguments arrive in this many deltas
USAGE = {"prompt_tokens": 11_250, "completion_tokens": 64, "total_tokens": 11_314}
CREATED = 1_767_225_600
UPSTREAM_MODEL = "bench-upstream"

_WORDS = [
    "repository",
    "test",
    "change",
    "file",
    "function",
    "module",
    "error",
    "review",
    "commit",
    "branch",
    "careful",
    "small",
    "honest",
    "explain",
    "verify",
    "build",
    "command",
    "output",
    "directory",
    "user",
    "request",
    "tool",
    "result",
    "code",
    "patch",
    "read",
    "write",
    "search",
    "plan",
    "step",
    "check",
    "safe",
    "clear",
    "reason",
    "answer",
    "context",
]


def _sentence(seed: int, length: int) -> str:
    words = [_WORDS[(seed * 7 + i * 13 + (i * i) % 5) % len(_WORDS)] for i in range(length)]
    return " ".join(words).capitalize() + "."


def _paragraph(seed: int, sentences: int) -> str:
    return " ".join(_sentence(seed * 31 + k, 9 + (seed + k) % 8) for k in range(sentences))


def system_prompt() -> str:
    """About 9 KB of instructions in sections, as coding agents send."""
    sections = []
    for s in range(8):
        rules = "\n".join(f"- {_paragraph(s * 10 + r, 2)}" for r in range(5))
        sections.append(f"# Section {s + 1}\n\n{_paragraph(s, 3)}\n\n{rules}")
    return "You are a coding agent working in the user's repository.\n\n" + "\n\n".join(sections)


_TOOL_NAMES = (
    "Bash", "Read", "Write", "Edit", "MultiEdit", "Glob", "Grep", "LS", "NotebookRead",
    "NotebookEdit", "WebFetch", "WebSearch", "TodoRead", "TodoWrite", "Task", "ExitPlanMode",
    "BashOutput", "KillShell", "ListMcpResources", "ReadMcpResource", "SlashCommand",
    "ApplyPatch", "ViewImage", "UpdatePlan",
)  # fmt: skip


def tools() -> list[dict[str, Any]]:
    """24 tools as (name, description, JSON schema), the schemas with nested objects, enums,
    arrays and required lists, about 18 KB in all."""
    out = []
    for n, name in enumerate(_TOOL_NAMES):
        properties: dict[str, Any] = {
            "path": {"type": "string", "description": _sentence(n * 3, 8)},
            "mode": {
                "type": "string",
                "enum": ["read", "write", "append", "replace"],
                "description": _sentence(n * 3 + 1, 10),
            },
            "limit": {"type": "integer", "minimum": 1, "maximum": 2000, "description": "Lines."},
            "options": {
                "type": "object",
                "properties": {
                    "recursive": {"type": "boolean", "description": _sentence(n + 40, 8)},
                    "patterns": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": _sentence(n + 41, 9),
                    },
                },
                "additionalProperties": False,
            },
        }
        if name == TOOL_NAME:
            properties = {
                "file_path": {"type": "string", "description": "Absolute path of the file."},
                "old_string": {"type": "string", "description": "The text to replace."},
                "new_string": {"type": "string", "description": "The text to put instead."},
                "replace_all": {"type": "boolean", "description": "Every occurrence."},
            }
        out.append(
            {
                "name": name,
                "description": _paragraph(n + 100, 2),
                "schema": {
                    "type": "object",
                    "properties": properties,
                    "required": list(properties)[:2],
                    "additionalProperties": False,
                    "$schema": "http://json-schema.org/draft-07/schema#",
                },
            }
        )
    return out


def _file_listing(seed: int, lines: int) -> str:
    return "\n".join(
        f"{i + 1:>5}\t    {_sentence(seed + i, 6 + i % 7).lower().rstrip('.')}"
        for i in range(lines)
    )


def history() -> list[dict[str, Any]]:
    """The conversation so far, format-neutral: user turns, assistant turns with one tool call
    each (text before it), and the tool results."""
    turns: list[dict[str, Any]] = [
        {
            "role": "user",
            "text": "The payments handler accepts a zero amount and raises a bare ValueError. "
            "Find where amounts are validated and raise the project's InvalidAmount instead, "
            "then run the tests.",
        }
    ]
    calls = [
        ("Grep", {"pattern": "amount <= 0", "path": "/repo/src"}, _file_listing(1, 12)),
        ("Read", {"path": "/repo/src/service/handlers/payments.py"}, _file_listing(2, 40)),
        ("Read", {"path": "/repo/src/service/errors.py"}, _file_listing(3, 24)),
        ("Bash", {"command": "pytest -q tests/handlers -x"}, _file_listing(4, 16)),
    ]
    for k, (name, args, result) in enumerate(calls):
        turns.append(
            {
                "role": "assistant",
                "text": _paragraph(200 + k, 2),
                "call": {"id": f"call_hist_{k:04d}", "name": name, "arguments": args},
            }
        )
        turns.append({"role": "tool", "id": f"call_hist_{k:04d}", "text": result})
    turns.append({"role": "user", "text": "Go on, make the edit."})
    return turns


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def openai_body(model: str = MODEL) -> str:
    messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt()}]
    for turn in history():
        if turn["role"] == "user":
            messages.append({"role": "user", "content": turn["text"]})
        elif turn["role"] == "assistant":
            call = turn["call"]
            messages.append(
                {
                    "role": "assistant",
                    "content": turn["text"],
                    "tool_calls": [
                        {
                            "id": call["id"],
                            "type": "function",
                            "function": {
                                "name": call["name"],
                                "arguments": _compact(call["arguments"]),
                            },
                        }
                    ],
                }
            )
        else:
            messages.append({"role": "tool", "tool_call_id": turn["id"], "content": turn["text"]})
    return _compact(
        {
            "model": model,
            "messages": messages,
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": t["name"],
                        "description": t["description"],
                        "parameters": t["schema"],
                    },
                }
                for t in tools()
            ],
            "tool_choice": "auto",
            "max_tokens": 4096,
            "temperature": 0.2,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )


def anthropic_body(model: str = MODEL) -> str:
    messages: list[dict[str, Any]] = []
    for turn in history():
        if turn["role"] == "user":
            messages.append({"role": "user", "content": turn["text"]})
        elif turn["role"] == "assistant":
            call = turn["call"]
            messages.append(
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": turn["text"]},
                        {
                            "type": "tool_use",
                            "id": call["id"],
                            "name": call["name"],
                            "input": call["arguments"],
                        },
                    ],
                }
            )
        else:
            messages.append(
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": turn["id"], "content": turn["text"]}
                    ],
                }
            )
    return _compact(
        {
            "model": model,
            "system": [{"type": "text", "text": system_prompt()}],
            "messages": messages,
            "tools": [
                {"name": t["name"], "description": t["description"], "input_schema": t["schema"]}
                for t in tools()
            ],
            "tool_choice": {"type": "auto"},
            "max_tokens": 4096,
            "temperature": 0.2,
            "stream": True,
        }
    )


def responses_body(model: str = MODEL) -> str:
    items: list[dict[str, Any]] = []
    for turn in history():
        if turn["role"] == "user":
            items.append(
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": turn["text"]}],
                }
            )
        elif turn["role"] == "assistant":
            call = turn["call"]
            items.append(
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": turn["text"]}],
                }
            )
            items.append(
                {
                    "type": "function_call",
                    "call_id": call["id"],
                    "name": call["name"],
                    "arguments": _compact(call["arguments"]),
                }
            )
        else:
            items.append(
                {"type": "function_call_output", "call_id": turn["id"], "output": turn["text"]}
            )
    return _compact(
        {
            "model": model,
            "instructions": system_prompt(),
            "input": items,
            "tools": [
                {
                    "type": "function",
                    "name": t["name"],
                    "description": t["description"],
                    "parameters": t["schema"],
                    "strict": False,
                }
                for t in tools()
            ],
            "tool_choice": "auto",
            "max_output_tokens": 4096,
            "temperature": 0.2,
            "store": False,
            "stream": True,
        }
    )


BODIES = {
    "agent-openai": openai_body,
    "agent-anthropic": anthropic_body,
    "agent-responses": responses_body,
}


def request_body(mode: str, model: str = MODEL) -> str:
    return BODIES[mode](model)


def _chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> str:
    obj: dict[str, Any] = {
        "id": "chatcmpl-bench-agent-0001",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": UPSTREAM_MODEL,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if usage is not None:
        obj["usage"] = usage
    return f"data: {_compact(obj)}\n\n"


def arguments_text() -> str:
    return _compact(TOOL_ARGS)


def sse_events() -> list[str]:
    """The mock's answer: a streamed tool call in OpenAI's format. The role and the call's id
    and name, then the arguments in 20 pieces, the finish reason, a usage chunk, `[DONE]`."""
    text = arguments_text()
    size = -(-len(text) // ARG_PIECES)
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    events = [
        _chunk(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "index": 0,
                        "id": TOOL_CALL_ID,
                        "type": "function",
                        "function": {"name": TOOL_NAME, "arguments": ""},
                    }
                ],
            }
        )
    ]
    events += [_chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in pieces]
    events.append(_chunk({}, "tool_calls"))
    events.append(_chunk(None, usage=USAGE))
    events.append("data: [DONE]\n\n")
    return events


def _sse_data(raw: str) -> list[tuple[str, str]]:
    """(event name or "", data) for each SSE event of a whole answer."""
    out = []
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        name, data = "", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            out.append((name, "\n".join(data)))
    return out


def check(mode: str, raw: str) -> str:
    """ "ok" when the streamed answer carries the mock's tool call (its name and arguments) in
    `mode`'s own format; else what is wrong."""
    name, args = "", ""
    events = _sse_data(raw)
    if not events:
        return f"no SSE events in {raw[:200]!r}"
    for event, data in events:
        if data == "[DONE]":
            continue
        obj = json.loads(data)
        if mode == "agent-openai":
            for choice in obj.get("choices") or ():
                for call in (choice.get("delta") or {}).get("tool_calls") or ():
                    fn = call.get("function") or {}
                    name += fn.get("name") or ""
                    args += fn.get("arguments") or ""
        elif mode == "agent-anthropic":
            kind = obj.get("type") or event
            if kind == "content_block_start" and obj["content_block"].get("type") == "tool_use":
                name += obj["content_block"]["name"]
            elif kind == "content_block_delta" and obj["delta"].get("type") == "input_json_delta":
                args += obj["delta"]["partial_json"]
        else:
            kind = obj.get("type") or event
            if kind == "response.output_item.added" and obj["item"].get("type") == "function_call":
                name += obj["item"]["name"]
            elif kind == "response.function_call_arguments.delta":
                args += obj["delta"]
    if name != TOOL_NAME:
        return f"tool name {name!r}, expected {TOOL_NAME!r}"
    try:
        parsed = json.loads(args)
    except ValueError:
        return f"arguments are not JSON: {args[:120]!r}"
    if parsed != TOOL_ARGS:
        return f"arguments {args[:120]!r}"
    return "ok"
