"""OpenTelemetry export against a real OTLP/HTTP receiver on 127.0.0.1: the span tree of a
request that is retried, falls back and streams; the GenAI attributes and metrics; W3C trace
context in from the client and out to the upstream; content capture off by default and
scrubbed when on; secrets never exported; and a dead or hanging collector that changes nothing
for clients."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from conftest import GatewayFactory, client, mock_config
from crossroads.mockupstream import MockUpstreamThread, run_in_thread
from support.otlp import OtlpReceiver, Span, otlp_receiver

USER = [{"role": "user", "content": "hello"}]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as r:
        yield r


def telemetry(endpoint: str, **more: Any) -> dict[str, Any]:
    """Export on, flushed often (so a test waits little for what it asserts)."""
    return {
        "telemetry": {
            "enabled": True,
            "endpoint": endpoint,
            "schedule_delay": 0.05,
            "metric_interval": 1,
            "timeout": 2,
            **more,
        }
    }


def request_span(spans: list[Span], request_id: str) -> Span:
    (found,) = [
        s
        for s in spans
        if s.kind == "SERVER" and s.attributes.get("crossroads.request_id") == request_id
    ]
    return found


def children(spans: list[Span], parent: Span) -> list[Span]:
    return sorted(
        (s for s in spans if s.parent_span_id == parent.span_id and s.trace_id == parent.trace_id),
        key=lambda s: s.start_ns,
    )


def traced(receiver: OtlpReceiver, request_id: str, attempts: int) -> tuple[Span, list[Span]]:
    """The request's span and its attempt spans, once all have been exported."""

    def arrived(r: OtlpReceiver) -> bool:
        spans = r.spans()
        servers = [s for s in spans if s.attributes.get("crossroads.request_id") == request_id]
        return bool(servers) and len(children(spans, servers[0])) >= attempts

    receiver.wait_for(arrived)
    spans = receiver.spans()
    server = request_span(spans, request_id)
    return server, children(spans, server)


def test_retry_then_fallback_stream_is_one_trace_with_an_attempt_span_each(
    receiver: OtlpReceiver, gateway: GatewayFactory
) -> None:
    with run_in_thread() as first, run_in_thread() as second:
        first.script(["status=503", "status=503"])  # the retry fails too: fall back
        gw = gateway(mock_config(first.url, second.url) | telemetry(receiver.url))
        stream = client(gw).chat.completions.create(
            model="m",
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=50,
            temperature=0.5,
            extra_headers={"traceparent": TRACEPARENT},
        )
        with stream:
            chunks = list(stream)
        request_id = stream.response.headers["x-request-id"]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        upstream_seen = [r["headers"].get("traceparent") for r in first.requests()] + [
            r["headers"].get("traceparent") for r in second.requests()
        ]

    server, attempts = traced(receiver, request_id, 3)
    # The client's trace continues: same trace id, the request span is its child.
    assert server.trace_id == TRACE_ID
    assert server.parent_span_id == CLIENT_SPAN
    assert server.name == "chat m"
    a = server.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "m"
    assert a["gen_ai.request.max_tokens"] == 50
    assert a["gen_ai.request.temperature"] == 0.5
    assert a["gen_ai.response.model"] == "mock"
    assert a["gen_ai.response.finish_reasons"] == ["stop"]
    assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
    assert a["crossroads.attempts"] == 3
    assert a["crossroads.deployment"] == "up1:mock"
    assert a["crossroads.stream"] is True
    assert "crossroads.cancelled" not in a
    assert a["http.response.status_code"] == 200
    assert a["crossroads.routing.candidates"] == ["up0:mock", "up1:mock"]
    assert server.status_code != 2

    # Three sibling CLIENT spans: retried, fell back, answered.
    assert [s.kind for s in attempts] == ["CLIENT"] * 3
    assert [s.attributes["crossroads.deployment"] for s in attempts] == [
        "up0:mock",
        "up0:mock",
        "up1:mock",
    ]
    assert [s.attributes["crossroads.attempt.outcome"] for s in attempts] == [
        "retried",
        "fell_back",
        "ok",
    ]
    for failed in attempts[:2]:
        assert failed.attributes["error.type"] == "upstream_unavailable"
        assert failed.attributes["crossroads.upstream.status_code"] == 503
        assert failed.status_code == 2
    ok = attempts[2]
    assert ok.name == "chat mock"
    assert ok.status_code != 2
    assert ok.attributes["gen_ai.request.model"] == "mock"
    assert ok.attributes["gen_ai.response.model"] == "mock"
    assert ok.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert ok.attributes["gen_ai.usage.output_tokens"] == a["gen_ai.usage.output_tokens"]
    assert ok.attributes["server.address"] == "127.0.0.1"
    assert ok.attributes["server.port"] == int(second_port(ok, attempts))
    assert ok.attributes["crossroads.circuit.state"] == "closed"
    assert ok.end_ns >= ok.start_ns > attempts[1].end_ns  # the stream's span spans the stream

    # Each upstream saw a traceparent in the same trace, naming its own attempt span.
    assert upstream_seen == [f"00-{TRACE_ID}-{s.span_id}-01" for s in attempts]


