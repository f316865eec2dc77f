"""Where each ledger record's usage came from, end to end: an upstream that reports usage gives
'reported' records with its own counts; one that reports none (the mock's `no_usage`, or a host
the gateway may not ask for stream usage, as GLM) gives 'estimated' records whose prompt and
completion are both estimated and priced, on both ingresses, streamed or not, and embeddings;
a request no upstream answered has no usage source. The spend report's `estimated_cost_usd`
is the ledger's sum over the estimated records."""

from __future__ import annotations

import math
import time
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import pytest

from conftest import GatewayFactory, client
from crossroads.ingress.estimate import estimate_input_tokens
from crossroads.ledger.record import LedgerRecord, Status, UsageSource
from crossroads.mockupstream import MockUpstreamThread
from support.gateway import GatewayThread

KIMI = "moonshotai/kimi-k2-0905"  # at Together: $1 in / $3 out per million tokens
MESSAGES: list[Any] = [
    {"role": "system", "content": "You answer in one line."},
    {"role": "user", "content": "How far is the moon from the earth, roughly, in kilometres?"},
]
ANSWER = "mock answer: How far is the moon from the earth, roughly, in kilometres?"


def config(url: str) -> dict[str, Any]:
    """Kimi K2 at Together's list prices three ways: an upstream that reports usage, one that
    reports none, and one the gateway may not ask for stream usage (GLM's profile)."""

    def model(name: str, provider: str, script: str) -> dict[str, Any]:
        return {"name": name, "provider": provider, "upstream_model": script, "catalog_model": KIMI}

    return {
        "embedded": {"enabled": False},
        "providers": {
            "together": {"host": "together", "base_url": url},
            "glm": {"host": "together", "base_url": url, "options": {"stream_usage": False}},
        },
        "models": [
            model("reported", "together", "mock:usage=1200/300"),
            model("quiet", "together", "mock:no_usage,chunks=6"),
            model("unasked", "glm", "mock:chunks=6"),
            model("refused", "together", "mock:status=400"),
        ],
    }


def price(prompt: int, completion: int) -> Decimal:
    return (Decimal(prompt) + 3 * Decimal(completion)).scaleb(-6)


def only(gw: GatewayThread) -> LedgerRecord:
    gw.stop()
    (record,) = gw.ledger()
    return record


def assert_estimated(record: LedgerRecord, prompt: int, completion: int) -> None:
    assert record.status is Status.OK
    assert record.usage_source is UsageSource.ESTIMATED
    assert (record.prompt_tokens, record.completion_tokens) == (prompt, completion)
    assert prompt > 0 and completion > 0
    assert record.cost_usd == price(prompt, completion)


@pytest.mark.parametrize("include_usage", [True, False])
def test_openai_stream_with_usage_is_reported(
    gateway: GatewayFactory, mock: MockUpstreamThread, include_usage: bool
) -> None:
    gw = gateway(config(mock.url))
    options: Any = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = list(
        client(gw).chat.completions.create(
            model="reported", messages=MESSAGES, stream=True, **options
        )
    )
    assert chunks
    record = only(gw)
    assert record.usage_source is UsageSource.REPORTED
    assert (record.prompt_tokens, record.completion_tokens) == (1200, 300)
    assert record.cost_usd == price(1200, 300)


@pytest.mark.parametrize("model", ["quiet", "unasked"])
def test_openai_stream_without_usage_is_estimated_and_priced(
    gateway: GatewayFactory, mock: MockUpstreamThread, model: str
) -> None:
    gw = gateway(config(mock.url))
    # The client asks for usage where the upstream may be asked (and gives none anyway).
    ask: Any = {"stream_options": {"include_usage": True}} if model == "quiet" else {}
    stream = client(gw).chat.completions.create(model=model, messages=MESSAGES, stream=True, **ask)
    chunks = list(stream)
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) == 6
    assert all(c.usage is None for c in chunks)  # nothing invented for the client
    body = {"model": model, "messages": MESSAGES}
    # One token per chunk relayed, less one: role, six pieces and the finish reason make 8.
    assert_estimated(only(gw), estimate_input_tokens(body), len(chunks) - 1)


