"""The neutral reasoning request, mapped to each host's own knob. Pure functions on a decoded
request body; no I/O.

One way in: the `reasoning` extension field, `{"enabled": bool, "effort": "low"|"medium"|"high",
"max_tokens": int, "exclude": bool}` (OpenRouter's shape), or OpenAI's top-level
`reasoning_effort`. A field the client already set in the host's own terms (`thinking`,
`enable_thinking`, `thinking_budget`) is never overwritten: native settings win."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crossroads.errors import UpstreamError
from crossroads.providers.profiles.model import ReasoningKnob

__all__ = ["EFFORT_BUDGETS", "ReasoningAsk", "apply_reasoning", "read_ask"]

NEUTRAL = "reasoning"
EFFORT = "reasoning_effort"
_EFFORTS = frozenset({"minimal", "low", "medium", "high"})
_KEYS = frozenset({"enabled", "effort", "max_tokens", "exclude"})

EFFORT_BUDGETS: Mapping[str, int] = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}
"""Effort -> thinking budget in tokens, for hosts that take a budget and no effort (DashScope).
The same table the Anthropic adapter uses, so one effort costs about the same everywhere."""


@dataclass(frozen=True, slots=True)
class ReasoningAsk:
    """What the client asked about reasoning. `enabled` is None when it did not say; an effort
    or a budget then implies it wants reasoning on."""

    enabled: bool | None = None
    effort: str | None = None
    max_tokens: int | None = None
    exclude: bool = False
    neutral: bool = True  # from the `reasoning` field (False: from `reasoning_effort`)

    @property
    def on(self) -> bool | None:
        if self.enabled is not None:
            return self.enabled
        if self.effort is not None or self.max_tokens is not None:
            return True
        return None

    @property
    def budget(self) -> int | None:
        """A thinking budget in tokens: the explicit one, else the effort's."""
        if self.max_tokens is not None:
            return self.max_tokens
        return EFFORT_BUDGETS.get(self.effort) if self.effort is not None else None


def _invalid(message: str) -> UpstreamError:
    # The client's mistake: the same on every deployment, so not retryable.
    error = UpstreamError(message, retryable=False, status=400, code="invalid_reasoning")
    error.param = NEUTRAL
    return error


def read_ask(body: Mapping[str, Any]) -> ReasoningAsk | None:
    """The client's reasoning request, or None when it said nothing. The neutral field wins
    over `reasoning_effort`. Raises UpstreamError (400, not retryable) for a malformed field."""
    raw = body.get(NEUTRAL)
    if raw is None:
        effort = body.get(EFFORT)
        if effort is None:
            return None
        if effort == "none":
            return ReasoningAsk(enabled=False, neutral=False)
        return ReasoningAsk(effort=str(effort), neutral=False)
    if not isinstance(raw, Mapping):
        raise _invalid("'reasoning' must be an object: {enabled, effort, max_tokens, exclude}")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise _invalid(
            f"'reasoning' has unknown field(s) {', '.join(unknown)}; "
            "known: enabled, effort, max_tokens, exclude"
        )
    enabled, effort, budget, exclude = (
        raw.get(k) for k in ("enabled", "effort", "max_tokens", "exclude")
    )
    if enabled is not None and not isinstance(enabled, bool):
        raise _invalid("'reasoning.enabled' must be true or false")
    if effort is not None and effort not in _EFFORTS:
        raise _invalid(f"'reasoning.effort' must be low, medium or high, not {effort!r}")
    ok_budget = isinstance(budget, int) and not isinstance(budget, bool) and budget > 0
    if budget is not None and not ok_budget:
        raise _invalid("'reasoning.max_tokens' must be a positive integer")
    if exclude is not None and not isinstance(exclude, bool):
        raise _invalid("'reasoning.exclude' must be true or false")
    return ReasoningAsk(enabled, effort, budget, bool(exclude))


def apply_reasoning(knob: ReasoningKnob, body: dict[str, Any]) -> ReasoningAsk | None:
    """Rewrites `body` (the caller's own copy) so the host gets the client's reasoning request in
    its own terms, and returns that request (None when there was none). The neutral field is
    removed for every knob but `openrouter`, whose API takes it as is, and `passthrough`, for
    hosts nobody described; `reasoning_effort` is kept where the host understands it.
    Raises UpstreamError (400) for a malformed request."""
    ask = read_ask(body)
    if ask is None:
        return None
    if knob in ("openrouter", "passthrough"):
        return ask
    body.pop(NEUTRAL, None)
    on = ask.on
    if knob == "openai_effort":
        if ask.neutral and ask.effort is not None:
            body[EFFORT] = ask.effort
        elif ask.neutral and on is False:
            body[EFFORT] = "none"
    elif knob == "deepseek":
        if on is not None:
            body.setdefault("thinking", {"type": "enabled" if on else "disabled"})
        if on is False:
            body.pop(EFFORT, None)  # DeepSeek's effort has no "none": the toggle says it
        elif ask.effort is not None:
            body[EFFORT] = ask.effort
    elif knob == "qwen_enable_thinking":
        body.pop(EFFORT, None)
        if on is not None:
            body.setdefault("enable_thinking", on)
        budget = ask.budget
        if on and budget is not None:
            body.setdefault("thinking_budget", budget)
    elif knob == "glm_thinking":
        body.pop(EFFORT, None)
        if on is not None:
            body.setdefault("thinking", {"type": "enabled" if on else "disabled"})
    elif knob == "none":
        body.pop(EFFORT, None)
    # kimi: thinking is the model's choice (a thinking model id); a `reasoning_effort` the client
    # sent in its own right stays, for the Kimi models that document one.
    return ask
