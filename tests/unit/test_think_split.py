"""Inline `<think>` reasoning split out of answers: the incremental splitter against an
independent whole-text oracle for any chunking (hypothesis), the edge cases (nested,
unterminated, stray tags, text around blocks), and the answer normaliser built on it (whole
completions and stream chunks, the `reasoning` rename, `exclude`, the tool-turn cache)."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from crossroads.providers.openai_compat.reasoning_cache import ReasoningCache
from crossroads.providers.openai_compat.reasoning_out import (
    StreamNormaliser,
    normalise_completion,
    output_plan,
)
from crossroads.providers.openai_compat.think_split import CLOSE, OPEN, ThinkSplitter, split_think

TAGS = re.compile(f"({re.escape(OPEN)}|{re.escape(CLOSE)})")


def oracle(text: str) -> tuple[str, str]:
    """The documented rules, applied to whole tokens of the text by a regex split."""
    reasoning, content = [], []
    inside = strip = False
    for token in TAGS.split(text):
        if token == (CLOSE if inside else OPEN):
            inside, strip = not inside, True
            continue
        if strip:
            token = token.lstrip()
            strip = not token
        (reasoning if inside else content).append(token)
    return "".join(reasoning), "".join(content)


def fed(pieces: list[str]) -> tuple[str, str]:
    splitter = ThinkSplitter()
    reasoning, content = "", ""
    for piece in pieces:
        r, c = splitter.feed(piece)
        reasoning, content = reasoning + r, content + c
    r, c = splitter.flush()
    return reasoning + r, content + c


FRAGMENTS = st.sampled_from(
    [OPEN, CLOSE, "<", "</", "<th", "think", "nk>", ">", " ", "\n", "a", "bc", "<thin", "é", "/"]
)
TEXTS = st.lists(FRAGMENTS, max_size=30).map("".join)


def chunkings(text: str) -> st.SearchStrategy[list[str]]:
    cuts = st.lists(st.integers(0, len(text)), max_size=12).map(sorted)
    return cuts.map(lambda c: [text[i:j] for i, j in zip([0, *c], [*c, len(text)], strict=True)])


@given(st.data(), TEXTS)
def test_any_chunking_gives_the_whole_texts_split(data: st.DataObject, text: str) -> None:
    pieces = data.draw(chunkings(text))
    assert "".join(pieces) == text
    assert fed(pieces) == split_think(text) == oracle(text)


@given(TEXTS)
def test_one_character_at_a_time(text: str) -> None:
    assert fed(list(text)) == oracle(text)


def test_text_around_and_between_blocks() -> None:
    assert split_think("before<think>one</think>middle<think>two</think>after") == (
        "onetwo",
        "beforemiddleafter",
    )
    assert split_think("<think>\nreasoning\n</think>\n\nAnswer") == ("reasoning\n", "Answer")
    assert split_think("no tags at all") == ("", "no tags at all")


def test_blocks_do_not_nest_and_stray_close_tags_are_content() -> None:
    assert split_think("<think>a<think>b</think>c</think>d") == ("a<think>b", "c</think>d")
    assert split_think("answer</think> more") == ("", "answer</think> more")


def test_unterminated_blocks_and_partial_tags_at_the_end() -> None:
    assert split_think("x<think>never closed") == ("never closed", "x")
    assert split_think("x<think>cut </thi") == ("cut </thi", "x")
    assert split_think("ends with <thi") == ("", "ends with <thi")
    splitter = ThinkSplitter()
    assert splitter.feed("<thi") == ("", "")  # held back: it may be a tag
    assert splitter.feed("nk>r") == ("r", "")
    assert splitter.inside


# --- the answer normaliser -------------------------------------------------------------------


def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> dict[str, Any]:
    choice = {"index": index, "delta": delta, "finish_reason": finish}
    return {"id": "c", "object": "chat.completion.chunk", "choices": [choice]}


def replay(pieces: list[str]) -> tuple[str, str]:
    normaliser = StreamNormaliser(output_plan("think_tags", exclude=False, capture=False), None)
    docs = [chunk({"role": "assistant", "content": ""})]
    docs += [chunk({"content": p}) for p in pieces] + [chunk({}, "stop")]
    reasoning = content = ""
    for doc in docs:
        out, _ = normaliser.chunk(doc)
        delta = out["choices"][0]["delta"]
        reasoning += delta.get("reasoning_content") or ""
        content += delta.get("content") or ""
    return reasoning, content


@given(st.data(), TEXTS)
def test_stream_chunks_carry_the_same_split(data: st.DataObject, text: str) -> None:
    assert replay(data.draw(chunkings(text))) == oracle(text)


def test_a_stream_held_back_to_the_end_is_released_with_the_finish() -> None:
    normaliser = StreamNormaliser(output_plan("think_tags", exclude=False, capture=False), None)
    out, payload = normaliser.chunk(chunk({"content": "tail <thi"}))
    assert payload and out["choices"][0]["delta"]["content"] == "tail "
    out, payload = normaliser.chunk(chunk({"content": "nk"}))
    assert not payload  # "<think" is all held back: the adapter skips this chunk
    out, _ = normaliser.chunk(chunk({}, "stop"))
    assert out["choices"][0]["delta"] == {"content": "<think"}


def test_reasoning_field_is_renamed_and_exclude_drops_it() -> None:
    message = {"role": "assistant", "content": "4", "reasoning": "2+2"}
    data = {"choices": [{"index": 0, "message": message}]}
    renamed = normalise_completion(
        data, output_plan("reasoning", exclude=False, capture=False), None
    )
    assert renamed["choices"][0]["message"] == {
        "role": "assistant",
        "content": "4",
        "reasoning_content": "2+2",
    }
    assert data["choices"][0]["message"] is message and "reasoning" in message  # not mutated
    excluded = normalise_completion(
        data, output_plan("reasoning", exclude=True, capture=False), None
    )
    assert excluded["choices"][0]["message"] == {"role": "assistant", "content": "4"}
    stream = StreamNormaliser(output_plan("reasoning_content", exclude=True, capture=False), None)
    out, payload = stream.chunk(chunk({"reasoning_content": "hmm"}))
    assert not payload and out["choices"][0]["delta"] == {}


def test_whole_think_tag_answer_with_tool_calls_has_null_content() -> None:
    calls = [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    message = {"role": "assistant", "content": "<think>plan</think>", "tool_calls": calls}
    cache = ReasoningCache()
    plan = output_plan("think_tags", exclude=True, capture=True)
    out = normalise_completion({"choices": [{"message": message}]}, plan, cache)
    assert out["choices"][0]["message"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": calls,
    }
    assert cache.get("call_1") == "plan"  # remembered even though the client never sees it


def test_streamed_tool_turns_teach_the_cache() -> None:
    cache = ReasoningCache()
    normaliser = StreamNormaliser(
        output_plan("reasoning_content", exclude=False, capture=True), cache
    )
    call = {"index": 0, "id": "call_9", "type": "function", "function": {"name": "f"}}
    for doc in [
        chunk({"reasoning_content": "first "}),
        chunk({"reasoning_content": "second"}),
        chunk({"tool_calls": [call]}),
        chunk({}, "tool_calls"),
    ]:
        normaliser.chunk(doc)
    assert cache.get("call_9") == "first second"


def test_cache_restores_dropped_reasoning_and_stays_bounded() -> None:
    cache = ReasoningCache(size=2)
    cache.remember(["a"], "ra")
    cache.remember(["b"], "rb")
    cache.remember(["c"], "rc")
    assert cache.get("a") is None and len(cache) == 2
    turn = {"role": "assistant", "content": None, "tool_calls": [{"id": "b", "type": "function"}]}
    body = {"messages": [{"role": "user", "content": "q"}, turn, {"role": "tool", "content": "x"}]}
    restored = cache.restore(body)
    assert restored is not None and restored["messages"][1]["reasoning_content"] == "rb"
    assert "reasoning_content" not in turn  # the request body is never mutated
    assert cache.restore({"messages": [{**turn, "reasoning_content": "kept"}]}) is None
    folded = cache.restore(body, fold=True)
    assert folded is not None
    assert folded["messages"][1]["content"] == "<think>\nrb\n</think>\n\n"
