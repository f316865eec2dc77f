"""Gives agents back the signed thinking they dropped. With extended thinking on, Anthropic (and
the Anthropic-compatible endpoints) answer 400 when the assistant turn that made tool calls comes
back without its thinking block ("Expected `thinking` ... but found `tool_use`"); agents that
speak OpenAI's format through the gateway often keep only `content` and `tool_calls`.

The memory keeps the thinking text and signature of every answer that called tools, keyed by
tool-call id, and puts them back into later requests' assistant turns whose tool calls carry
those ids. A bounded LRU in this process: across replicas, or after eviction, a miss means the
upstream sees the request as the client sent it."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from crossroads.schemas.chat import AssistantMessage, TranslatedRequest
from crossroads.schemas.chat_wire import ChatChunk

DEFAULT_SIZE = 10_000


class ThinkingMemory:
    """Tool-call id -> (thinking text, signature). One event loop; not thread-safe."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[str, str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, call_ids: Iterable[str], reasoning: str, signature: str) -> None:
        if not (reasoning and signature):
            return  # unsigned thinking cannot be sent back to Anthropic anyway
        for call_id in call_ids:
            if call_id:
                self._entries[call_id] = (reasoning, signature)
                self._entries.move_to_end(call_id)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def remember_message(self, message: Mapping[str, Any]) -> None:
        """From an OpenAI-shaped assistant message (a whole answer)."""
        reasoning, signature = message.get("reasoning_content"), message.get("reasoning_signature")
        if isinstance(reasoning, str) and isinstance(signature, str):
            self.remember(_call_ids(message.get("tool_calls")), reasoning, signature)

    def restore(self, request: TranslatedRequest) -> TranslatedRequest:
        """`request` with remembered thinking put back into assistant turns that lost it; the
        same object when nothing was missing (never mutated)."""
        if not self._entries:
            return request
        changed: dict[int, AssistantMessage] = {}
        for index, message in enumerate(request.messages):
            if not isinstance(message, AssistantMessage) or message.reasoning_signature:
                continue
            for call in message.tool_calls or ():
                found = self._entries.get(call.id)
                if found is not None:
                    reasoning, signature = found
                    changed[index] = msgspec.structs.replace(
                        message, reasoning_content=reasoning, reasoning_signature=signature
                    )
                    break
        if not changed:
            return request
        messages = [changed.get(i, m) for i, m in enumerate(request.messages)]
        return msgspec.structs.replace(request, messages=messages)


class StreamThinking:
    """Collects, from the OpenAI-shaped chunks of one stream, what `ThinkingMemory` needs."""

    def __init__(self) -> None:
        self.reasoning: list[str] = []
        self.signature = ""
        self.call_ids: list[str] = []

    def see(self, chunk: ChatChunk) -> None:
        for choice in chunk.choices or ():
            delta = choice.delta
            if delta is None:
                continue
            if delta.reasoning_content is not None:
                self.reasoning.append(delta.reasoning_content)
            if delta.reasoning_signature is not None:
                self.signature = delta.reasoning_signature
            self.call_ids += [call.id for call in delta.tool_calls or () if call.id]

    def commit(self, memory: ThinkingMemory) -> None:
        memory.remember(self.call_ids, "".join(self.reasoning), self.signature)


def _call_ids(tool_calls: Any) -> list[str]:
    if not isinstance(tool_calls, list):
        return []
    return [
        str(call["id"])
        for call in tool_calls
        if isinstance(call, Mapping) and isinstance(call.get("id"), str) and call["id"]
    ]
