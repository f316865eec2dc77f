"""The `crossroads.*` (and a few `gen_ai.*`) attributes of the gateway's spans, read from what
the gateway already knows: the deployment an attempt goes to, the request's ledger record, and
the routing plan. Pure functions; no SDK import."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from crossroads.ledger.record import LedgerRecord, UsageSource
from crossroads.ledger.record import Status as RecordStatus
from crossroads.routing.deployment import Deployment
from crossroads.routing.health import Circuit
from crossroads.routing.router import Plan
from crossroads.telemetry.genai import AttributeValue, provider_name


def deployment_attributes(
    servers: Mapping[str, tuple[str, int] | None], op: str, dep: Deployment, circuit: Circuit
) -> dict[str, AttributeValue]:
    """An attempt span's attributes at its start: what it asks of which deployment."""
    attrs: dict[str, AttributeValue] = {
        "gen_ai.operation.name": op,
        "gen_ai.provider.name": provider_name(dep.host.id if dep.host else None, dep.provider),
        "gen_ai.request.model": dep.upstream_model,
        "crossroads.deployment": dep.id,
        "crossroads.provider": dep.provider,
        "crossroads.circuit.state": circuit.value,
    }
    server = servers.get(dep.provider)
    if server is not None:
        attrs["server.address"], attrs["server.port"] = server
    if dep.maker is not None and dep.maker.country:
        attrs["crossroads.model.origin_country"] = dep.maker.country
    if dep.host is not None and dep.host.jurisdiction:
        attrs["crossroads.host.jurisdiction"] = dep.host.jurisdiction
    return attrs


def record_attributes(record: LedgerRecord) -> dict[str, AttributeValue]:
    """The request span's attributes from its ledger record: what the client was answered,
    by which deployment and at what cost. Where it went in detail (provider, maker, server) is
    on the attempt spans: each attribute costs encoding time on every exported span."""
    attrs: dict[str, AttributeValue] = {
        "http.response.status_code": record.http_status,
        "crossroads.stream": record.stream,
        "crossroads.attempts": record.attempts,
    }
    if record.usage_source is not None:
        attrs["gen_ai.usage.input_tokens"] = record.prompt_tokens
        attrs["gen_ai.usage.output_tokens"] = record.completion_tokens
        if record.usage_source is UsageSource.ESTIMATED:
            attrs["crossroads.usage.estimated"] = True
        if record.cached_tokens:
            attrs["gen_ai.usage.cache_read.input_tokens"] = record.cached_tokens
        if record.reasoning_tokens:
            attrs["crossroads.usage.reasoning_tokens"] = record.reasoning_tokens
    optional: tuple[tuple[str, object], ...] = (
        ("crossroads.served_model", record.served_model),
        ("crossroads.deployment", record.deployment),
        ("crossroads.model.origin_country", record.origin_country),
        ("crossroads.host.jurisdiction", record.host_jurisdiction),
        ("crossroads.team_id", record.team_id),
        ("crossroads.api_key_id", record.api_key_id),
        ("crossroads.baseline.model", record.baseline_model),
    )
    for name, value in optional:
        if value is not None:
            attrs[name] = value  # type: ignore[assignment]
    # Money as a float, as in Prometheus; the ledger keeps the exact Decimal amounts.
    if record.cost_usd is not None and record.cost_usd.is_finite():
        attrs["crossroads.cost_usd"] = float(record.cost_usd)
    if record.baseline_cost_usd is not None and record.baseline_cost_usd.is_finite():
        attrs["crossroads.baseline.cost_usd"] = float(record.baseline_cost_usd)
    if record.status is RecordStatus.CANCELLED:
        attrs["crossroads.cancelled"] = True
    return attrs


def plan_attributes(plan: Plan) -> dict[str, AttributeValue]:
    """The routing decisions: the candidates in order (when there was a choice), and what
    policy or the request's own preferences left out, and why."""
    attrs: dict[str, AttributeValue] = {}
    if len(plan.candidates) > 1:
        attrs["crossroads.routing.candidates"] = [d.id for d in plan.candidates]
    if plan.policy_excluded:
        attrs["crossroads.policy.excluded"] = [f"{d.id}: {why}" for d, why in plan.policy_excluded]
    if plan.excluded:
        attrs["crossroads.routing.excluded"] = [f"{d.id}: {why}" for d, why in plan.excluded]
    if plan.tools_dropped:
        attrs["crossroads.routing.tools_dropped"] = sorted(plan.tools_dropped)
    return attrs


def address(url: str) -> tuple[str, int] | None:
    """(host, port) of a base URL, the port made explicit from the scheme when absent."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    return (parts.hostname, port) if parts.hostname else None
