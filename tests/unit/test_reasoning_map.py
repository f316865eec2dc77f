"""The neutral reasoning request (the `reasoning` field, or OpenAI's `reasoning_effort`) mapped
to each host's own knob, and removed where the host would not understand it."""

from __future__ import annotations

from typing import Any

import pytest

from crossroads.errors import UpstreamError
from crossroads.providers.profiles import (
    EFFORT_BUDGETS,
    ReasoningKnob,
    apply_reasoning,
    load_builtin,
    prepare_request,
    read_ask,
)


def mapped(knob: ReasoningKnob, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "m", **fields}
    apply_reasoning(knob, body)
    body.pop("model")
    return body


ON = {"reasoning": {"enabled": True}}
OFF = {"reasoning": {"enabled": False}}
HIGH = {"reasoning": {"effort": "high"}}


@pytest.mark.parametrize(
    ("knob", "fields", "expected"),
    [
        ("deepseek", ON, {"thinking": {"type": "enabled"}}),
        ("deepseek", OFF, {"thinking": {"type": "disabled"}}),
        ("deepseek", HIGH, {"thinking": {"type": "enabled"}, "reasoning_effort": "high"}),
        ("deepseek", {"reasoning_effort": "none"}, {"thinking": {"type": "disabled"}}),
        ("qwen_enable_thinking", ON, {"enable_thinking": True}),
        ("qwen_enable_thinking", OFF, {"enable_thinking": False}),
        (
            "qwen_enable_thinking",
            {"reasoning": {"max_tokens": 2000}},
            {"enable_thinking": True, "thinking_budget": 2000},
        ),
        (
            "qwen_enable_thinking",
            {"reasoning_effort": "high"},
            {"enable_thinking": True, "thinking_budget": EFFORT_BUDGETS["high"]},
        ),
        ("glm_thinking", ON, {"thinking": {"type": "enabled"}}),
        ("glm_thinking", {"reasoning_effort": "low"}, {"thinking": {"type": "enabled"}}),
        ("glm_thinking", OFF, {"thinking": {"type": "disabled"}}),
        ("kimi", HIGH, {}),
        ("kimi", {"reasoning_effort": "high"}, {"reasoning_effort": "high"}),
        ("openai_effort", HIGH, {"reasoning_effort": "high"}),
        ("openai_effort", OFF, {"reasoning_effort": "none"}),
        ("openai_effort", ON, {}),
        ("openai_effort", {"reasoning_effort": "minimal"}, {"reasoning_effort": "minimal"}),
        ("openrouter", HIGH, HIGH),
        (
            "openrouter",
            {"reasoning": {"max_tokens": 99, "exclude": True}},
            {"reasoning": {"max_tokens": 99, "exclude": True}},
        ),
        ("passthrough", HIGH, HIGH),
        ("passthrough", {"reasoning_effort": "low"}, {"reasoning_effort": "low"}),
        ("none", {**HIGH, "reasoning_effort": "low"}, {}),
    ],
)
def test_neutral_field_to_each_knob(
    knob: ReasoningKnob, fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert mapped(knob, **fields) == expected


def test_native_fields_the_client_set_are_not_overwritten() -> None:
    native = {"thinking": {"type": "disabled"}, "reasoning": {"enabled": True}}
    assert mapped("glm_thinking", **native) == {"thinking": {"type": "disabled"}}
    qwen = mapped("qwen_enable_thinking", enable_thinking=False, thinking_budget=5, **HIGH)
    assert qwen == {"enable_thinking": False, "thinking_budget": 5}


def test_the_neutral_field_wins_over_reasoning_effort() -> None:
    assert mapped("openai_effort", reasoning_effort="low", **HIGH) == {"reasoning_effort": "high"}


def test_read_ask_reports_exclude_and_implied_enable() -> None:
    ask = read_ask({"reasoning": {"effort": "low", "exclude": True}})
    assert ask is not None and ask.exclude and ask.on is True and ask.budget == 1024
    assert read_ask({"messages": []}) is None
    off = read_ask({"reasoning_effort": "none"})
    assert off is not None and off.on is False and not off.exclude


@pytest.mark.parametrize(
    "reasoning",
    [
        "high",
        {"effort": "extreme"},
        {"enabled": "yes"},
        {"max_tokens": 0},
        {"max_tokens": True},
        {"exclude": 1},
        {"budget": 10},
    ],
)
def test_malformed_reasoning_is_a_400_before_any_upstream_call(reasoning: Any) -> None:
    with pytest.raises(UpstreamError) as err:
        read_ask({"reasoning": reasoning})
    assert err.value.status == 400 and not err.value.retryable
    assert err.value.param == "reasoning"


def test_profiles_apply_their_knob_through_prepare() -> None:
    profiles = load_builtin()
    body = {"model": "m", "messages": [], "reasoning": {"enabled": True, "exclude": True}}
    dashscope = prepare_request(profiles.get("dashscope"), body, policy="drop", provider="p")
    assert dashscope.body["enable_thinking"] is True and "reasoning" not in dashscope.body
    assert dashscope.exclude_reasoning
    router = prepare_request(profiles.get("openrouter"), body, policy="drop", provider="p")
    assert router.body is body  # OpenRouter takes the neutral field as it is
    assert "reasoning" in body  # and the caller's body was never changed
