"""Reads and validates the configuration file and the environment into a frozen `Settings`.

Every problem is a ConfigError whose message names the file, the line and key path, and what is
wrong; the gateway refuses to start rather than run half-configured."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import msgspec
import yaml

from crossroads.catalog import Catalog, Host, Model, Offering, load_builtin
from crossroads.catalog.model import QUANTIZATIONS
from crossroads.config.otel_env import otlp_settings
from crossroads.config.schema import (
    ConfigFile,
    EmbeddedSection,
    ModelSection,
    ProviderSection,
    RoutingSection,
    SamplingDefaults,
)
from crossroads.config.settings import LOOPBACK_HOSTS, EdgeSettings, ResponsesSettings, Settings
from crossroads.config.yamlpos import line_of, parse_path
from crossroads.errors import ConfigError, InvalidRequestError
from crossroads.governance.policy import parse_rules
from crossroads.ledger.baseline import Baseline, Baselines, baseline_from_catalog
from crossroads.providers.base import ProviderSpec, Timeouts
from crossroads.quality.settings import CaptureRules, QualitySettings, ShadowRoute
from crossroads.routing.deployment import Deployment
from crossroads.routing.health import BreakerPolicy
from crossroads.routing.policy import RoutingPolicy
from crossroads.routing.table import Alias, RoutingTable

DATA_DIR_ENV = "CROSSROADS_DATA_DIR"
DEFAULT_DATA_DIR = "data"
LOCAL_PROVIDER = "local"
_MSGSPEC_PATH = re.compile(r" - at `(\$[^`]*)`$")
_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`")


class _Source:
    """The config text and its composed YAML tree, for locating errors."""

    def __init__(self, name: str, node: yaml.Node | None) -> None:
        self.name = name
        self.node = node

    def error(self, path: str, message: str) -> ConfigError:
        steps = parse_path(path)
        line = line_of(self.node, steps)
        where = f"{self.name}, line {line}" if line else self.name
        key = path.removeprefix("$.").removeprefix("$") or "(top level)"
        return ConfigError(f"{where}: {key}: {message}")


def read_config_file(path: Path) -> tuple[ConfigFile, _Source]:
    """Parses and type-checks one config file. Raises ConfigError naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else {}
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown line"
        raise ConfigError(f"{path}, {where}: invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    source = _Source(str(path), node)
    if data is None:
        data = {}
    try:
        return msgspec.convert(data, ConfigFile, str_keys=True), source
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _MSGSPEC_PATH.search(text)
        json_path = match.group(1) if match else "$"
        unknown = _UNKNOWN_FIELD.search(text)
        if unknown:  # point at the offending key itself, not at its parent
            json_path = f"{json_path}.{unknown.group(1)}"
        raise source.error(json_path, text[: match.start()] if match else text) from None


def admin_key_from_env(variable: str = "CROSSROADS_ADMIN_KEY") -> str | None:
    """The admin key for CLI commands that call a running gateway's admin API."""
    return os.environ.get(variable) or None


def load_settings(
    path: str | Path | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    data_dir: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Loads the config file (or the defaults when `path` is None), applies command-line
    overrides, resolves secrets from `environ` (default: the process environment) and checks
    every reference. Raises ConfigError; never returns a half-valid Settings."""
    env = os.environ if environ is None else environ
    if path is None:
        config, source = ConfigFile(), _Source("defaults", None)
    else:
        config, source = read_config_file(Path(path))

    catalog = _catalog(config, source)
    today = datetime.now(UTC).date()

    providers: dict[str, ProviderSpec] = {}
    deployments: list[Deployment] = []
    if config.embedded.enabled:
        spec, dep = _embedded(config.embedded, catalog)
        providers[spec.id] = spec
        deployments.append(dep)
    for provider_id, section in config.providers.items():
        if provider_id in providers:
            raise source.error(f"$.providers.{provider_id}", "provider id is reserved")
        providers[provider_id] = _provider(provider_id, section, catalog, env, source)
    for index, model in enumerate(config.models):
        if model.weight < 0:
            raise source.error(f"$.models[{index}].weight", "must not be negative")
        dep = _deployment(index, model, providers, config, catalog, source)
        deployments.append(_retirement(dep, catalog, config.routing.retired_models, today))
    if config.auto_providers:
        configured = {s.host or pid for pid, s in config.providers.items()} | set(providers)
        for spec, deps in _auto_providers(catalog, env, configured, today):
            providers[spec.id] = spec
            deployments.extend(deps)

    aliases = {
        name: Alias(tuple(a)) if isinstance(a, list) else Alias(tuple(a.models), a.strategy)
        for name, a in config.aliases.items()
    }
    try:
        RoutingTable(deployments, aliases)
    except ConfigError as exc:
        name = exc.message.split(":", 1)[0].removeprefix("aliases.")
        raise source.error(f"$.aliases.{name}", exc.message.split(": ", 1)[-1]) from None

    resolved_dir = data_dir or env.get(DATA_DIR_ENV) or config.server.data_dir or DEFAULT_DATA_DIR
    settings = Settings(
        source=source.name,
        host=host or config.server.host,
        port=config.server.port if port is None else port,
        data_dir=Path(resolved_dir).expanduser(),
        max_body_bytes=config.server.max_body_bytes,
        request_timeout=config.server.request_timeout,
        shutdown_grace=config.server.shutdown_grace,
        ledger_drain_timeout=config.server.ledger_drain_timeout,
        ledger_backlog_limit=config.server.ledger_backlog_limit,
        max_upstream_message_chars=config.server.max_upstream_message_chars,
        catalog=catalog,
        providers=tuple(providers.values()),
        deployments=tuple(deployments),
        aliases=aliases,
        routing=_routing(config.routing, source),
        **_governance(config, env, source, host or config.server.host),
        baselines=_baselines(config, catalog, source),
        max_json_depth=config.server.max_json_depth,
        max_model_name_chars=config.server.max_model_name_chars,
        edge=_edge(config, source),
        responses=_responses(config, source),
        otlp=otlp_settings(config.telemetry, env, _telemetry_error(source)),
        quality=_quality(config, aliases.keys() | {d.name for d in deployments}, source),
    )
    _check_server(settings, source)
    return settings


def _responses(config: ConfigFile, source: _Source) -> ResponsesSettings:
    section = config.responses
    if not section.retention_days > 0:
        raise source.error("$.responses.retention_days", "must be a number of days above 0")
    if section.max_stored_bytes < 1024:
        raise source.error("$.responses.max_stored_bytes", "must be at least 1024")
    return ResponsesSettings(section.store, section.retention_days, section.max_stored_bytes)


def _catalog(config: ConfigFile, source: _Source) -> Catalog:
    """The shipped catalog with the config's override files (`catalog.files`, in order, such
    as `crossroads catalog sync` writes) and then its inline sections applied."""
    catalog = load_builtin()
    if not config.catalog:
        return catalog
    sections = {"makers", "models", "hosts", "offerings"}
    unknown = set(config.catalog) - sections - {"files"}
    if unknown:
        raise source.error(
            f"$.catalog.{sorted(unknown)[0]}",
            "unknown catalog section (expected files, makers, models, hosts, offerings)",
        )
    base = Path(source.name).parent if source.node is not None else Path.cwd()
    for index, name in enumerate(config.catalog.get("files", [])):
        if not isinstance(name, str):
            raise source.error(f"$.catalog.files[{index}]", "must be a file path")
        path = (base / name).expanduser()
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise source.error(f"$.catalog.files[{index}]", f"cannot read {path}: {exc}") from None
        if isinstance(data, dict):
            data.pop("sync", None)  # what the sync read, for the reader; not catalog data
        catalog = catalog.merged(data, source=str(path))
    inline = {k: v for k, v in config.catalog.items() if k in sections}
    return catalog.merged(inline) if inline else catalog


def _retirement(dep: Deployment, catalog: Catalog, mode: str, today: date) -> Deployment:
    """A deployment of a model its maker (or the host) has retired by `today`: moved to the
    successor the maker names at the same host when `mode` is "successor" and the catalog has
    that offering, else kept and marked, so routing answers with a clear error."""
    model = dep.model
    if model is None or dep.host is None:
        return dep
    offering = catalog.offering(model.id, dep.host.id)
    retired = model.retired if model.retired_at(today) else None
    if offering is not None and offering.retired is not None and offering.retired <= today:
        retired = offering.retired
    if retired is None:
        return dep
    successor = _successor(catalog, model, dep.host.id, today)
    if mode == "successor" and successor is not None:
        new_model = catalog.model(successor.model)
        return replace(
            dep,
            upstream_model=successor.upstream_model,
            model=new_model,
            maker=catalog.maker(new_model.maker) if new_model else None,
            prices=successor.current,
            price_history=successor.history,
            quantization=successor.quantization,
        )
    hint = f"; its successor is {model.successor}" if model.successor else ""
    return replace(
        dep,
        retired=f"model '{model.id}' was retired on {retired.isoformat()} at {dep.host.id}{hint}",
    )


def _successor(catalog: Catalog, model: Model, host_id: str, today: date) -> Offering | None:
    """The live offering at `host_id` of the model's successor, following the maker's chain
    (V3.2 -> V4 Flash -> V4.1 Flash) past successors that are retired themselves."""
    seen = {model.id}
    current: Model | None = model
    while current is not None and current.successor and current.successor not in seen:
        seen.add(current.successor)
        offering = catalog.offering(current.successor, host_id)
        current = catalog.model(current.successor)
        live = current is not None and not current.retired_at(today)
        if offering is not None and live and (offering.retired is None or offering.retired > today):
            return offering
    return None


def _telemetry_error(source: _Source) -> Callable[[str, str], ConfigError]:
    """Errors of the telemetry settings: at a key of the file, or naming the variable."""

    def fail(where: str, message: str) -> ConfigError:
        if where.startswith("$"):
            return source.error(where, message)
        return ConfigError(f"environment variable {where}: {message}")

    return fail


def _quality(config: ConfigFile, served: Collection[str], source: _Source) -> QualitySettings:
    capture = config.quality.capture
    if not 0.0 <= capture.sample <= 1.0:
        raise source.error("$.quality.capture.sample", "must be a share between 0 and 1")
    if not capture.retention_days > 0:
        raise source.error("$.quality.capture.retention_days", "must be a number of days above 0")
    if capture.max_bytes < 1024 * 1024:
        raise source.error("$.quality.capture.max_bytes", "must be at least 1048576")
    routes = []
    for i, route in enumerate(config.quality.shadow):
        where = f"$.quality.shadow[{i}]"
        for name in ("model", "candidate", "judge"):
            value = getattr(route, name)
            if value is not None and value not in served:
                raise source.error(f"{where}.{name}", "is not a served model name or alias")
        if not 0.0 <= route.sample <= 1.0:
            raise source.error(f"{where}.sample", "must be a share between 0 and 1")
        if route.max_in_flight < 1 or not route.budget_usd >= 0:
            raise source.error(where, "max_in_flight must be 1 or more, budget_usd 0 or more")
        routes.append(
            ShadowRoute(
                route.model,
                route.candidate,
                route.sample,
                route.max_in_flight,
                route.budget_usd,
                route.judge,
            )
        )
    rules = CaptureRules(
        enabled=capture.enabled,
        sample=capture.sample,
        keys=frozenset(capture.keys),
        teams=frozenset(capture.teams),
        models=frozenset(capture.models),
        retention_days=capture.retention_days,
        max_bytes=capture.max_bytes,
    )
    return QualitySettings(capture=rules, shadow=tuple(routes))


def _auto_providers(
    catalog: Catalog, env: Mapping[str, str], configured: set[str], today: date
) -> list[tuple[ProviderSpec, list[Deployment]]]:
    """A provider for every catalog host whose API-key variable is set and that the config
    does not already define, serving every offering the catalog lists at that host that is not
    retired by `today`."""
    out: list[tuple[ProviderSpec, list[Deployment]]] = []
    for host in catalog.hosts():
        key = env.get(host.api_key_env) if host.api_key_env else None
        if not key or not host.openai_base_url or host.id in configured:
            continue
        spec = ProviderSpec(
            id=host.id,
            type="openai",
            base_url=host.openai_base_url.rstrip("/"),
            api_key=key,
            catalog_host=host.id,
        )
        deps = []
        for offering in catalog.offerings_for_host(host.id):
            model = catalog.model(offering.model)
            if (model and model.retired_at(today)) or (
                offering.retired is not None and offering.retired <= today
            ):
                continue
            deps.append(
                Deployment(
                    id=f"{host.id}:{offering.upstream_model}",
                    name=offering.model,
                    provider=host.id,
                    upstream_model=offering.upstream_model,
                    model=model,
                    maker=catalog.maker(model.maker) if model else None,
                    host=host,
                    prices=offering.current,
                    price_history=offering.history,
                    quantization=offering.quantization,
                )
            )
        out.append((spec, deps))
    return out


def _governance(
    config: ConfigFile, env: Mapping[str, str], source: _Source, bind_host: str
) -> dict[str, Any]:
    """Auth mode, admin key, global policy and the storage and limits backends."""
    auth = config.auth
    if auth.mode == "open" and bind_host not in ("127.0.0.1", "localhost", "::1"):
        raise source.error(
            "$.auth.mode",
            f"open mode (no API keys) is only allowed on a loopback address, not {bind_host}; "
            "set auth.mode: keys",
        )
    admin_key = env.get(auth.admin_key_env) or None
    if auth.mode == "keys" and admin_key is None:
        raise source.error(
            "$.auth.admin_key_env",
            f"keys mode needs an admin key: set the environment variable {auth.admin_key_env}",
        )
    if admin_key is not None and len(admin_key) < 16:
        raise source.error(
            "$.auth.admin_key_env", f"{auth.admin_key_env} must be at least 16 characters"
        )
    if auth.refresh_interval <= 0:
        raise source.error("$.auth.refresh_interval", "must be a positive number of seconds")
    try:
        policy = parse_rules(config.policy, "policy")
    except InvalidRequestError as exc:
        raise source.error(f"$.{exc.param or 'policy'}", exc.message) from None
    postgres_url = redis_url = None
    if config.storage.backend == "postgres":
        postgres_url = env.get(config.storage.postgres_url_env)
        if not postgres_url:
            raise source.error(
                "$.storage.postgres_url_env",
                f"environment variable {config.storage.postgres_url_env} is not set",
            )
    if config.limits.backend == "redis":
        redis_url = env.get(config.limits.redis_url_env)
        if not redis_url:
            raise source.error(
                "$.limits.redis_url_env",
                f"environment variable {config.limits.redis_url_env} is not set",
            )
    return {
        "auth_mode": auth.mode,
        "admin_key": admin_key,
        "key_refresh_interval": auth.refresh_interval,
        "global_policy": policy,
        "storage_backend": config.storage.backend,
        "postgres_url": postgres_url,
        "limits_backend": config.limits.backend,
        "redis_url": redis_url,
    }


def _baselines(config: ConfigFile, catalog: Catalog, source: _Source) -> Baselines:
    """Resolves each configured baseline model to its dated list prices (`baseline_from_catalog`).
    A list of baselines: the first goes on every ledger row, the others are compared against
    in the savings report."""

    def resolve(text: str, at: str) -> Baseline:
        try:
            return baseline_from_catalog(catalog, text)
        except ValueError as exc:
            raise source.error(at, str(exc)) from None

    savings = config.savings
    if isinstance(savings.baseline, str):
        resolved = [resolve(savings.baseline, "$.savings.baseline")]
    else:
        chosen = savings.baseline or []
        resolved = [resolve(m, f"$.savings.baseline[{i}]") for i, m in enumerate(chosen)]
    return Baselines(
        default=resolved[0] if resolved else None,
        by_name={n: resolve(m, f"$.savings.models.{n}") for n, m in savings.models.items()},
        by_team={t: resolve(m, f"$.savings.teams.{t}") for t, m in savings.teams.items()},
        extra=tuple(resolved[1:]),
    )


def _routing(section: RoutingSection, source: _Source) -> RoutingPolicy:
    c = section.circuit
    checks = [
        ("retries", 0 <= section.retries <= 10, "must be between 0 and 10"),
        ("backoff_base", section.backoff_base >= 0, "must not be negative"),
        ("backoff_max", section.backoff_max >= section.backoff_base, "must be >= backoff_base"),
        ("max_retry_after", section.max_retry_after >= 0, "must not be negative"),
        ("circuit.failures", c.failures >= 1, "must be at least 1"),
        ("circuit.failure_rate", 0 < c.failure_rate <= 1, "must be in (0, 1]"),
        ("circuit.window", c.window >= 1, "must be at least 1"),
        ("circuit.min_calls", 1 <= c.min_calls <= c.window, "must be between 1 and window"),
        ("circuit.cooldown", c.cooldown > 0, "must be positive"),
        ("health_check_interval", section.health_check_interval >= 0, "must not be negative"),
    ]
    for key, ok, what in checks:
        if not ok:
            raise source.error(f"$.routing.{key}", what)
    return RoutingPolicy(
        strategy=section.strategy,
        retries=section.retries,
        backoff_base=section.backoff_base,
        backoff_max=section.backoff_max,
        max_retry_after=section.max_retry_after,
        breaker=BreakerPolicy(
            failures=c.failures,
            failure_rate=c.failure_rate,
            window=c.window,
            min_calls=c.min_calls,
            cooldown=c.cooldown,
        ),
        health_check_interval=section.health_check_interval,
        open_circuits=c.open_circuits,
    )


MAX_JSON_DEPTH = 253
"""The deepest `server.max_json_depth`: one less than orjson encodes (ingress/body.py's
ORJSON_MAX_DEPTH; config and ingress are sibling layers, so a test keeps the two equal)."""


def _check_server(settings: Settings, source: _Source) -> None:
    if not 0 <= settings.port <= 65535:
        raise source.error("$.server.port", f"port {settings.port} is out of range 0-65535")
    if settings.max_body_bytes < 1024:
        raise source.error("$.server.max_body_bytes", "must be at least 1024")
    if settings.request_timeout <= 0:
        raise source.error("$.server.request_timeout", "must be a positive number of seconds")
    for name in ("shutdown_grace", "ledger_drain_timeout"):
        seconds = getattr(settings, name)
        if not 0 <= seconds <= 3600:  # also refuses NaN
            raise source.error(f"$.server.{name}", "must be a number of seconds from 0 to 3600")
    if settings.ledger_backlog_limit < 1:
        raise source.error("$.server.ledger_backlog_limit", "must be at least 1")
    if not 1 <= settings.max_json_depth <= MAX_JSON_DEPTH:
        raise source.error("$.server.max_json_depth", f"must be 1 to {MAX_JSON_DEPTH}")
    if not 16 <= settings.max_model_name_chars <= 65536:
        raise source.error("$.server.max_model_name_chars", "must be 16 to 65536")
    if not 100 <= settings.max_upstream_message_chars <= 65536:
        raise source.error("$.server.max_upstream_message_chars", "must be from 100 to 65536")
    edge = settings.edge
    if edge.max_header_bytes < 1024:
        raise source.error("$.server.max_header_bytes", "must be at least 1024")
    if edge.max_headers < 16:
        raise source.error("$.server.max_headers", "must be at least 16")
    for name in ("header_timeout", "body_timeout", "body_idle_timeout", "keep_alive_timeout"):
        if getattr(edge, name) <= 0:
            raise source.error(f"$.server.{name}", "must be a positive number of seconds")
    if edge.max_connections is not None and edge.max_connections < 1:
        raise source.error("$.server.max_connections", "must be at least 1")


def _edge(config: ConfigFile, source: _Source) -> EdgeSettings:
    """The edge settings, with host names normalised (lower case, IPv6 in brackets). Open mode
    answers only loopback names unless `allowed_hosts` says otherwise; keys mode any name."""
    server = config.server
    hosts: frozenset[str] | None = None
    if server.allowed_hosts is not None:
        hosts = frozenset(
            _host_name(h, index, source) for index, h in enumerate(server.allowed_hosts)
        )
    elif config.auth.mode == "open":
        hosts = frozenset(LOOPBACK_HOSTS)
    origins = []
    for index, origin in enumerate(server.cors_origins):
        where = f"$.server.cors_origins[{index}]"
        if origin == "*":
            if config.auth.mode == "open":
                raise source.error(where, "'*' would let any web page use the gateway in open mode")
        elif not re.fullmatch(r"https?://[^/\s?#]+", origin):
            raise source.error(where, f"{origin!r} is not an origin like https://app.example.com")
        origins.append(origin.lower())
    return EdgeSettings(
        max_header_bytes=server.max_header_bytes,
        max_headers=server.max_headers,
        header_timeout=server.header_timeout,
        body_timeout=server.body_timeout,
        body_idle_timeout=server.body_idle_timeout,
        keep_alive_timeout=server.keep_alive_timeout,
        max_connections=server.max_connections,
        allowed_hosts=hosts,
        cors_origins=frozenset(origins),
    )


def _host_name(value: str, index: int, source: _Source) -> str:
    name = value.strip().lower()
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"  # a bare IPv6 address, as a Host header spells it
    if not name or not re.fullmatch(r"\[[0-9a-f:.]+\]|[a-z0-9._-]+", name):
        raise source.error(
            f"$.server.allowed_hosts[{index}]", f"{value!r} is not a host name (no port, no scheme)"
        )
    return name


def _embedded(section: EmbeddedSection, catalog: Catalog) -> tuple[ProviderSpec, Deployment]:
    upstream = "smollm2-135m"
    model = catalog.model("huggingface/smollm2-135m-instruct")
    offering = catalog.offering("huggingface/smollm2-135m-instruct", LOCAL_PROVIDER)
    options: dict[str, Any] = {
        "served_model": section.served_model,
        "parallel": section.parallel,
        "n_ctx": section.n_ctx,
    }
    if section.threads:
        options["threads"] = section.threads
    if section.model_path:
        options["model_path"] = section.model_path
    spec = ProviderSpec(
        id=LOCAL_PROVIDER, type="embedded", options=options, catalog_host=LOCAL_PROVIDER
    )
    dep = Deployment(
        id=f"{LOCAL_PROVIDER}:{upstream}",
        name=section.served_model,
        provider=LOCAL_PROVIDER,
        upstream_model=upstream,
        model=model,
        maker=catalog.maker(model.maker) if model else None,
        host=catalog.host(LOCAL_PROVIDER),
        prices=offering.current if offering else None,
        price_history=offering.history if offering else (),
        quantization=offering.quantization if offering else None,
        sampling_defaults=_sampling_defaults(section.defaults),
        unsupported_tools=section.unsupported_tools,
    )
    return spec, dep


def _sampling_defaults(section: SamplingDefaults) -> tuple[tuple[str, float], ...]:
    return tuple(
        (name, value)
        for name in section.__struct_fields__
        if (value := getattr(section, name)) is not None
    )


_BASE_URL_FIELD = {"openai": "openai_base_url", "anthropic": "anthropic_base_url"}
"""The catalog host field that gives each wire format's default base URL: a host such as
DeepSeek serves OpenAI's format at one URL and Anthropic's at another."""


def _host_base_url(host: Host | None, provider_type: str) -> str | None:
    if host is None:
        return None
    if provider_type == "openai":
        return host.openai_base_url
    if provider_type == "anthropic":
        return host.anthropic_base_url
    return None


def _provider(
    provider_id: str,
    section: ProviderSection,
    catalog: Catalog,
    env: Mapping[str, str],
    source: _Source,
) -> ProviderSpec:
    at = f"$.providers.{provider_id}"
    if section.api_key is not None:
        raise source.error(
            f"{at}.api_key",
            "secrets are not allowed in the config file; put the key in an environment "
            "variable and name it with api_key_env",
        )
    host = catalog.host(section.host or provider_id)
    if section.host and host is None:
        raise source.error(f"{at}.host", f"unknown catalog host {section.host!r}")
    base_url = section.base_url or _host_base_url(host, section.type)
    if section.type in _BASE_URL_FIELD and not base_url:
        field = _BASE_URL_FIELD[section.type]
        where = f"catalog host {host.id!r} has no {field}" if host else "no catalog host"
        raise source.error(
            f"{at}.base_url", f"required for a provider of type {section.type!r} ({where})"
        )
    key_env = section.api_key_env or (host.api_key_env if host else None)
    api_key = None
    if key_env:
        api_key = env.get(key_env)
        if not api_key and section.api_key_env:
            raise source.error(
                f"{at}.api_key_env", f"environment variable {key_env} is not set or empty"
            )
    t = section.timeouts
    if min(t.connect, t.first_byte, t.total) <= 0:
        raise source.error(f"{at}.timeouts", "timeouts must be positive numbers of seconds")
    return ProviderSpec(
        id=provider_id,
        type=section.type,
        base_url=(base_url or "").rstrip("/"),
        api_key=api_key,
        timeouts=Timeouts(connect=t.connect, first_byte=t.first_byte, total=t.total),
        headers=dict(section.headers),
        options=dict(section.options),
        catalog_host=host.id if host else None,
    )


def _deployment(
    index: int,
    section: ModelSection,
    providers: Mapping[str, ProviderSpec],
    config: ConfigFile,
    catalog: Catalog,
    source: _Source,
) -> Deployment:
    at = f"$.models[{index}]"
    spec = providers.get(section.provider)
    if spec is None:
        raise source.error(
            f"{at}.provider",
            f"unknown provider {section.provider!r}; define it under providers: "
            f"(known: {', '.join(sorted(providers)) or 'none'})",
        )
    host = catalog.host(spec.catalog_host) if spec.catalog_host else None
    model = None
    if section.catalog_model:
        model = catalog.model(section.catalog_model)
        if model is None:
            raise source.error(
                f"{at}.catalog_model", f"unknown catalog model {section.catalog_model!r}"
            )
    elif catalog.model(section.name) is not None:
        model = catalog.model(section.name)
    upstream = section.upstream_model
    offering = None
    if host and model:
        offering = catalog.offering(model.id, host.id)
    if upstream is None:
        if offering is None:
            raise source.error(
                f"{at}.upstream_model",
                "required: the catalog has no offering of this model at this provider",
            )
        upstream = offering.upstream_model
    if model is None and host is not None:
        offering = catalog.find_offering_by_upstream(host.id, upstream)
        model = catalog.model(offering.model) if offering else None
    if section.quantization is not None and section.quantization not in QUANTIZATIONS:
        raise source.error(
            f"{at}.quantization",
            f"{section.quantization!r} is not one of {', '.join(QUANTIZATIONS)}",
        )
    if section.provider == LOCAL_PROVIDER and not config.embedded.enabled:
        raise source.error(f"{at}.provider", "the embedded model is disabled")
    return Deployment(
        id=f"{section.provider}:{upstream}",
        name=section.name,
        provider=section.provider,
        upstream_model=upstream,
        model=model,
        maker=catalog.maker(model.maker) if model else None,
        host=host,
        prices=offering.current if offering else None,
        price_history=offering.history if offering else (),
        quantization=section.quantization or (offering.quantization if offering else None),
        sampling_defaults=_sampling_defaults(section.defaults),
        unsupported_tools=section.unsupported_tools,
        weight=section.weight,
    )
