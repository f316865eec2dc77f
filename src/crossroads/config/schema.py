"""The config file's shape, as msgspec types: unknown keys are errors, so a typo is reported
rather than silently ignored. See README.md ("Configuration") for a full example."""

from __future__ import annotations

from typing import Any

import msgspec


class ServerSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str | None = None
    # Requests with a larger body are refused with 413 before they are parsed.
    max_body_bytes: int = 10 * 1024 * 1024
    # The overall deadline of one request, all attempts included, in seconds.
    request_timeout: float = 600.0


class EmbeddedSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True
    served_model: str = "local/smollm2-135m"
    model_path: str | None = None
    parallel: int = 4
    n_ctx: int = 4096
    threads: int | None = None


class TimeoutsSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    connect: float = 10.0
    first_byte: float = 120.0
    total: float = 600.0


class ProviderSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    type: str = "openai"
    base_url: str | None = None  # default: the catalog host's base URL
    api_key_env: str | None = None  # default: the catalog host's variable
    host: str | None = None  # the catalog host id; default: the provider id
    timeouts: TimeoutsSection = TimeoutsSection()
    headers: dict[str, str] = {}
    options: dict[str, Any] = {}
    # A literal key is refused: secrets come only from the environment.
    api_key: str | None = None


class ModelSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str  # the served name clients ask for
    provider: str
    upstream_model: str | None = None  # default: the catalog offering's id at that host
    catalog_model: str | None = None  # "maker/model"; default: found from the offering


class ConfigFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    server: ServerSection = ServerSection()
    embedded: EmbeddedSection = EmbeddedSection()
    providers: dict[str, ProviderSection] = {}
    models: list[ModelSection] = []
    aliases: dict[str, list[str]] = {}
    # Overrides and additions to the shipped catalog, in the catalog's own shape.
    catalog: dict[str, list[dict[str, Any]]] = {}
    # Providers from the catalog whose key variable is set are added automatically unless false.
    auto_providers: bool = True
