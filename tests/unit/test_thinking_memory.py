"""The Anthropic adapter's memory of signed thinking, for agents that drop it in tool loops."""

from __future__ import annotations

from typing import Any

import msgspec

from crossroads.providers.anthropic.thinking_memory import StreamThinking, ThinkingMemory
from crossroads.schemas.chat import AssistantMessage, TranslatedRequest
from crossroads.schemas.chat_wire import ChatChunk


def turn(call_id: str, **extra: str) -> dict[str, object]:
    return {
        "role": "assistant",
        "content": None,
        **extra,
        "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }


def request(*messages: dict[str, Any]) -> TranslatedRequest:
    return msgspec.convert({"model": "m", "messages": list(messages)}, TranslatedRequest)


def assistant(req: TranslatedRequest, index: int) -> AssistantMessage:
    message = req.messages[index]
    assert isinstance(message, AssistantMessage)
    return message


def test_restores_dropped_thinking_without_mutating_the_request() -> None:
    memory = ThinkingMemory()
    memory.remember_message(turn("call_1", reasoning_content="think", reasoning_signature="sig"))
    body = request({"role": "user", "content": "q"}, turn("call_1"))
    restored = memory.restore(body)
    assert assistant(restored, 1).reasoning_content == "think"
    assert assistant(restored, 1).reasoning_signature == "sig"
    assert assistant(body, 1).reasoning_content is None


def test_leaves_turns_that_kept_their_thinking_or_are_unknown() -> None:
    memory = ThinkingMemory()
    memory.remember(["call_1"], "think", "sig")
    kept = request(turn("call_1", reasoning_content="mine", reasoning_signature="s2"))
    unknown = request(turn("call_9"))
    assert memory.restore(kept) is kept and memory.restore(unknown) is unknown


def test_unsigned_thinking_is_not_remembered_and_the_memory_is_bounded() -> None:
    memory = ThinkingMemory(size=2)
    memory.remember(["a"], "think", "")
    assert len(memory) == 0
    for call_id in ("a", "b", "c"):
        memory.remember([call_id], "t", "s")
    assert len(memory) == 2
    assert assistant(memory.restore(request(turn("a"))), 0).reasoning_content is None


def test_collects_a_stream() -> None:
    memory, seen = ThinkingMemory(), StreamThinking()
    for delta in (
        {"reasoning_content": "th"},
        {"reasoning_content": "ink"},
        {"reasoning_signature": "sig"},
        {"tool_calls": [{"index": 0, "id": "call_7", "function": {"name": "f"}}]},
    ):
        seen.see(msgspec.convert({"choices": [{"index": 0, "delta": delta}]}, ChatChunk))
    seen.commit(memory)
    restored = memory.restore(request(turn("call_7")))
    assert assistant(restored, 0).reasoning_content == "think"
