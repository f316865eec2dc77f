"""Routing and resilience over real HTTP: retries, Retry-After, deadlines, credential failures,
circuit breaking, stream fallback, client disconnects, per-request routing preferences."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import httpx
import openai
import pytest

from conftest import GatewayFactory, client, mock_config
from crossroads.ledger.record import Status
from crossroads.mockupstream import MockUpstreamThread, run_in_thread

USER = [{"role": "user", "content": "hello"}]


def chat(url: str, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions", json={"messages": USER, **body}, timeout=30, **kwargs
    )


def test_retryable_failure_is_retried_on_the_same_deployment(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url))
    mock.script(["status=500"])
    response = chat(gw.url, {"model": "m"})
    assert response.status_code == 200
    assert response.headers["x-crossroads-attempts"] == "2"
    assert len(mock.requests()) == 2


def test_retry_after_is_honoured(gateway: GatewayFactory, mock: MockUpstreamThread) -> None:
    gw = gateway(mock_config(mock.url))
    mock.script(["status=429,retry_after=1"])
    started = time.monotonic()
    response = chat(gw.url, {"model": "m"})
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.95  # waited as the upstream asked


def test_long_retry_after_moves_on_to_the_next_deployment(gateway: GatewayFactory) -> None:
    with run_in_thread() as first, run_in_thread() as second:
        first.script(["status=429,retry_after=120"])
        gw = gateway(mock_config(first.url, second.url))
        started = time.monotonic()
        response = chat(gw.url, {"model": "m"})
        assert response.status_code == 200
        assert response.headers["x-crossroads-provider"] == "up1"
        assert time.monotonic() - started < 60  # did not sit out the two minutes


def test_rate_limited_everywhere_is_429_with_retry_after(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url))
    mock.script(["status=429,retry_after=30", "status=429,retry_after=30"])
    response = chat(gw.url, {"model": "m"})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "30"
    assert response.json()["error"]["code"] == "upstream_rate_limited"


def test_deadline_ends_a_hanging_upstream(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    config = mock_config(mock.url) | {"server": {"request_timeout": 1.0}}
    gw = gateway(config)
    mock.script(["hang", "hang"])
    started = time.monotonic()
    response = chat(gw.url, {"model": "m"})
    elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert elapsed < 10
    gw.stop()
    (record,) = gw.ledger()
    assert record.status is Status.ERROR and record.http_status == 504


def test_a_shorter_client_timeout_is_respected(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url))
    mock.script(["latency=5", "latency=5"])
    started = time.monotonic()
    response = chat(gw.url, {"model": "m"}, headers={"x-crossroads-timeout": "0.5"})
    assert response.status_code == 504
    assert time.monotonic() - started < 4


def test_a_stream_cut_by_the_requests_own_deadline_names_the_deadline(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    """The upstream streams steadily; the client's one-second timeout ends it. The error event
    says the deadline passed, not that the upstream stalled."""
    gw = gateway(mock_config(mock.url))
    mock.script(["drip=0.05,chunks=400"])  # 20 s of content pieces of the echoed prompt
    with httpx.stream(
        "POST",
        f"{gw.url}/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "hi " * 400}], "stream": True},
        headers={"x-crossroads-timeout": "1"},
        timeout=30,
    ) as response:
        text = "".join(response.iter_text())
    events = [json.loads(e) for e in text.split("data: ")[1:] if e.strip() != "[DONE]"]
    error = events[-1]["error"]
    assert "deadline" in error["message"] and "stall" not in error["message"]


def test_no_first_byte_names_the_first_byte_timeout(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    config = mock_config(mock.url)
    config["providers"]["up0"]["timeouts"] = {"first_byte": 0.5}
    gw = gateway(config)
    mock.script(["hang", "hang"])
    response = chat(gw.url, {"model": "m"})
    assert response.status_code == 504
    assert "first-byte timeout of 0.5s" in response.json()["error"]["message"]


def test_bad_upstream_credentials_skip_the_deployment_and_never_leak(
    gateway: GatewayFactory,
) -> None:
    with run_in_thread() as first, run_in_thread() as second:
        first.script(["status=401,error_body"])
        config = mock_config(first.url, second.url)
        config["providers"]["up0"]["api_key_env"] = "UP0_KEY"
        gw = gateway(config, environ={"UP0_KEY": "sk-super-secret-key"})
        response = chat(gw.url, {"model": "m"})
        assert response.status_code == 200
        assert response.headers["x-crossroads-provider"] == "up1"
        assert response.headers["x-crossroads-attempts"] == "2"  # no retry on a bad key
        assert first.requests()[0]["headers"]["authorization"] == "Bearer sk-super-secret-key"
        health = httpx.get(f"{gw.url}/admin/health").json()
        up0 = next(d for d in health["deployments"] if d["deployment"] == "up0:mock")
        assert up0["circuit"] == "open"
        # With the only deployment's key wrong the client learns that, and nothing more.
        first.script(["status=401,error_body"])
        only = gateway(
            mock_config(first.url) | {"routing": {"circuit": {"cooldown": 0.01}}},
            environ={},
        )
        failed = chat(only.url, {"model": "m"})
        assert failed.status_code == 502
        message = failed.json()["error"]["message"]
        assert "credentials" in message
        assert "mock upstream error" not in message and "sk-" not in failed.text
        gw.stop()
        assert all("sk-super-secret" not in repr(r) for r in gw.ledger())


def test_a_circuit_that_opens_mid_request_gets_no_more_attempts_in_it(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    """failures 3, retries 1: the first request makes two attempts, the second opens the
    circuit on its first attempt and stops there; a half-open probe that fails is one attempt."""
    config = mock_config(mock.url) | {
        "routing": {
            "retries": 1,
            "backoff_base": 0.01,
            "circuit": {"failures": 3, "cooldown": 0.2, "open_circuits": "last"},
        }
    }
    gw = gateway(config)
    mock.script(["status=500"] * 10)
    assert chat(gw.url, {"model": "m"}).status_code == 502
    assert mock.stats()["requests"] == 2
    assert chat(gw.url, {"model": "m"}).status_code == 502
    assert mock.stats()["requests"] == 3  # opened on the first attempt: not retried
    up = httpx.get(f"{gw.url}/admin/health").json()["deployments"][0]
    waited = 0
    while up["circuit"] == "open" and up["retry_in_s"] > 0:  # the cool-down (0.2 s) passes
        assert waited < 1200, "the circuit never reached its probe"  # 60 s: a cap, not a pace
        waited += 1
        time.sleep(0.05)
        up = httpx.get(f"{gw.url}/admin/health").json()["deployments"][0]
    assert chat(gw.url, {"model": "m"}).status_code == 502
    assert mock.stats()["requests"] == 4  # the probe failed: one attempt, no retry


def test_circuit_opens_and_status_shows_it(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    config = mock_config(mock.url) | {
        "routing": {
            "retries": 0,
            "circuit": {"failures": 2, "cooldown": 60, "open_circuits": "skip"},
        }
    }
    gw = gateway(config)
    mock.script(["status=500"] * 5)
    assert [chat(gw.url, {"model": "m"}).status_code for _ in range(2)] == [502, 502]
    fast_fail = chat(gw.url, {"model": "m"})
    assert fast_fail.status_code == 503
    assert fast_fail.json()["error"]["code"] == "circuit_open"
    assert int(fast_fail.headers["retry-after"]) > 0
    assert len(mock.requests()) == 2  # the open circuit kept the third off the upstream
    status = subprocess.run(
        [sys.executable, "-m", "crossroads", "status", "--url", gw.url],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "up0:mock" in status.stdout and "open" in status.stdout


def test_when_every_circuit_is_open_they_are_tried_anyway(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    config = mock_config(mock.url) | {
        "routing": {"retries": 0, "circuit": {"failures": 1, "cooldown": 60}}
    }
    gw = gateway(config)
    mock.script(["status=500"])
    assert chat(gw.url, {"model": "m"}).status_code == 502
    health = httpx.get(f"{gw.url}/admin/health").json()["deployments"][0]
    assert health["circuit"] == "open"
    assert chat(gw.url, {"model": "m"}).status_code == 200  # degraded beats refused
    assert httpx.get(f"{gw.url}/admin/health").json()["deployments"][0]["circuit"] == "closed"


def test_active_health_checks_close_a_circuit(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    config = mock_config(mock.url) | {
        "routing": {
            "retries": 0,
            "health_check_interval": 0.1,
            "circuit": {"failures": 1, "cooldown": 600},
        }
    }
    gw = gateway(config)
    mock.script(["status=500"])
    assert chat(gw.url, {"model": "m"}).status_code == 502
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        health = httpx.get(f"{gw.url}/admin/health").json()["deployments"][0]
        if health["circuit"] == "closed":
            break
        time.sleep(0.05)
    assert health["circuit"] == "closed"  # the probe (GET /models) succeeded
    assert chat(gw.url, {"model": "m"}).status_code == 200


def test_stream_falls_back_before_the_first_byte(gateway: GatewayFactory) -> None:
    with run_in_thread() as first, run_in_thread() as second:
        first.script(["reset=before", "reset=before"])
        gw = gateway(mock_config(first.url, second.url))
        stream = client(gw).chat.completions.create(model="m", messages=USER, stream=True)  # type: ignore[arg-type]
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "mock answer: hello"
        gw.stop()
        (record,) = gw.ledger()
        assert record.provider == "up1" and record.attempts == 3 and record.status is Status.OK


def test_client_disconnect_mid_stream_cancels_the_upstream(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url))
    mock.script(["drip=0.1,chunks=100"])
    with httpx.stream(
        "POST",
        f"{gw.v1}/chat/completions",
        json={"model": "m", "messages": USER, "stream": True},
        timeout=30,
    ) as response:
        lines = response.iter_lines()
        seen = [line for line, _ in zip(lines, range(8), strict=False) if line.startswith("data:")]
    assert seen
    mock.wait_idle(timeout=10)
    assert mock.requests()[0]["outcome"] == "cancelled"  # the upstream saw the gateway leave
    gw.stop()
    (record,) = gw.ledger()
    assert record.status is Status.CANCELLED and record.http_status == 499
    assert record.completion_tokens > 0  # tokens seen so far


def test_client_disconnect_while_waiting_cancels_the_upstream(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url))
    mock.script(["latency=30"])
    with pytest.raises(openai.APITimeoutError):
        client(gw, timeout=0.5).chat.completions.create(model="m", messages=USER)  # type: ignore[arg-type]
    mock.wait_idle(timeout=10)
    assert mock.requests()[0]["outcome"] == "cancelled"
    gw.stop()
    (record,) = gw.ledger()
    assert record.status is Status.CANCELLED


def test_every_answer_carries_a_request_id(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(mock_config(mock.url))
    ok = chat(gw.url, {"model": "m"})
    missing = chat(gw.url, {"model": "nope"})
    bad = httpx.post(
        f"{gw.v1}/chat/completions",
        content=b"{",
        headers={"content-type": "application/json"},
        timeout=10,
    )
    ids = [r.headers["x-request-id"] for r in (ok, missing, bad)]
    assert len(set(ids)) == 3 and all(i.startswith("req_") for i in ids)
    gw.stop()
    assert sorted(r.request_id for r in gw.ledger()) == sorted(ids)


class TestRequestPreferences:
    @pytest.fixture
    def three(self, gateway: GatewayFactory) -> Any:
        with run_in_thread() as a, run_in_thread() as b, run_in_thread() as c:
            yield gateway(mock_config(a.url, b.url, c.url)), (a, b, c)

    def test_order_only_ignore(self, three: Any) -> None:
        gw, _ = three
        served = lambda body: chat(gw.url, body).headers["x-crossroads-provider"]  # noqa: E731
        assert served({"model": "m", "provider": {"order": ["up2", "up1"]}}) == "up2"
        assert served({"model": "m", "provider": {"only": ["up1"]}}) == "up1"
        assert served({"model": "m", "provider": {"ignore": ["up0", "up1"]}}) == "up2"

    def test_extension_fields_never_reach_the_upstream(self, three: Any) -> None:
        gw, (a, _, _) = three
        chat(gw.url, {"model": "m", "provider": {"sort": "price"}, "models": ["m"]})
        sent = a.requests()[-1]["json"]
        assert "provider" not in sent and "models" not in sent

    def test_allow_fallbacks_false_stops_at_the_first(self, three: Any) -> None:
        gw, (a, b, _) = three
        a.script(["status=503", "status=503"])
        response = chat(gw.url, {"model": "m", "provider": {"allow_fallbacks": False}})
        assert response.status_code == 502
        assert b.requests() == []

    def test_nothing_eligible_is_400_naming_why(self, three: Any) -> None:
        gw, _ = three
        response = chat(gw.url, {"model": "m", "provider": {"only": ["elsewhere"]}})
        assert response.status_code == 400
        assert "provider.only" in response.json()["error"]["message"]

    def test_unknown_preference_is_400(self, three: Any) -> None:
        gw, _ = three
        response = chat(gw.url, {"model": "m", "provider": {"quantizations": ["fp8"]}})
        assert response.status_code == 400
        assert "quantizations" in response.json()["error"]["message"]

    def test_models_list_falls_back_to_another_model(self, gateway: GatewayFactory) -> None:
        with run_in_thread() as a, run_in_thread() as b:
            config = mock_config(a.url)
            config["providers"]["other"] = {"type": "openai", "base_url": b.url}
            config["models"].append({"name": "m2", "provider": "other", "upstream_model": "mock"})
            gw = gateway(config)
            a.script(["status=500", "status=500"])
            response = chat(gw.url, {"model": "m", "models": ["m2"]})
            assert response.status_code == 200
            assert response.headers["x-crossroads-provider"] == "other"
            assert json.loads(response.text)["choices"][0]["message"]["content"]