def second_port(span: Span, attempts: list[Span]) -> int:
    port = span.attributes["server.port"]
    assert port != attempts[0].attributes["server.port"]  # a different upstream
    return int(port)


def test_without_traceparent_a_new_trace_starts_and_the_upstream_gets_one(
    receiver: OtlpReceiver, gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url) | telemetry(receiver.url))
    response = client(gw).chat.completions.with_raw_response.create(model="m", messages=USER)
    server, (attempt,) = traced(receiver, response.headers["x-request-id"], 1)
    assert server.parent_span_id == ""
    assert server.attributes["crossroads.attempts"] == 1
    assert attempt.attributes["crossroads.attempt.outcome"] == "ok"
    (seen,) = mock.requests()
    version, trace_id, parent, flags = seen["headers"]["traceparent"].split("-")
    assert (version, trace_id, parent) == ("00", server.trace_id, attempt.span_id)
    assert int(flags, 16) & 1  # sampled


def test_a_malformed_traceparent_is_ignored(
    receiver: OtlpReceiver, gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url) | telemetry(receiver.url))
    response = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "m", "messages": USER},
        headers={"traceparent": "00-zzzz-not-a-trace-01"},
        timeout=30,
    )
    assert response.status_code == 200
    server, _ = traced(receiver, response.headers["x-request-id"], 1)
    assert server.parent_span_id == ""


def test_anthropic_messages_get_spans_and_metrics(
    receiver: OtlpReceiver, gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url) | telemetry(receiver.url))
    messages = anthropic.Anthropic(base_url=gw.url, api_key="unused", max_retries=0)
    gw.clients.append(messages)
    raw = messages.messages.with_raw_response.create(
        model="m", max_tokens=64, messages=[{"role": "user", "content": "hello"}]
    )
    answer = raw.parse()
    server, (attempt,) = traced(receiver, raw.headers["x-request-id"], 1)
    assert server.attributes["crossroads.endpoint"] == "messages"
    assert server.attributes["gen_ai.operation.name"] == "chat"
    assert server.attributes["gen_ai.request.max_tokens"] == 64
    assert server.attributes["gen_ai.usage.output_tokens"] == answer.usage.output_tokens
    assert attempt.attributes["gen_ai.provider.name"] == "up0"  # no catalog host: its id

    def measured(r: OtlpReceiver) -> bool:
        return any(
            attrs.get("gen_ai.token.type") == "output"
            for attrs, _ in r.metric_points("gen_ai.client.token.usage")
        )

    receiver.wait_for(measured)
    points = receiver.metric_points("gen_ai.client.token.usage")
    kinds = {attrs["gen_ai.token.type"] for attrs, _ in points}
    assert kinds == {"input", "output"}
    attrs, point = next(p for p in points if p[0]["gen_ai.token.type"] == "output")
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "mock"
    assert attrs["server.address"] == "127.0.0.1"
    assert point.sum >= answer.usage.output_tokens
    assert list(point.explicit_bounds)[:3] == [1, 4, 16]  # the conventions' buckets
    receiver.wait_for(lambda r: bool(r.metric_points("gen_ai.client.operation.duration")))
    receiver.wait_for(lambda r: bool(r.metric_points("gen_ai.server.request.duration")))


def test_embeddings_are_traced(
    receiver: OtlpReceiver, gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url) | telemetry(receiver.url))
    raw = client(gw).embeddings.with_raw_response.create(model="m", input="hello")
    server, (attempt,) = traced(receiver, raw.headers["x-request-id"], 1)
    assert server.name == "embeddings m"
    assert attempt.attributes["gen_ai.operation.name"] == "embeddings"


def test_time_to_first_token_is_measured_for_streams(
    receiver: OtlpReceiver, gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url) | telemetry(receiver.url))
    with client(gw).chat.completions.create(model="m", messages=USER, stream=True) as stream:
        list(stream)
    receiver.wait_for(lambda r: bool(r.metric_points("gen_ai.server.time_to_first_token")))


def test_content_is_not_recorded_by_default(
    receiver: OtlpReceiver, gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url) | telemetry(receiver.url))
    marker = "purple-elephant-" + secrets.token_hex(4)
    raw = client(gw).chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": marker}]
    )
    server, (attempt,) = traced(receiver, raw.headers["x-request-id"], 1)
    for span in (server, attempt):
        assert not any(k.startswith(("gen_ai.input", "gen_ai.output")) for k in span.attributes)
    answer_words = raw.parse().choices[0].message.content
    assert answer_words
    assert not any(marker.encode() in body for body in receiver.raw)
    assert not any(answer_words.encode() in body for body in receiver.raw)


