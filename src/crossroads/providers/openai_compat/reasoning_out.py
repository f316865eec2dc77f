"""One way out for reasoning: OpenAI-format answers from any host leave the adapter with their
reasoning in `reasoning_content`, beside `content`, in whole messages and in stream deltas.

A `reasoning` field is renamed; inline `<think>` blocks are split out of `content` (across chunk
boundaries in streams); `exclude` drops reasoning from the answer. Reasoning of answers that
call tools is handed to the `ReasoningCache` on the way. Works on decoded JSON; the adapter
re-encodes only when `OutputPlan.rewrites` says something may change."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crossroads.providers.openai_compat.reasoning_cache import REASONING, ReasoningCache
from crossroads.providers.openai_compat.think_split import ThinkSplitter, split_think
from crossroads.providers.profiles import ReasoningOut

__all__ = ["OutputPlan", "StreamNormaliser", "normalise_completion", "output_plan"]

JSON = dict[str, Any]
_HOST_FIELD = "reasoning"


@dataclass(frozen=True, slots=True)
class OutputPlan:
    """What to do to one request's answer. All false: pass it through untouched."""

    rename: bool = False  # `reasoning` -> `reasoning_content`
    split_tags: bool = False  # `<think>` blocks in content -> `reasoning_content`
    exclude: bool = False  # drop reasoning from the answer
    capture: bool = False  # remember tool turns' reasoning in the cache

    @property
    def rewrites(self) -> bool:
        return self.rename or self.split_tags or self.exclude

    @property
    def active(self) -> bool:
        return self.rewrites or self.capture


def output_plan(reasoning_out: ReasoningOut, *, exclude: bool, capture: bool) -> OutputPlan:
    """The plan for a host that answers as `reasoning_out` says."""
    split = reasoning_out == "think_tags"
    return OutputPlan(
        rename=split or reasoning_out == "reasoning",
        split_tags=split,
        exclude=exclude,
        capture=capture,
    )


def _tool_call_ids(tool_calls: Any) -> list[str]:
    if not isinstance(tool_calls, list):
        return []
    ids = (c.get("id") for c in tool_calls if isinstance(c, dict))
    return [i for i in ids if isinstance(i, str) and i]


def _take_reasoning(part: JSON, plan: OutputPlan) -> str:
    """Removes and returns the reasoning text of a message or delta (both field names)."""
    text = part.pop(REASONING, None)
    host_text = part.pop(_HOST_FIELD, None) if plan.rename else None
    if isinstance(text, str) and text:
        return text
    return host_text if isinstance(host_text, str) else ""


def _normalise_message(message: JSON, plan: OutputPlan, cache: ReasoningCache | None) -> JSON:
    message = dict(message)
    had_field = REASONING in message
    reasoning = _take_reasoning(message, plan)
    content = message.get("content")
    if plan.split_tags and isinstance(content, str):
        inline, content = split_think(content)
        reasoning += inline
        message["content"] = None if not content and message.get("tool_calls") else content
    if cache is not None and plan.capture:
        cache.remember(_tool_call_ids(message.get("tool_calls")), reasoning)
    if not plan.exclude and (reasoning or had_field):
        message[REASONING] = reasoning or None
    return message


def normalise_completion(data: JSON, plan: OutputPlan, cache: ReasoningCache | None) -> JSON:
    """A `chat.completion` document with its reasoning in `reasoning_content` as `plan` says
    (a new document; `data` is not mutated)."""
    choices = data.get("choices")
    if not isinstance(choices, list):
        return data
    normalised = []
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            choice = {**choice, "message": _normalise_message(message, plan, cache)}
        normalised.append(choice)
    return {**data, "choices": normalised}


@dataclass(slots=True)
class _ChoiceState:
    splitter: ThinkSplitter = field(default_factory=ThinkSplitter)
    reasoning: list[str] = field(default_factory=list)
    call_ids: list[str] = field(default_factory=list)


def _has_payload(delta: JSON) -> bool:
    return any(value not in (None, "", [], {}) for value in delta.values())


class StreamNormaliser:
    """Normalises the `chat.completion.chunk` documents of one stream, in order. Keeps, per
    choice, the `<think>` splitter state and the tool-call ids and reasoning seen so far, so
    the cache learns a tool turn's reasoning when its choice finishes."""

    def __init__(self, plan: OutputPlan, cache: ReasoningCache | None) -> None:
        self._plan = plan
        self._cache = cache if plan.capture else None
        self._choices: dict[Any, _ChoiceState] = {}

    def chunk(self, obj: JSON) -> tuple[JSON, bool]:
        """The chunk as the client should see it (a new document), and whether anything is left
        in it to send (False when all of it was held back, or was excluded reasoning)."""
        choices = obj.get("choices")
        if not isinstance(choices, list):
            return obj, True
        if not self._plan.rewrites:
            self._observe(choices)
            return obj, True
        normalised = []
        payload = obj.get("usage") is not None
        for choice in choices:
            if not isinstance(choice, dict):
                normalised.append(choice)
                continue
            delta = choice.get("delta")
            state = self._state(choice)
            new_delta = self._delta(delta if isinstance(delta, dict) else {}, state)
            if choice.get("finish_reason") is not None:
                self._finish(new_delta, state)
            payload = payload or _has_payload(new_delta) or choice.get("finish_reason") is not None
            normalised.append({**choice, "delta": new_delta})
        return {**obj, "choices": normalised}, payload

    def _state(self, choice: JSON) -> _ChoiceState:
        """The choice's state, made on its first chunk (not on every one: it holds a splitter)."""
        index = choice.get("index", 0)
        state = self._choices.get(index)
        if state is None:
            state = self._choices[index] = _ChoiceState()
        return state

    def _observe(self, choices: list[Any]) -> None:
        """Only learns tool turns' reasoning (the host already answers in the neutral form)."""
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            state = self._state(choice)
            delta = choice.get("delta")
            if isinstance(delta, dict):
                reasoning = delta.get(REASONING)
                if isinstance(reasoning, str) and reasoning:
                    state.reasoning.append(reasoning)
                state.call_ids += _tool_call_ids(delta.get("tool_calls"))
            if choice.get("finish_reason") is not None:
                self._finish({}, state)

    def _delta(self, delta: JSON, state: _ChoiceState) -> JSON:
        delta = dict(delta)
        reasoning = _take_reasoning(delta, self._plan)
        content = delta.get("content")
        if self._plan.split_tags and isinstance(content, str):
            inline, delta["content"] = state.splitter.feed(content)
            reasoning += inline
        state.call_ids += _tool_call_ids(delta.get("tool_calls"))
        self._add_reasoning(delta, reasoning, state)
        return delta

    def _add_reasoning(self, delta: JSON, reasoning: str, state: _ChoiceState) -> None:
        if not reasoning:
            return
        if self._cache is not None:
            state.reasoning.append(reasoning)
        if not self._plan.exclude:
            delta[REASONING] = delta.get(REASONING, "") + reasoning

    def _finish(self, delta: JSON, state: _ChoiceState) -> None:
        """The choice ended: release held-back text, and teach the cache a tool turn."""
        if self._plan.split_tags:
            reasoning, content = state.splitter.flush()
            if content:
                delta["content"] = (delta.get("content") or "") + content
            self._add_reasoning(delta, reasoning, state)
        if self._cache is not None and state.call_ids:
            self._cache.remember(state.call_ids, "".join(state.reasoning))
        state.reasoning.clear()
        state.call_ids.clear()
