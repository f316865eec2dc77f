"""Gives agents back the reasoning they dropped. DeepSeek's thinking mode answers 400 when an
assistant turn that ended in tool calls comes back without its `reasoning_content` (DeepSeek
"Thinking Mode" guide); Kimi and GLM ask for it to be kept; MiniMax wants the whole turn, think
block included. Many agent frameworks keep only `content` and `tool_calls`.

The cache remembers the reasoning of every answer that called tools, keyed by tool-call id, and
puts it back into later requests' assistant messages whose tool calls carry those ids. It is a
bounded LRU in this process: across replicas, or after a restart or eviction, a miss just means
the host sees the request as the client sent it."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from crossroads.providers.openai_compat.think_split import CLOSE, OPEN

__all__ = ["DEFAULT_SIZE", "ReasoningCache", "fold_think"]

DEFAULT_SIZE = 10_000
REASONING = "reasoning_content"


def fold_think(message: Mapping[str, Any], reasoning: str) -> dict[str, Any]:
    """The assistant `message` with `reasoning` written back inline, as a host that speaks
    `<think>` tags produced it, and no `reasoning_content` field."""
    content = message.get("content")
    text = content if isinstance(content, str) else ""
    folded = {k: v for k, v in message.items() if k != REASONING}
    folded["content"] = f"{OPEN}\n{reasoning}\n{CLOSE}\n\n{text}"
    return folded


class ReasoningCache:
    """An LRU map from tool-call id to the reasoning of the turn that made the call. Used from
    one event loop; not thread-safe."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError("the reasoning cache needs room for at least one entry")
        self._size = size
        self._entries: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, call_ids: Iterable[str], reasoning: str) -> None:
        """Notes `reasoning` for each tool-call id; the oldest entries go past the size."""
        if not reasoning:
            return
        for call_id in call_ids:
            if not call_id:
                continue
            self._entries[call_id] = reasoning
            self._entries.move_to_end(call_id)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def get(self, call_id: str) -> str | None:
        reasoning = self._entries.get(call_id)
        if reasoning is not None:
            self._entries.move_to_end(call_id)
        return reasoning

    def restore(self, body: Mapping[str, Any], *, fold: bool = False) -> Mapping[str, Any] | None:
        """A copy of the request `body` whose assistant messages with tool calls but no reasoning
        get the remembered reasoning back, or None when none needed it (the body is never
        mutated). With `fold`, reasoning (remembered or sent by the client) is written back into
        `content` as a `<think>` block instead, for hosts that take it that way."""
        messages = body.get("messages")
        if not isinstance(messages, list):
            return None
        changed: dict[int, dict[str, Any]] = {}
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") != "assistant":
                continue
            reasoning = message.get(REASONING)
            if not (isinstance(reasoning, str) and reasoning):
                reasoning = self._remembered(message.get("tool_calls"))
                if reasoning is None:
                    continue
                if not fold:
                    changed[index] = {**message, REASONING: reasoning}
                    continue
            elif not fold:
                continue
            changed[index] = fold_think(message, reasoning)
        if not changed:
            return None
        restored = [changed.get(i, m) for i, m in enumerate(messages)]
        return {**body, "messages": restored}

    def _remembered(self, tool_calls: Any) -> str | None:
        if not isinstance(tool_calls, list):
            return None
        for call in tool_calls:
            call_id = call.get("id") if isinstance(call, dict) else None
            if isinstance(call_id, str) and (reasoning := self.get(call_id)) is not None:
                return reasoning
        return None
