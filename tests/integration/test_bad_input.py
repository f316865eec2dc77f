"""Bad input and bad upstreams: every one gets a 4xx/5xx in OpenAI's error shape with a message
that says what was wrong, never a 500 with a stack trace, and every request is ledgered."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from conftest import GatewayFactory, client, mock_config
from crossroads.ledger.record import Status
from crossroads.mockupstream import MockUpstreamThread

USER = [{"role": "user", "content": "hello"}]


def post(url: str, content: bytes | str, content_type: str = "application/json") -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions", content=content, headers={"content-type": content_type}
    )


def assert_openai_error(response: httpx.Response, status: int, *needles: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    for needle in needles:
        assert needle in error["message"], error["message"]
    assert "Traceback" not in response.text
    return dict(error)


CASES: list[tuple[str, bytes, str, int, tuple[str, ...], str | None]] = [
    (
        "malformed json",
        b'{"model": "m", "messages": [',
        "application/json",
        400,
        ("not valid JSON", "line 1"),
        None,
    ),
    ("not an object", b"[1, 2, 3]", "application/json", 400, ("JSON object", "an array"), None),
    ("empty body", b"", "application/json", 400, ("empty",), None),
    ("missing messages", b'{"model": "m"}', "application/json", 400, ("messages",), None),
    ("missing model", b'{"messages": []}', "application/json", 400, ("model",), None),
    (
        "messages wrong type",
        b'{"model": "m", "messages": "hi"}',
        "application/json",
        400,
        ("messages", "array"),
        "messages",
    ),
    (
        "content wrong type",
        b'{"model": "m", "messages": [{"role": "user", "content": 3}]}',
        "application/json",
        400,
        ("messages[0].content",),
        "messages[0].content",
    ),
    (
        "unknown role",
        b'{"model": "m", "messages": [{"role": "wizard", "content": "x"}]}',
        "application/json",
        400,
        ("wizard",),
        "messages[0].role",
    ),
    (
        "empty messages",
        b'{"model": "m", "messages": []}',
        "application/json",
        400,
        ("at least one",),
        "messages",
    ),
    (
        "temperature out of range",
        b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 9}',
        "application/json",
        400,
        ("temperature", "between 0 and 2"),
        "temperature",
    ),
    (
        "stream not bool",
        b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
        "application/json",
        400,
        ("stream",),
        "stream",
    ),
]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "needles", "param"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_requests_get_clear_errors(
    gateway: GatewayFactory,
    mock: MockUpstreamThread,
    body: bytes,
    content_type: str,
    status: int,
    needles: tuple[str, ...],
    param: str | None,
) -> None:
    gw = gateway(mock_config(mock.url))
    error = assert_openai_error(post(gw.url, body, content_type), status, *needles)
    if param is not None:
        assert error["param"] == param
    assert mock.requests() == []  # nothing bad reaches the upstream
    gw.stop()
    (record,) = gw.ledger()
    assert record.status is Status.ERROR and record.http_status == status


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", ""])
def test_a_body_that_is_not_json_is_415(
    gateway: GatewayFactory, mock: MockUpstreamThread, content_type: str
) -> None:
    """In open mode the edge refuses it before any route (a web page can send these types
    cross-site without asking), so it is not ledgered: no page can write to the ledger."""
    gw = gateway(mock_config(mock.url))
    body = json.dumps({"model": "m", "messages": USER})
    error = assert_openai_error(post(gw.url, body, content_type), 415, "application/json")
    assert error["code"] == "unsupported_media_type"
    assert mock.requests() == []
    gw.stop()
    assert gw.ledger() == []


def test_unknown_model_is_404(gateway: GatewayFactory, mock: MockUpstreamThread) -> None:
    gw = gateway(mock_config(mock.url))
    body = json.dumps({"model": "no-such-model", "messages": USER})
    error = assert_openai_error(post(gw.url, body), 404, "no-such-model")
    assert error["code"] == "model_not_found" and error["param"] == "model"


def test_oversized_body_is_413(gateway: GatewayFactory, mock: MockUpstreamThread) -> None:
    config = mock_config(mock.url) | {"server": {"max_body_bytes": 4096}}
    gw = gateway(config)
    big = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 5000}]})
    assert_openai_error(post(gw.url, big), 413, "4096 bytes")
    # Also when the client does not declare a length (chunked upload).
    chunked = httpx.post(
        f"{gw.v1}/chat/completions",
        content=iter([big.encode()[:3000], big.encode()[3000:]]),
        headers={"content-type": "application/json"},
    )
    assert_openai_error(chunked, 413, "4096 bytes")


def test_unknown_path_and_method(gateway: GatewayFactory, mock: MockUpstreamThread) -> None:
    gw = gateway(mock_config(mock.url))
    assert_openai_error(httpx.get(f"{gw.v1}/nothing-here"), 404, "/v1/nothing-here")
    assert_openai_error(httpx.get(f"{gw.v1}/chat/completions"), 405, "GET")


@pytest.mark.parametrize("script", ["malformed", "truncate", "status=200,error_body"])
def test_upstream_garbage_is_502(
    gateway: GatewayFactory, mock: MockUpstreamThread, script: str
) -> None:
    gw = gateway(mock_config(mock.url))
    mock.script([script, script])  # the first try and its one retry
    response = post(gw.url, json.dumps({"model": "m", "messages": USER}))
    assert_openai_error(response, 502, "up0")
    gw.stop()
    (record,) = gw.ledger()
    assert record.status is Status.ERROR and record.error_type == "upstream_error"
    assert record.attempts == 2


@pytest.mark.parametrize("script", ["truncate", "malformed", "reset=during"])
def test_stream_failure_after_first_byte_ends_with_error_event(
    gateway: GatewayFactory, mock: MockUpstreamThread, script: str
) -> None:
    gw = gateway(mock_config(mock.url))
    mock.script([f"{script},chunks=8"])
    with httpx.stream(
        "POST",
        f"{gw.v1}/chat/completions",
        json={"model": "m", "messages": USER, "stream": True},
        timeout=10,
    ) as response:
        assert response.status_code == 200
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert "[DONE]" not in events
    last = json.loads(events[-1])
    assert last["error"]["type"] == "upstream_error"
    assert "up0" in last["error"]["message"]
    gw.stop()
    (record,) = gw.ledger()
    assert record.status is Status.ERROR and record.stream


def test_upstream_that_is_down_is_502(gateway: GatewayFactory) -> None:
    gw = gateway(mock_config("http://127.0.0.1:9/v1"))
    with pytest.raises(Exception) as err:
        client(gw).chat.completions.create(model="m", messages=USER)  # type: ignore[arg-type]
    assert getattr(err.value, "status_code", None) == 502
    assert "could not be reached" in str(err.value)


def test_server_keeps_serving_after_bad_input(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url))
    for body in (b"\xff\xfe", b"{" * 10_000, b'{"model": null, "messages": null}', b"null"):
        assert 400 <= post(gw.url, body).status_code < 500
    ok = client(gw).chat.completions.create(model="m", messages=USER)  # type: ignore[arg-type]
    assert ok.choices[0].message.content


def test_a_bug_in_the_gateway_is_a_500_in_each_api_shape_without_its_details(
    gateway: GatewayFactory, mock: MockUpstreamThread, caplog: pytest.LogCaptureFixture
) -> None:
    """The direct routes (/v1/chat/completions, /v1/messages) and those Starlette routes
    (/v1/models/{id}) share one guarantee: an exception nobody handled is logged with its
    trace, and the client gets a 500 in its API's shape that reveals nothing of it."""
    gw = gateway(mock_config(mock.url))
    services = gw.gateway.services

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    services.router.route = broken  # type: ignore[method-assign]
    services.router.table.get = broken  # type: ignore[method-assign]
    chat = httpx.post(f"{gw.v1}/chat/completions", json={"model": "m", "messages": USER})
    error = assert_openai_error(chat, 500, "internal error")
    assert "secret" not in chat.text and error["type"] == "api_error"
    messages = httpx.post(
        f"{gw.v1}/messages", json={"model": "m", "max_tokens": 5, "messages": USER}
    )
    assert messages.status_code == 500 and messages.json()["type"] == "error"
    assert messages.json()["error"]["type"] == "api_error"
    assert "secret" not in messages.text
    one_model = httpx.get(f"{gw.v1}/models/m")
    assert_openai_error(one_model, 500, "internal error")
    gw.stop()
    assert caplog.text.count("secret internals") >= 3  # the trace went to the log
