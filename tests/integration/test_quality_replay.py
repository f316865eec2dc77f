"""Replay, checks and the switch report end to end, with upstreams of known quality: the real
gateway, the scripted mock upstream, `crossroads eval replay` over HTTP and `crossroads report
switch`. The baseline calls a tool with arguments from the user's text; an identical candidate
must come out tied; one that calls it with wrong arguments 30% of the time must come out worse,
with an interval that excludes parity. Deterministic checks decide here (no LLM judge)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import GatewayFactory, client
from crossroads.cli.main import main
from crossroads.mockupstream import MockUpstreamThread, run_in_thread
from crossroads.quality.store import QUALITY_FILE, QualityStore
from support.gateway import GatewayThread

KIMI = "moonshotai/kimi-k2-0905"  # at Together: $1 in / $3 out per million tokens
DEEPSEEK = "deepseek/deepseek-v3"  # at Fireworks: $0.90 in / $0.90 out, cheaper
WRONG = "tool_args=%7B%22city%22%3A%22Nowhere%22%7D"
TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ITEMS = 40


@pytest.fixture
def mock() -> Iterator[MockUpstreamThread]:
    """The mock draws each `mix` alternative from a seeded random stream; with seed 4, 13 of
    the first 40 draws fall under 0.3, so the flaky candidate is wrong on 13 of 40 items
    (32.5%), close to its scripted 30%. The test checks losses against the answers served."""
    with run_in_thread(seed=4) as upstream:
        yield upstream


def config(url: str) -> dict[str, Any]:
    def model(name: str, catalog: str, script: str) -> dict[str, Any]:
        return {
            "name": name,
            "provider": "together" if catalog == KIMI else "fireworks",
            "upstream_model": script,
            "catalog_model": catalog,
        }

    return {
        "embedded": {"enabled": False},
        "providers": {
            "together": {"host": "together", "base_url": url},
            "fireworks": {"host": "fireworks", "base_url": url},
        },
        "models": [
            model("base", KIMI, "mock:tool_call"),
            model("same", DEEPSEEK, "mock:tool_call"),
            model("flaky", DEEPSEEK, f"mock:tool_call,mix={WRONG}:0.3"),
        ],
        "quality": {"capture": {"enabled": True, "sample": 1.0, "models": ["base"]}},
    }


@pytest.fixture
def captured(gateway: GatewayFactory, mock: MockUpstreamThread) -> GatewayThread:
    """A gateway whose production traffic to `base` (ITEMS tool-calling requests, tagged by
    task) has been captured."""
    gw = gateway(config(mock.url))
    oai = client(gw)
    for i in range(ITEMS):
        oai.chat.completions.create(
            model="base",
            messages=[{"role": "user", "content": f"weather in city number {i}"}],
            tools=[TOOL],
            extra_headers={"x-crossroads-task": "forecast" if i % 2 else "lookup"},
        )
    # Captures are written in the background: wait until all are in the store.
    writer = gw.gateway.services.capture
    for _ in range(6000):  # a guard against a hung test, not a timing assertion
        if writer.written >= ITEMS:
            break
        time.sleep(0.01)
    assert writer.written == ITEMS
    return gw


def replay(gw: GatewayThread, *extra: str) -> int:
    return main(
        [
            "eval",
            "replay",
            "--url",
            gw.url,
            "--data-dir",
            str(gw.settings.data_dir),
            "--from",
            "base",
            "--to",
            "same",
            "--to",
            "flaky",
            "--run",
            "r1",
            *extra,
        ]
    )


def switch(gw: GatewayThread, target: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    code = main(
        [
            "report",
            "switch",
            "--from",
            "base",
            "--to",
            target,
            "--format",
            "json",
            "--data-dir",
            str(gw.settings.data_dir),
        ]
    )
    assert code == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def test_known_quality_comes_out_as_known(
    captured: GatewayThread, mock: MockUpstreamThread, capsys: pytest.CaptureFixture[str]
) -> None:
    assert replay(captured, "--concurrency", "4") == 0
    captured.stop()  # the ledgers are flushed: the report sees every eval record
    flaky = switch(captured, "flaky", capsys)
    assert flaky["items"] == ITEMS
    assert flaky["loss"]["count"] > 0 and flaky["win"]["count"] == 0
    assert flaky["win_rate_of_decided"]["high"] < 0.5
    assert flaky["call"].startswith("worse")
    assert flaky["tool_agreement"]["count"] == ITEMS - flaky["loss"]["count"]
    # Every loss is an answer the mock scripted wrong, and every such answer is a loss.
    store = QualityStore(captured.settings.data_dir / QUALITY_FILE)
    try:
        wrong = [
            a
            for _, _, a in store.answers("r1")
            if a.model == "flaky"
            and "Nowhere"
            in a.body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        ]
    finally:
        store.close()
    assert len(wrong) == flaky["loss"]["count"] == 13
    assert {r["task"] for r in flaky["by_task"]} == {"forecast", "lookup"}
    assert [r["served"] for r in flaky["by_served"]] == ["base"]

    same = switch(captured, "same", capsys)
    assert same["items"] == ITEMS
    assert same["tie"]["count"] == ITEMS
    assert same["call"].startswith("tied")
    assert same["tool_agreement"]["share"] == 1.0
    # Costs come from the eval ledger; the candidate is cheaper, so switching saves money at
    # the production volume of `base` (the captured traffic, in the production ledger).
    cost = same["cost_usd"]
    assert cost["priced_items"] == ITEMS
    assert 0 < float(cost["ratio"]) < 1
    assert float(same["saving_usd_per_30d"]) > 0
    assert same["latency_ms"]["items"] == ITEMS

    capsys.readouterr()
    main(
        [
            "report",
            "switch",
            "--from",
            "base",
            "--to",
            "flaky",
            "--data-dir",
            str(captured.settings.data_dir),
        ]
    )
    text = capsys.readouterr().out
    print(text)
    assert f"Switch base -> flaky: {ITEMS} items" in text
    assert "Verdict: worse" in text and "By task (x-crossroads-task):" in text

    # The eval ledger has the reports of the production one: every replayed request is there.
    capsys.readouterr()
    main(
        [
            "report",
            "spend",
            "--eval",
            "--format",
            "json",
            "--data-dir",
            str(captured.settings.data_dir),
        ]
    )
    spend = json.loads(capsys.readouterr().out)
    assert sum(row["requests"] for row in spend["rows"]) == ITEMS * 3

    # Eval traffic stayed out of the production ledger: only the ITEMS captured requests.
    assert len(captured.ledger()) == ITEMS


def test_replay_resumes_where_it_stopped(
    captured: GatewayThread, mock: MockUpstreamThread, capsys: pytest.CaptureFixture[str]
) -> None:
    assert replay(captured, "--limit", "10") == 0
    first = capsys.readouterr().out
    assert "10 items, 30 requests sent, 20 verdicts," in first
    assert replay(captured) == 0
    second = capsys.readouterr().out
    # The ten replayed items are not sent again: only the thirty others, three models each.
    assert (
        f"{ITEMS} items, {(ITEMS - 10) * 3} requests sent, {(ITEMS - 10) * 2} verdicts," in second
    )
    store = QualityStore(captured.settings.data_dir / QUALITY_FILE)
    try:
        assert len(store.verdicts("base", "flaky")) == ITEMS
    finally:
        store.close()


def test_replay_from_a_jsonl_file(
    gateway: GatewayFactory,
    mock: MockUpstreamThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gw = gateway(config(mock.url))
    lines = [
        json.dumps(
            {
                "id": f"q{i}",
                "task": "t",
                "request": {"messages": [{"role": "user", "content": f"q {i}"}], "tools": [TOOL]},
            }
        )
        for i in range(5)
    ]
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(lines))
    assert replay(gw, "--file", str(path)) == 0
    gw.stop()
    report = switch(gw, "same", capsys)
    assert report["items"] == 5 and report["tie"]["count"] == 5


def test_a_bad_jsonl_line_is_named(
    gateway: GatewayFactory,
    mock: MockUpstreamThread,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gw = gateway(config(mock.url))
    path = tmp_path / "items.jsonl"
    path.write_text('{"messages": []}\nnot json\n')
    assert replay(gw, "--file", str(path)) == 2
    assert "line 2: not JSON" in capsys.readouterr().err
