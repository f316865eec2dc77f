"""The dashboard end to end: the real gateway with a month of ledger history plus real requests
through the official client, the page loaded in headless Chromium (Debian's `chromium`, driven
by Playwright; scripts/services installs it), and the plotted values compared with the ledger.

Also: every request the page makes goes to the gateway (no CDN), and in keys mode the data API
wants the admin key, which the page asks for and sends as a Bearer header, never in a URL."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import openai
import pytest
from playwright.sync_api import Browser, Page, Request, sync_playwright

from conftest import client, mock_config
from crossroads.ledger.record import LedgerRecord, UsageSource
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.mockupstream import MockUpstreamThread
from support.chart_checks import (
    check_errors,
    check_latency,
    check_savings,
    check_shares,
    check_spend,
    origin_label,
    weights_label,
)
from support.gateway import GatewayThread, gateway_for
from support.ledger_history import history, run_on_own_loop, seed_ledger

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard.png"
ADMIN = "dashboard-admin-key-0123456789"
ZONE = "Asia/Kolkata"
USER = [{"role": "user", "content": "hello"}]
# Functions, not bare expressions: Playwright evals a bare expression, which the page's CSP blocks.
READY = "() => document.body.dataset.state === 'ready'"
CHARTS = (
    "chart-spend",
    "chart-savings",
    "chart-adoption-origin",
    "chart-adoption-weights",
    "chart-latency",
    "chart-errors",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `scripts/services start` installs Debian's chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def economics_config(url: str) -> dict[str, Any]:
    """A priced deployment (Kimi K2 at Together's list prices), an unpriced one, and one whose
    upstream refuses every request."""
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
                "upstream_model": "mock:usage=1200/300,latency=0.05,drip=0.01",
                "catalog_model": "moonshotai/kimi-k2-0905",
            },
            {
                "name": "kimi-quiet",  # an upstream that reports no usage: the gateway estimates
                "provider": "together",
                "upstream_model": "mock:no_usage,latency=0.05,drip=0.01",
                "catalog_model": "moonshotai/kimi-k2-0905",
            },
            {
                "name": "kimi-refused",
                "provider": "together",
                "upstream_model": "mock:status=400",
                "catalog_model": "moonshotai/kimi-k2-0905",
            },
            {"name": "lab", "provider": "lab", "upstream_model": "mock:usage=100/50,latency=0.12"},
        ],
    }


def test_dashboard_charts_show_the_ledger(
    tmp_path: Path, mock: MockUpstreamThread, browser: Browser
) -> None:
    now = datetime.now(UTC)
    seeded = history(now)
    seed_ledger(tmp_path / "gw" / "data", seeded)
    environ = {"TOGETHER_API_KEY": "sk-upstream-secret-for-tests"}
    with gateway_for(tmp_path / "gw", economics_config(mock.url), environ) as gw:
        real = make_requests(gw)
        records = wait_for_ledger(gw, len(seeded) + real)
        # Every savings figure names its baseline and the price (date, source) it used.
        notes = httpx.get(f"{gw.url}/dashboard/api/data", timeout=30).json()["notes"]
        assert any(
            n.startswith(
                "Baseline on the ledger rows: anthropic/claude-sonnet-4.5 at anthropic at "
                "3.00/15.00 per M (Anthropic pricing (2025), read 2025-12-01)"
            )
            for n in notes
        ), notes

        # A zone with a half-hour offset: the custom range is typed in local time.
        page = browser.new_page(viewport={"width": 1400, "height": 900}, timezone_id=ZONE)
        requested = watch(page)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{gw.url}/dashboard")
        page.wait_for_function(READY, timeout=30_000)
        check_charts(page, records, expect_interval="day")  # the default: 7 days, per day

        choose(page, lambda: page.click("[data-range='24h']"))
        check_charts(page, records, expect_interval="hour")

        choose(page, lambda: page.click("[data-range='30d']"))
        shown = check_charts(page, records, expect_interval="day")
        assert shown["requests"] == len(records)  # the whole month, real requests included
        SCREENSHOT.parent.mkdir(exist_ok=True)  # scripts/check makes it; a bare pytest may not
        page.screenshot(path=str(SCREENSHOT), full_page=True)

        choose(page, lambda: page.select_option("#interval", "week"))
        check_charts(page, records, expect_interval="week")

        local_now = datetime.now(ZoneInfo(ZONE)).replace(second=0, microsecond=0, tzinfo=None)
        start, end = local_now - timedelta(days=3, minutes=17), local_now + timedelta(hours=1)
        page.click("[data-range='custom']")
        page.fill("#custom-from", start.strftime("%Y-%m-%dT%H:%M"))
        page.fill("#custom-to", end.strftime("%Y-%m-%dT%H:%M"))
        page.select_option("#interval", "")
        choose(page, lambda: page.click("#custom-range button[type=submit]"))
        window = page.evaluate("window.crossroadsDashboard.window")
        since, until = (moment.replace(tzinfo=ZoneInfo(ZONE)) for moment in (start, end))
        assert datetime.fromisoformat(window["since"]) == floor_hour(since)
        # `until` rounds up to the hour: unchanged when it already is one (e.g. at hh:30 in
        # Kolkata, whole hours in UTC).
        ceiling = floor_hour(until) + (
            timedelta(hours=1) if floor_hour(until) != until else timedelta()
        )
        assert datetime.fromisoformat(window["until"]) == ceiling
        check_charts(page, records, expect_interval="day")
        page.close()

    assert requested, "the page made no requests"
    outside = [url for url in requested if not url.startswith(f"{gw.url}/")]
    assert outside == [], f"requests left the gateway: {outside}"
    assert any(url.startswith(f"{gw.url}/dashboard/static/plotly.min.js") for url in requested)
    assert errors == []


def test_dashboard_data_needs_the_admin_key_in_keys_mode(
    tmp_path: Path, mock: MockUpstreamThread, browser: Browser
) -> None:
    config = {**mock_config(mock.url), "auth": {"mode": "keys", "refresh_interval": 0.2}}
    with gateway_for(tmp_path / "gw", config, {"CROSSROADS_ADMIN_KEY": ADMIN}) as gw:
        data = f"{gw.url}/dashboard/api/data"
        assert httpx.get(data).status_code == 401
        assert httpx.get(data, headers={"authorization": "Bearer wrong-key"}).status_code == 401
        answer = httpx.get(data, headers={"authorization": f"Bearer {ADMIN}"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["totals"]["requests"] == 0
        user_key = httpx.post(
            f"{gw.url}/admin/keys",
            json={"name": "not-admin"},
            headers={"authorization": f"Bearer {ADMIN}"},
        ).json()["key"]
        assert httpx.get(data, headers={"authorization": f"Bearer {user_key}"}).status_code == 403
        page_answer = httpx.get(f"{gw.url}/dashboard")  # the page holds no data: no key needed
        assert page_answer.status_code == 200
        assert "script-src 'self'" in page_answer.headers["content-security-policy"]

        page = browser.new_page(viewport={"width": 1400, "height": 900})
        requested = watch(page)
        page.goto(f"{gw.url}/dashboard")
        page.wait_for_function("() => document.body.dataset.state === 'auth'", timeout=30_000)
        page.fill("#admin-key", user_key)
        page.click("#login-form button[type=submit]")
        page.wait_for_function(
            "() => document.getElementById('login-error').textContent.includes('not the admin key')"
        )
        with page.expect_request(lambda r: "/dashboard/api/data" in r.url) as sent:
            page.fill("#admin-key", ADMIN)
            page.click("#login-form button[type=submit]")
        assert sent.value.headers["authorization"] == f"Bearer {ADMIN}"
        page.wait_for_function(READY, timeout=30_000)
        assert page.evaluate("sessionStorage.getItem('crossroads.adminKey')") == ADMIN
        page.reload()  # the key is kept for the tab's session: no second prompt
        page.wait_for_function(READY, timeout=30_000)
        page.close()
    assert not [url for url in requested if ADMIN in url or user_key in url]


def test_dashboard_assets_are_local_and_bad_windows_are_400s(
    tmp_path: Path, mock: MockUpstreamThread
) -> None:
    with gateway_for(tmp_path / "gw", mock_config(mock.url)) as gw:
        html = httpx.get(f"{gw.url}/dashboard").text
        links = re.findall(r'(?:src|href)="([^"]*)"', html)
        assert len(links) == 5 and all(link.startswith("/dashboard/static/") for link in links)
        assert "://" not in html  # no CDN, no absolute URL of any kind
        plotly = httpx.get(f"{gw.url}/dashboard/static/plotly.min.js")
        assert plotly.status_code == 200 and plotly.text.startswith("/**\n* plotly.js v")
        assert "immutable" in plotly.headers["cache-control"]
        assert plotly.headers["content-type"].startswith("text/javascript")
        for name in ("nope.js", "..%2Fdata.py", "index.html"):
            assert httpx.get(f"{gw.url}/dashboard/static/{name}").status_code == 404, name
        bad = httpx.get(f"{gw.url}/dashboard/api/data", params={"since": "last tuesday"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "since"


def choose(page: Page, action: Callable[[], None]) -> None:
    """Does `action` on the page's controls and waits until the page shows new data."""
    page.evaluate("() => { window.crossroadsDashboard = null; }")
    action()
    page.wait_for_function(
        "() => document.body.dataset.state === 'ready' && window.crossroadsDashboard",
        timeout=30_000,
    )


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def make_requests(gw: GatewayThread) -> int:
    """Real requests through the official client: priced (some streamed, two with estimated
    usage), unpriced, refused by the upstream, and for an unknown model. Returns how many were
    made."""
    openai_client = client(gw)
    for _ in range(4):
        openai_client.chat.completions.create(model="kimi", messages=USER)  # type: ignore[arg-type]
    for _ in range(2):
        stream = openai_client.chat.completions.create(
            model="kimi",
            messages=USER,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        for _chunk in stream:
            pass
    for _ in range(2):
        for _chunk in openai_client.chat.completions.create(
            model="kimi-quiet",
            messages=USER,  # type: ignore[arg-type]
            stream=True,
        ):
            pass
    for _ in range(2):
        openai_client.chat.completions.create(model="lab", messages=USER)  # type: ignore[arg-type]
    for model, error in (
        ("kimi-refused", openai.BadRequestError),
        ("kimi-refused", openai.BadRequestError),
        ("no-such-model", openai.NotFoundError),
    ):
        with pytest.raises(error):
            openai_client.chat.completions.create(model=model, messages=USER)  # type: ignore[arg-type]
    return 13


def wait_for_ledger(gw: GatewayThread, expected: int) -> list[LedgerRecord]:
    """Polls the store (a second, read-only connection) until the writer has flushed
    `expected` records, and returns them all."""

    async def read() -> tuple[int, list[LedgerRecord]]:
        store = SQLiteLedgerStore(gw.settings.data_dir / "ledger.sqlite3", create=False)
        await store.open()
        try:
            count = await store.count()
            return count, (await store.recent(1_000_000) if count >= expected else [])
        finally:
            await store.close()

    deadline = time.monotonic() + 15
    while True:
        count, records = run_on_own_loop(read())
        if count >= expected:
            assert count == expected
            return records
        assert time.monotonic() < deadline, f"ledger holds {count} of {expected} records"
        time.sleep(0.05)


def watch(page: Page) -> list[str]:
    requested: list[str] = []

    def note(request: Request) -> None:
        requested.append(request.url)

    page.on("request", note)
    return requested


def check_charts(page: Page, records: list[LedgerRecord], expect_interval: str) -> dict[str, Any]:
    """Compares every chart with the ledger records in the window the page shows, grouped into
    the page's periods. Returns the page's totals."""
    data = page.evaluate("window.crossroadsDashboard")
    window = data["window"]
    assert window["interval"] == expect_interval
    since, until = (datetime.fromisoformat(window[k]) for k in ("since", "until"))
    shown = [r for r in records if since <= r.created_at < until]
    assert shown, "no record in the window"
    charts = page.evaluate(
        "ids => Object.fromEntries(ids.map(id => [id, document.getElementById(id).data]))",
        list(CHARTS),
    )
    interval = window["interval"]
    check_spend(charts["chart-spend"], shown, interval)
    check_savings(charts["chart-savings"], shown, interval)
    check_shares(charts["chart-adoption-origin"], shown, interval, origin_label)
    check_shares(charts["chart-adoption-weights"], shown, interval, weights_label)
    check_latency(charts["chart-latency"], shown)
    check_errors(charts["chart-errors"], shown)
    totals = data["totals"]
    assert totals["requests"] == len(shown)
    assert page.inner_text("#kpi-requests") == str(len(shown))
    estimated = [r for r in shown if r.usage_source is UsageSource.ESTIMATED]
    assert totals["estimated_requests"] == len(estimated)
    assert Decimal(totals["estimated_cost_usd"]) == sum(
        (r.cost_usd or Decimal(0) for r in estimated), Decimal(0)
    )
    assert ("estimated" in page.inner_text("#kpi-spend-sub")) == bool(estimated)
    return dict(totals)
