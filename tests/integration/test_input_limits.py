"""Input limits that protect money and the ledger, over real HTTP with a key that has a budget:
JSON nesting depth, integers beyond what hosts can read, the requested model's length,
requests refused before routing still counting against requests per minute, wrong keys not
growing the ledger, and every admitted request releasing its budget hold on every way out
(an unexpected exception included) with exactly one ledger record."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from crossroads.governance.budgets import to_micros
from crossroads.ledger.record import Status
from crossroads.mockupstream import MockUpstreamThread
from support.gateway import GatewayThread, gateway_for, settled_spend
from support.priced import ADMIN, admin, priced_config

USER = [{"role": "user", "content": "hello"}]


@pytest.fixture
def gw(tmp_path: Path, mock: MockUpstreamThread) -> Iterator[GatewayThread]:
    config = priced_config(mock.url)
    config["models"].append({"name": "e", "provider": "up0", "upstream_model": "mock"})
    with gateway_for(tmp_path, config, {"CROSSROADS_ADMIN_KEY": ADMIN}) as gateway:
        yield gateway


def budget_key(gw: GatewayThread, **limits: Any) -> tuple[str, str]:
    """A key with a $100 total budget (and `limits`); its secret and its budget counter key."""
    body = {"name": "b", "limits": {"budget_usd": 100, "budget_period": "total", **limits}}
    created = admin(gw, "/admin/keys", body)
    return str(created["key"]), f"budget:key:{created['id']}:total"


DEEP = "__deep__"


def post(gw: GatewayThread, path: str, key: str | None, body: Any, deep: int = 0) -> httpx.Response:
    """POSTs `body` (bytes as they are); with `deep`, the string DEEP in it becomes a value
    that many containers deep (written as text: no encoder goes past 255 levels)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()  # any size of int
    if deep:
        raw = raw.replace(orjson.dumps(DEEP), nested_text(deep))
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    return httpx.post(f"{gw.url}{path}", content=raw, headers=headers, timeout=30)


def openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error


def anthropic_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    body = response.json()
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
    error: dict[str, Any] = body["error"]
    return error


def nested(depth: int) -> Any:
    """A JSON value `depth` containers deep (the outermost counts as 1)."""
    value: Any = 1
    for i in range(depth):
        value = {"a": value} if i % 2 else [value]
    return value


def nested_text(depth: int) -> bytes:
    """`nested(depth)` as JSON text."""
    opens = [b'{"a":' if i % 2 else b"[" for i in reversed(range(depth))]
    closes = [b"}" if i % 2 else b"]" for i in range(depth)]
    return b"".join(opens) + b"1" + b"".join(closes)


def ledger_spend_micros(gw: GatewayThread) -> int:
    """What the stopped gateway's ledger says was spent, as the counters count it: each
    request's cost rounded up to a micro-dollar."""
    return sum(to_micros(r.cost_usd) for r in gw.ledger())


def bodies_with() -> list[tuple[str, dict[str, Any], int]]:
    """A request to each endpoint carrying DEEP somewhere, and how many containers hold it."""
    return [
        ("/v1/chat/completions", {"model": "m", "messages": USER, "metadata": {"x": DEEP}}, 2),
        (
            "/v1/chat/completions",
            {"model": "m", "messages": USER, "stream": True, "metadata": {"x": DEEP}},
            2,
        ),
        (
            "/v1/messages",
            {"model": "m", "max_tokens": 16, "messages": USER, "metadata": {"x": DEEP}},
            2,
        ),
        (
            "/v1/messages",
            {
                "model": "m",
                "max_tokens": 16,
                "messages": USER,
                "tools": [{"name": "t", "input_schema": {"x": DEEP}}],
            },
            4,
        ),
        (
            "/v1/messages/count_tokens",
            {"model": "m", "messages": USER, "tools": [{"name": "t", "input_schema": {"x": DEEP}}]},
            4,
        ),
        ("/v1/embeddings", {"model": "e", "input": "hi", "extra": {"x": DEEP}}, 2),
    ]


@pytest.mark.parametrize("depth", [65, 256, 1000])
def test_deep_json_is_a_400_in_the_apis_shape_and_releases_nothing_held(
    gw: GatewayThread, mock: MockUpstreamThread, depth: int
) -> None:
    key, counter = budget_key(gw)
    for path, body, above in bodies_with():
        response = post(gw, path, key, body, deep=depth - above)
        if path.startswith("/v1/messages"):
            error = anthropic_error(response, 400)
        else:
            error = openai_error(response, 400)
            assert error["code"] == "json_too_deep"
        assert "64 levels deep" in error["message"]
    assert mock.requests() == []
    assert settled_spend(gw, counter, 0) == 0
    gw.stop()
    refused = [r for r in gw.ledger() if r.http_status == 400]
    assert len(refused) == 5  # one each, but count_tokens, which never writes a record


