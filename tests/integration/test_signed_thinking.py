"""Every thinking block the gateway produces is signed, streamed or not, whatever the provider:
a client that drops unsigned thinking (as @ai-sdk/anthropic, and so opencode, do) still sends
the reasoning back, so a DeepSeek-style upstream behind a generic OpenAI-compatible provider
(vLLM, SGLang: no replay cache) gets it in a tool loop."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from conftest import GatewayFactory
from crossroads.mockupstream import MockUpstreamThread
from crossroads.schemas.sealed_reasoning import is_sealed

TOOLS = [
    {
        "name": "get_weather",
        "description": "Current weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


def generic_reasoner(gateway: GatewayFactory, url: str) -> Any:
    """A self-hosted OpenAI-compatible server: no catalog host, so no profile and no cache."""
    return gateway(
        {
            "embedded": {"enabled": False},
            "providers": {"vllm": {"type": "openai", "base_url": url}},
            "models": [{"name": "r1", "provider": "vllm", "upstream_model": "mock"}],
        }
    )


def drop_unsigned_thinking(content: list[Any]) -> list[dict[str, Any]]:
    """What @ai-sdk/anthropic does with the assistant turn before sending it back."""
    blocks = [block.model_dump(exclude_none=True) for block in content]
    return [b for b in blocks if b["type"] != "thinking" or b.get("signature")]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_client_that_drops_unsigned_thinking_still_round_trips_the_reasoning(
    gateway: GatewayFactory, mock: MockUpstreamThread, stream: bool
) -> None:
    gw = generic_reasoner(gateway, mock.url)
    # Turn 1 reasons and calls a tool; turn 2 answers only if that reasoning came back.
    mock.script(["tool_call,reasoning=6", "ok,reasoning=6,require_reasoning_replay"])
    client = anthropic.Anthropic(base_url=gw.url, api_key="unused", max_retries=0)
    gw.clients.append(client)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    if stream:
        with client.messages.stream(
            model="r1", max_tokens=200, tools=TOOLS, messages=messages
        ) as events:
            first = events.get_final_message()
    else:
        first = client.messages.create(model="r1", max_tokens=200, tools=TOOLS, messages=messages)
    thinking = [b for b in first.content if b.type == "thinking"]
    assert thinking and all(is_sealed(b.signature) for b in thinking)
    call = next(b for b in first.content if b.type == "tool_use")
    messages += [
        {"role": "assistant", "content": drop_unsigned_thinking(first.content)},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C"}],
        },
    ]
    second = client.messages.create(model="r1", max_tokens=200, tools=TOOLS, messages=messages)
    assert second.stop_reason == "end_turn"
    sent = mock.requests()[-1]["json"]["messages"]
    replayed = [m for m in sent if m["role"] == "assistant"]
    assert replayed[0]["reasoning_content"] == thinking[0].thinking
    assert "reasoning_signature" not in replayed[0]
