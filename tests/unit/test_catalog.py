"""The shipped catalog loads and holds the facts it was built from; config overrides merge into it;
bad catalog data fails at load with a ConfigError naming the file or section, the path and why."""

from __future__ import annotations

from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from crossroads.catalog import (
    CONFIG_SOURCE,
    ISO_3166_ALPHA2,
    LOCAL_JURISDICTION,
    Catalog,
    Prices,
    load_builtin,
)
from crossroads.catalog.loader import _load_dir
from crossroads.errors import ConfigError

T = TypeVar("T")

REQUIRED_MODELS = {
    "deepseek/deepseek-v3.2",
    "deepseek/deepseek-v3.2-reasoner",
    "deepseek/deepseek-r1",
    "deepseek/deepseek-v3",
    "qwen/qwen3-235b-a22b",
    "qwen/qwen3-coder",
    "qwen/qwen3-max",
    "moonshotai/kimi-k2-0905",
    "moonshotai/kimi-k2-thinking",
    "zai/glm-4.5",
    "zai/glm-4.6",
    "minimax/minimax-m2",
    "openai/gpt-oss-120b",
    "openai/gpt-oss-20b",
    "meta/llama-3.3-70b-instruct",
    "mistral/mistral-small-3.2",
    "google/gemma-3-27b-it",
    "huggingface/smollm2-135m-instruct",
    "openai/gpt-4o",
    "openai/gpt-4.1",
    "openai/gpt-5",
    "anthropic/claude-sonnet-4.5",
    "google/gemini-2.5-pro",
    "google/gemini-2.5-flash",
}

MAKER_COUNTRIES = {
    "deepseek": "CN",
    "qwen": "CN",
    "moonshotai": "CN",
    "zai": "CN",
    "minimax": "CN",
    "openai": "US",
    "meta": "US",
    "google": "US",
    "anthropic": "US",
    "mistral": "FR",
    "huggingface": "US",
}

