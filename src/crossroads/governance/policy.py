"""Policy: rules on which deployments a request may use, by the model's maker and origin, its
weights and licence, the host's jurisdiction and retention terms, price, and model names.

Policies attach globally, per team and per key; a deployment must pass every attached policy
(the most restrictive combination wins). Evaluation is pure and cheap: a few set lookups per
candidate deployment, done before the router orders the candidates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec

from crossroads.catalog import ISO_3166_ALPHA2
from crossroads.catalog.model import QUANTIZATIONS
from crossroads.errors import InvalidRequestError
from crossroads.routing.deployment import Deployment


class PriceCap(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """USD per million tokens."""

    prompt: Decimal | None = None
    completion: Decimal | None = None


class PolicyRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """The rules of one policy. Every field is optional; an empty policy allows everything.
    Countries are ISO 3166-1 alpha-2 codes ("CN", "US"); the embedded model's host has the
    jurisdiction "local"."""

    allowed_origins: frozenset[str] | None = None  # maker countries
    denied_origins: frozenset[str] = frozenset()
    allowed_makers: frozenset[str] | None = None
    denied_makers: frozenset[str] = frozenset()
    open_weights_only: bool = False
    allowed_licenses: frozenset[str] | None = None
    allowed_jurisdictions: frozenset[str] | None = None  # host jurisdictions
    denied_jurisdictions: frozenset[str] = frozenset()
    zero_retention_only: bool = False
    # Quantisations a deployment may be served at ("fp8", "bf16", ...); "unknown" admits those
    # whose quantisation the catalog and config do not give. E.g. refuse FP4 deployments.
    allowed_quantizations: frozenset[str] | None = None
    max_price: PriceCap | None = None
    allowed_models: frozenset[str] | None = None  # served names, catalog ids or deployment ids
    denied_models: frozenset[str] = frozenset()


EMPTY = PolicyRules()


@dataclass(frozen=True, slots=True)
class Policy:
    """A policy and where it is attached, for messages: "global", "team 'research'", ..."""

    scope: str
    rules: PolicyRules


def parse_rules(data: Any, where: str) -> PolicyRules:
    """Validates a policy document. Raises InvalidRequestError (400) naming the field for an
    unknown field, a wrong type, an unknown country code or a negative price."""
    try:
        rules = msgspec.convert(data, PolicyRules, str_keys=True)
    except msgspec.ValidationError as exc:
        raise InvalidRequestError(f"{where}: {exc}", param=where) from None
    for name in (
        "allowed_origins",
        "denied_origins",
        "allowed_jurisdictions",
        "denied_jurisdictions",
    ):
        codes = getattr(rules, name) or frozenset()
        unknown = sorted(c for c in codes if c not in ISO_3166_ALPHA2 and c != "local")
        if unknown:
            raise InvalidRequestError(
                f"{where}.{name}: unknown country code(s) {', '.join(unknown)}; use ISO 3166-1 "
                "alpha-2 codes such as US, CN, SG",
                param=f"{where}.{name}",
            )
    if rules.allowed_quantizations is not None:
        unknown = sorted(q for q in rules.allowed_quantizations if q not in QUANTIZATIONS)
        if unknown:
            raise InvalidRequestError(
                f"{where}.allowed_quantizations: unknown value(s) {', '.join(unknown)}; use "
                f"{', '.join(QUANTIZATIONS)}",
                param=f"{where}.allowed_quantizations",
            )
    if rules.max_price is not None:
        for bound in (rules.max_price.prompt, rules.max_price.completion):
            if bound is not None and bound < 0:
                raise InvalidRequestError(
                    f"{where}.max_price: prices must not be negative", param=f"{where}.max_price"
                )
    return rules


def violation(dep: Deployment, rules: PolicyRules, route_names: Sequence[str] = ()) -> str | None:
    """The first rule of `rules` that `dep` breaks, as a phrase, or None."""
    model, maker, host = dep.model, dep.maker, dep.host
    origin = maker.country if maker else None
    if rules.allowed_origins is not None and origin not in rules.allowed_origins:
        return f"allowed_origins does not include {origin or 'unknown origin'}"
    if origin in rules.denied_origins:
        return f"denied_origins excludes {origin} (maker {model.maker if model else '?'})"
    maker_id = model.maker if model else None
    if rules.allowed_makers is not None and maker_id not in rules.allowed_makers:
        return f"allowed_makers does not include {maker_id or 'unknown maker'}"
    if maker_id in rules.denied_makers:
        return f"denied_makers excludes {maker_id}"
    if rules.open_weights_only and not (model and model.open_weights):
        return "open_weights_only: the model's weights are closed or unknown"
    if rules.allowed_licenses is not None and (
        model is None or model.license not in rules.allowed_licenses
    ):
        return f"allowed_licenses does not include {model.license if model else 'unknown'}"
    jurisdiction = host.jurisdiction if host else None
    if rules.allowed_jurisdictions is not None and jurisdiction not in rules.allowed_jurisdictions:
        return f"allowed_jurisdictions does not include host jurisdiction {jurisdiction or '?'}"
    if jurisdiction in rules.denied_jurisdictions:
        return f"denied_jurisdictions excludes host jurisdiction {jurisdiction}"
    if rules.zero_retention_only and not (host and host.zero_retention):
        return (
            f"zero_retention_only: host {host.id if host else '?'} is not known to retain nothing"
        )
    if rules.allowed_quantizations is not None:
        served = dep.quantization or "unknown"
        if served not in rules.allowed_quantizations:
            return f"allowed_quantizations does not include {served} (deployment {dep.id})"
    cap = rules.max_price
    if cap is not None:
        prices = dep.prices
        for bound, price, what in (
            # At the dearest hour: a cap must hold at DeepSeek's peak, not only off-peak.
            (cap.prompt, prices.highest_input if prices else None, "prompt"),
            (cap.completion, prices.highest_output if prices else None, "completion"),
        ):
            if bound is not None and (price is None or price > bound):
                shown = "unknown" if price is None else f"{price}/M"
                return f"max_price.{what} {bound}/M is below the {what} price ({shown})"
    names = {dep.id, dep.name, *(route_names or ())}
    if dep.model:
        names.add(dep.model.id)
    if rules.allowed_models is not None and not names & rules.allowed_models:
        return "allowed_models does not include this model"
    denied = names & rules.denied_models
    if denied:
        return f"denied_models excludes {sorted(denied)[0]}"
    return None


def first_violation(
    dep: Deployment, policies: Sequence[Policy], route_names: Sequence[str] = ()
) -> str | None:
    """`scope: rule` for the first attached policy that rules `dep` out, or None."""
    for policy in policies:
        reason = violation(dep, policy.rules, route_names)
        if reason is not None:
            return f"{policy.scope} policy: {reason}"
    return None
