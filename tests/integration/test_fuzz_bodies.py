"""Property-based fuzzing of every request body the gateway reads, against the real gateway
and the mock upstream, with a key that has a budget: generated JSON (deep nesting, integers far
beyond 64 bits, odd types in known fields, any unicode) must never get a 5xx, every refusal
comes in its API's error shape, and once the gateway has stopped, what its counters hold
against the budget is exactly what the ledger says the key spent: no hold is left behind.

Bounded to run in well under a minute on a busy machine; the numbers tried are printed."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossroads.governance.budgets import to_micros
from crossroads.mockupstream import MockUpstreamThread
from support.gateway import counted_spend, gateway_for
from support.priced import ADMIN, admin, priced_config

EXAMPLES = 300
"""Bodies tried per endpoint (chat twice: whole and streamed)."""

DEEP = "__deep__"

EDGE_INTS = [
    0,
    1,
    -1,
    2**31 - 1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    -(2**63) - 1,
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**80), 2**80),
    st.sampled_from(EDGE_INTS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=24),
    st.sampled_from(["", "m", "e", "user", "assistant", "system", "tool", "text", "auto"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.one_of(st.text(max_size=8), st.sampled_from(["type", "role"])), inner, max_size=4
        )
    ),
    max_leaves=16,
)
values = st.one_of(json_values, st.just(DEEP))

message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool", "developer"]) | values},
    optional={
        "content": st.one_of(
            st.text(max_size=40),
            st.lists(
                st.fixed_dictionaries(
                    {"type": st.sampled_from(["text", "image_url", "tool_use", "image"]) | values},
                    optional={"text": values, "input": values, "id": values, "name": values},
                ),
                max_size=3,
            ),
            values,
        ),
        "tool_calls": values,
        "tool_call_id": values,
    },
)
messages = st.one_of(st.lists(message, min_size=1, max_size=3), values)

CHAT_FIELDS = [
    "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "seed", "stop", "tools",
    "tool_choice", "response_format", "metadata", "stream_options", "logprobs", "top_logprobs",
    "user", "frequency_penalty", "presence_penalty", "provider", "models", "model",
]  # fmt: skip
MESSAGES_FIELDS = [
    "max_tokens", "system", "tools", "tool_choice", "thinking", "metadata", "top_k",
    "stop_sequences", "output_config", "temperature", "provider", "models", "model",
]  # fmt: skip
EMBEDDINGS_FIELDS = ["input", "dimensions", "encoding_format", "user", "model", "extra"]
EXPLAIN_FIELDS = [
    "model", "key_id", "team_id", "stream", "prompt_tokens", "max_tokens", "provider", "models",
]  # fmt: skip
KEY_FIELDS = ["name", "team_id", "expires_at", "expires_in_days", "limits", "policy"]
TEAM_FIELDS = ["id", "name", "limits", "policy"]
limits = st.fixed_dictionaries(
    {},
    optional={
        "budget_usd": values | st.sampled_from(["NaN", "1e999", "-1", "0.01"]),
        "budget_period": values | st.sampled_from(["day", "week", "month", "total"]),
        "rpm": values,
        "tpm": values,
    },
)


def body(
    base: dict[str, Any], fields: list[str], benign: str | None = None, **known: Any
) -> st.SearchStrategy[Any]:
    """A valid `base` with up to three of `fields` set to generated values (or the strategies
    in `known` for them); or `base` with only its `benign` field (one passed through as it
    is) set to any JSON, so that many bodies are served and paid for; now and then a value
    that is not an object at all."""
    changes = st.dictionaries(st.sampled_from(fields), values, max_size=3)
    specific = st.fixed_dictionaries({}, optional=known)
    whole = st.builds(lambda c, s: {**base, **c, **s}, changes, specific)
    served = st.builds(lambda v: {**base, **({benign: v} if benign else {})}, values)
    return st.one_of(whole, whole, served, json_values)


USER = [{"role": "user", "content": "hello"}]
ENDPOINTS: list[tuple[str, str, bool, st.SearchStrategy[Any]]] = [
    (
        "/v1/chat/completions",
        "key",
        False,
        body({"model": "m", "messages": USER}, CHAT_FIELDS, "metadata", messages=messages),
    ),
    (
        "/v1/chat/completions",
        "key",
        False,
        body(
            {"model": "m", "messages": USER, "stream": True},
            CHAT_FIELDS,
            "metadata",
            messages=messages,
        ),
    ),
    (
        "/v1/messages",
        "key",
        True,
        body(
            {"model": "m", "max_tokens": 32, "messages": USER},
            MESSAGES_FIELDS,
            "tools_extra",
            messages=messages,
            stream=st.booleans() | values,
        ),
    ),
    (
        "/v1/messages/count_tokens",
        "key",
        True,
        body({"model": "m", "messages": USER}, MESSAGES_FIELDS, "extra", messages=messages),
    ),
    (
        "/v1/embeddings",
        "key",
        False,
        body({"model": "e", "input": "hi"}, EMBEDDINGS_FIELDS, "extra"),
    ),
    ("/v1/route/explain", "admin", False, body({"model": "m"}, EXPLAIN_FIELDS)),
    ("/admin/keys", "admin", False, body({"name": "fuzz"}, KEY_FIELDS, limits=limits)),
    ("/admin/teams", "admin", False, body({"id": "fuzz-team"}, TEAM_FIELDS, limits=limits)),
]


def encode(value: Any, depth: int) -> bytes:
    """JSON text of `value` (integers of any size), DEEP replaced by a value `depth` deep."""
    text = json.dumps(value, ensure_ascii=False).encode()
    deep = b"[" * depth + b"1" + b"]" * depth
    return text.replace(json.dumps(DEEP).encode(), deep)


def assert_error_shape(response: httpx.Response, anthropic: bool) -> None:
    data = response.json()
    if anthropic:
        assert data["type"] == "error", data
        assert set(data["error"]) == {"type", "message"}, data
        assert isinstance(data["error"]["message"], str)
    else:
        assert set(data) == {"error"}, data
        assert set(data["error"]) == {"message", "type", "param", "code"}, data
    assert len(response.content) < 8000  # messages are cut, never the client's input whole


def test_no_body_gets_a_5xx_and_every_hold_is_released(
    tmp_path: Path, mock: MockUpstreamThread
) -> None:
    config = priced_config(mock.url)
    config["models"].append({"name": "e", "provider": "up0", "upstream_model": "mock"})
    gw = gateway_for(tmp_path, config, {"CROSSROADS_ADMIN_KEY": ADMIN})
    tried: Counter[str] = Counter()
    answered: Counter[int] = Counter()
    server_errors: list[tuple[str, int, bytes]] = []
    with gw, httpx.Client(timeout=60) as http:
        created = admin(
            gw,
            "/admin/keys",
            {"name": "budgeted", "limits": {"budget_usd": 1000, "budget_period": "total"}},
        )
        credentials = {"key": created["key"], "admin": ADMIN}

        def fuzz(path: str, who: str, anthropic: bool, bodies: Any) -> Callable[[], None]:
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(value=bodies, depth=st.sampled_from([3, 63, 64, 65, 254, 255, 1023, 1100]))
            def run(value: Any, depth: int) -> None:
                tried[path] += 1
                response = http.post(
                    f"{gw.url}{path}",
                    content=encode(value, depth),
                    headers={
                        "content-type": "application/json",
                        "authorization": f"Bearer {credentials[who]}",
                    },
                )
                answered[response.status_code] += 1
                if response.status_code >= 500:
                    server_errors.append((path, response.status_code, response.content[:300]))
                assert response.status_code < 500, response.text[:500]
                if response.status_code >= 400:
                    assert_error_shape(response, anthropic)
                elif response.headers["content-type"].startswith("text/event-stream"):
                    assert response.text.endswith("\n\n")

            return run

        for path, who, anthropic, bodies in ENDPOINTS:
            fuzz(path, who, anthropic, bodies)()
    # Stopped: every settlement has run and every record is written.
    key_id = created["id"]
    held = counted_spend(gw, f"budget:key:{key_id}:total")
    records = [r for r in gw.ledger() if r.api_key_id == key_id]
    spent = sum(to_micros(r.cost_usd) for r in records)
    print(
        f"\nfuzzed {sum(tried.values())} bodies ({dict(tried)}); statuses {dict(answered)}; "
        f"5xx: {len(server_errors)}; "
        f"{len(records)} ledger records for the key, ${spent / 1e6:.6f} spent"
    )
    assert server_errors == []
    assert held == spent
    assert any(r.cost_usd for r in records)  # some bodies were served and paid for
