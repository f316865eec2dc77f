"""Capture end to end: the real gateway, the scripted mock upstream and the official clients;
what the capture store keeps for each of the three ingress formats (tool calls included), what
it never keeps (secrets, unselected traffic), and that eval traffic goes to the eval ledger,
never the production one."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai

from conftest import GatewayFactory, client
from crossroads.ledger.record import LedgerRecord
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.mockupstream import MockUpstreamThread
from crossroads.quality.replay import Replay
from crossroads.quality.store import EVAL_LEDGER_FILE, QUALITY_FILE, QualityStore
from support.gateway import GatewayThread

PLANTED = "sk-proj-abcdefghijklmnopqrstuvwx0123456789"
TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def config(url: str, capture: dict[str, Any]) -> dict[str, Any]:
    return {
        "embedded": {"enabled": False},
        "providers": {"up": {"type": "openai", "base_url": url}},
        "models": [
            {"name": "m", "provider": "up", "upstream_model": "mock"},
            {"name": "tools", "provider": "up", "upstream_model": "mock:tool_call"},
            {"name": "other", "provider": "up", "upstream_model": "mock"},
        ],
        "quality": {"capture": capture},
    }


def captures(gw: GatewayThread) -> list[Any]:
    store = QualityStore(gw.settings.data_dir / QUALITY_FILE)
    try:
        return store.captures()
    finally:
        store.close()


def eval_ledger(data_dir: Path) -> list[LedgerRecord]:
    async def read() -> list[LedgerRecord]:
        store = SQLiteLedgerStore(data_dir / EVAL_LEDGER_FILE)
        await store.open()
        try:
            return list(reversed(await store.recent(10_000)))
        finally:
            await store.close()

    return asyncio.run(read())


def test_capture_is_off_by_default(gateway: GatewayFactory, mock: MockUpstreamThread) -> None:
    gw = gateway(config(mock.url, {}))
    client(gw).chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    gw.stop()
    assert not (gw.settings.data_dir / QUALITY_FILE).exists()


def test_three_formats_are_captured_with_tool_calls_and_secrets_scrubbed(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(config(mock.url, {"enabled": True, "sample": 1.0, "models": ["tools", "m"]}))
    oai = client(gw)
    oai.chat.completions.create(
        model="tools",
        messages=[{"role": "user", "content": f"weather in Paris? my key is {PLANTED}"}],
        tools=[TOOL],
        extra_headers={"x-crossroads-task": "weather"},
    )
    with anthropic.Anthropic(base_url=gw.url, api_key="x", max_retries=0) as claude:
        claude.messages.create(
            model="m", max_tokens=50, messages=[{"role": "user", "content": "hello there"}]
        )
    oai.responses.create(model="m", input="say something", store=False)
    # Unselected names are not captured at all.
    list(
        oai.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "s"}], stream=True
        )
    )
    oai.chat.completions.create(model="other", messages=[{"role": "user", "content": "no"}])
    gw.stop()

    kept = captures(gw)
    assert [(c.endpoint, c.model) for c in kept] == [
        ("chat.completions", "tools"),
        ("messages", "m"),
        ("responses", "m"),
        ("chat.completions", "m"),
    ]
    chat = kept[0]
    assert chat.task == "weather"
    assert PLANTED not in str(chat.request)
    assert "[redacted]" in chat.request["messages"][0]["content"]
    assert chat.response is not None
    call = chat.response["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert kept[1].response is not None and kept[1].response["type"] == "message"
    assert kept[2].response is not None and kept[2].response["object"] == "response"
    assert kept[3].request["stream"] is True
    assert kept[3].response is not None  # a stream's answer, folded into a whole one
    assert kept[3].response["choices"][0]["message"]["content"] == "mock answer: s"


def test_streamed_answers_are_captured_whole_in_every_format(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    """Agents stream: what the client received is kept as the whole answer a non-streamed
    request gets, tool calls included, so replay and the judge compare like with like."""
    gw = gateway(config(mock.url, {"enabled": True, "sample": 1.0}))
    oai = client(gw)
    list(
        oai.chat.completions.create(
            model="tools",
            messages=[{"role": "user", "content": "Paris"}],
            tools=[TOOL],
            stream=True,
        )
    )
    with (
        anthropic.Anthropic(base_url=gw.url, api_key="x", max_retries=0) as claude,
        claude.messages.stream(
            model="m", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        ) as events,
    ):
        events.get_final_message()
    with oai.responses.stream(model="m", input="yo", store=False) as events:
        events.get_final_response()
    mock.script(["truncate,chunks=8"])
    # The broken stream ends with an error event, which the SDK may raise.
    with contextlib.suppress(openai.APIError):
        list(
            oai.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "cut"}], stream=True
            )
        )
    gw.stop()
    chat, message, response, broken = captures(gw)
    call = chat.response["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert chat.response["choices"][0]["finish_reason"] == "tool_calls"
    assert message.response["type"] == "message"
    assert message.response["content"][0]["text"] == "mock answer: hi"
    assert message.response["stop_reason"] == "end_turn"
    assert response.response["object"] == "response" and response.response["status"] == "completed"
    assert broken.request["messages"][0]["content"] == "cut"
    assert broken.response is None  # a broken stream's partial answer is not an answer


def test_sample_zero_keeps_nothing(gateway: GatewayFactory, mock: MockUpstreamThread) -> None:
    gw = gateway(config(mock.url, {"enabled": True, "sample": 0.0}))
    client(gw).chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    gw.stop()
    assert captures(gw) == []


def test_eval_traffic_is_ledgered_apart_and_never_captured(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(config(mock.url, {"enabled": True, "sample": 1.0}))
    oai = client(gw)
    oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "prod"}])
    reply = httpx.post(
        f"{gw.v1}/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "eval"}]},
        headers={"x-crossroads-eval": "run-1"},
    )
    assert reply.status_code == 200
    gw.stop()
    production = gw.ledger()
    evals = eval_ledger(gw.settings.data_dir)
    assert [r.request_id for r in evals] == [reply.headers["x-request-id"]]
    assert reply.headers["x-request-id"] not in {r.request_id for r in production}
    assert len(production) == 1
    assert len(captures(gw)) == 1


def test_the_gateways_own_secrets_never_reach_the_capture_file(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    provider_key = "planted-provider-key-" + "q7" * 12
    config_ = config(mock.url, {"enabled": True, "sample": 1.0})
    config_["providers"]["up"]["api_key_env"] = "PLANTED_KEY"
    gw = gateway(config_, environ={"PLANTED_KEY": provider_key})
    # The mock's answer quotes the user's text: the secret is in the request and the answer.
    for text in (f"my key {provider_key}", f"Authorization: Bearer {provider_key}"):
        client(gw).chat.completions.create(model="m", messages=[{"role": "user", "content": text}])
    gw.stop()
    kept = captures(gw)
    assert len(kept) == 2 and all(c.response for c in kept)
    for path in gw.settings.data_dir.glob("quality.sqlite3*"):
        assert provider_key.encode() not in path.read_bytes()
    assert "[redacted]" in kept[0].response["choices"][0]["message"]["content"]


def test_captures_of_every_format_replay_and_compare(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(config(mock.url, {"enabled": True, "sample": 1.0, "models": ["tools"]}))
    client(gw).chat.completions.create(
        model="tools", messages=[{"role": "user", "content": "weather?"}], tools=[TOOL]
    )
    with anthropic.Anthropic(base_url=gw.url, api_key="x", max_retries=0) as claude:
        claude.messages.create(
            model="tools",
            max_tokens=50,
            messages=[{"role": "user", "content": "weather?"}],
            tools=[
                {
                    "name": "get_weather",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                }
            ],
        )
    client(gw).responses.create(
        model="tools",
        input="weather?",
        store=False,
        tools=[
            {
                "type": "function",
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            }
        ],
    )
    writer = gw.gateway.services.capture
    for _ in range(6000):
        if writer.written == 3:
            break
        time.sleep(0.01)
    store = QualityStore(gw.settings.data_dir / QUALITY_FILE)
    try:
        items = store.captures()
        assert [c.endpoint for c in items] == ["chat.completions", "messages", "responses"]
        replay = Replay(
            store=store, url=gw.url, key=None, run="f", baseline="tools", candidates=["m"]
        )
        counts = asyncio.run(replay.run_all(items))
        assert counts["judged"] == 3 and counts["failed"] == 0
        verdicts = store.verdicts("tools", "m")
    finally:
        store.close()
    # `m` answers in text where `tools` calls the tool: a loss in every format, saying why.
    assert [v.outcome for v in verdicts] == ["loss"] * 3
    assert all(v.tool_agree is False for v in verdicts)
    assert all("tool calls differ in tools: ['get_weather'] vs []" in v.reasons for v in verdicts)
