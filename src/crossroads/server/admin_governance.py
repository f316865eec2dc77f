"""Admin API for governance: keys, teams, and route explanations. Every endpoint needs the
admin key (`Authorization: Bearer $CROSSROADS_ADMIN_KEY`); a valid non-admin key gets 403.
Bodies are validated strictly: an unknown field, an unknown country code or an impossible
budget is a 400 naming the field."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from crossroads.analytics.moments import EARLIEST
from crossroads.catalog.model import PricePoint
from crossroads.errors import GatewayError, InvalidRequestError, NotFoundError
from crossroads.governance.gate import Gate
from crossroads.governance.model import ApiKey, Limits, Team
from crossroads.governance.policy import EMPTY, parse_rules
from crossroads.governance.store import GovernanceStoreError
from crossroads.ingress.body import read_json_object
from crossroads.ingress.services import Services
from crossroads.routing.deployment import Deployment
from crossroads.routing.options import parse_routing_options
from crossroads.routing.strategy import expected_cost
from crossroads.server.admin import admin_error, require_admin
from crossroads.server.runtime import Gateway

T = TypeVar("T")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_FIELD_PATH = re.compile(r" - at `\$\.([^`]+)`$")  # where msgspec says the bad value is
MAX_BUDGET = Decimal(1_000_000_000)
MAX_EXPIRES_IN_DAYS = 36_500  # 100 years: a key meant never to expire needs no expiry at all
MAX_RATE = 10**12  # rpm and tpm: far beyond any real limit, far within the stores' 64-bit ints
MAX_EXPLAIN_TOKENS = 10**9  # explain's token mix: beyond any context window
MAX_TOKENS = 2**31 - 1


class KeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    team_id: str | None = None
    expires_at: datetime | None = None
    expires_in_days: float | None = None
    limits: Limits = Limits()
    policy: dict[str, Any] = {}
    can_eval: bool = False  # may mark its traffic as evaluation (x-crossroads-eval)


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
    tools: bool = False  # the request offers tools the model may call
    images: bool = False  # the request carries images


async def _body(request: Request, kind: type[T]) -> T:
    """The body as `kind`; InvalidRequestError (400) naming the offending field otherwise."""
    services: Services = request.app.state.services
    _, data = await read_json_object(request, 1024 * 1024, services.json_depth)
    try:
        return msgspec.convert(data, kind, str_keys=True)
    except msgspec.ValidationError as exc:
        at = _FIELD_PATH.search(str(exc))
        param = at.group(1) if at else None
        raise InvalidRequestError(f"Invalid request: {exc}.", param=param) from None


def _check_limits(limits: Limits, where: str) -> None:
    budget = limits.budget_usd
    # is_finite first: comparing a Decimal NaN raises rather than answering False.
    if budget is not None and not (budget.is_finite() and 0 < budget <= MAX_BUDGET):
        raise InvalidRequestError(
            f"{where}.budget_usd must be more than 0 and at most {MAX_BUDGET}; got "
            f"{limits.budget_usd}.",
            param=f"{where}.budget_usd",
        )
    for name in ("rpm", "tpm"):
        value = getattr(limits, name)
        if value is not None and not 1 <= value <= MAX_RATE:
            raise InvalidRequestError(
                f"{where}.{name} must be from 1 to {MAX_RATE:,}; got {value}.",
                param=f"{where}.{name}",
            )


def _check_expiry(expires_at: datetime) -> None:
    """Raises InvalidRequestError unless `expires_at` names its zone and lies between
    `EARLIEST` and 100 years from now: the stores keep it as microseconds since 1970, and a
    date at the ends of the calendar would not read back (every later reload of the key ring
    would fail)."""
    if expires_at.tzinfo is None:
        raise InvalidRequestError("expires_at needs a time zone (e.g. Z).", param="expires_at")
    latest = datetime.now(UTC) + timedelta(days=MAX_EXPIRES_IN_DAYS)
    try:
        in_range = EARLIEST <= expires_at.astimezone(UTC) <= latest
    except OverflowError:  # 0001-01-01T00:00+14:00 is in year 0 in UTC
        in_range = False
    if not in_range:
        raise InvalidRequestError(
            f"expires_at must be between {EARLIEST:%Y-%m-%d} and {MAX_EXPIRES_IN_DAYS} days "
            f"(100 years) from now; got {expires_at.isoformat()}.",
            param="expires_at",
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
        "can_eval": key.can_eval,
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
        except (GatewayError, GovernanceStoreError) as exc:
            return admin_error(exc)

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
        if not 0 < body.expires_in_days <= MAX_EXPIRES_IN_DAYS:  # also false for NaN
            raise InvalidRequestError(
                f"expires_in_days must be more than 0 and at most {MAX_EXPIRES_IN_DAYS} "
                f"(100 years); got {body.expires_in_days!r}. Leave it out for a key that "
                "does not expire.",
                param="expires_in_days",
            )
        expires_at = datetime.now(UTC) + timedelta(days=body.expires_in_days)
    if expires_at is not None:
        _check_expiry(expires_at)
    key, secret = await gate.create_key(
        body.name,
        team_id=body.team_id,
        limits=body.limits,
        policy=policy,
        expires_at=expires_at,
        can_eval=body.can_eval,
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


def _price_provenance(dep: Deployment) -> dict[str, Any]:
    """Where the deployment's current list price comes from: source, dates, verified."""
    prices = dep.prices
    if not isinstance(prices, PricePoint):
        return {"price_source": None, "price_as_of": None, "price_verified": None}
    read = prices.as_of or prices.since
    return {
        "price_source": prices.source,
        "price_as_of": read.isoformat() if read else None,
        "price_verified": prices.verified,
        "price_windows": [f"{w.name} {w.start}-{w.end} UTC" for w in prices.windows] or None,
    }


@_guarded
async def explain(request: Request) -> Response:
    gate = require_admin(request)
    gateway: Gateway = request.app.state.gateway
    body = await _body(request, Explain)
    for name, tokens, least in (
        ("prompt_tokens", body.prompt_tokens, 0),
        ("max_tokens", body.max_tokens, 1),
    ):
        if tokens is not None and not least <= tokens <= MAX_EXPLAIN_TOKENS:
            raise InvalidRequestError(
                f"{name} must be from {least} to {MAX_EXPLAIN_TOKENS:,}; got {tokens}.", param=name
            )
    try:
        principal = gate.principal_for(body.key_id, body.team_id)
    except KeyError as exc:
        raise InvalidRequestError(str(exc.args[0])) from None
    now = datetime.now(UTC)  # order and estimate at the list price and time-of-day window now
    extension: dict[str, Any] = {}
    if body.provider is not None:
        extension["provider"] = body.provider
    if body.models is not None:
        extension["models"] = body.models
    options = replace(
        parse_routing_options(
            extension, prompt_tokens=body.prompt_tokens, completion_tokens=body.max_tokens
        ),
        needs_tools=body.tools,
        needs_vision=body.images,
        started_at=now,
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
        cost = expected_cost(dep, options.prompt_tokens, options.completion_tokens, now)
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
                "quantization": dep.quantization,
                "zero_retention": dep.host.zero_retention if dep.host else None,
                **_price_provenance(dep),
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
