"""Admin API for governance: keys, teams, and route explanations. Every endpoint needs the
admin key (`Authorization: Bearer $CROSSROADS_ADMIN_KEY`); a valid non-admin key gets 403.
Bodies are validated strictly: an unknown field, an unknown country code or an impossible
budget is a 400 naming the field."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from crossroads.errors import GatewayError, InvalidRequestError, NotFoundError
from crossroads.governance.gate import Gate
from crossroads.governance.model import ApiKey, Limits, Team
from crossroads.governance.policy import EMPTY, parse_rules
from crossroads.ingress.body import read_json_object
from crossroads.ingress.openai.errors import error_response
from crossroads.ingress.services import Services
from crossroads.routing.options import parse_routing_options
from crossroads.routing.strategy import expected_cost
from crossroads.server.admin import require_admin
from crossroads.server.runtime import Gateway

T = TypeVar("T")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MAX_BUDGET = Decimal(1_000_000_000)
MAX_RATE = 10**12  # requests or tokens per minute; Redis compares counts exactly up to 2**53
MAX_TOKENS = 2**31 - 1
MAX_EXPIRY_DAYS = 36_500  # a hundred years; far more would overflow a datetime (a 500)


class KeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    team_id: str | None = None
    expires_at: datetime | None = None
    expires_in_days: float | None = None
    limits: Limits = Limits()
    policy: dict[str, Any] = {}


class TeamPut(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    name: str | None = None
    limits: Limits = Limits()
    policy: dict[str, Any] = {}


class Explain(msgspec.Struct, forbid_unknown_fields=True):
    model: str
    key_id: str | None = None
    team_id: str | None = None
    stream: bool = False
    prompt_tokens: Annotated[int, msgspec.Meta(ge=0, le=MAX_TOKENS)] = 1000
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=MAX_TOKENS)] | None = None
    provider: dict[str, Any] | None = None
    models: list[str] | None = None


async def _body(request: Request, kind: type[T]) -> T:
    services: Services = request.app.state.services
    _, data = await read_json_object(request, 1024 * 1024, services.json_depth)
    try:
        return msgspec.convert(data, kind, str_keys=True)
    except msgspec.ValidationError as exc:
        raise InvalidRequestError(f"Invalid request: {exc}.") from None


def _check_limits(limits: Limits, where: str) -> None:
    if limits.budget_usd is not None and not (
        limits.budget_usd.is_finite() and 0 < limits.budget_usd <= MAX_BUDGET
    ):
        raise InvalidRequestError(
            f"{where}.budget_usd must be more than 0 and at most {MAX_BUDGET}; got "
            f"{limits.budget_usd}.",
            param=f"{where}.budget_usd",
        )
    for name in ("rpm", "tpm"):
        value = getattr(limits, name)
        if value is not None and not 1 <= value <= MAX_RATE:
            raise InvalidRequestError(
                f"{where}.{name} must be 1 to {MAX_RATE}; got {value}.", param=f"{where}.{name}"
            )


def key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "team_id": key.team_id,
        "created_at": key.created_at.isoformat(),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "limits": msgspec.to_builtins(key.limits),
        "policy": msgspec.to_builtins(key.policy),
    }


def team_json(team: Team) -> dict[str, Any]:
    return {
        "id": team.id,
        "name": team.name,
        "created_at": team.created_at.isoformat(),
        "limits": msgspec.to_builtins(team.limits),
        "policy": msgspec.to_builtins(team.policy),
    }


def _guarded(handler: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        try:
            result: Response = await handler(request)
            return result
        except GatewayError as exc:
            return error_response(exc)

    return endpoint


@_guarded
async def create_key(request: Request) -> Response:
    gate = require_admin(request)
    body = await _body(request, KeyCreate)
    if not body.name.strip():
        raise InvalidRequestError("name must not be empty.", param="name")
    if body.team_id is not None and gate.team(body.team_id) is None:
        raise InvalidRequestError(f"Unknown team {body.team_id!r}.", param="team_id")
    _check_limits(body.limits, "limits")
    policy = parse_rules(body.policy, "policy") if body.policy else EMPTY
    expires_at = body.expires_at
    if body.expires_in_days is not None:
        if not 0 < body.expires_in_days <= MAX_EXPIRY_DAYS:
            raise InvalidRequestError(
                f"expires_in_days must be more than 0 and at most {MAX_EXPIRY_DAYS}.",
                param="expires_in_days",
            )
        expires_at = datetime.now(UTC) + timedelta(days=body.expires_in_days)
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidRequestError("expires_at needs a time zone (e.g. Z).", param="expires_at")
    key, secret = await gate.create_key(
        body.name,
        team_id=body.team_id,
        limits=body.limits,
        policy=policy,
        expires_at=expires_at,
    )
    return JSONResponse({**key_json(key), "key": secret}, status_code=201)


@_guarded
async def list_keys(request: Request) -> Response:
    gate = require_admin(request)
    return JSONResponse({"data": [key_json(k) for k in gate.list_keys()]})


@_guarded
async def revoke_key(request: Request) -> Response:
    gate = require_admin(request)
    key_id = request.path_params["key_id"]
    if not await gate.revoke_key(key_id):
        raise NotFoundError(f"No live key with id {key_id!r}.")
    key = gate.key(key_id)
    assert key is not None
    return JSONResponse(key_json(key))


@_guarded
async def rotate_key(request: Request) -> Response:
    gate = require_admin(request)
    key_id = request.path_params["key_id"]
    rotated = await gate.rotate_key(key_id)
    if rotated is None:
        raise NotFoundError(f"No live key with id {key_id!r}.")
    key, secret = rotated
    return JSONResponse({**key_json(key), "key": secret, "replaces": key_id}, status_code=201)


@_guarded
async def put_team(request: Request) -> Response:
    gate = require_admin(request)
    body = await _body(request, TeamPut)
    if not _SLUG.match(body.id):
        raise InvalidRequestError(
            "id must be a lowercase slug (letters, digits, '-' or '_').", param="id"
        )
    _check_limits(body.limits, "limits")
    policy = parse_rules(body.policy, "policy") if body.policy else EMPTY
    existing = gate.team(body.id)
    team = Team(
        id=body.id,
        name=body.name or (existing.name if existing else body.id),
        created_at=existing.created_at if existing else datetime.now(UTC),
        limits=body.limits,
        policy=policy,
    )
    await gate.put_team(team)
    return JSONResponse(team_json(team), status_code=200 if existing else 201)


@_guarded
async def list_teams(request: Request) -> Response:
    gate = require_admin(request)
    return JSONResponse({"data": [team_json(t) for t in gate.list_teams()]})


@_guarded
async def explain(request: Request) -> Response:
    gate = require_admin(request)
    gateway: Gateway = request.app.state.gateway
    body = await _body(request, Explain)
    try:
        principal = gate.principal_for(body.key_id, body.team_id)
    except KeyError as exc:
        raise InvalidRequestError(str(exc.args[0])) from None
    extension: dict[str, Any] = {}
    if body.provider is not None:
        extension["provider"] = body.provider
    if body.models is not None:
        extension["models"] = body.models
    options = parse_routing_options(
        extension, prompt_tokens=body.prompt_tokens, completion_tokens=body.max_tokens
    )
    router = gateway.router
    route = router.route(body.model)
    policy = Gate.policy_check(principal)
    rows: list[dict[str, Any]] = []
    try:
        plan = router.plan(route, options, stream=body.stream, policy=policy)
        order = {dep.id: i + 1 for i, dep in enumerate(plan.candidates)}
        removed = {dep.id: why for dep, why in (*plan.policy_excluded, *plan.excluded)}
        denied = None
    except GatewayError as exc:  # policy removed every candidate
        order, removed, denied = {}, {}, exc.message
        for dep in route.deployments:
            removed[dep.id] = (policy(dep, route.name) if policy else None) or "removed"
    seen = set()
    all_deps = [
        d
        for r in (route, *(router.table.resolve(m) for m in options.fallback_models))
        for d in r.deployments
    ]
    for dep in all_deps:
        if dep.id in seen:
            continue
        seen.add(dep.id)
        cost = expected_cost(dep, options.prompt_tokens, options.completion_tokens)
        health = router.health.get(dep.id)
        rows.append(
            {
                "deployment": dep.id,
                "provider": dep.provider,
                "model": dep.catalog_id,
                "maker": dep.model.maker if dep.model else None,
                "origin_country": dep.maker.country if dep.maker else None,
                "host_jurisdiction": dep.host.jurisdiction if dep.host else None,
                "circuit": health.state.value,
                "try_order": order.get(dep.id),
                "removed_by": removed.get(dep.id),
                "estimated_cost_usd": None if cost is None else str(cost),
            }
        )
    return JSONResponse(
        {
            "model": body.model,
            "principal": principal.label,
            "policies": [p.scope for p in principal.policies],
            "strategy": route.strategy or router.policy.strategy,
            "token_mix": {"prompt": options.prompt_tokens, "completion": options.completion_tokens},
            "denied": denied,
            "candidates": sorted(rows, key=lambda r: (r["try_order"] is None, r["try_order"] or 0)),
        }
    )