def test_json_at_the_depth_limit_is_served(gw: GatewayThread) -> None:
    key, _ = budget_key(gw)
    for path, body, above in bodies_with():
        response = post(gw, path, key, body, deep=64 - above)
        assert response.status_code == 200, (path, response.text[:300])


def test_unexpected_errors_are_ledgered_and_release_the_budget(
    gw: GatewayThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug anywhere after admission (simulated: the router raising what nobody expects) is a
    500 in the API's shape, an error record, and a released hold; an object orjson cannot
    encode is the client's 400."""
    key, counter = budget_key(gw)
    router = gw.gateway.router

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    async def unencodable(*args: Any, **kwargs: Any) -> Any:
        orjson.dumps(nested(300))

    monkeypatch.setattr(router, "complete", broken)
    error = openai_error(
        post(gw, "/v1/chat/completions", key, {"model": "m", "messages": USER}), 500
    )
    assert "internal error" in error["message"] and "a bug" not in error["message"]
    error = anthropic_error(
        post(gw, "/v1/messages", key, {"model": "m", "max_tokens": 9, "messages": USER}), 500
    )
    assert error["type"] == "api_error"
    monkeypatch.setattr(router, "open_stream", broken)
    stream = {"model": "m", "messages": USER, "stream": True}
    openai_error(post(gw, "/v1/chat/completions", key, stream), 500)
    monkeypatch.setattr(router, "embed", unencodable)
    error = openai_error(post(gw, "/v1/embeddings", key, {"model": "e", "input": "x"}), 400)
    assert error["code"] == "unencodable_json"
    assert settled_spend(gw, counter, 0) == 0
    gw.stop()
    records = gw.ledger()
    assert [r.http_status for r in records] == [500, 500, 500, 400]
    assert all(r.status is Status.ERROR and r.api_key_id for r in records)


def test_a_long_model_name_is_refused_before_routing_and_stored_cut(gw: GatewayThread) -> None:
    key, _ = budget_key(gw)
    name = "m" * 300
    error = openai_error(
        post(gw, "/v1/chat/completions", key, {"model": name, "messages": USER}), 400
    )
    assert error["code"] == "model_name_too_long" and error["param"] == "model"
    huge = "x" * 1_000_000
    response = post(gw, "/v1/messages", key, {"model": huge, "max_tokens": 5, "messages": USER})
    anthropic_error(response, 400)
    assert len(response.content) < 4000
    response = post(gw, "/v1/messages/count_tokens", key, {"model": huge, "messages": USER})
    anthropic_error(response, 404)
    assert len(response.content) < 4000  # the unknown name is not echoed whole
    gw.stop()
    stored = [r.requested_model for r in gw.ledger()]
    assert stored == ["m" * 256, "x" * 256]


def test_refused_requests_count_against_requests_per_minute(gw: GatewayThread) -> None:
    """Authenticate, count the request, then validate: unknown models and bad bodies are
    refused as before, but they count, so refusals cannot get round the limit."""
    key, _ = budget_key(gw, rpm=5)
    statuses = [
        post(
            gw, "/v1/chat/completions", key, {"model": "x" * 100_000, "messages": USER}
        ).status_code,
        post(gw, "/v1/chat/completions", key, {"model": "nope", "messages": USER}).status_code,
        post(gw, "/v1/messages", key, {"model": "m"}).status_code,
        post(gw, "/v1/embeddings", key, b"{not json").status_code,
        post(gw, "/v1/chat/completions", key, {"model": "m", "messages": USER}).status_code,
        post(gw, "/v1/chat/completions", key, {"model": "nope", "messages": USER}).status_code,
        post(gw, "/v1/chat/completions", key, {"model": "m", "messages": USER}).status_code,
    ]
    assert statuses == [400, 404, 400, 400, 200, 429, 429]


def test_wrong_keys_add_no_ledger_rows_and_are_counted_in_metrics(gw: GatewayThread) -> None:
    body = orjson.dumps({"model": "m", "messages": USER})
    with httpx.Client(timeout=10) as http:
        for i in range(1000):
            headers = {"content-type": "application/json"}
            if i % 10:
                headers["authorization"] = f"Bearer crk_{i:010d}_{'x' * 32}"
            response = http.post(f"{gw.v1}/chat/completions", content=body, headers=headers)
            assert response.status_code == 401
        anthropic = http.post(f"{gw.v1}/messages", content=body, headers={"x-api-key": "wrong"})
        assert anthropic.status_code == 401
        metrics = http.get(f"{gw.url}/metrics", headers={"authorization": f"Bearer {ADMIN}"})
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.text.splitlines()
        if line.startswith("crossroads_auth_failures_total")
    }
    assert samples == {
        'crossroads_auth_failures_total{reason="invalid_api_key"}': 901.0,
        'crossroads_auth_failures_total{reason="missing_api_key"}': 100.0,
    }
    gw.stop()
    assert gw.ledger() == []


