"""The switch report's dashboard page in headless Chromium (as tests/integration/
test_dashboard.py runs it): captured traffic replayed to a baseline and a candidate that is
wrong 30% of the time, then the page shows what the report's JSON says."""

from __future__ import annotations

import time
from typing import Any

import httpx
from playwright.sync_api import Browser
from test_dashboard import browser  # noqa: F401 - the module's Chromium fixture
from test_quality_replay import TOOL, config, mock  # noqa: F401 - a seeded mock upstream

from conftest import GatewayFactory, client
from crossroads.mockupstream import MockUpstreamThread
from crossroads.quality.replay import Replay
from crossroads.quality.store import QUALITY_FILE, QualityStore
from support.ledger_history import run_on_own_loop

READY = "() => document.body.dataset.state === 'ready'"
ITEMS = 20


def test_the_switch_page_shows_the_report(
    gateway: GatewayFactory,
    mock: MockUpstreamThread,  # noqa: F811
    browser: Browser,  # noqa: F811
) -> None:
    gw = gateway(config(mock.url))
    oai = client(gw)
    for i in range(ITEMS):
        oai.chat.completions.create(
            model="base",
            messages=[{"role": "user", "content": f"weather in city {i}"}],
            tools=[TOOL],
            extra_headers={"x-crossroads-task": "forecast"},
        )
    writer = gw.gateway.services.capture
    for _ in range(6000):
        if writer.written == ITEMS:
            break
        time.sleep(0.01)
    store = QualityStore(gw.settings.data_dir / QUALITY_FILE)
    try:
        replay = Replay(
            store=store, url=gw.url, key=None, run="ui", baseline="base", candidates=["flaky"]
        )
        run_on_own_loop(replay.run_all(store.captures(model="base")))
    finally:
        store.close()

    api = f"{gw.url}/dashboard/api/switch?from=base&to=flaky"
    report: dict[str, Any] = {}
    for _ in range(6000):  # until the eval ledger's writer has flushed every record
        report = httpx.get(api).json()
        if report["cost_usd"]["priced_items"] == ITEMS:
            break
        time.sleep(0.02)
    assert report["items"] == ITEMS and report["loss"]["count"] > 0
    assert httpx.get(f"{gw.url}/dashboard/api/switch?from=base").status_code == 400

    page = browser.new_page()
    try:
        page.goto(f"{gw.url}/dashboard/switch#from=base&to=flaky")
        page.wait_for_function(READY)
        assert page.text_content("#call") == report["call"].split(":")[0]
        assert page.text_content("#items") == f"{ITEMS} items; runs: ui"
        rows = page.locator("#outcomes tbody tr")
        assert rows.count() == 3
        loss = rows.nth(2).locator("td")
        assert loss.nth(0).text_content() == "loss"
        assert loss.nth(1).text_content() == str(report["loss"]["count"])
        task = page.locator("#by-task tbody tr td")
        assert task.nth(0).text_content() == "forecast"
        assert page.text_content("#saving") != "\u2013"
    finally:
        page.close()