def test_content_when_turned_on_is_recorded_and_scrubbed(
    receiver: OtlpReceiver, gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    secret = "sk-upstream-" + secrets.token_hex(16)
    config = mock_config(mock.url) | telemetry(receiver.url, capture_content=True)
    config["providers"]["up0"]["api_key_env"] = "UP0_KEY"
    gw = gateway(config, environ={"UP0_KEY": secret})
    prompt = f"my key is {secret} please keep it"
    with client(gw).chat.completions.create(
        model="m", messages=[{"role": "user", "content": prompt}], stream=True
    ) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        request_id = stream.response.headers["x-request-id"]
    server, _ = traced(receiver, request_id, 1)
    sent = server.attributes["gen_ai.input.messages"]
    assert "please keep it" in sent
    assert secret not in sent and "[redacted]" in sent
    output = server.attributes["gen_ai.output.messages"]
    assert secret in text  # the mock echoes the prompt
    assert text.replace(secret, "[redacted]") in output
    assert '"role":"assistant"' in output
    assert not any(secret.encode() in body for body in receiver.raw)


def test_secrets_never_reach_the_collector(
    receiver: OtlpReceiver, gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    upstream_key = "sk-up-" + secrets.token_hex(16)
    admin_key = "admin-" + secrets.token_hex(16)
    collector_key = "collector-" + secrets.token_hex(16)
    config = mock_config(mock.url) | telemetry(receiver.url) | {"auth": {"mode": "keys"}}
    config["providers"]["up0"]["api_key_env"] = "UP0_KEY"
    gw = gateway(
        config,
        environ={
            "UP0_KEY": upstream_key,
            "CROSSROADS_ADMIN_KEY": admin_key,
            "OTEL_EXPORTER_OTLP_HEADERS": f"x-collector-key={collector_key}",
        },
    )
    made = httpx.post(
        f"{gw.url}/admin/keys",
        json={"name": "t"},
        headers={"Authorization": f"Bearer {admin_key}"},
        timeout=30,
    )
    assert made.status_code in (200, 201), made.text
    user_key = made.json()["key"]
    mock.script(["status=401"])  # the upstream refuses ours, and its error echoes the key
    raw = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": user_key}]},
        headers={"Authorization": f"Bearer {user_key}"},
        timeout=30,
    )
    wrong = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "m", "messages": USER},
        headers={"Authorization": "Bearer cr_not_a_real_key_" + secrets.token_hex(8)},
        timeout=30,
    )
    assert wrong.status_code == 401
    traced(receiver, raw.headers["x-request-id"], 1)
    # The request refused before its body was read is traced too, found by its x-request-id.
    refused_id = wrong.headers["x-request-id"]
    receiver.wait_for(
        lambda r: any(s.attributes.get("crossroads.request_id") == refused_id for s in r.spans())
    )
    refused = request_span(receiver.spans(), refused_id)
    assert refused.attributes["http.response.status_code"] == 401
    assert refused.attributes.get("error.type")
    gw.stop()  # flush everything, metrics too
    assert receiver.raw
    assert all(h.get("x-collector-key") == collector_key for h in receiver.headers)
    exported = b"".join(receiver.raw)
    for secret in (upstream_key, admin_key, user_key, collector_key, user_key.split("_")[-1]):
        assert secret.encode() not in exported
    assert b"authorization" not in exported.lower()


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("collector", ["dead", "hanging"])
def test_a_dead_or_hanging_collector_changes_nothing_for_clients(
    receiver: OtlpReceiver, gateway: GatewayFactory, mock: MockUpstreamThread, collector: str
) -> None:
    if collector == "hanging":
        receiver.hang()
        endpoint = receiver.url
    else:
        endpoint = closed_port()
    # A small queue: spans beyond it are dropped, never waited for.
    config = mock_config(mock.url) | telemetry(endpoint, timeout=3, max_queue_size=8)
    config["telemetry"]["max_export_batch_size"] = 4
    gw = gateway(config)
    openai_client = client(gw, timeout=60)
    for index in range(40):
        if index % 2:
            with openai_client.chat.completions.create(
                model="m", messages=USER, stream=True
            ) as stream:
                assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        else:
            answer = openai_client.chat.completions.create(model="m", messages=USER)
            assert answer.choices[0].message.content
            assert answer.choices[0].finish_reason == "stop"
    if collector == "hanging":
        receiver.wait_for(lambda r: r.hung_requests > 0)  # the exporter is stuck in a request
    # Still answering while the exporter is stuck, and every request is in the ledger.
    assert openai_client.chat.completions.create(model="m", messages=USER).choices
    gw.stop()
    assert len(gw.ledger()) == 41


def test_with_export_off_nothing_is_added_upstream(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url))
    assert gw.gateway.services.tracing is None
    response = httpx.post(
        f"{gw.url}/v1/chat/completions",
        json={"model": "m", "messages": USER},
        headers={"traceparent": TRACEPARENT},
        timeout=30,
    )
    assert response.status_code == 200
    (seen,) = mock.requests()
    assert "traceparent" not in seen["headers"]
