"""Config loading: defaults, auto-enabled providers, and errors that name file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossroads.catalog import Host, load_builtin
from crossroads.config import load_settings
from crossroads.errors import ConfigError
from crossroads.routing.table import RoutingTable


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gw.yaml"
    path.write_text(text)
    return path


def error_for(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text), environ=environ or {})
    return err.value.message


def test_defaults_serve_the_embedded_model_alone() -> None:
    settings = load_settings(environ={})
    assert [p.id for p in settings.providers] == ["local"]
    (dep,) = settings.deployments
    assert dep.name == "local/smollm2-135m"
    assert dep.model is not None and dep.model.id == "huggingface/smollm2-135m-instruct"
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.data_dir == Path("data")


def test_a_set_api_key_enables_that_catalog_host() -> None:
    settings = load_settings(environ={"DEEPSEEK_API_KEY": "sk-test"})
    spec = next(p for p in settings.providers if p.id == "deepseek")
    assert spec.api_key == "sk-test"
    assert spec.base_url.startswith("https://api.deepseek.com")
    table = RoutingTable(settings.deployments, settings.aliases)
    route = table.resolve("deepseek/deepseek-v4-pro")
    assert route.deployments[0].upstream_model == "deepseek-v4-pro"
    assert route.deployments[0].prices is not None
    assert table.resolve("deepseek/deepseek-v4-pro@deepseek").deployments == route.deployments
    # Offerings the host has retired are not served automatically.
    assert "deepseek/deepseek-v3.2" not in {r.name for r in table.routes()}


def test_the_secret_never_shows_in_the_spec_repr() -> None:
    settings = load_settings(environ={"DEEPSEEK_API_KEY": "sk-very-secret"})
    assert "sk-very-secret" not in repr(settings)


def test_full_config_with_deployments_and_aliases(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
server: {port: 9001, data_dir: /tmp/x}
embedded: {enabled: true}
providers:
  together: {api_key_env: TOGETHER_KEY}
  vllm: {type: openai, base_url: "http://127.0.0.1:8000/v1/"}
models:
  - {name: kimi-k2, provider: together, catalog_model: moonshotai/kimi-k2-0905}
  - {name: kimi-k2, provider: vllm, upstream_model: kimi, catalog_model: moonshotai/kimi-k2-0905}
aliases:
  fast: [kimi-k2, local/smollm2-135m]
""",
    )
    settings = load_settings(path, environ={"TOGETHER_KEY": "k"}, port=7000)
    assert settings.port == 7000  # the command line wins
    table = RoutingTable(settings.deployments, settings.aliases)
    kimi = table.resolve("kimi-k2").deployments
    assert [d.provider for d in kimi] == ["together", "vllm"]
    assert kimi[0].prices is not None and kimi[1].prices is None  # self-hosted: unpriced
    assert [d.provider for d in table.resolve("fast").deployments] == ["together", "vllm", "local"]
    vllm = next(p for p in settings.providers if p.id == "vllm")
    assert vllm.base_url == "http://127.0.0.1:8000/v1" and vllm.api_key is None


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.yaml")


def test_invalid_yaml_names_line_and_column(tmp_path: Path) -> None:
    message = error_for(tmp_path, "server:\n  port: [1, 2\n")
    assert "gw.yaml, line" in message and "invalid YAML" in message


def test_unknown_key_names_line_and_path(tmp_path: Path) -> None:
    message = error_for(tmp_path, "server:\n  host: 127.0.0.1\n  prot: 80\n")
    assert "gw.yaml, line 3: server.prot" in message
    assert "prot" in message


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    message = error_for(tmp_path, "server:\n  port: eighty\n")
    assert "gw.yaml, line 2: server.port" in message and "int" in message


def test_literal_api_key_is_refused(tmp_path: Path) -> None:
    message = error_for(tmp_path, "providers:\n  deepseek:\n    api_key: sk-123\n")
    assert "line 3" in message and "api_key_env" in message
    assert "sk-123" not in message


def test_unset_key_variable_is_an_error(tmp_path: Path) -> None:
    message = error_for(tmp_path, "providers:\n  deepseek:\n    api_key_env: MY_DS_KEY\n")
    assert "MY_DS_KEY is not set" in message and "providers.deepseek.api_key_env" in message


def test_unknown_provider_in_models_names_line(tmp_path: Path) -> None:
    message = error_for(tmp_path, "models:\n  - name: x\n    provider: deepseak\n")
    assert "line 3: models[0].provider" in message and "deepseak" in message


def test_provider_without_base_url(tmp_path: Path) -> None:
    message = error_for(tmp_path, "providers:\n  mine: {type: openai}\n")
    assert "providers.mine.base_url" in message


