"""The capture rules and store without a server: who is selected, what scrubbing leaves, and
that the retention period and the size cap hold."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
import yaml

from crossroads.cli.main import main
from crossroads.config import load_settings
from crossroads.errors import ConfigError
from crossroads.quality.capture import CaptureWriter, scrub_body
from crossroads.quality.settings import CaptureRules, ShadowRoute
from crossroads.quality.shadow import Shadower
from crossroads.quality.store import QualityStore
from crossroads.scrub import Scrubber


def test_selection() -> None:
    off = CaptureRules(enabled=False, sample=1.0)
    assert not off.selects("k", "t", "m", 0.0)
    every = CaptureRules(enabled=True, sample=0.5)
    assert every.selects(None, None, "m", 0.49) and not every.selects(None, None, "m", 0.5)
    listed = CaptureRules(
        enabled=True, sample=1.0, teams=frozenset({"eng"}), models=frozenset({"fast"})
    )
    assert listed.selects(None, "eng", "slow", 0.0)
    assert listed.selects("k", None, "fast", 0.0)
    assert not listed.selects("k", "ops", "slow", 0.0)


def test_scrubbing_removes_gateway_secrets_and_pasted_keys_and_keeps_json() -> None:
    secret = "provider-secret-value-123456"
    body = orjson.dumps(
        {
            "messages": [
                {
                    "role": "user",
                    "content": (
                        f"use {secret} or sk-ant-api03-AAAAAAAAAAAAAAAAAAAAAAAA or "
                        "AKIAABCDEFGHIJKLMNOP, "
                        "Authorization: Bearer abc.def.ghi"
                    ),
                }
            ]
        }
    )
    out = scrub_body(body, Scrubber([secret]))
    assert out is not None
    text = orjson.loads(out)["messages"][0]["content"]
    for planted in (secret, "sk-ant-api03", "AKIAABCDEFGHIJKLMNOP", "abc.def.ghi"):
        assert planted not in text
    assert text.count("[redacted]") == 4


def _row(n: int, size: int, at: float) -> tuple[object, ...]:
    body = orjson.dumps({"n": n, "pad": "x" * size})
    return (f"req_{n}", at, "chat.completions", None, None, "m", None, body, None, len(body))


def test_retention_and_size_cap(tmp_path: Path) -> None:
    store = QualityStore(tmp_path / "q.sqlite3")
    try:
        now = time.time()
        store.add_captures([_row(0, 10, now - 3 * 86400)], retention_days=30, max_bytes=10**6)
        store.add_captures([_row(1, 10, now)], retention_days=2, max_bytes=10**6)
        assert [c.request["n"] for c in store.captures()] == [1]  # the 3-day-old one expired
        store.add_captures(
            [_row(i, 1000, now) for i in range(2, 12)], retention_days=2, max_bytes=5000
        )
        count, size = store.capture_stats()
        assert size <= 5000 and count == 4
        assert [c.request["n"] for c in store.captures()] == [8, 9, 10, 11]  # newest kept
    finally:
        store.close()


def test_the_writer_drops_rather_than_blocks(tmp_path: Path) -> None:
    async def run() -> CaptureWriter:
        rules = CaptureRules(enabled=True, sample=1.0, queue=2, max_item_bytes=2000)
        writer = CaptureWriter(tmp_path / "q.sqlite3", rules, Scrubber())
        await writer.start()
        common = {
            "endpoint": "chat.completions",
            "key_id": None,
            "team_id": None,
            "model": "m",
            "task": None,
            "response": None,
        }
        # No await between offers: the writer task cannot drain, so the third is dropped.
        for i in range(3):
            writer.offer(request_id=f"r{i}", request=b'{"a": 1}', **common)
        writer.offer(request_id="big", request=orjson.dumps({"p": "x" * 5000}), **common)
        writer.offer(request_id="bad", request=b"not json", **common)
        await writer.aclose()
        return writer

    writer = asyncio.run(run())
    assert writer.written == 2 and writer.dropped == 3


def test_shadow_budget_and_sampling() -> None:
    draws = iter([0.0, 0.9, 0.0, 0.0])
    shadow = Shadower(
        (ShadowRoute("a", "b", sample=0.5, budget_usd=0.01),), None, draw=lambda: next(draws)
    )
    assert shadow.wants("other", stream=False) is None
    assert shadow.wants("a", stream=True) is None  # streams: no draw taken
    assert shadow.wants("a", stream=False) is not None  # 0.0 < 0.5
    assert shadow.wants("a", stream=False) is None  # 0.9: not sampled
    shadow.note_cost("shadow:a", Decimal("0.006"))
    shadow.note_cost("replay-run", Decimal("5"))  # not shadow traffic: not counted
    assert shadow.wants("a", stream=False) is not None
    shadow.note_cost("shadow:a", Decimal("0.006"))
    assert shadow.spent("a") == Decimal("0.012")
    assert shadow.wants("a", stream=False) is None and shadow.over_budget == 1


def test_a_switch_report_with_nothing_replayed_says_so_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "switch", "--from", "a", "--to", "b", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Switch a -> b: 0 items" in out and "no evidence" in out
    assert list(tmp_path.iterdir()) == []  # a report creates no store
    assert main(["report", "switch", "--from", "a", "--data-dir", str(tmp_path)]) == 2


def test_capture_settings_are_checked(tmp_path: Path) -> None:
    for capture, where in (
        ({"sample": 1.5}, "quality.capture.sample"),
        ({"retention_days": 0}, "quality.capture.retention_days"),
        ({"max_bytes": 10}, "quality.capture.max_bytes"),
        ({"secret": True}, "secret"),
    ):
        path = tmp_path / "c.yaml"
        path.write_text(
            yaml.safe_dump({"embedded": {"enabled": False}, "quality": {"capture": capture}})
        )
        with pytest.raises(ConfigError, match=where):
            load_settings(path, environ={})
