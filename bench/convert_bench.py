"""What the typed request conversion costs: the Anthropic adapter's OpenAI -> Messages conversion
of a ~43 KB agent-shaped request (10 KB of Codex's system prompt, its tool schemas padded to 24
tools, 6 tool-call rounds with signed reasoning), at an older revision (untyped: `Mapping` reads
and `isinstance` checks) against this checkout (typed: `msgspec.convert` into
`TranslatedRequest`, then attribute access). Both include what the adapter does before sending:
the conversion and `orjson.dumps` of the result. Best of seven runs, the two interleaved, after
checking that both produce the same bytes. Not a test.

    PYTHONPATH=src flock /tmp/bench.lock .venv/bin/python bench/convert_bench.py [--old-rev REV]
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import subprocess
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

from crossroads.providers.anthropic import convert as new_convert

ROOT = Path(__file__).resolve().parent.parent
CODEX = ROOT / "tests" / "fixtures" / "codex" / "first_request.json"
CONVERT = "src/crossroads/providers/anthropic/convert.py"
# The last revision with the untyped converter (the merge before the typed one).
OLD_REV = "716739a"
JSON = dict[str, Any]


def agent_request() -> JSON:
    """A Chat Completions request as an agent sends it after a few rounds of tool calls."""
    codex = json.loads(CODEX.read_text())
    system = "\n\n".join(
        part["text"]
        for item in codex["input"]
        if item.get("role") == "developer"
        for part in item["content"]
    )[:10_000]
    functions = [t for t in codex["tools"] if t.get("type") == "function"]
    tools = []
    for i in range(24):
        source = functions[i % len(functions)]
        tools.append(
            {
                "type": "function",
                "function": {
                    "name": f"{source['name']}_{i}",
                    "description": source.get("description", ""),
                    "parameters": copy.deepcopy(source["parameters"]),
                },
            }
        )
    messages: list[JSON] = [
        {"role": "system", "content": system},
        {"role": "user", "content": "Fix the failing test in tests/test_parser.py and explain."},
    ]
    for i in range(6):
        arguments = json.dumps({"cmd": f"sed -n {i * 40},{i * 40 + 40}p src/parser.py"})
        messages += [
            {
                "role": "assistant",
                "content": "Reading the parser." if i % 2 else None,
                "reasoning_content": "The test fails on nested brackets; look at the lexer. " * 4,
                "reasoning_signature": "EqQBCkYIBxgCKkA" + "x" * 300,
                "tool_calls": [
                    {
                        "id": f"call_{i:02}",
                        "type": "function",
                        "function": {"name": "exec_command_0", "arguments": arguments},
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": f"call_{i:02}",
                "content": "def parse(tokens):\n    stack = []\n" * 12,
            },
        ]
    return {
        "model": "claude-sonnet-4-5",
        "messages": messages,
        "tools": tools,
        "tool_choice": "auto",
        "max_tokens": 8192,
        "temperature": 0.2,
        "reasoning": {"effort": "medium"},
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def old_module(rev: str) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{rev}:{CONVERT}"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "old_convert.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("old_convert", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def best_us(run: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(run, number=number, repeat=1)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old-rev", default=OLD_REV)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()
    body = agent_request()
    old = old_module(args.old_rev)
    old_out = old.build_request(body, default_max_tokens=4096)
    new_out = new_convert.build_request(body, default_max_tokens=4096)
    assert orjson.dumps(old_out) == orjson.dumps(new_out), "old and new disagree"

    def run_old() -> bytes:
        return orjson.dumps(old.build_request(body, default_max_tokens=4096))

    def run_new() -> bytes:
        return orjson.dumps(new_convert.build_request(body, default_max_tokens=4096))

    old_best, new_best = float("inf"), float("inf")
    for _ in range(7):  # interleaved, so drift in machine load hits both alike
        old_best = min(old_best, best_us(run_old, args.number))
        new_best = min(new_best, best_us(run_new, args.number))
    print(
        f"python {sys.version.split()[0]}, request {len(orjson.dumps(body)):,} bytes, "
        f"{len(body['tools'])} tools, {len(body['messages'])} messages, old rev {args.old_rev}"
    )
    print(f"untyped (old): {old_best:7.1f} us per request")
    print(f"typed (new):   {new_best:7.1f} us per request")
    print(f"new / old:     {new_best / old_best:7.2f}")


if __name__ == "__main__":
    main()
