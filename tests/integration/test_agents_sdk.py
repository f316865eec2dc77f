"""The OpenAI Agents SDK (`openai-agents`) through the gateway's /v1/responses, with its default
Responses model (OpenAIResponsesModel on an AsyncOpenAI client): an agent calls a function
tool and answers, run whole and streamed, against an OpenAI-format and a DeepSeek-style
(reasoning) upstream. Tracing is disabled per run, so nothing is sent to api.openai.com."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from agents import Agent, OpenAIResponsesModel, RunConfig, Runner, function_tool
from openai import AsyncOpenAI

from conftest import GatewayFactory
from crossroads.ledger.record import Status
from crossroads.mockupstream import MockUpstreamThread
from support.gateway import GatewayThread
from support.responses_capture import CaptureServer, function_call, message

QUESTION = "What is the weather in Paris?"
NO_TRACING = RunConfig(tracing_disabled=True)


@function_tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"18 C and sunny in {city}"


def weather_agent(base_url: str, model: str) -> tuple[Agent[Any], AsyncOpenAI]:
    client = AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
    responses_model = OpenAIResponsesModel(model=model, openai_client=client)
    agent = Agent(
        name="weather",
        instructions="Answer questions about the weather; use the tool.",
        tools=[get_weather],
        model=responses_model,
    )
    return agent, client


async def run_agent(agent: Agent[Any], client: AsyncOpenAI, stream: bool) -> str:
    try:
        if not stream:
            result = await Runner.run(agent, QUESTION, run_config=NO_TRACING, max_turns=4)
            return str(result.final_output)
        streamed = Runner.run_streamed(agent, QUESTION, run_config=NO_TRACING, max_turns=4)
        kinds = [event.type async for event in streamed.stream_events()]
        assert "raw_response_event" in kinds  # it really streamed
        return str(streamed.final_output)
    finally:
        await client.close()


@pytest.fixture
def gw(gateway: GatewayFactory, mock: MockUpstreamThread) -> GatewayThread:
    return gateway(
        {
            "embedded": {"enabled": False},
            "providers": {"up": {"type": "openai", "base_url": mock.url}},
            "models": [
                {"name": "openai", "provider": "up", "upstream_model": "mock"},
                {"name": "deepseek", "provider": "up", "upstream_model": "mock"},
            ],
        }
    )


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", ["openai", "deepseek"])
def test_agent_calls_a_function_tool_and_answers(
    gw: GatewayThread, mock: MockUpstreamThread, model: str, stream: bool
) -> None:
    extra = ",reasoning=6" if model == "deepseek" else ""
    mock.script([f"tool=get_weather{extra}", f"ok{extra}"])
    agent, client = weather_agent(gw.v1, model)

    answer = asyncio.run(run_agent(agent, client, stream))

    assert answer.startswith("mock answer:")
    first, second = [r["json"] for r in mock.requests()]
    assert first["messages"][0] == {
        "role": "system",
        "content": "Answer questions about the weather; use the tool.",
    }
    assert [t["function"]["name"] for t in first["tools"]] == ["get_weather"]
    (assistant,) = [m for m in second["messages"] if m.get("tool_calls")]
    (call,) = assistant["tool_calls"]
    assert json.loads(call["function"]["arguments"]) == {"city": QUESTION}  # the mock's placeholder
    (result,) = [m for m in second["messages"] if m["role"] == "tool"]
    assert result["tool_call_id"] == call["id"]
    assert f"18 C and sunny in {QUESTION}" in json.dumps(result["content"])
    gw.stop()
    records = gw.ledger()
    assert [(r.endpoint, r.status, r.stream) for r in records] == [
        ("responses", Status.OK, stream)
    ] * 2


def test_agent_loop_against_the_capture_server() -> None:
    """What the SDK sends, pinned against a server that answers as OpenAI does: `instructions`,
    a strict function tool, and in turn 2 the call and its output as input items; no `store`,
    no `previous_response_id`."""
    with CaptureServer() as capture:
        capture.script([function_call("get_weather", {"city": "Paris"})], [message("18 C.")])
        agent, client = weather_agent(capture.v1, "m")
        answer = asyncio.run(run_agent(agent, client, stream=False))
    assert answer == "18 C."
    first, second = (r.json for r in capture.requests)
    assert first["instructions"] == "Answer questions about the weather; use the tool."
    assert first["tools"][0]["strict"] is True
    assert "store" not in first and "previous_response_id" not in second
    kinds = [item.get("type", "message") for item in second["input"]]
    assert kinds == ["message", "function_call", "function_call_output"]
    assert second["input"][2] == {
        "call_id": "call_capture_1",
        "output": "18 C and sunny in Paris",
        "type": "function_call_output",
    }
