"""Admin endpoints: the router's view of every deployment (circuit state, failure counts,
latency moving averages). Read-only."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from crossroads.server.runtime import Gateway


async def deployment_health(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    router = gateway.router
    deployments = {d.id: d for d in gateway.settings.deployments}
    rows = []
    for row in router.health.snapshot():
        dep = deployments.get(str(row["deployment"]))
        rows.append(
            {
                **row,
                "provider": dep.provider if dep else None,
                "served_as": sorted(
                    {d.name for d in gateway.settings.deployments if d.id == row["deployment"]}
                ),
            }
        )
    policy = router.policy
    return JSONResponse(
        {
            "strategy": policy.strategy,
            "retries": policy.retries,
            "circuit": {
                "failures": policy.breaker.failures,
                "failure_rate": policy.breaker.failure_rate,
                "window": policy.breaker.window,
                "cooldown_s": policy.breaker.cooldown,
            },
            "health_check_interval_s": policy.health_check_interval,
            "deployments": rows,
        }
    )
