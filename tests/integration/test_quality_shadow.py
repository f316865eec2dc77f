"""Shadow traffic end to end: the real gateway, the scripted mock upstream, the official
client. The client's answer is the primary's, whatever the candidate does (answers wrongly,
fails, hangs); the candidate's answers are checked against the primary's and reach the switch
report; the in-flight cap drops rather than queues; the day's budget stops shadowing; streams
are not shadowed; shadow calls are ledgered as eval traffic, never production."""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
import pytest

from conftest import GatewayFactory, client
from crossroads.cli.main import main
from crossroads.mockupstream import MockUpstreamThread
from crossroads.quality.shadow import Shadower
from crossroads.quality.store import QUALITY_FILE, QualityStore
from support.gateway import GatewayThread

WRONG = "tool_args=%7B%22city%22%3A%22Nowhere%22%7D"
TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def config(url: str, candidate: str, **route: Any) -> dict[str, Any]:
    return {
        "embedded": {"enabled": False},
        "providers": {"up": {"type": "openai", "base_url": url}},
        "models": [
            {"name": "base", "provider": "up", "upstream_model": "mock:tool_call"},
            {"name": "cand", "provider": "up", "upstream_model": candidate},
        ],
        "quality": {"shadow": [{"model": "base", "candidate": "cand", "sample": 1.0, **route}]},
    }


def ask(gw: GatewayThread, text: str) -> Any:
    return client(gw).chat.completions.create(
        model="base", messages=[{"role": "user", "content": text}], tools=[TOOL]
    )


def shadower(gw: GatewayThread) -> Shadower:
    return gw.gateway.services.shadow


def wait_for(predicate: Any) -> None:
    """Polls until `predicate()` (shadow calls finish in the background); the bound is only a
    guard against a hung test, not a timing assertion."""
    for _ in range(6000):
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("the shadow calls did not finish")


def test_a_wrong_candidate_is_caught_and_the_client_never_sees_it(
    gateway: GatewayFactory, mock: MockUpstreamThread, capsys: pytest.CaptureFixture[str]
) -> None:
    gw = gateway(config(mock.url, f"mock:tool_call,{WRONG}"))
    for i in range(5):
        reply = ask(gw, f"weather in town {i}")
        call = reply.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert "Nowhere" not in call.function.arguments  # the primary's answer, unchanged
    wait_for(lambda: shadower(gw).done == 5)
    gw.stop()
    assert len(gw.ledger()) == 5  # the shadow calls are not production traffic
    capsys.readouterr()
    main(
        [
            "report",
            "switch",
            "--from",
            "base",
            "--to",
            "cand",
            "--format",
            "json",
            "--data-dir",
            str(gw.settings.data_dir),
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert report["runs"] == ["shadow:base"]
    assert report["loss"]["count"] == 5 and report["call"].startswith("worse")


def test_a_failing_candidate_changes_nothing_for_the_client(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(config(mock.url, "mock:status=500"))
    reply = ask(gw, "weather in Oslo")
    assert reply.choices[0].finish_reason == "tool_calls"
    wait_for(lambda: shadower(gw).done == 1)


def test_a_hanging_candidate_neither_delays_nor_piles_up(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(config(mock.url, "mock:hang", max_in_flight=1))
    first = ask(gw, "one")
    # The client has its answer while the shadow call still hangs: it did not wait for it.
    assert first.choices[0].finish_reason == "tool_calls"
    wait_for(lambda: shadower(gw).in_flight["base"] == 1)
    second = ask(gw, "two")
    assert second.choices[0].finish_reason == "tool_calls"
    assert shadower(gw).dropped == 1 and shadower(gw).in_flight["base"] == 1
    gw.stop()  # the hanging shadow call is cancelled at shutdown; the stop does not hang


def test_no_budget_no_shadow_and_streams_are_not_shadowed(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(config(mock.url, "mock:tool_call", budget_usd=0))
    ask(gw, "one")
    assert shadower(gw).over_budget == 1
    gw2 = gateway(config(mock.url, "mock:tool_call"))
    list(
        client(gw2).chat.completions.create(
            model="base", messages=[{"role": "user", "content": "s"}], stream=True
        )
    )
    assert shadower(gw2).in_flight["base"] == 0 and shadower(gw2).done == 0
    gw2.stop()
    assert shadower(gw2).done == 0


def test_a_shadow_route_must_name_served_models(tmp_path: Any) -> None:
    from crossroads.config import load_settings
    from crossroads.errors import ConfigError
    from support.gateway import write_config

    bad = config("http://127.0.0.1:9", "mock")
    bad["quality"]["shadow"][0]["candidate"] = "nope"
    with pytest.raises(ConfigError, match=r"quality\.shadow\[0\]\.candidate"):
        load_settings(write_config(tmp_path, bad), environ={})


def test_messages_and_responses_requests_are_shadowed_too(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(config(mock.url, "mock:tool_call"))
    with anthropic.Anthropic(base_url=gw.url, api_key="x", max_retries=0) as claude:
        claude.messages.create(
            model="base", max_tokens=50, messages=[{"role": "user", "content": "hello"}]
        )
    client(gw).responses.create(model="base", input="hello", store=False)
    wait_for(lambda: shadower(gw).done == 2)
    gw.stop()
    store = QualityStore(gw.settings.data_dir / QUALITY_FILE)
    try:
        verdicts = store.verdicts("base", "cand")
    finally:
        store.close()
    assert [v.outcome for v in verdicts] == ["tie", "tie"]  # the same script answers both


def test_a_shadow_judge_decides_what_the_checks_cannot(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    """Two plain-text answers that differ: the checks cannot tell, so the route's judge is
    asked in both orders; it prefers the primary both times, so the candidate loses. The
    judge's calls are shadow traffic: eval ledger, never production."""
    config: dict[str, Any] = {
        "embedded": {"enabled": False},
        "providers": {"up": {"type": "openai", "base_url": mock.url}},
        "models": [
            {"name": name, "provider": "up", "upstream_model": "mock"}
            for name in ("base", "cand", "judge")
        ],
        "quality": {
            "shadow": [{"model": "base", "candidate": "cand", "sample": 1.0, "judge": "judge"}]
        },
    }
    gw = gateway(config)
    verdict_a = "say=%7B%22verdict%22%3A%22A%22%2C%22reason%22%3A%22more%20complete%22%7D"
    verdict_b = "say=%7B%22verdict%22%3A%22B%22%2C%22reason%22%3A%22more%20complete%22%7D"
    # The primary, the candidate, then the judge with the primary shown first (A), then second.
    mock.script(["ok", "say=Oslo%20is%20cold", verdict_a, verdict_b])
    reply = client(gw).chat.completions.create(
        model="base", messages=[{"role": "user", "content": "weather in Oslo?"}]
    )
    assert reply.choices[0].message.content == "mock answer: weather in Oslo?"
    wait_for(lambda: shadower(gw).done == 1)
    gw.stop()
    assert len(gw.ledger()) == 1  # only the client's request is production traffic
    store = QualityStore(gw.settings.data_dir / QUALITY_FILE)
    try:
        [verdict] = store.verdicts("base", "cand")
    finally:
        store.close()
    assert (verdict.outcome, verdict.decided_by) == ("loss", "judge")
    assert any("more complete" in reason for reason in verdict.reasons)
