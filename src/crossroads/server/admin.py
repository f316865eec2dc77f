"""Admin authentication, the answer to an admin request that failed, and the router's view of
every deployment (circuit state, failure counts, latency moving averages)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from crossroads.errors import AuthenticationError, GatewayError, PermissionDeniedError
from crossroads.governance.gate import Gate
from crossroads.governance.store import GovernanceStoreError
from crossroads.ingress.openai.errors import error_response
from crossroads.ledger.store import LedgerStoreError
from crossroads.server.runtime import Gateway

log = logging.getLogger(__name__)


class GovernanceUnavailableError(GatewayError):
    status = 503
    kind = "governance_unavailable"


def admin_error(
    exc: GatewayError | GovernanceStoreError, headers: Mapping[str, str] | None = None
) -> Response:
    """The OpenAI-shaped answer to an admin request that failed. A store's own message is for
    the operator (it names the database host, port and user, file paths, the driver's words):
    it goes to the log, and the client gets a fixed sentence with the same status."""
    if isinstance(exc, LedgerStoreError):
        log.warning("admin request failed: %s", exc.message)
        exc = LedgerStoreError(
            "The ledger store is unavailable right now; the details are in the gateway's log."
        )
    elif isinstance(exc, GovernanceStoreError):
        log.warning("admin request failed: %s", exc)
        exc = GovernanceUnavailableError(
            "The key and team store is unavailable right now; the details are in the gateway's log."
        )
    return error_response(exc, headers)


def require_admin(request: Request) -> Gate:
    """The gate, if the request carries the admin key. Raises AuthenticationError (401, counted
    in `crossroads_auth_failures_total`) for a missing or wrong key, PermissionDeniedError (403)
    for a valid key that is not the admin's.
    With no admin key configured, in open mode (loopback only), everyone is admin."""
    gateway: Gateway = request.app.state.gateway
    gate = gateway.gate
    presented = gate.presented_key(request.headers)
    if gate.is_admin(presented):
        return gate
    if presented is None:
        gateway.services.metrics.auth_failure("missing_api_key")
        raise AuthenticationError("The admin API needs the admin key as a Bearer token.")
    try:
        principal = gate.authenticate(request.headers)
    except AuthenticationError:
        principal = None
    if principal is None or principal.key_id is None:
        gateway.services.metrics.auth_failure("invalid_api_key")
        raise AuthenticationError("Invalid admin key.")
    raise PermissionDeniedError("This key is not the admin key; the admin API is for admins.")


async def deployment_health(request: Request) -> Response:
    try:
        require_admin(request)
    except GatewayError as exc:
        return admin_error(exc)
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
