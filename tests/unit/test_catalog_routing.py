"""The catalog in routing, against its shipped entries: OpenRouter's `provider.quantizations`
filter, quantisation from the offering or the config, and retired models answered with an
error or moved to the successor the maker names."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from crossroads.config import load_settings
from crossroads.errors import ConfigError, InvalidRequestError
from crossroads.routing.options import parse_routing_options
from crossroads.routing.router import Router
from crossroads.routing.strategy import expected_cost
from crossroads.routing.table import RoutingTable

KEYS = {"DEEPINFRA_API_KEY": "k1", "FIREWORKS_API_KEY": "k2", "TOGETHER_API_KEY": "k3"}


def router(environ: dict[str, str], config: Path | None = None) -> Router:
    settings = load_settings(config, environ=environ)
    return Router(RoutingTable(settings.deployments, settings.aliases), {})


def plan_for(r: Router, model: str, provider: dict[str, object] | None = None) -> list[str]:
    body: dict[str, object] = {"model": model, "messages": []}
    if provider is not None:
        body["provider"] = provider
    options = parse_routing_options(body)
    return [d.provider for d in r.plan(r.table.resolve(model), options).candidates]


def test_quantizations_filter_kimi_k26_hosts_by_what_they_serve() -> None:
    r = router(KEYS)
    assert set(plan_for(r, "moonshotai/kimi-k2.6")) == {"deepinfra", "fireworks", "together"}
    # DeepInfra serves K2.6 at FP4; the others do not publish theirs ("unknown").
    assert plan_for(r, "moonshotai/kimi-k2.6", {"quantizations": ["fp4"]}) == ["deepinfra"]
    assert set(plan_for(r, "moonshotai/kimi-k2.6", {"quantizations": ["fp8", "unknown"]})) == {
        "fireworks",
        "together",
    }
    plan = r.plan(
        r.table.resolve("moonshotai/kimi-k2.6"),
        parse_routing_options({"provider": {"quantizations": ["bf16"]}}),
    )
    assert plan.candidates == []
    reasons = {d.provider: why for d, why in plan.excluded}
    assert reasons["deepinfra"] == (
        "deployment 'deepinfra:moonshotai/Kimi-K2.6' is served at fp4, "
        "not in provider.quantizations"
    )


def test_an_unknown_quantization_is_a_400_naming_the_field() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_routing_options({"provider": {"quantizations": ["fp8", "q4_k_m"]}})
    assert caught.value.param == "provider.quantizations"
    assert "q4_k_m" in caught.value.message


def test_the_config_can_give_a_deployment_its_quantization(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "providers:\n  vllm: {type: openai, base_url: 'http://127.0.0.1:9/v1'}\n"
        "models:\n  - {name: k26, provider: vllm, upstream_model: kimi,"
        " catalog_model: moonshotai/kimi-k2.6, quantization: int4}\n"
        "auto_providers: false\n"
    )
    settings = load_settings(path, environ={})
    (dep,) = [d for d in settings.deployments if d.name == "k26"]
    assert dep.quantization == "int4"
    path.write_text(path.read_text().replace("int4", "q4_k_m"))
    with pytest.raises(ConfigError, match=r"models\[0\]\.quantization: 'q4_k_m' is not one of"):
        load_settings(path, environ={})


def _config(tmp_path: Path, mode: str | None) -> Path:
    path = tmp_path / f"{mode}.yaml"
    routing = f"routing: {{retired_models: {mode}}}\n" if mode else ""
    path.write_text(
        "providers:\n  deepseek: {}\n"
        "models:\n  - {name: chat, provider: deepseek, upstream_model: deepseek-chat}\n"
        "auto_providers: false\n" + routing
    )
    return path


def test_a_retired_model_is_answered_with_an_error_naming_its_successor(tmp_path: Path) -> None:
    r = router({"DEEPSEEK_API_KEY": "k"}, _config(tmp_path, None))
    plan = r.plan(r.table.resolve("chat"), parse_routing_options({}))
    assert plan.candidates == []
    (reason,) = [why for _, why in plan.excluded]
    assert reason == (
        "model 'deepseek/deepseek-v3.2' was retired on 2026-04-24 at deepseek; its successor "
        "is deepseek/deepseek-v4-flash"
    )


def test_a_retired_model_can_go_to_the_successor_the_maker_names(tmp_path: Path) -> None:
    """V3.2's successor V4 Flash is retired at DeepSeek too: the chain ends at V4.1 Flash."""
    r = router({"DEEPSEEK_API_KEY": "k"}, _config(tmp_path, "successor"))
    (dep,) = r.plan(r.table.resolve("chat"), parse_routing_options({})).candidates
    assert (dep.upstream_model, dep.catalog_id) == (
        "deepseek-flash",
        "deepseek/deepseek-v4.1-flash",
    )
    assert dep.price_history and dep.price_history[-1].windows  # priced peak and off-peak


def test_price_ordering_uses_the_price_in_force_when_the_request_started() -> None:
    """1M in + 1M out of DeepSeek V4 Pro: at DeepSeek 2.64 off-peak and 5.28 at peak; at
    Fireworks 5.22 at every hour. Off-peak DeepSeek is cheaper, at peak Fireworks is."""
    r = router({"DEEPSEEK_API_KEY": "k", "FIREWORKS_API_KEY": "k"})
    route = r.table.resolve("deepseek/deepseek-v4-pro")
    deepseek = next(d for d in route.deployments if d.provider == "deepseek")
    peak = datetime(2026, 10, 27, 2, tzinfo=UTC)
    off_peak = datetime(2026, 10, 27, 12, tzinfo=UTC)
    assert expected_cost(deepseek, 1_000_000, 1_000_000, off_peak) == Decimal("2.64")
    assert expected_cost(deepseek, 1_000_000, 1_000_000, peak) == Decimal("5.28")
    for at, cheapest_first in ((off_peak, "deepseek"), (peak, "fireworks")):
        options = parse_routing_options(
            {"provider": {"sort": "price"}},
            prompt_tokens=1_000_000,
            completion_tokens=1_000_000,
            started_at=at,
        )
        assert r.plan(route, options).candidates[0].provider == cheapest_first
