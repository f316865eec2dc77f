"""The judging pieces as pure functions: reading answers of the three APIs, the deterministic
checks, the judge's output parsed leniently (hostile and malformed outputs included), the two
orders combined, and the Wilson interval against known values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossroads.quality.answers import Reply, read_reply, requested_schema
from crossroads.quality.checks import check, schema_errors
from crossroads.quality.judge import combine, parse_verdict, prompt
from crossroads.quality.report import outcomes, wilson
from crossroads.quality.store import Verdict


def test_replies_of_the_three_apis_read_alike() -> None:
    chat = {
        "choices": [
            {
                "message": {
                    "content": None,
                    "tool_calls": [{"function": {"name": "f", "arguments": '{"a": 1}'}, "id": "x"}],
                },
                "finish_reason": "tool_calls",
            }
        ]
    }
    messages = {
        "content": [{"type": "tool_use", "name": "f", "input": {"a": 1.0}, "id": "y"}],
        "stop_reason": "tool_use",
    }
    responses = {"output": [{"type": "function_call", "name": "f", "arguments": '{"a":1}'}]}
    replies = [
        read_reply("chat.completions", chat),
        read_reply("messages", messages),
        read_reply("responses", responses),
    ]
    assert all(r.tool_calls == (("f", {"a": 1}),) for r in replies)
    assert {r.finish for r in replies} == {"tool_calls"}
    assert check(replies[0], replies[1], None).tool_agree is True


def test_unreadable_bodies_read_as_empty() -> None:
    assert read_reply("chat.completions", {}) == Reply("", (), "")
    assert read_reply("messages", {"content": None}) == Reply("", (), "")
    assert read_reply("responses", {"output": []}).finish == "stop"


def test_requested_schema() -> None:
    schema = {"type": "object", "required": ["x"]}
    chat = {"response_format": {"type": "json_schema", "json_schema": {"schema": schema}}}
    assert requested_schema("chat.completions", chat) == schema
    assert requested_schema("chat.completions", {"response_format": {"type": "json_object"}}) == {
        "type": "object"
    }
    assert (
        requested_schema(
            "responses", {"text": {"format": {"type": "json_schema", "schema": schema}}}
        )
        == schema
    )
    assert requested_schema("chat.completions", {}) is None


def test_schema_checks_decide_before_any_judge() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    good, bad = Reply('{"n": 3}', (), "stop"), Reply('{"n": "three"}', (), "stop")
    assert check(good, bad, schema).outcome == "loss"
    assert check(bad, good, schema).outcome == "win"
    assert check(good, Reply("not json", (), "stop"), schema).outcome == "loss"
    assert check(good, good, schema).outcome is None
    assert schema_errors(True, {"type": "integer"}) == ["$: not of type integer"]
    assert schema_errors({"a": 1}, {"type": "object", "additionalProperties": False}) == [
        "$.a: not allowed"
    ]


def test_a_different_tool_or_argument_is_a_loss_and_says_which() -> None:
    base = Reply("", (("get_weather", {"city": "Paris"}),), "tool_calls")
    other_args = Reply("", (("get_weather", {"city": "Lyon"}),), "tool_calls")
    other_tool = Reply("", (("get_time", {"city": "Paris"}),), "tool_calls")
    assert check(base, other_args, None).outcome == "loss"
    assert "arguments" in check(base, other_args, None).reasons[0]
    assert "tools" in check(base, other_tool, None).reasons[0]
    assert check(base, Reply("It is sunny.", (), "stop"), None).outcome == "loss"
    cut = check(Reply("a", (), "stop"), Reply("b", (), "length"), None)
    assert cut.same_finish is False and cut.outcome == "loss"
    assert check(Reply("a", (), "length"), Reply("b", (), "stop"), None).outcome == "win"


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ('{"verdict": "A", "reason": "more accurate"}', "A"),
        ('Sure! {"verdict": "b", "reason": "x"} hope that helps', "B"),
        ('{"verdict": "TIE"}', "tie"),
        ("Verdict: B because it is right", "B"),
        ("A. The first answer is better.", "A"),
        ("tie", "tie"),
        ('{"verdict": "C"}', None),
        ("", None),
        ("I cannot decide between these.", None),
        ("{{{{ not json", None),
        ('{"verdict": null}', None),
        ("\x1b[2J" * 100, None),
    ],
)
def test_judge_output_is_parsed_leniently(text: str, verdict: str | None) -> None:
    assert parse_verdict(text)[0] == verdict


@given(st.text(max_size=2000))
def test_any_judge_output_parses_without_raising(text: str) -> None:
    verdict, reason = parse_verdict(text)
    assert verdict in (None, "A", "B", "tie")
    assert len(reason) <= 500


def test_the_two_orders_cancel_position_bias() -> None:
    reasons = ("r1", "r2")
    # Baseline shown first, the judge picks B (the candidate); swapped, it picks A (the
    # candidate again): a win.
    assert combine("B", "A", reasons).outcome == "win"
    assert combine("A", "B", reasons).outcome == "loss"
    # A judge that always picks the first answer shown favours nobody: a tie.
    assert combine("A", "A", reasons).outcome == "tie"
    assert combine("B", "B", reasons).outcome == "tie"
    assert combine("tie", "A", reasons).outcome == "tie"
    assert combine(None, "A", reasons).outcome == "tie"
    unreadable = combine(None, None, reasons)
    assert unreadable.outcome == "tie" and not unreadable.readable


def test_the_prompt_holds_both_answers_in_the_order_given() -> None:
    text = prompt("What is 2+2?", Reply("4", (), "stop"), Reply("five", (), "stop"))
    assert text.index("ANSWER A:\n4") < text.index("ANSWER B:\nfive")
    assert "What is 2+2?" in text


def test_wilson_matches_known_values() -> None:
    # Wilson 95% for 0/10: (0, 0.2775); for 5/10: (0.2366, 0.7634).
    assert wilson(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-4)
    assert wilson(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)


def _verdicts(win: int, tie: int, loss: int) -> list[Verdict]:
    kinds = ["win"] * win + ["tie"] * tie + ["loss"] * loss
    return [
        Verdict("r", str(i), "a", "b", "m", None, k, "checks", None, ())
        for i, k in enumerate(kinds)
    ]


def test_a_difference_is_called_only_when_the_interval_excludes_parity() -> None:
    assert outcomes(_verdicts(0, 10, 0))["call"].startswith("tied")
    assert outcomes(_verdicts(3, 4, 3))["call"].startswith("no difference shown")
    # 3 losses and no win: the interval of the win rate, (0, 0.56), still holds parity.
    assert outcomes(_verdicts(0, 7, 3))["call"].startswith("no difference shown")
    assert outcomes(_verdicts(0, 30, 12))["call"].startswith("worse")
    assert outcomes(_verdicts(12, 30, 0))["call"].startswith("better")
    assert outcomes([])["call"].startswith("no evidence")