BEYOND_INT32 = [2**31, 2**40, 2**63 - 1, 2**64 - 1, -1, 0]


@pytest.mark.parametrize("value", BEYOND_INT32)
def test_token_counts_beyond_32_bits_are_refused_naming_the_field(
    gw: GatewayThread, mock: MockUpstreamThread, value: int
) -> None:
    key, counter = budget_key(gw)
    for field in ("max_tokens", "max_completion_tokens"):
        body = {"model": "m", "messages": USER, field: value}
        error = openai_error(post(gw, "/v1/chat/completions", key, body), 400)
        assert error["param"] == field and "2147483647" in error["message"]
    for field, extra in (("max_tokens", {}), ("top_k", {"max_tokens": 5})):
        if field == "top_k" and value == 0:
            continue  # top_k may be 0
        body = {"model": "m", "messages": USER, **extra, field: value}
        error = anthropic_error(post(gw, "/v1/messages", key, body), 400)
        assert field in error["message"]
    assert mock.requests() == []
    assert settled_spend(gw, counter, 0) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seed", 2**63),
        ("seed", 2**64 - 1),
        ("seed", -(2**63) - 1),
        ("n", 2**31),
        ("top_logprobs", 2**40),
        ("temperature", 1e308),
        ("frequency_penalty", 2**63),
        ("presence_penalty", "high"),
    ],
)
def test_other_chat_numbers_are_range_checked(gw: GatewayThread, field: str, value: Any) -> None:
    key, _ = budget_key(gw)
    body = {"model": "m", "messages": USER, field: value}
    error = openai_error(post(gw, "/v1/chat/completions", key, body), 400)
    assert field in error["message"]


@pytest.mark.parametrize("value", [2**31, 65_537, 2**63 - 1, 0, -1])
def test_embedding_dimensions_are_range_checked(
    gw: GatewayThread, mock: MockUpstreamThread, value: int
) -> None:
    key, _ = budget_key(gw)
    body = {"model": "e", "input": "x", "dimensions": value}
    error = openai_error(post(gw, "/v1/embeddings", key, body), 400)
    assert error["param"] == "dimensions" and "65536" in error["message"]
    tokens = {"model": "e", "input": [1, 2**31]}
    assert openai_error(post(gw, "/v1/embeddings", key, tokens), 400)["param"] == "input"
    assert mock.requests() == []


def test_served_requests_settle_to_what_the_ledger_says(
    gw: GatewayThread, mock: MockUpstreamThread
) -> None:
    key, counter = budget_key(gw)
    mock.script(["usage=1000/3000"] * 3)
    for path, body in (
        ("/v1/chat/completions", {"model": "m", "messages": USER}),
        ("/v1/chat/completions", {"model": "m", "messages": USER, "stream": True}),
        ("/v1/messages", {"model": "m", "max_tokens": 50, "messages": USER}),
    ):
        assert post(gw, path, key, body).status_code == 200
    expected = 3 * math.ceil((1000 * 1 + 3000 * 3) / 1_000_000 * 1_000_000)
    assert settled_spend(gw, counter, expected) == expected
    gw.stop()
    assert ledger_spend_micros(gw) == expected


def test_a_client_that_leaves_releases_its_hold(
    gw: GatewayThread, mock: MockUpstreamThread
) -> None:
    """Whole answers and streams alike: the client goes away before the end, the upstream is
    stopped, the request is recorded as cancelled, and the hold becomes what the ledger says
    was used (nothing for the whole answer; the relayed part, estimated, for the stream)."""
    key, counter = budget_key(gw)
    mock.script(["hang", "chunks=50,drip=0.05"])
    headers = {"authorization": f"Bearer {key}"}
    with httpx.Client(timeout=0.5) as http, pytest.raises(httpx.ReadTimeout):
        http.post(
            f"{gw.v1}/chat/completions", json={"model": "m", "messages": USER}, headers=headers
        )
    body = {"model": "m", "messages": USER, "stream": True}
    with (
        httpx.Client(timeout=30) as http,
        http.stream("POST", f"{gw.v1}/chat/completions", json=body, headers=headers) as response,
    ):
        assert response.status_code == 200
        for count, _ in enumerate(response.iter_lines()):
            if count >= 6:
                break
    gw.stop()  # waits for both requests to end and for every settlement
    records = gw.ledger()
    assert [r.status for r in records] == [Status.CANCELLED, Status.CANCELLED]
    assert settled_spend(gw, counter, ledger_spend_micros(gw)) == ledger_spend_micros(gw)
    assert records[0].cost_usd is None and records[1].cost_usd
