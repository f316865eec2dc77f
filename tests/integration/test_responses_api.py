"""The Responses API end to end: the real gateway, the scripted mock upstream (OpenAI's chat
format) over HTTP, and the official `openai` client's `responses` API. The same gateway behind
it: the ledger, pricing, keys and limits, stored responses and their owners, and bad input
answered in OpenAI's error shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from conftest import GatewayFactory, client, mock_config
from crossroads.ledger.record import Status
from crossroads.mockupstream import MockUpstreamThread
from crossroads.schemas.sealed_reasoning import seal
from support.gateway import gateway_for

ADMIN = "admin-key-for-tests-0123456789"
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def post(gw: Any, body: Any, key: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{gw.v1}/responses", json=body, headers=headers, timeout=30)


def sent(mock: MockUpstreamThread) -> dict[str, Any]:
    body: dict[str, Any] = mock.requests()[-1]["json"]
    return body


def keys_gateway(gateway: GatewayFactory, mock: MockUpstreamThread, **extra: Any) -> Any:
    config = mock_config(mock.url)
    config["auth"] = {"mode": "keys", "refresh_interval": 0.2}
    config.update(extra)
    return gateway(config, environ={"CROSSROADS_ADMIN_KEY": ADMIN})


def new_key(gw: Any, **body: Any) -> str:
    response = httpx.post(
        f"{gw.url}/admin/keys",
        json={"name": "test", **body},
        headers={"authorization": f"Bearer {ADMIN}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


# --- the gateway behind it -----------------------------------------------------------------


def test_whole_and_streamed_answers_are_ledgered_priced_and_named(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    config = mock_config(mock.url)
    config["providers"]["up0"]["host"] = "together"
    config["models"][0]["catalog_model"] = "moonshotai/kimi-k2-0905"
    gw = gateway(config)
    mock.script(["usage=1000/2000", "usage=1000/2000"])
    oai = client(gw)
    whole = oai.responses.with_raw_response.create(model="m", input="hi", store=False)
    assert whole.headers["x-crossroads-upstream-model"] == "mock"
    first = whole.parse()
    assert first.model == "m" and first.status == "completed"
    with oai.responses.stream(model="m", input="hi", store=False) as events:
        second = events.get_final_response()
    assert second.usage is not None and second.usage.output_tokens == 2000
    gw.stop()
    records = [r for r in gw.ledger() if r.endpoint == "responses"]
    assert [r.status for r in records] == [Status.OK, Status.OK]
    assert all(r.cost_usd and r.cost_usd > 0 for r in records)
    assert all(r.baseline_cost_usd and r.baseline_cost_usd > r.cost_usd for r in records)
    assert [r.requested_model for r in records] == ["m", "m"]
    # The response id names the request: `resp_` + the hex of its ledger request id.
    assert {f"resp_{r.request_id.removeprefix('req_')}" for r in records} == {first.id, second.id}


def test_rate_limits_and_keys_apply_with_openai_shaped_errors(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = keys_gateway(gateway, mock)
    key = new_key(gw, limits={"rpm": 1})
    assert post(gw, {"model": "m", "input": "hi", "store": False}, key).status_code == 200
    limited = post(gw, {"model": "m", "input": "hi", "store": False}, key)
    assert limited.status_code == 429 and "retry-after" in limited.headers
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    unauthenticated = post(gw, {"model": "m", "input": "hi"})
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["type"] == "authentication_error"


def test_a_fallback_serves_a_response_when_the_first_deployment_fails(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url, mock.url))
    mock.script(["status=503", "ok"])
    raw = client(gw).responses.with_raw_response.create(model="m", input="hi", store=False)
    assert raw.headers["x-crossroads-attempts"] == "2"
    assert raw.parse().output_text == "mock answer: hi"


# --- stored responses ----------------------------------------------------------------------


def test_previous_response_id_continues_the_conversation_and_get_delete_work(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url))
    oai = client(gw)
    mock.script(["tool_call,reasoning=3", "ok", "ok"])
    first = oai.responses.create(
        model="m", input="weather in Paris?", instructions="Be brief.", tools=[WEATHER]
    )
    [call] = [item for item in first.output if item.type == "function_call"]
    second = oai.responses.create(
        model="m",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18 C"}],
        tools=[WEATHER],
    )
    assert second.previous_response_id == first.id
    messages = sent(mock)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]  # instructions not kept
    assert messages[1]["tool_calls"][0]["id"] == call.call_id
    assert messages[1]["reasoning_content"] == "thinking thinking thinking"
    third = oai.responses.create(model="m", previous_response_id=second.id, input="thanks")
    roles = [m["role"] for m in sent(mock)["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "user"]
    assert oai.responses.retrieve(third.id).output_text == third.output_text
    oai.responses.delete(third.id)
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(third.id)
    with pytest.raises(openai.BadRequestError) as gone:
        oai.responses.create(model="m", previous_response_id=third.id, input="more")
    assert gone.value.body["code"] == "previous_response_not_found"  # type: ignore[index]


def test_store_false_is_not_kept(gateway: GatewayFactory, mock: MockUpstreamThread) -> None:
    gw = gateway(mock_config(mock.url))
    oai = client(gw)
    unstored = oai.responses.create(model="m", input="hi", store=False)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(unstored.id)


def test_a_stored_response_belongs_to_its_key(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = keys_gateway(gateway, mock)
    owner, other = new_key(gw), new_key(gw)
    made = post(gw, {"model": "m", "input": "secret plans"}, owner).json()
    url = f"{gw.v1}/responses/{made['id']}"
    assert httpx.get(url, headers={"authorization": f"Bearer {owner}"}).status_code == 200
    stranger = httpx.get(url, headers={"authorization": f"Bearer {other}"})
    assert stranger.status_code == 404 and "secret" not in stranger.text
    continued = post(
        gw, {"model": "m", "input": "go on", "previous_response_id": made["id"]}, other
    )
    assert continued.status_code == 400
    assert continued.json()["error"]["code"] == "previous_response_not_found"
    deleted = httpx.delete(url, headers={"authorization": f"Bearer {other}"})
    assert deleted.status_code == 404
    assert httpx.get(url).status_code == 401


def test_stored_responses_survive_a_restart(mock: MockUpstreamThread, tmp_path: Path) -> None:
    folder = tmp_path / "gw"
    with gateway_for(folder, mock_config(mock.url)) as gw:
        oai = client(gw)
        made = oai.responses.create(model="m", input="remember this")
    with gateway_for(folder, mock_config(mock.url)) as gw:
        oai = client(gw)
        assert oai.responses.retrieve(made.id).output_text == "mock answer: remember this"
        oai.responses.create(model="m", previous_response_id=made.id, input="and now?")
        assert sent(mock)["messages"][0]["content"] == "remember this"


def test_with_storage_off_what_needs_it_is_a_clear_400(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    config = {**mock_config(mock.url), "responses": {"store": False}}
    gw = gateway(config)
    answered = post(gw, {"model": "m", "input": "hi"})
    assert answered.status_code == 200 and answered.json()["store"] is False
    for extra in ({"store": True}, {"previous_response_id": "resp_1"}):
        refused = post(gw, {"model": "m", "input": "hi", **extra})
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "storage_disabled"
        assert "response storage is off" in refused.json()["error"]["message"]
    assert httpx.get(f"{gw.v1}/responses/{answered.json()['id']}").status_code == 400


# --- tools the gateway cannot run ----------------------------------------------------------


def test_built_in_tools_are_dropped_and_named(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url))
    body = {
        "model": "m",
        "input": "hi",
        "store": False,
        "tools": [WEATHER, {"type": "web_search", "external_web_access": True}],
    }
    answered = post(gw, body)
    assert answered.status_code == 200
    assert answered.headers["x-crossroads-dropped-params"] == "tools.web_search"
    assert [t["function"]["name"] for t in sent(mock)["tools"]] == ["get_weather"]
    forced = post(gw, {**body, "tool_choice": {"type": "web_search"}})
    assert forced.status_code == 400
    assert "not available on this gateway" in forced.json()["error"]["message"]


# --- bad input -----------------------------------------------------------------------------

BAD: list[tuple[Any, str]] = [
    ({"input": "hi"}, "model: field required"),
    ({"model": "m"}, "input: at least one input item"),
    ({"model": "m", "input": [{"type": "message", "role": "robot", "content": "x"}]}, "input[0]"),
    ({"model": "m", "input": [{"type": "telepathy"}]}, "unsupported input item type 'telepathy'"),
    ({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}, "item_reference"),
    (
        {"model": "m", "input": [{"type": "function_call_output", "call_id": "c9", "output": "x"}]},
        "input[0].call_id: no earlier call has the call_id 'c9'",
    ),
    (
        {"model": "m", "input": [{"role": "user", "content": [{"type": "input_file"}]}]},
        "unsupported content part type 'input_file'",
    ),
    ({"model": "m", "input": "hi", "tools": [{"type": "teleport"}]}, "tools[0].type"),
    ({"model": "m", "input": "hi", "tools": [{"type": "function"}]}, "tools[0].name"),
    (
        {"model": "m", "input": "hi", "tools": [{"type": "function", "name": "f"}] * 2},
        "two tools are named 'f'",
    ),
    ({"model": "m", "input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "m", "input": "hi", "temperature": 7}, "temperature"),
    ({"model": "m", "input": "hi", "reasoning": {"effort": "extreme"}}, "reasoning.effort"),
    ({"model": "m", "input": "hi", "text": {"format": {"type": "json_schema"}}}, "schema"),
    ({"model": "m", "input": "hi", "tool_choice": {"type": "function", "name": "x"}}, "no tool"),
    ({"model": "m", "input": "hi", "metadata": {str(i): "v" for i in range(17)}}, "metadata"),
    ({"model": "m", "input": "hi", "previous_response_id": "r" * 300}, "previous_response_id"),
    ({"model": "m", "input": "hi", "background": True}, "background responses are not supported"),
    ({"model": "m", "input": "hi", "conversation": "conv_1"}, "Conversations API"),
    ({"model": "m", "input": "hi", "prompt": {"id": "pmpt_1"}}, "prompt templates"),
]


@pytest.mark.parametrize(("body", "needle"), BAD, ids=[needle for _, needle in BAD])
def test_bad_input_is_a_400_naming_the_field(
    gateway: GatewayFactory, mock: MockUpstreamThread, body: Any, needle: str
) -> None:
    gw = gateway(mock_config(mock.url))
    answer = post(gw, body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert needle in error["message"]
    assert error["type"] == "invalid_request_error"
    assert mock.requests() == []
    gw.stop()
    [record] = gw.ledger()
    assert record.status is Status.ERROR and record.endpoint == "responses"


def test_an_unknown_model_is_a_404(gateway: GatewayFactory, mock: MockUpstreamThread) -> None:
    gw = gateway(mock_config(mock.url))
    answer = post(gw, {"model": "nope", "input": "hi"})
    assert answer.status_code == 404 and "nope" in answer.json()["error"]["message"]


def test_sealed_reasoning_cannot_inflate_a_prompt(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    """A client chooses what it sends back: 40 tokens of 4 MB each (zlib packs them small)
    open to no more than the per-request budget of restored reasoning."""
    gw = gateway(mock_config(mock.url))
    bomb = seal("x" * 4_000_000)
    items: list[Any] = [{"role": "user", "content": "hi"}]
    for i in range(40):
        items += [
            {"type": "reasoning", "summary": [], "encrypted_content": bomb},
            {"type": "function_call", "call_id": f"c{i}", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": f"c{i}", "output": "ok"},
        ]
    answer = post(gw, {"model": "m", "input": items, "store": False})
    assert answer.status_code == 200
    restored = sum(len(m.get("reasoning_content") or "") for m in sent(mock)["messages"])
    assert 0 < restored <= 4 * 1024 * 1024


def test_a_broken_upstream_stream_ends_with_response_failed(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url))
    mock.script(["malformed"])
    body = {"model": "m", "input": "hi", "stream": True, "store": False}
    with httpx.stream("POST", f"{gw.v1}/responses", json=body, timeout=30) as response:
        data = [json.loads(x[6:]) for x in response.iter_lines() if x.startswith("data: ")]
    assert data[-1]["type"] == "response.failed"
    assert data[-1]["response"]["status"] == "failed"
    assert data[-1]["response"]["error"]["message"]
    gw.stop()
    assert [r.status for r in gw.ledger()] == [Status.ERROR]


# --- upstreams that speak the Responses API themselves -------------------------------------


def native_config(mock: MockUpstreamThread) -> dict[str, Any]:
    """`native` passes Responses requests through; `chat` (the fallback) gets them translated."""
    return {
        "embedded": {"enabled": False},
        "providers": {
            "native": {"type": "openai", "base_url": mock.url, "options": {"responses": True}},
            "chat": {"type": "openai", "base_url": mock.url},
        },
        "models": [
            {"name": "m", "provider": "native", "upstream_model": "gpt-up"},
            {"name": "m", "provider": "chat", "upstream_model": "chat-up"},
        ],
        "routing": {"retries": 0},
    }


def test_a_responses_upstream_gets_the_request_unchanged(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(native_config(mock))
    oai = client(gw)
    body: Any = {
        "input": [{"role": "user", "content": "hi"}],
        "tools": [WEATHER, {"type": "web_search"}],
        "reasoning": {"effort": "low", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
        "store": False,
        "prompt_cache_key": "k1",
    }
    whole = oai.responses.with_raw_response.create(model="m", **body)
    assert whole.parse().output_text == "mock answer: hi" and whole.parse().model == "m"
    [request] = mock.requests()
    assert request["path"] == "/v1/responses"
    assert request["json"] == {**body, "model": "gpt-up"}  # built-in tools and all, unchanged
    with oai.responses.stream(model="m", input="hi again", store=False) as events:
        kinds = [event.type for event in events]
        final = events.get_final_response()
    assert final.output_text == "mock answer: hi again" and final.model == "m"
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    gw.stop()
    records = gw.ledger()
    assert [r.endpoint for r in records] == ["responses", "responses"]
    assert all(r.prompt_tokens == 3 and r.completion_tokens == 5 for r in records)


def test_a_responses_upstream_falls_back_to_a_translated_one(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(native_config(mock))
    mock.script(["status=503", "ok", "status=503", "ok"])
    oai = client(gw)
    assert oai.responses.create(model="m", input="hi", store=False).output_text == "mock answer: hi"
    with oai.responses.stream(model="m", input="yo", store=False) as events:
        assert events.get_final_response().output_text == "mock answer: yo"
    paths = [r["path"] for r in mock.requests()]
    assert paths == ["/v1/responses", "/v1/chat/completions"] * 2


def test_a_pass_through_continues_a_stored_response(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    """The upstream never saw the gateway's ids: a `previous_response_id` the gateway holds is
    sent as the stored items at the head of `input`."""
    gw = gateway(native_config(mock))
    oai = client(gw)
    first = oai.responses.create(model="m", input="remember 7")
    oai.responses.create(model="m", previous_response_id=first.id, input="which number?")
    sent_body = mock.requests()[-1]["json"]
    assert "previous_response_id" not in sent_body
    texts = [item.get("content") for item in sent_body["input"] if item.get("role") == "user"]
    assert texts == ["remember 7", "which number?"]
    assert sent_body["input"][1]["type"] == "message"  # the stored answer between them


def test_replicas_on_postgres_share_stored_responses(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    """With the PostgreSQL storage backend, a response stored through one replica is continued,
    read and deleted through another."""
    from support.services import fresh_database

    with fresh_database("crossroads_resp") as url:
        config = {**mock_config(mock.url), "storage": {"backend": "postgres"}}
        environ = {"CROSSROADS_POSTGRES_URL": url}
        first, second = gateway(config, environ=environ), gateway(config, environ=environ)
        made = client(first).responses.create(model="m", input="remember 7")
        other = client(second)
        other.responses.create(model="m", previous_response_id=made.id, input="which?")
        assert sent(mock)["messages"][0]["content"] == "remember 7"
        assert other.responses.retrieve(made.id).output_text == made.output_text
        other.responses.delete(made.id)
        with pytest.raises(openai.NotFoundError):
            client(first).responses.retrieve(made.id)
        first.stop()
        second.stop()
