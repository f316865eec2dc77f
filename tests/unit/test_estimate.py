"""The token estimates the ledger falls back on when an upstream reports no usage: worked by
hand on requests and answers of every shape they read, and total on any JSON whatever (they run
on the way to a ledger record, which must never fail)."""

from __future__ import annotations

import math
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from crossroads.ingress.estimate import (
    estimate_embedding_tokens,
    estimate_input_tokens,
    estimate_output_tokens,
    estimated_answer_usage,
    estimated_embedding_usage,
)

KEYS = st.sampled_from(
    ["messages", "content", "type", "text", "tool_calls", "function", "name", "arguments",
     "tools", "choices", "message", "input", "reasoning", "image_url"]
)  # fmt: skip
SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
)
JSONS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=30,
)


def test_an_openai_request_counts_text_calls_tools_and_images() -> None:
    tool = {"name": "get_weather", "parameters": {"type": "object"}}
    body = {
        "messages": [
            {"role": "system", "content": "x" * 10},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "y" * 7},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "reasoning_content": "z" * 5,
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "ab", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c", "content": "w" * 3},
        ],
        "tools": [{"type": "function", "function": tool}],
    }
    chars = 10 + 7 + 5 + 2 + 2 + 3 + len(orjson.dumps(tool))
    assert estimate_input_tokens(body) == math.ceil(chars / 4) + 4 * 4 + 1600


def test_an_answer_counts_every_choice_text_reasoning_and_calls() -> None:
    answer = {
        "choices": [
            {"message": {"content": "a" * 9, "reasoning_content": "b" * 3}},
            {"message": {"content": None, "reasoning": "c" * 2, "tool_calls": [
                {"function": {"name": "f", "arguments": '{"x": 1}'}}]}},
        ],
    }  # fmt: skip
    assert estimate_output_tokens(answer) == math.ceil((9 + 3 + 2 + 1 + 8) / 4)
    usage = estimated_answer_usage({"messages": [{"role": "user", "content": "hi"}]}, answer)
    assert usage.estimated and (usage.prompt_tokens, usage.completion_tokens) == (1 + 4, 6)


def test_embeddings_count_text_by_characters_and_token_arrays_by_length() -> None:
    assert estimate_embedding_tokens({"input": "abcdefghi"}) == 3
    assert estimate_embedding_tokens({"input": ["abcd", "ab"]}) == 2
    assert estimate_embedding_tokens({"input": [5, 6, 7]}) == 3
    assert estimate_embedding_tokens({"input": [[5, 6], [7]]}) == 3
    usage = estimated_embedding_usage({"input": "abcd"})
    assert usage.estimated and (usage.prompt_tokens, usage.completion_tokens) == (1, 0)


def test_an_integer_beyond_64_bits_in_a_tool_counts_nothing_instead_of_failing() -> None:
    body = {"tools": [{"function": {"name": "f", "parameters": {"maximum": 2**70}}}]}
    assert estimate_input_tokens(body) == 0


@given(JSONS)
def test_estimates_take_any_json_and_never_go_negative(value: Any) -> None:
    body = value if isinstance(value, dict) else {"messages": value, "input": value}
    for estimate in (estimate_input_tokens, estimate_output_tokens, estimate_embedding_tokens):
        assert estimate(body) >= 0
