"""GET /v1/models and /v1/models/{id}: every name the gateway serves, with catalog facts in a
`crossroads` extension object (maker, origin, licence, hosts, jurisdictions, prices).

In keys mode they need a valid key, as every other /v1 endpoint does: the list names the
upstream hosts, their model ids and prices. In open mode (loopback only) they are open."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from crossroads.catalog.model import PricePoint, Prices
from crossroads.errors import GatewayError, ModelNotFoundError
from crossroads.ingress.body import headers_of
from crossroads.ingress.openai.errors import error_response
from crossroads.ingress.services import Services
from crossroads.routing.deployment import Deployment
from crossroads.routing.table import Route, RoutingTable


def _rates(prices: Prices) -> dict[str, Any]:
    out: dict[str, Any] = {"input": str(prices.input), "output": str(prices.output)}
    for name in ("cached_input", "cache_write", "reasoning"):
        value = getattr(prices, name)
        out[name] = None if value is None else str(value)
    if prices.tiers:
        out["tiers"] = [
            {
                "above_prompt_tokens": t.above_prompt_tokens,
                "input": str(t.input),
                "output": str(t.output),
                "cached_input": None if t.cached_input is None else str(t.cached_input),
            }
            for t in prices.tiers
        ]
    return out


def _price_info(prices: Prices | None) -> dict[str, Any] | None:
    """The current list price with its provenance (source, dates, verified), windows in UTC."""
    if prices is None:
        return None
    out = _rates(prices)
    if prices.windows:
        out["windows"] = [
            {"name": w.name, "start_utc": w.start, "end_utc": w.end, **_rates(w)}
            for w in prices.windows
        ]
    if isinstance(prices, PricePoint):
        out.update(
            source=prices.source,
            as_of=prices.as_of.isoformat() if prices.as_of else None,
            since=prices.since.isoformat() if prices.since else None,
            verified=prices.verified,
        )
    return out


def _deployment_info(dep: Deployment) -> dict[str, Any]:
    host = dep.host
    return {
        "id": dep.id,
        "provider": dep.provider,
        "upstream_model": dep.upstream_model,
        "host": host.id if host else None,
        "host_jurisdiction": host.jurisdiction if host else None,
        "quantization": dep.quantization,
        "zero_retention": host.zero_retention if host else None,
        "retention_source": host.policy_source if host else None,
        "retired": dep.retired,
        "prices_per_million": _price_info(dep.prices),
    }


def _model_object(route: Route) -> dict[str, Any]:
    first = route.deployments[0]
    model, maker = first.model, first.maker
    same_model = all(d.catalog_id == first.catalog_id for d in route.deployments)
    info: dict[str, Any] = {
        "kind": route.kind,
        "deployments": [_deployment_info(d) for d in route.deployments],
    }
    if model and same_model:
        info.update(
            catalog_model=model.id,
            maker=model.maker,
            origin_country=maker.country if maker else None,
            open_weights=model.open_weights,
            license=model.license,
            context_length=model.context_length,
        )
    return {
        "id": route.name,
        "object": "model",
        "created": 0,
        "owned_by": (model.maker if model and same_model else first.provider),
        "crossroads": info,
    }


def models_body(table: RoutingTable) -> bytes:
    """The /v1/models answer, encoded once at start."""
    return orjson.dumps({"object": "list", "data": [_model_object(r) for r in table.routes()]})


def _refusal(services: Services, request: Request) -> Response | None:
    """The 401 for a request without a valid key in keys mode; None when it may see the list."""
    if services.gate.mode != "keys":
        return None
    try:
        services.gate.authenticate(headers_of(request))
    except GatewayError as exc:
        return error_response(exc)
    return None


async def list_models(request: Request) -> Response:
    services: Services = request.app.state.services
    refused = _refusal(services, request)
    if refused is not None:
        return refused
    return Response(services.models_body, media_type="application/json")


async def get_model(request: Request) -> Response:
    services: Services = request.app.state.services
    refused = _refusal(services, request)
    if refused is not None:
        return refused
    name = request.path_params["model"]
    route = services.router.table.get(name)
    if route is None:
        return error_response(ModelNotFoundError(name))
    return Response(orjson.dumps(_model_object(route)), media_type="application/json")
