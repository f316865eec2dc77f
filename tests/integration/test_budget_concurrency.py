"""A budget under concurrent requests: each request holds its worst case before it is sent, so
however many arrive at once, what the ledger records stays within the budget."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
from test_governance import ADMIN, keys_config, new_key

from conftest import GatewayFactory
from crossroads.ledger.record import Status
from crossroads.mockupstream import MockUpstreamThread


def test_concurrent_requests_never_overspend_a_budget(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    config = keys_config(mock.url)
    config["providers"]["up0"]["host"] = "together"
    config["models"][0]["catalog_model"] = "moonshotai/kimi-k2-0905"  # $1 in / $3 out per M
    gw = gateway(config, environ={"CROSSROADS_ADMIN_KEY": ADMIN})
    key = new_key(gw, limits={"budget_usd": "1", "budget_period": "day"})
    # Each answer costs $0.30001 (10 in, 100,000 out) and holds ~$0.30003 while in flight (its
    # ~30-token prompt estimate plus max_tokens 100,000): three fit in $1, a fourth never does.
    mock.script(["usage=10/100000,latency=0.5"] * 12)

    def one(_: int) -> int:
        return httpx.post(
            f"{gw.v1}/chat/completions",
            json={
                "model": "m",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 100_000,
            },
            headers={"authorization": f"Bearer {key}"},
            timeout=60,
        ).status_code

    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(one, range(12)))
    assert sorted(statuses) == [200] * 3 + [429] * 9
    gw.stop()
    spent = sum(
        (r.cost_usd or Decimal(0) for r in gw.ledger() if r.status is Status.OK), Decimal(0)
    )
    assert Decimal("0.9") < spent <= Decimal(1)