ANTHROPIC_HOSTS = [h for h in load_builtin().hosts() if h.anthropic_base_url]


@pytest.mark.parametrize("host", ANTHROPIC_HOSTS, ids=lambda h: h.id)
def test_an_anthropic_provider_takes_the_hosts_anthropic_endpoint(
    tmp_path: Path, host: Host
) -> None:
    """A `type: anthropic` provider on a catalog host speaks Messages at the host's Anthropic
    endpoint, not at its OpenAI one (DeepSeek's /anthropic, not its /v1)."""
    text = f"providers:\n  up:\n    type: anthropic\n    host: {host.id}\n"
    environ = {host.api_key_env: "k"} if host.api_key_env else {}
    settings = load_settings(write(tmp_path, text), environ=environ)
    spec = next(p for p in settings.providers if p.id == "up")
    assert spec.base_url == host.anthropic_base_url
    assert host.anthropic_base_url != host.openai_base_url


def test_the_catalogs_anthropic_endpoints_are_the_ones_we_expect() -> None:
    """Every host with a published Anthropic-compatible endpoint (catalog-facts.md) has it."""
    assert {h.id for h in ANTHROPIC_HOSTS} >= {
        "anthropic",
        "deepseek",
        "moonshot",
        "zai",
        "minimax",
    }


def test_an_anthropic_provider_on_a_host_without_that_endpoint_fails_at_start(
    tmp_path: Path,
) -> None:
    message = error_for(tmp_path, "providers:\n  up:\n    type: anthropic\n    host: together\n")
    assert "providers.up.base_url" in message and "anthropic_base_url" in message


def test_alias_to_unknown_target_and_cycles(tmp_path: Path) -> None:
    assert "nothing" in error_for(tmp_path, "aliases:\n  a: [nothing]\n")
    assert "cycle" in error_for(tmp_path, "aliases:\n  a: [b]\n  b: [a]\n")


def test_catalog_override_is_validated(tmp_path: Path) -> None:
    message = error_for(
        tmp_path,
        "catalog:\n  makers:\n    - {id: acme, name: Acme, country: Atlantis}\n",
    )
    assert "Atlantis" in message or "country" in message


def test_catalog_override_changes_a_price(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
catalog:
  offerings:
    - model: deepseek/deepseek-v3.2
      host: deepseek
      upstream_model: deepseek-chat
      prices: {input: "0.20", output: "0.40"}
""",
    )
    settings = load_settings(path, environ={"DEEPSEEK_API_KEY": "k"})
    dep = next(d for d in settings.deployments if d.upstream_model == "deepseek-chat")
    assert dep.prices is not None and str(dep.prices.input) == "0.20"


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("max_json_depth", 0),
        ("max_json_depth", 254),  # orjson cannot encode deeper than 254: nothing to measure with
        ("max_model_name_chars", 8),
        ("max_model_name_chars", 100_000),
    ],
)
def test_input_limits_out_of_range_are_refused(tmp_path: Path, setting: str, value: int) -> None:
    message = error_for(tmp_path, f"server:\n  {setting}: {value}\n")
    assert f"line 2: server.{setting}: must be" in message


def test_input_limits_default_and_load() -> None:
    settings = load_settings(environ={})
    assert (settings.max_json_depth, settings.max_model_name_chars) == (64, 256)


def test_the_json_depth_bound_matches_what_orjson_encodes() -> None:
    from crossroads.config.loader import MAX_JSON_DEPTH
    from crossroads.ingress.body import ORJSON_MAX_DEPTH

    assert MAX_JSON_DEPTH == ORJSON_MAX_DEPTH - 1


def test_shutdown_and_ledger_durability_settings(tmp_path: Path) -> None:
    defaults = load_settings(None, environ={})
    assert (defaults.shutdown_grace, defaults.ledger_drain_timeout) == (30.0, 10.0)
    assert defaults.ledger_backlog_limit == 10_000
    text = "server:\n  shutdown_grace: 1.5\n  ledger_drain_timeout: 0\n  ledger_backlog_limit: 5\n"
    settings = load_settings(write(tmp_path, text), environ={})
    assert (settings.shutdown_grace, settings.ledger_drain_timeout) == (1.5, 0.0)
    assert settings.ledger_backlog_limit == 5
    for bad, key in [
        ("shutdown_grace: -1", "shutdown_grace"),
        ("shutdown_grace: .nan", "shutdown_grace"),
        ("ledger_drain_timeout: 86400", "ledger_drain_timeout"),
        ("ledger_backlog_limit: 0", "ledger_backlog_limit"),
    ]:
        assert f"server.{key}" in error_for(tmp_path, f"server:\n  {bad}\n")