def test_openai_answer_without_usage_is_estimated_from_its_text(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(config(mock.url))
    reply = client(gw).chat.completions.create(model="quiet", messages=MESSAGES)
    assert reply.usage is None and reply.choices[0].message.content == ANSWER
    body = {"model": "quiet", "messages": MESSAGES}
    assert_estimated(only(gw), estimate_input_tokens(body), math.ceil(len(ANSWER) / 4))


def test_openai_answer_with_usage_is_reported(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(config(mock.url))
    client(gw).chat.completions.create(model="reported", messages=MESSAGES)
    record = only(gw)
    assert record.usage_source is UsageSource.REPORTED
    assert (record.prompt_tokens, record.completion_tokens) == (1200, 300)


def test_a_request_no_upstream_answered_has_no_usage_source(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(config(mock.url))
    response = httpx.post(
        f"{gw.v1}/chat/completions", json={"model": "refused", "messages": MESSAGES}
    )
    assert response.status_code == 400
    record = only(gw)
    assert record.status is Status.ERROR and record.usage_source is None
    assert record.prompt_tokens == 0 and record.cost_usd is None


@pytest.mark.parametrize("stream", [True, False])
def test_anthropic_messages_without_usage_are_estimated(
    gateway: GatewayFactory, mock: MockUpstreamThread, stream: bool
) -> None:
    gw = gateway(config(mock.url))
    request: dict[str, Any] = {
        "model": "quiet",
        "max_tokens": 200,
        "system": MESSAGES[0]["content"],
        "messages": MESSAGES[1:],
    }
    with anthropic.Anthropic(base_url=gw.url, api_key="x", max_retries=0) as claude:
        # The ledger's input estimate is the one count_tokens answers for the same request.
        counted = claude.messages.count_tokens(
            model="quiet", system=request["system"], messages=request["messages"]
        ).input_tokens
        if stream:
            with claude.messages.stream(**request) as events:
                text = events.get_final_text()
        else:
            message = claude.messages.create(**request)
            text = "".join(block.text for block in message.content if block.type == "text")
    assert text == ANSWER
    record = only(gw)
    assert record.endpoint == "messages"
    completion = 7 if stream else math.ceil(len(ANSWER) / 4)  # 8 chunks less one; the text
    assert_estimated(record, counted, completion)


def test_anthropic_messages_with_usage_are_reported(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(config(mock.url))
    claude = anthropic.Anthropic(base_url=gw.url, api_key="x", max_retries=0)
    with (
        claude,
        claude.messages.stream(model="reported", max_tokens=50, messages=MESSAGES[1:]) as s,
    ):
        s.get_final_text()
    record = only(gw)
    assert record.usage_source is UsageSource.REPORTED
    assert (record.prompt_tokens, record.completion_tokens) == (1200, 300)


def test_embeddings_without_usage_are_estimated(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(config(mock.url))
    texts = ["the first text to embed", "a second"]
    response = httpx.post(f"{gw.v1}/embeddings", json={"model": "quiet", "input": texts})
    assert response.status_code == 200 and "usage" not in response.json()
    tokens = httpx.post(f"{gw.v1}/embeddings", json={"model": "quiet", "input": [[1, 2, 3], [4]]})
    assert tokens.status_code == 200
    gw.stop()
    by_time = sorted(gw.ledger(), key=lambda r: r.created_at)
    assert [r.usage_source for r in by_time] == [UsageSource.ESTIMATED] * 2
    assert [r.prompt_tokens for r in by_time] == [math.ceil(23 / 4) + math.ceil(8 / 4), 4]
    assert all(r.completion_tokens == 0 for r in by_time)


def test_spend_report_shows_the_cost_that_rests_on_estimates(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(config(mock.url))
    openai_client = client(gw)
    for model in ("reported", "quiet", "unasked", "quiet", "reported"):
        list(openai_client.chat.completions.create(model=model, messages=MESSAGES, stream=True))
    openai_client.chat.completions.create(model="quiet", messages=MESSAGES)
    httpx.post(f"{gw.v1}/chat/completions", json={"model": "refused", "messages": MESSAGES})
    exported = exported_ledger(gw, 7)
    assert sorted(str(row["usage_source"]) for row in exported) == [
        "None", "estimated", "estimated", "estimated", "estimated", "reported", "reported",
    ]  # fmt: skip
    csv_header = httpx.get(f"{gw.url}/admin/ledger", params={"format": "csv"}).text.split("\n")[0]
    assert csv_header.rstrip().endswith(",usage_source")
    report = httpx.get(f"{gw.url}/admin/reports/spend").json()

    gw.stop()
    records = gw.ledger()
    estimated = [r for r in records if r.usage_source is UsageSource.ESTIMATED]
    want = sum((r.cost_usd or Decimal(0) for r in estimated), Decimal(0))
    assert len(estimated) == 4 and want > 0
    assert Decimal(report["summary"]["estimated_cost_usd"]) == want
    assert report["summary"]["estimated_requests"] == 4
    (row,) = report["rows"]  # one served model
    assert Decimal(row["estimated_cost_usd"]) == want and row["estimated_requests"] == 4
    assert Decimal(row["cost_usd"]) == sum((r.cost_usd or Decimal(0) for r in records), Decimal(0))
    assert any("rests on 4 requests whose upstream reported no usage" in n for n in report["notes"])


def exported_ledger(gw: GatewayThread, count: int) -> list[dict[str, Any]]:
    """/admin/ledger once it holds `count` records: the writer batches, so poll, with a cap."""
    deadline = time.monotonic() + 30
    while True:
        rows: list[dict[str, Any]] = httpx.get(f"{gw.url}/admin/ledger").json()
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)
