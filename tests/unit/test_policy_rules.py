"""Every policy rule, table-driven, against real catalog deployments: what it allows, what it
refuses, and the edges where a careless change would fail open (unknown facts, a price equal to
the cap, a missing price, a host whose retention terms nobody recorded)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from crossroads.catalog import load_builtin
from crossroads.errors import InvalidRequestError
from crossroads.governance.policy import (
    EMPTY,
    Policy,
    PolicyRules,
    PriceCap,
    first_violation,
    parse_rules,
    violation,
)
from crossroads.routing.deployment import Deployment

CATALOG = load_builtin()


def deployment(model_id: str, host_id: str, name: str | None = None) -> Deployment:
    model = CATALOG.model(model_id)
    host = CATALOG.host(host_id)
    assert model is not None and host is not None
    offering = CATALOG.offering(model_id, host_id)
    upstream = offering.upstream_model if offering else model_id
    return Deployment(
        id=f"{host_id}:{upstream}",
        name=name or model_id,
        provider=host_id,
        upstream_model=upstream,
        model=model,
        maker=CATALOG.maker(model.maker),
        host=host,
        prices=offering.current if offering else None,
        quantization=offering.quantization if offering else None,
    )


DEEPSEEK = deployment(
    "deepseek/deepseek-v3.2", "deepseek", name="deepseek-v3.2"
)  # CN maker, CN host, MIT, priced
KIMI_US = deployment("moonshotai/kimi-k2-0905", "together")  # CN maker, US host
LLAMA_GROQ = deployment("meta/llama-3.3-70b-instruct", "groq")  # US maker, US host, unpriced
SMOL = deployment("huggingface/smollm2-135m-instruct", "local")  # local, zero retention
SONNET = deployment("anthropic/claude-sonnet-4.5", "anthropic")  # closed weights
UNKNOWN = Deployment(id="mine:x", name="x", provider="mine", upstream_model="x")  # no facts
# Kimi K2.6 served FP4 by DeepInfra, at an unpublished quantisation by Fireworks; both US hosts
# that publish zero retention by default.
KIMI_FP4 = deployment("moonshotai/kimi-k2.6", "deepinfra")
KIMI_FIREWORKS = deployment("moonshotai/kimi-k2.6", "fireworks")
M3_FP8 = deployment("minimax/minimax-m3", "fireworks")


def rule_of(policy: PolicyRules) -> str:
    """The one rule a table row sets (each refusal message starts with its name)."""
    (name,) = (n for n in PolicyRules.__struct_fields__ if getattr(policy, n) != getattr(EMPTY, n))
    return name


def rules(**kw: object) -> PolicyRules:
    return PolicyRules(**kw)  # type: ignore[arg-type]


CASES = [
    # (rule, allowed deployments, refused deployments)
    (rules(allowed_origins=frozenset({"US"})), [LLAMA_GROQ, SONNET], [DEEPSEEK, KIMI_US, UNKNOWN]),
    (rules(denied_origins=frozenset({"CN"})), [LLAMA_GROQ, SONNET, UNKNOWN], [DEEPSEEK, KIMI_US]),
    (rules(allowed_makers=frozenset({"meta"})), [LLAMA_GROQ], [DEEPSEEK, SONNET, UNKNOWN]),
    (rules(denied_makers=frozenset({"deepseek"})), [KIMI_US, LLAMA_GROQ, UNKNOWN], [DEEPSEEK]),
    (rules(open_weights_only=True), [DEEPSEEK, KIMI_US, SMOL], [SONNET, UNKNOWN]),
    (rules(allowed_licenses=frozenset({"MIT"})), [DEEPSEEK], [SMOL, SONNET, UNKNOWN]),
    (
        rules(allowed_jurisdictions=frozenset({"US"})),
        [KIMI_US, LLAMA_GROQ],
        [DEEPSEEK, SMOL, UNKNOWN],
    ),
    (rules(denied_jurisdictions=frozenset({"CN"})), [KIMI_US, SMOL, UNKNOWN], [DEEPSEEK]),
    # Only a host known to retain nothing by default passes: Fireworks and DeepInfra publish it;
    # Together's is opt-in, Groq keeps some for abuse checks, DeepSeek stores in the PRC, and
    # unknown terms are not zero retention.
    (
        rules(zero_retention_only=True),
        [SMOL, KIMI_FP4, KIMI_FIREWORKS],
        [DEEPSEEK, KIMI_US, LLAMA_GROQ, UNKNOWN],
    ),
    # Refuse FP4: DeepInfra's Kimi K2.6 is out; FP8 and deployments of unknown quantisation
    # pass only when "unknown" is allowed too.
    (
        rules(allowed_quantizations=frozenset({"fp8", "bf16", "unknown"})),
        [M3_FP8, KIMI_FIREWORKS, UNKNOWN],
        [KIMI_FP4],
    ),
    (rules(allowed_quantizations=frozenset({"fp8"})), [M3_FP8], [KIMI_FP4, KIMI_FIREWORKS]),
    # DeepSeek V3.2 lists 0.28 in / 0.42 out: a cap equal to the price passes, a cent less not.
    (rules(max_price=PriceCap(prompt=Decimal("0.28"))), [DEEPSEEK], [SONNET, LLAMA_GROQ, UNKNOWN]),
    (rules(max_price=PriceCap(completion=Decimal("0.41"))), [], [DEEPSEEK, SONNET, LLAMA_GROQ]),
    (rules(max_price=PriceCap(completion=Decimal("0.42"))), [DEEPSEEK], [SONNET]),
    (rules(allowed_models=frozenset({"deepseek/deepseek-v3.2"})), [DEEPSEEK], [KIMI_US, UNKNOWN]),
    (
        rules(allowed_models=frozenset({"together:moonshotai/Kimi-K2-Instruct-0905"})),
        [KIMI_US],
        [DEEPSEEK],
    ),
    (rules(denied_models=frozenset({"deepseek/deepseek-v3.2"})), [KIMI_US, UNKNOWN], [DEEPSEEK]),
]


@pytest.mark.parametrize(("policy", "allowed", "refused"), CASES)
def test_each_rule_allows_and_refuses_what_it_says(
    policy: PolicyRules, allowed: list[Deployment], refused: list[Deployment]
) -> None:
    for dep in allowed:
        assert violation(dep, policy) is None, dep.id
    for dep in refused:
        reason = violation(dep, policy)
        assert reason is not None, dep.id
        assert reason.startswith(rule_of(policy)), reason


def test_the_table_covers_every_rule() -> None:
    assert {rule_of(policy) for policy, _, _ in CASES} == set(PolicyRules.__struct_fields__)


def test_an_empty_policy_allows_everything() -> None:
    for dep in (DEEPSEEK, KIMI_US, LLAMA_GROQ, SMOL, SONNET, UNKNOWN):
        assert violation(dep, PolicyRules()) is None


def test_a_served_or_alias_name_matches_allowed_and_denied_models() -> None:
    assert violation(DEEPSEEK, rules(allowed_models=frozenset({"fast"})), ("fast",)) is None
    assert violation(DEEPSEEK, rules(denied_models=frozenset({"fast"})), ("fast",)) is not None


def test_the_most_restrictive_attached_policy_wins_and_is_named() -> None:
    policies = [
        Policy("global", rules(denied_origins=frozenset({"RU"}))),
        Policy("team 'research'", rules(denied_jurisdictions=frozenset({"CN"}))),
        Policy("key 'k1'", rules(open_weights_only=True)),
    ]
    assert first_violation(KIMI_US, policies) is None
    assert first_violation(DEEPSEEK, policies) == (
        "team 'research' policy: denied_jurisdictions excludes host jurisdiction CN"
    )
    assert first_violation(SONNET, policies) == (
        "key 'k1' policy: open_weights_only: the model's weights are closed or unknown"
    )


def test_an_unknown_quantization_in_a_policy_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="allowed_quantizations: unknown value"):
        parse_rules({"allowed_quantizations": ["fp5"]}, "policy")
    assert parse_rules({"allowed_quantizations": ["fp8"]}, "policy").allowed_quantizations == {
        "fp8"
    }


def test_the_quantization_comes_from_the_catalog_offering() -> None:
    assert (KIMI_FP4.quantization, KIMI_FIREWORKS.quantization) == ("fp4", None)


def test_a_price_cap_holds_at_the_dearest_hour() -> None:
    """DeepSeek V4 Pro lists 0.66 in off-peak and 1.32 at peak: a cap of 1.00 refuses it."""
    v4 = deployment("deepseek/deepseek-v4-pro", "deepseek")
    reason = violation(v4, rules(max_price=PriceCap(prompt=Decimal("1.00"))))
    assert reason == "max_price.prompt 1.00/M is below the prompt price (1.32/M)"
    assert violation(v4, rules(max_price=PriceCap(prompt=Decimal("1.32")))) is None