# host id -> (jurisdiction, api_key_env), from the facts sheet's endpoint table.
HOSTS = {
    "deepseek": ("CN", "DEEPSEEK_API_KEY"),
    "dashscope-intl": ("SG", "DASHSCOPE_API_KEY"),
    "dashscope-us": ("US", "DASHSCOPE_API_KEY"),
    "dashscope-cn": ("CN", "DASHSCOPE_API_KEY"),
    "moonshot": ("CN", "MOONSHOT_API_KEY"),
    "zai": ("SG", "ZAI_API_KEY"),
    "minimax": ("CN", "MINIMAX_API_KEY"),
    "together": ("US", "TOGETHER_API_KEY"),
    "fireworks": ("US", "FIREWORKS_API_KEY"),
    "groq": ("US", "GROQ_API_KEY"),
    "deepinfra": ("US", "DEEPINFRA_API_KEY"),
    "openrouter": ("US", "OPENROUTER_API_KEY"),
    "openai": ("US", "OPENAI_API_KEY"),
    "anthropic": ("US", "ANTHROPIC_API_KEY"),
    "google": ("US", "GEMINI_API_KEY"),
    "local": (LOCAL_JURISDICTION, None),
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_builtin()


def list_price_cost(prices: Prices, input_tokens: int, output_tokens: int) -> Decimal:
    per_token = Decimal(1_000_000)
    return input_tokens * prices.input / per_token + output_tokens * prices.output / per_token


def present(value: T | None) -> T:
    assert value is not None
    return value


def priced(catalog: Catalog, model: str, host: str) -> Prices:
    offering = catalog.offering(model, host)
    assert offering is not None, f"no offering of {model} at {host}"
    assert offering.current is not None, f"{model} at {host} has no prices"
    return offering.current


# --- The shipped data --------------------------------------------------------------------------


def test_every_reference_in_the_shipped_data_resolves(catalog: Catalog) -> None:
    assert catalog.offerings()
    for model in catalog.models():
        assert catalog.maker(model.maker) is not None
        assert model.id.startswith(model.maker + "/")
    for offering in catalog.offerings():
        assert catalog.model(offering.model) is not None, offering
        assert catalog.host(offering.host) is not None, offering


def test_required_models_are_present(catalog: Catalog) -> None:
    assert REQUIRED_MODELS - {model.id for model in catalog.models()} == set()


def test_makers_record_the_country_of_their_headquarters(catalog: Catalog) -> None:
    assert {maker.id: maker.country for maker in catalog.makers()} == MAKER_COUNTRIES


def test_hosts_record_jurisdiction_and_key_variable(catalog: Catalog) -> None:
    found = {host.id: (host.jurisdiction, host.api_key_env) for host in catalog.hosts()}
    assert found == HOSTS
    for host in catalog.hosts():
        assert host.jurisdiction in ISO_3166_ALPHA2 or host.id == "local"
        assert host.openai_base_url or host.anthropic_base_url or host.id == "local"


def test_open_weights_models_name_a_licence_and_closed_ones_do_not(catalog: Catalog) -> None:
    for model in catalog.models():
        assert bool(model.license) == model.open_weights, model.id
    assert present(catalog.model("moonshotai/kimi-k2-0905")).license == "Modified MIT"
    assert present(catalog.model("qwen/qwen3-max")).open_weights is False


@pytest.mark.parametrize(
    ("model", "host", "expected"),
    [
        ("anthropic/claude-sonnet-4.5", "anthropic", "60.00"),
        ("openai/gpt-4.1", "openai", "36.00"),
        ("moonshotai/kimi-k2-0905", "together", "16.00"),
        ("moonshotai/kimi-k2-0905", "moonshot", "11.00"),
        ("zai/glm-4.6", "zai", "10.40"),
        ("minimax/minimax-m2", "minimax", "5.40"),
        ("deepseek/deepseek-v3.2", "deepseek", "3.64"),
    ],
)
def test_worked_example_costs_are_exact(
    catalog: Catalog, model: str, host: str, expected: str
) -> None:
    cost = list_price_cost(priced(catalog, model, host), 10_000_000, 2_000_000)
    assert cost == Decimal(expected)
    assert str(cost.quantize(Decimal("0.01"))) == expected


def test_tiered_and_cache_write_prices(catalog: Catalog) -> None:
    gemini = priced(catalog, "google/gemini-2.5-pro", "google")
    assert (gemini.input, gemini.output, gemini.cached_input) == (
        Decimal("1.25"),
        Decimal("10.00"),
        Decimal("0.125"),
    )
    (tier,) = gemini.tiers
    assert tier.above_prompt_tokens == 200_000
    assert (tier.input, tier.output, tier.cached_input) == (
        Decimal("2.50"),
        Decimal("15.00"),
        Decimal("0.25"),
    )
    claude = priced(catalog, "anthropic/claude-sonnet-4.5", "anthropic")
    assert (claude.cached_input, claude.cache_write) == (Decimal("0.30"), Decimal("3.75"))


def test_local_offering_is_free_and_local(catalog: Catalog) -> None:
    local = catalog.offering("huggingface/smollm2-135m-instruct", "local")
    assert local is not None and local.upstream_model == "smollm2-135m"
    current = present(local.current)
    assert (current.input, current.output, current.cached_input) == (Decimal(0), Decimal(0), None)
    assert present(catalog.host("local")).jurisdiction == LOCAL_JURISDICTION


def test_priced_offerings_name_their_source_and_date(catalog: Catalog) -> None:
    for offering in catalog.offerings():
        for point in offering.history:
            assert point.source, offering
            if offering.host != "local":
                assert point.as_of is not None, offering


def test_prices_in_the_data_file_are_quoted_strings() -> None:
    text = (resources.files("crossroads.catalog") / "data" / "offerings.yaml").read_text()

    def check(prices: dict[str, Any], where: str) -> None:
        for name in ("input", "output", "cached_input", "cache_write", "reasoning"):
            if name in prices:
                assert isinstance(prices[name], str), f"{where}: {name} is not quoted"
        for tier in prices.get("tiers", []) + prices.get("windows", []):
            check(tier, where)

    for entry in yaml.safe_load(text):
        for point in entry.get("prices") or []:
            check(point, f"{entry['model']} at {entry['host']}")


def test_lookups(catalog: Catalog) -> None:
    chat = catalog.find_offering_by_upstream("deepseek", "deepseek-chat")
    assert chat is not None and chat.model == "deepseek/deepseek-v3.2"
    reasoner = catalog.find_offering_by_upstream("deepseek", "deepseek-reasoner")
    assert reasoner is not None and reasoner.model == "deepseek/deepseek-v3.2-reasoner"
    assert catalog.find_offering_by_upstream("together", "deepseek-chat") is None
    assert repr(catalog).startswith("<Catalog: 11 makers, ")

    kimi_hosts = {o.host for o in catalog.offerings_for_model("moonshotai/kimi-k2-0905")}
    assert {"moonshot", "together", "fireworks"} <= kimi_hosts
    assert {o.model for o in catalog.offerings_for_host("deepseek")} == {
        "deepseek/deepseek-v3.2",
        "deepseek/deepseek-v3.2-reasoner",
        "deepseek/deepseek-v4-pro",
        "deepseek/deepseek-v4-flash",
        "deepseek/deepseek-v4.1-flash",
    }

    assert catalog.model("nope/nope") is None
    assert catalog.maker("nope") is None
    assert catalog.host("nope") is None
    assert catalog.offering("deepseek/deepseek-v3.2", "nope") is None
    assert catalog.offerings_for_model("nope/nope") == ()
    assert catalog.offerings_for_host("nope") == ()


def test_catalog_is_immutable(catalog: Catalog) -> None:
    with pytest.raises(AttributeError):
        catalog._models = {}  # type: ignore[misc]
    assert isinstance(catalog.models(), tuple)


# --- Merging config overrides ------------------------------------------------------------------


def test_merge_overrides_a_price_and_leaves_the_original_alone(catalog: Catalog) -> None:
    merged = catalog.merged(
        {
            "offerings": [
                {
                    "model": "moonshotai/kimi-k2-0905",
                    "host": "together",
                    "upstream_model": "moonshotai/Kimi-K2-Instruct-0905",
                    "prices": {"input": "0.80", "output": "2.90"},
                    "as_of": "2026-01-15",
                    "source": "our contract",
                }
            ]
        }
    )
    new = priced(merged, "moonshotai/kimi-k2-0905", "together")
    assert (new.input, new.output) == (Decimal("0.80"), Decimal("2.90"))
    assert priced(catalog, "moonshotai/kimi-k2-0905", "together").input == Decimal("1.00")
    assert len(merged.offerings()) == len(catalog.offerings())
    found = merged.find_offering_by_upstream("together", "moonshotai/Kimi-K2-Instruct-0905")
    # The older single-price form is read as a one-entry history, its date and source kept.
    assert found is not None and found.current is not None
    assert (found.current.source, str(found.current.as_of)) == ("our contract", "2026-01-15")


def test_merge_adds_a_maker_model_host_and_offering(catalog: Catalog) -> None:
    merged = catalog.merged(
        {
            "makers": [{"id": "acme", "name": "Acme AI", "country": "DE"}],
            "models": [
                {
                    "id": "acme/acme-7b",
                    "maker": "acme",
                    "name": "Acme 7B",
                    "open_weights": True,
                    "license": "Apache-2.0",
                    "context_length": 32768,
                    "capabilities": {"tools": True},
                }
            ],
            "hosts": [
                {
                    "id": "acme-cloud",
                    "name": "Acme Cloud",
                    "jurisdiction": "DE",
                    "openai_base_url": "https://api.acme.example/v1",
                    "api_key_env": "ACME_API_KEY",
                }
            ],
            "offerings": [
                {
                    "model": "acme/acme-7b",
                    "host": "acme-cloud",
                    "upstream_model": "acme-7b",
                    "prices": {"input": "0.10", "output": "0.20"},
                },
                {"model": "zai/glm-4.6", "host": "acme-cloud", "upstream_model": "glm-4.6"},
            ],
        }
    )
    assert merged.maker("acme") is not None
    assert present(merged.model("acme/acme-7b")).capabilities.tools
    assert present(merged.host("acme-cloud")).jurisdiction == "DE"
    assert {o.model for o in merged.offerings_for_host("acme-cloud")} == {
        "acme/acme-7b",
        "zai/glm-4.6",
    }
    assert len(merged.offerings()) == len(catalog.offerings()) + 2
    assert catalog.host("acme-cloud") is None


def test_from_data_builds_a_catalog_without_the_builtin_entries() -> None:
    small = Catalog.from_data(
        {
            "makers": [{"id": "acme", "name": "Acme", "country": "US"}],
            "models": [
                {
                    "id": "acme/m",
                    "maker": "acme",
                    "name": "M",
                    "open_weights": False,
                    "license": None,
                    "context_length": 1000,
                }
            ],
        }
    )
    assert [m.id for m in small.models()] == ["acme/m"]
    assert small.hosts() == ()


# --- Bad data ------------------------------------------------------------------------------------

MODEL = {
    "id": "acme/m",
    "maker": "acme",
    "name": "M",
    "open_weights": True,
    "license": "MIT",
    "context_length": 1000,
}
MAKER = {"id": "acme", "name": "Acme", "country": "US"}
HOST = {"id": "h", "name": "H", "jurisdiction": "US"}
OFFERING = {"model": "zai/glm-4.6", "host": "zai", "upstream_model": "glm-4.6-x"}


def merge_error(catalog: Catalog, overrides: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        catalog.merged(overrides)
    return info.value.message


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param(
            {"models": [{**MODEL, "maker": "acme"}]},
            ["$.models[0].maker", "unknown maker 'acme'"],
            id="unknown-maker",
        ),
        pytest.param(
            {"models": [{**MODEL, "id": "deepseak/x", "maker": "deepseak"}]},
            ["$.models[0].maker", "unknown maker 'deepseak'", "did you mean 'deepseek'"],
            id="maker-typo",
        ),
        pytest.param(
            {"makers": [{**MAKER, "country": "ZZ"}]},
            ["$.makers[0].country", "'ZZ' is not an ISO 3166-1 alpha-2 code"],
            id="country-ZZ",
        ),
        pytest.param(
            {"makers": [{**MAKER, "country": "China"}]},
            ["$.makers[0].country", "'China' is not an ISO 3166-1 alpha-2 code"],
            id="country-name",
        ),
        pytest.param(
            {"makers": [{**MAKER, "country": "cn"}]},
            ["$.makers[0].country", "did you mean 'CN'"],
            id="country-lowercase",
        ),
        pytest.param(
            {"hosts": [{**HOST, "jurisdiction": "EU"}]},
            ["$.hosts[0].jurisdiction", "'EU' is not an ISO 3166-1 alpha-2 code"],
            id="jurisdiction-EU",
        ),
        pytest.param(
            {"hosts": [{**HOST, "jurisdiction": "local"}]},
            ["$.hosts[0].jurisdiction", "reserved for the embedded host 'local'"],
            id="local-jurisdiction-elsewhere",
        ),
        pytest.param(
            {"offerings": [{**OFFERING, "prices": {"input": "-0.10", "output": "1"}}]},
            ["$.offerings[0].prices[0].input", "price -0.10 must be a finite number >= 0"],
            id="negative-price",
        ),
        pytest.param(
            {
                "offerings": [
                    {
                        **OFFERING,
                        "prices": {
                            "input": "1",
                            "output": "1",
                            "tiers": [{"above_prompt_tokens": 10, "input": "1", "output": "-2"}],
                        },
                    }
                ]
            },
            ["$.offerings[0].prices[0].tiers[0].output", "must be a finite number >= 0"],
            id="negative-tier-price",
        ),
        pytest.param(
            {"offerings": [{**OFFERING, "prices": {"input": "cheap", "output": "1"}}]},
            ["Invalid decimal string", "$.offerings[0].prices.input"],
            id="price-not-a-number",
        ),
        pytest.param(
            {"makers": [MAKER, MAKER]},
            ["$.makers[1].id", "duplicate maker id 'acme'", "first at config catalog section"],
            id="duplicate-id",
        ),
        pytest.param(
            {"offerings": [{**OFFERING, "upstream_model": "glm-4.5"}]},
            [
                "$.offerings[0].upstream_model",
                "duplicate (host, upstream_model) ('zai', 'glm-4.5')",
                "first at crossroads/catalog/data/offerings.yaml: $[",
            ],
            id="duplicate-upstream",
        ),
        pytest.param(
            {"hosts": [{**HOST, "colour": "blue"}]},
            ["unknown field `colour`", "$.hosts[0]"],
            id="unknown-field",
        ),
        pytest.param(
            {"modles": []},
            ["unknown key(s) 'modles'", "makers, models, hosts, offerings"],
            id="unknown-section",
        ),
        pytest.param(
            {"models": {"id": "x"}},
            ["Expected `array`, got `object`", "$.models"],
            id="section-not-a-list",
        ),
        pytest.param(
            {"models": [{**MODEL, "id": "deepseek/m", "maker": "zai"}]},
            ["$.models[0].id", "must start with its maker 'zai/'"],
            id="id-maker-mismatch",
        ),
        pytest.param(
            {"models": [{**MODEL, "id": "m", "maker": "zai"}]},
            ["$.models[0].id", "must be '<maker>/<slug>'"],
            id="id-without-maker",
        ),
        pytest.param(
            {"models": [{**MODEL, "id": "zai/m", "maker": "zai", "license": None}]},
            ["$.models[0].license", "open-weights model needs its licence"],
            id="open-weights-without-licence",
        ),
        pytest.param(
            {"offerings": [{**OFFERING, "host": "togther"}]},
            ["$.offerings[0].host", "unknown host 'togther'", "did you mean 'together'"],
            id="unknown-host",
        ),
        pytest.param(
            {"offerings": [{**OFFERING, "model": "zai/glm-9"}]},
            ["$.offerings[0].model", "unknown model 'zai/glm-9'"],
            id="unknown-model",
        ),
    ],
)
def test_bad_overrides_raise_config_error_naming_the_path(
    catalog: Catalog, overrides: dict[str, Any], expected: list[str]
) -> None:
    message = merge_error(catalog, overrides)
    assert message.startswith(CONFIG_SOURCE + ": ")
    for part in expected:
        assert part in message, message


def test_a_bad_shipped_file_is_named_in_the_error(tmp_path: Path) -> None:
    data = resources.files("crossroads.catalog") / "data"
    for name in ("makers", "models", "hosts", "offerings"):
        (tmp_path / f"{name}.yaml").write_bytes((data / f"{name}.yaml").read_bytes())
    assert len(_load_dir(tmp_path, "copy").models()) == len(load_builtin().models())

    models = yaml.safe_load((tmp_path / "models.yaml").read_text())
    models.append({**MODEL, "id": "acme/x"})
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(models))
    with pytest.raises(ConfigError) as info:
        _load_dir(tmp_path, "copy")
    assert info.value.message.startswith(f"copy/models.yaml: $[{len(models) - 1}].maker ")
    assert "unknown maker 'acme'" in info.value.message

    (tmp_path / "makers.yaml").write_text("- id: x\n  name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"^copy/makers\.yaml: "):
        _load_dir(tmp_path, "copy")
