"""Routing leaves out deployments that cannot serve what a request needs (tools, its context
length), so a fallback's refusal never hides the primary's real failure; a deployment set to
drop unsupported tools serves a tool request in text only when no candidate can call them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import GatewayFactory, client, mock_config
from crossroads.mockupstream import MockUpstreamThread, run_in_thread

TOOLS = [{"type": "function", "function": {"name": "bash", "parameters": {"type": "object"}}}]
USER = [{"role": "user", "content": "hello"}]


def two_tier(primary: str, small: str, *, unsupported_tools: str = "drop") -> dict[str, Any]:
    """The README's `fast` pattern: a tool-calling primary and a small text-only fallback (the
    embedded model's catalog entry, served by a mock so the test needs no llama.cpp)."""
    return {
        "embedded": {"enabled": False},
        "providers": {
            "primary": {"type": "openai", "base_url": primary, "host": "deepseek"},
            "small": {"type": "openai", "base_url": small},
        },
        "models": [
            {
                "name": "deepseek-v4-pro",
                "provider": "primary",
                "upstream_model": "deepseek-v4-pro",
                "catalog_model": "deepseek/deepseek-v4-pro",
            },
            {
                "name": "smol",
                "provider": "small",
                "upstream_model": "smollm2",
                "catalog_model": "huggingface/smollm2-135m-instruct",
                "unsupported_tools": unsupported_tools,
            },
        ],
        "aliases": {"fast": ["deepseek-v4-pro", "smol"]},
        "routing": {"retries": 0},
    }


@pytest.fixture
def small() -> Any:
    with run_in_thread() as upstream:
        yield upstream


def chat(gw: Any, **body: Any) -> httpx.Response:
    return httpx.post(f"{gw.v1}/chat/completions", json={"messages": USER, **body}, timeout=30)


@pytest.mark.parametrize(
    ("script", "status"),
    [("status=503", 502), ("status=500", 502), ("status=429,retry_after=60", 429)],
)
def test_the_primarys_failure_reaches_the_client_not_the_fallbacks_refusal(
    gateway: GatewayFactory,
    mock: MockUpstreamThread,
    small: MockUpstreamThread,
    script: str,
    status: int,
) -> None:
    gw = gateway(two_tier(mock.url, small.url))
    mock.script([script])
    response = chat(gw, model="fast", tools=TOOLS)
    assert response.status_code == status, response.text
    assert "provider 'primary'" in response.json()["error"]["message"]
    assert small.requests() == []  # the text-only fallback was never asked


def test_a_primary_that_is_unreachable_is_a_502_naming_it(
    gateway: GatewayFactory, small: MockUpstreamThread
) -> None:
    with run_in_thread() as gone:
        url = gone.url
    gw = gateway(two_tier(url, small.url))
    response = chat(gw, model="fast", tools=TOOLS)
    assert response.status_code == 502, response.text
    assert "primary" in response.json()["error"]["message"]


def test_without_tools_the_fallback_still_serves(
    gateway: GatewayFactory, mock: MockUpstreamThread, small: MockUpstreamThread
) -> None:
    gw = gateway(two_tier(mock.url, small.url))
    mock.script(["status=503"])
    assert chat(gw, model="fast").status_code == 200
    assert len(small.requests()) == 1


@pytest.mark.parametrize("stream", [False, True])
def test_asked_directly_a_dropping_deployment_answers_in_text_and_says_so(
    gateway: GatewayFactory, mock: MockUpstreamThread, small: MockUpstreamThread, stream: bool
) -> None:
    gw = gateway(two_tier(mock.url, small.url))
    if stream:
        with client(gw).chat.completions.with_streaming_response.create(
            model="smol", messages=USER, tools=TOOLS, tool_choice="auto", stream=True
        ) as response:
            headers = response.headers
            list(response.parse())
    else:
        raw = client(gw).chat.completions.with_raw_response.create(
            model="smol", messages=USER, tools=TOOLS, tool_choice="auto"
        )
        headers = raw.headers
    assert headers["x-crossroads-dropped-params"] == "tools"
    sent = small.requests()[-1]["json"]
    assert "tools" not in sent and "tool_choice" not in sent


def test_a_refusing_deployment_is_left_out_with_the_reason(
    gateway: GatewayFactory, mock: MockUpstreamThread, small: MockUpstreamThread
) -> None:
    gw = gateway(two_tier(mock.url, small.url, unsupported_tools="refuse"))
    response = chat(gw, model="smol", tools=TOOLS)
    assert response.status_code == 400
    assert "does not support tool calling" in response.json()["error"]["message"]
    assert small.requests() == []


def test_tool_choice_none_needs_no_tool_calling(
    gateway: GatewayFactory, mock: MockUpstreamThread, small: MockUpstreamThread
) -> None:
    gw = gateway(two_tier(mock.url, small.url, unsupported_tools="refuse"))
    assert chat(gw, model="smol", tools=TOOLS, tool_choice="none").status_code == 200


def test_a_prompt_longer_than_the_models_context_is_routed_elsewhere(
    gateway: GatewayFactory, mock: MockUpstreamThread, small: MockUpstreamThread
) -> None:
    """SmolLM2's context is 8,192 tokens; a ~50K-character prompt goes to the primary only."""
    gw = gateway(two_tier(mock.url, small.url))
    mock.script(["status=503"])
    long = [{"role": "user", "content": "word " * 10_000}]
    response = httpx.post(
        f"{gw.v1}/chat/completions", json={"model": "fast", "messages": long}, timeout=30
    )
    assert response.status_code == 502
    assert small.requests() == []


def test_route_explain_shows_the_tool_exclusion(
    gateway: GatewayFactory, mock: MockUpstreamThread, small: MockUpstreamThread
) -> None:
    gw = gateway(two_tier(mock.url, small.url))
    explained = httpx.post(
        f"{gw.v1}/route/explain", json={"model": "fast", "tools": True}, timeout=30
    ).json()
    rows = {row["deployment"]: row for row in explained["candidates"]}
    assert "tool calling" in str(rows["small:smollm2"])


def test_when_every_deployment_fails_the_message_names_each_attempt(
    gateway: GatewayFactory, mock: MockUpstreamThread, small: MockUpstreamThread
) -> None:
    config = mock_config(mock.url, small.url)
    config["routing"] = {"retries": 0}
    gw = gateway(config)
    mock.script(["status=503"])
    small.script(["status=500"])
    response = chat(gw, model="m")
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert "all 2 deployments of 'm' failed" in message
    assert "up0:mock: provider 'up0' answered HTTP 503" in message
    assert "up1:mock: provider 'up1' answered HTTP 500" in message
