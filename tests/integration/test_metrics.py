"""GET /metrics end to end: real requests through the gateway (priced, streamed, unpriced,
refused upstream, unknown model), then the Prometheus exposition parsed with prometheus_client's
own parsers and compared with the ledger. Labels never carry a key, a team or a request id."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from conftest import GatewayFactory, client
from crossroads.mockupstream import MockUpstreamThread
from crossroads.telemetry import LATENCY_BUCKETS
from support.gateway import GatewayThread

ADMIN = "metrics-admin-key-0123456789"
UPSTREAM_SECRET = "sk-upstream-secret-for-metrics-tests"
USER = [{"role": "user", "content": "hello"}]
KIMI = "moonshotai/kimi-k2-0905"
ALLOWED_LABELS = {
    "endpoint",
    "served_model",
    "model",
    "provider",
    "origin_country",
    "status",
    "kind",
    "deployment",
    "state",
    "le",
    "reason",  # of a 401: missing_api_key, invalid_api_key or other
}


def config(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "embedded": {"enabled": False},
        "providers": {
            "together": {"host": "together", "base_url": url},
            "lab": {"type": "openai", "base_url": url},
        },
        "models": [
            {
                "name": "kimi",
                "provider": "together",
                "upstream_model": "mock:usage=1200/300,cached=200,reasoning=100",
                "catalog_model": KIMI,
            },
            {
                "name": "kimi-refused",
                "provider": "together",
                "upstream_model": "mock:status=400",
                "catalog_model": KIMI,
            },
            {"name": "lab", "provider": "lab", "upstream_model": "mock:usage=100/50"},
        ],
        **extra,
    }


def test_metrics_count_requests_tokens_money_and_latency(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(config(mock.url), environ={"TOGETHER_API_KEY": UPSTREAM_SECRET})
    request_ids = make_requests(client(gw))
    text = scrape_until(gw, requests=6)
    samples = parse(text)
    gw.stop()
    records = gw.ledger()

    assert counted_requests(samples) == {
        (KIMI, "together", "CN", "ok"): 3,
        (KIMI, "together", "CN", "error"): 1,  # refused upstream
        ("lab", "lab", "", "ok"): 1,  # not in the catalog: no origin
        ("", "", "", "error"): 1,  # unknown model: never reached a deployment
    }

    kimi_labels = {"model": KIMI, "provider": "together", "origin_country": "CN"}
    lab_tokens = find(samples, "crossroads_tokens_total", {"model": "lab", "provider": "lab"})
    assert {s.labels["kind"]: s.value for s in lab_tokens} == {"prompt": 100, "completion": 50}
    kimi_tokens = find(samples, "crossroads_tokens_total", kimi_labels)
    assert {s.labels["kind"]: s.value for s in kimi_tokens} == {
        "prompt": 3600,
        "cached": 600,
        "completion": 900,
        "reasoning": 300,
    }

    kimi = [r for r in records if r.served_model == KIMI and r.cost_usd is not None]
    cost = sum(float(r.cost_usd or 0) for r in kimi)
    baseline = sum(float(r.baseline_cost_usd or 0) for r in kimi)
    assert cost > 0 and baseline > cost
    for name, expected in (
        ("crossroads_cost_usd_total", cost),
        ("crossroads_baseline_cost_usd_total", baseline),
        ("crossroads_savings_usd_total", baseline - cost),
    ):
        (sample,) = find(samples, name, {})  # the lab model is unpriced: no series
        assert sample.labels == kimi_labels
        assert sample.value == pytest.approx(expected, rel=1e-12), name
    assert not find(samples, "crossroads_overspend_usd_total", {})

    buckets = find(
        samples,
        "crossroads_request_latency_seconds_bucket",
        {"provider": "together", "model": KIMI},
    )
    assert [float(s.labels["le"]) for s in buckets] == [*LATENCY_BUCKETS, float("inf")]
    assert buckets[-1].value == 4  # three answered, one refused upstream
    assert [s.value for s in buckets] == sorted(s.value for s in buckets)  # cumulative
    ttft = find(samples, "crossroads_time_to_first_token_seconds_count", {"model": KIMI})
    assert [s.value for s in ttft] == [1]  # the one streamed request
    assert not find(samples, "crossroads_request_latency_seconds_count", {"provider": ""})

    (pending,) = find(samples, "crossroads_ledger_pending_records", {})
    assert pending.value >= 0
    circuits = find(samples, "crossroads_circuit_state", {})
    deployments = {s.labels["deployment"] for s in circuits}
    assert deployments == {r.deployment for r in records if r.deployment}
    for deployment in deployments:
        states = {
            s.labels["state"]: s.value for s in circuits if s.labels["deployment"] == deployment
        }
        assert states.keys() == {"closed", "open", "half_open"} and sum(states.values()) == 1

    assert UPSTREAM_SECRET not in text
    assert not [rid for rid in request_ids if rid in text]
    assert_labels_allowed(samples)


def test_metrics_in_keys_mode_need_the_admin_key_and_hide_keys(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    environ = {"TOGETHER_API_KEY": UPSTREAM_SECRET, "CROSSROADS_ADMIN_KEY": ADMIN}
    gw = gateway(config(mock.url, auth={"mode": "keys", "refresh_interval": 0.2}), environ)
    admin = {"authorization": f"Bearer {ADMIN}"}
    team = httpx.post(f"{gw.url}/admin/teams", json={"id": "research-team"}, headers=admin)
    assert team.status_code == 201, team.text
    created = httpx.post(
        f"{gw.url}/admin/keys", json={"name": "alice", "team_id": "research-team"}, headers=admin
    ).json()
    key, key_id = created["key"], created["id"]
    user = openai.OpenAI(base_url=gw.v1, api_key=key, max_retries=0)
    gw.clients.append(user)
    request_ids = make_requests(user)

    assert httpx.get(f"{gw.url}/metrics").status_code == 401
    not_admin = {"authorization": f"Bearer {key}"}
    assert httpx.get(f"{gw.url}/metrics", headers=not_admin).status_code == 403
    text = scrape_until(gw, requests=6, headers=admin)
    samples = parse(text)
    assert counted_requests(samples)[(KIMI, "together", "CN", "ok")] == 3
    for secret in (key, key_id, ADMIN, UPSTREAM_SECRET, "research-team", *request_ids):
        assert secret not in text
    assert_labels_allowed(samples)


def test_metrics_speak_openmetrics_when_asked(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(config(mock.url), environ={"TOGETHER_API_KEY": UPSTREAM_SECRET})
    client(gw).chat.completions.create(model="kimi", messages=USER)  # type: ignore[arg-type]
    answer = httpx.get(
        f"{gw.url}/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    families = {f.name: f for f in openmetrics_families(answer.text)}  # raises if malformed
    assert families["crossroads_requests"].type == "counter"
    assert families["crossroads_request_latency_seconds"].type == "histogram"
    assert answer.text.endswith("# EOF\n")


def make_requests(openai_client: openai.OpenAI) -> list[str]:
    """Three priced answers (one streamed), one unpriced, one refused by the upstream, one for
    an unknown model. Returns the request ids the gateway gave them."""
    ids = []
    for _ in range(2):
        raw = openai_client.chat.completions.with_raw_response.create(model="kimi", messages=USER)  # type: ignore[arg-type]
        ids.append(raw.headers["x-request-id"])
    with openai_client.chat.completions.with_streaming_response.create(
        model="kimi",
        messages=USER,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    ) as streamed:
        ids.append(streamed.headers["x-request-id"])
        for _line in streamed.iter_lines():
            pass
    raw = openai_client.chat.completions.with_raw_response.create(model="lab", messages=USER)  # type: ignore[arg-type]
    ids.append(raw.headers["x-request-id"])
    for model, error in (("kimi-refused", openai.BadRequestError), ("nope", openai.NotFoundError)):
        with pytest.raises(error) as raised:
            openai_client.chat.completions.create(model=model, messages=USER)  # type: ignore[arg-type]
        ids.append(raised.value.response.headers["x-request-id"])
    return ids


def scrape_until(gw: GatewayThread, requests: int, headers: dict[str, str] | None = None) -> str:
    """Scrapes until `requests` requests are counted: a stream is counted when the gateway's
    handler ends, which can be just after the client has read the last byte."""
    deadline = time.monotonic() + 10
    while True:
        answer = httpx.get(f"{gw.url}/metrics", headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
        counted = sum(s.value for s in find(parse(answer.text), "crossroads_requests_total", {}))
        if counted >= requests:
            assert counted == requests
            return answer.text
        assert time.monotonic() < deadline, f"{counted} of {requests} requests counted"
        time.sleep(0.05)


def parse(text: str) -> list[Sample]:
    """Every sample, through prometheus_client's own parser (which raises on malformed text)."""
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def find(samples: Iterable[Sample], name: str, labels: dict[str, str]) -> list[Sample]:
    return [
        s
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def counted_requests(samples: list[Sample]) -> dict[tuple[str, ...], float]:
    """(served model, provider, origin, status) -> requests, for the chat endpoint."""
    counted = {}
    for s in find(samples, "crossroads_requests_total", {"endpoint": "chat.completions"}):
        labels = s.labels
        key = (
            labels["served_model"],
            labels["provider"],
            labels["origin_country"],
            labels["status"],
        )
        counted[key] = s.value
    return counted


def assert_labels_allowed(samples: list[Sample]) -> None:
    ours = [s for s in samples if s.name.startswith("crossroads_")]
    used = {label for s in ours for label in s.labels}
    assert used <= ALLOWED_LABELS, used - ALLOWED_LABELS
