"""What the JSON depth check costs per request: `DepthGauge.within` against decoding the same
body with `orjson.loads` and against a plain Python walk, on a 40 KB agent-shaped request (a
long system prompt, 30 tool-call rounds, 12 tools with nested schemas). Best of seven runs.

    .venv/bin/python bench/json_depth.py
"""

from __future__ import annotations

import json
import timeit
from typing import Any

import orjson

from crossroads.ingress.body import DepthGauge


def agent_body() -> bytes:
    schema = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "x" * 80},
            "opts": {"type": "object", "properties": {"a": {"type": "array", "items": {}}}},
        },
        "required": ["path"],
    }
    tools = [
        {
            "type": "function",
            "function": {"name": f"t{i}", "description": "d" * 200, "parameters": schema},
        }
        for i in range(12)
    ]
    messages: list[dict[str, Any]] = [{"role": "system", "content": "s" * 3000}]
    for i in range(30):
        arguments = json.dumps({"path": "/x/y", "opts": {"a": ["q"]}})
        messages += [
            {"role": "user", "content": [{"type": "text", "text": "u" * 300}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"c{i}",
                        "type": "function",
                        "function": {"name": "t1", "arguments": arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": f"c{i}", "content": "r" * 400},
        ]
    return orjson.dumps({"model": "m", "messages": messages, "tools": tools, "max_tokens": 1000})


def python_walk(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return False
        for child in node.values() if type(node) is dict else node:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))
    return True


def best_us(run: Any) -> float:
    return min(timeit.repeat(run, number=500, repeat=7)) / 500 * 1e6


def main() -> None:
    body = agent_body()
    data = orjson.loads(body)
    gauge = DepthGauge(64)
    assert gauge.within(data) and python_walk(data, 64)
    print(f"body: {len(body):,} bytes")
    print(f"orjson.loads:       {best_us(lambda: orjson.loads(body)):6.1f} us")
    print(f"DepthGauge.within:  {best_us(lambda: gauge.within(data)):6.1f} us")
    print(f"Python walk:        {best_us(lambda: python_walk(data, 64)):6.1f} us")


if __name__ == "__main__":
    main()
