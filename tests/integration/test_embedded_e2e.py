"""End to end through the real embedded model: the official `openai` client against the real
gateway server, no key, no network. Greedy decoding and few tokens; asserts shape, not wording."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from crossroads.ledger.record import Status
from support.gateway import GatewayThread, gateway_for

pytestmark = pytest.mark.model
MODEL = "local/smollm2-135m"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    tmp: Path = tmp_path_factory.mktemp("embedded")
    with gateway_for(tmp, {"embedded": {"enabled": True, "parallel": 4}}) as gateway:
        yield gateway


def llm(gw: GatewayThread) -> OpenAI:
    return OpenAI(base_url=gw.v1, api_key="unused", max_retries=0, timeout=120)


def test_chat_completion(gw: GatewayThread) -> None:
    reply = llm(gw).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say hi."}],
        temperature=0,
        max_tokens=8,
    )
    assert reply.model == MODEL
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 8


def test_stream_with_usage(gw: GatewayThread) -> None:
    chunks = list(
        llm(gw).chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Count to three."}],
            temperature=0,
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_concurrent_streams_all_complete(gw: GatewayThread) -> None:
    """More concurrent streams than slots: extra ones queue, none is cut off."""
    results: dict[int, str] = {}

    def one(i: int) -> None:
        finish = None
        for chunk in llm(gw).chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"Name a colour ({i})."}],
            temperature=0,
            max_tokens=16,
            stream=True,
        ):
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
        results[i] = finish or "missing"

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == list(range(6))
    assert set(results.values()) <= {"stop", "length"}


def test_ledger_records_the_embedded_requests(gw: GatewayThread) -> None:
    llm(gw).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hi"}],
        temperature=0,
        max_tokens=4,
    )
    records = gw.ledger()  # the writer flushes every 50 ms; read what has landed
    assert records, "no ledger records"
    done = [r for r in records if r.status is Status.OK]
    assert done and all(r.provider == "local" for r in done)
    assert all(r.origin_country == "US" and r.open_weights for r in done)
    assert all(r.cost_usd is not None and r.cost_usd == 0 for r in done)


def test_a_request_with_tools_is_answered_in_text_with_the_tools_dropped(
    gw: GatewayThread,
) -> None:
    """Coding agents send tools with every request, their small side requests included: the
    embedded model cannot call tools, so by default it answers in text and says so."""
    raw = llm(gw).chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Give this chat a three-word title."}],
        tools=[
            {
                "type": "function",
                "function": {"name": "bash", "parameters": {"type": "object", "properties": {}}},
            }
        ],
        max_tokens=8,
    )
    reply = raw.parse()
    assert raw.headers["x-crossroads-dropped-params"] == "tools"
    assert reply.choices[0].message.content and not reply.choices[0].message.tool_calls


@pytest.mark.parametrize("max_tokens", [2**31, 2**40, 2**63 - 1, 4097])
def test_max_tokens_beyond_the_model_is_a_clear_400_never_wrapped(
    gw: GatewayThread, max_tokens: int
) -> None:
    """llama.cpp reads max_tokens as a 32-bit integer: 2**31 came back as "got -2147483648",
    2**40 was wrapped to 0 and answered. Beyond 32 bits the gateway refuses it; beyond the
    model's whole context (n_ctx 4096) the embedded provider does."""
    import openai

    with pytest.raises(openai.BadRequestError) as caught:
        llm(gw).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=max_tokens
        )
    message = str(caught.value)
    assert "max_tokens" in message and ("2147483647" in message or "4096" in message)
    assert "-2147483648" not in message


def test_the_responses_api_whole_and_streamed(gw: GatewayThread) -> None:
    """The Responses ingress over the real llama.cpp model: the same answer shape whole and
    streamed, usage from the model itself, `max_output_tokens` honoured."""
    client = llm(gw)
    whole = client.responses.create(
        model=MODEL, input="Say hi.", instructions="Be brief.", max_output_tokens=8, store=False
    )
    assert whole.model == MODEL and whole.output_text
    assert whole.status in ("completed", "incomplete")
    assert whole.usage is not None and 0 < whole.usage.output_tokens <= 8
    # A cut at max_output_tokens ends the stream with `response.incomplete`, as OpenAI's does
    # (the SDK's `responses.stream` helper waits for `response.completed` only).
    events = list(
        client.responses.create(
            model=MODEL, input="Count to three.", max_output_tokens=12, store=False, stream=True
        )
    )
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and "response.output_text.delta" in kinds
    assert kinds[-1] in ("response.completed", "response.incomplete")
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text and final.usage is not None and final.usage.output_tokens > 0
