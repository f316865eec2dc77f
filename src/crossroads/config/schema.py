"""The config file's shape, as msgspec types: unknown keys are errors, so a typo is reported
rather than silently ignored. See README.md ("Configuration") for a full example."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

StrategyName = Literal["priority", "cheapest", "latency", "weighted"]


class ServerSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str | None = None
    # Requests with a larger body are refused with 413 before they are parsed.
    max_body_bytes: int = 10 * 1024 * 1024
    # The overall deadline of one request, all attempts included, in seconds.
    request_timeout: float = 600.0
    # Shutdown and the ledger's durability (docs/operations.md). Seconds requests in flight may
    # run after SIGTERM before they are ended with a 503 "shutting down" error and recorded.
    shutdown_grace: float = 30.0
    # Seconds to flush the ledger at exit; what the store did not take by then is saved to a
    # recovery file in data_dir and written to the store at the next start.
    ledger_drain_timeout: float = 10.0
    # Ledger records waiting to be written past which /readyz answers 503 (and an error is
    # logged); records are still kept, never dropped.
    ledger_backlog_limit: int = 10_000
    # Input limits that keep refused requests cheap and every request ledgered (issue 11):
    # request bodies nesting JSON deeper than this are refused with 400 (1-253).
    max_json_depth: int = 64
    # A longer requested model name is refused with 400 before routing; the ledger keeps this
    # many characters at most of any name.
    max_model_name_chars: int = 256
    # The HTTP edge: what one client connection may hold, and which browsers may call.
    # Request line and headers above this many bytes get 431 and the connection is closed.
    max_header_bytes: int = 64 * 1024
    # Requests with more header fields than this get 431 too.
    max_headers: int = 100
    # Seconds from a connection's opening (or a reused one's next byte) to complete headers.
    header_timeout: float = 30.0
    # Seconds to receive a whole request body, and the longest pause within one.
    body_timeout: float = 300.0
    body_idle_timeout: float = 30.0
    # Seconds an idle keep-alive connection is kept open between requests.
    keep_alive_timeout: float = 5.0
    # Open client connections per worker; default: half the open-file limit, less a reserve.
    max_connections: int | None = None
    # Host names the gateway answers to (any port); default: loopback names in open mode,
    # any host in keys mode.
    allowed_hosts: list[str] | None = None
    # Origins whose browser pages may call the API (CORS); none by default.
    cors_origins: list[str] = []
    # Secrets and what leaves the process (docs/security.md): an upstream's error text is
    # scrubbed of the gateway's secrets, then cut to this many characters, before it reaches a
    # client, the ledger or a log.
    max_upstream_message_chars: int = 1000


class SamplingDefaults(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Sampling parameters a deployment applies when the client sends none (or null): a
    model's card often recommends settings that its API's defaults do not use."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None


# SmolLM2-135M-Instruct's model card (huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct,
# "How to use") samples with temperature 0.2 and top_p 0.9; at llama.cpp's defaults the model
# answers "What is the capital of France?" with a list of French words.
SMOLLM2_DEFAULTS = SamplingDefaults(temperature=0.2, top_p=0.9)


class EmbeddedSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True
    served_model: str = "local/smollm2-135m"
    model_path: str | None = None
    parallel: int = 4
    n_ctx: int = 4096
    threads: int | None = None
    defaults: SamplingDefaults = SMOLLM2_DEFAULTS
    # SmolLM2-135M cannot call tools, and coding agents send tools with every request, their
    # small side requests (titles, summaries) included: answer those in text.
    unsupported_tools: Literal["refuse", "drop"] = "drop"


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
    weight: float = 1.0  # share of traffic under the weighted strategy
    defaults: SamplingDefaults = SamplingDefaults()  # applied when the client sends none
    # Tools the model cannot call: leave this deployment out ("refuse"), or answer in text
    # without them ("drop") when no deployment that can call them is a candidate.
    unsupported_tools: Literal["refuse", "drop"] = "refuse"
    # The quantisation this deployment serves at ("fp8", "fp4", ...), where the catalog
    # offering does not say or says otherwise (a self-hosted model).
    quantization: str | None = None


class AliasSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    models: list[str]
    strategy: StrategyName | None = None


class CircuitSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    failures: int = 5  # consecutive failures that open the circuit
    failure_rate: float = 0.5  # or this share of failures over the last `window` calls
    window: int = 20
    min_calls: int = 10
    cooldown: float = 30.0  # seconds before a half-open probe
    open_circuits: Literal["last", "skip"] = "last"  # try open deployments last, or never


class RoutingSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    strategy: StrategyName = "priority"
    retries: int = 1  # extra tries on the same deployment before moving on
    backoff_base: float = 0.1
    backoff_max: float = 2.0
    max_retry_after: float = 10.0
    circuit: CircuitSection = CircuitSection()
    health_check_interval: float = 0.0  # seconds; 0 = no active health checks
    # A configured model its maker has retired (catalog `retired` date passed): answer with an
    # error naming the retirement and successor ("error"), or serve the successor the maker
    # names at the same host ("successor").
    retired_models: Literal["error", "successor"] = "error"


class AuthSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    mode: Literal["open", "keys"] = "open"
    admin_key_env: str = "CROSSROADS_ADMIN_KEY"
    refresh_interval: float = 5.0  # seconds between key-ring reloads from the store


class StorageSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    backend: Literal["sqlite", "postgres"] = "sqlite"
    postgres_url_env: str = "CROSSROADS_POSTGRES_URL"


class LimitsSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    backend: Literal["memory", "redis"] = "memory"
    redis_url_env: str = "CROSSROADS_REDIS_URL"


class SavingsSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # The proprietary model every request is priced again at (a catalog id, or "id@host"), so
    # savings are measured. A list compares against several: the first is priced on every
    # ledger row, the others in the savings report. Per served name and per team overrides.
    baseline: str | list[str] | None = "anthropic/claude-sonnet-4.5"
    models: dict[str, str] = {}
    teams: dict[str, str] = {}


class ResponsesSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # POST /v1/responses keeps each response whose request has `store` (OpenAI's default:
    # true) for `previous_response_id` and GET/DELETE /v1/responses/{id}, in
    # data_dir/responses.sqlite3: its input and output items, so prompts and answers. Off:
    # nothing is kept, and requests that need storage get a 400.
    store: bool = True
    # Days a stored response is kept; then it is deleted.
    retention_days: float = 30.0
    # A response whose stored context (input and output items) is larger is not kept.
    max_stored_bytes: int = 16 * 1024 * 1024


class TelemetrySection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """OpenTelemetry export over OTLP/HTTP (README, "Traces and metrics over OpenTelemetry").
    The standard OTEL_* environment variables override these keys."""

    # null: on when an OTEL_EXPORTER_OTLP_*ENDPOINT variable is set; false: off whatever is set.
    enabled: bool | None = None
    # The collector's OTLP/HTTP base URL: /v1/traces and /v1/metrics are added to it.
    endpoint: str = "http://localhost:4318"
    traces_endpoint: str | None = None  # full URLs, used as they are
    metrics_endpoint: str | None = None
    traces: bool = True  # export spans
    metrics: bool = True  # export the gen_ai.* metrics
    protocol: str = "http/protobuf"  # the only one supported
    timeout: float = 10.0  # seconds one export may take
    compression: Literal["none", "gzip"] = "none"
    service_name: str = "crossroads"
    sampler: str = "parentbased_always_on"  # as OTEL_TRACES_SAMPLER
    sampler_arg: float = 1.0  # the traceidratio samplers' ratio
    max_queue_size: int = 2048  # spans waiting for export; more are dropped, never waited for
    max_export_batch_size: int = 512
    schedule_delay: float = 5.0  # seconds between span exports
    metric_interval: float = 60.0  # seconds between metric exports
    # Prompts and completions on spans (gen_ai.input.messages, ...), scrubbed of the gateway's
    # secrets and cut to max_content_chars. Off: spans carry no content at all.
    capture_content: bool = False
    max_content_chars: int = 16384


class CaptureSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # Off by default. When on, `sample` (0-1) of the requests whose key id, team or served name
    # is listed (of every request when none is) keep their request and answer bodies, secrets
    # scrubbed, in data_dir/quality.sqlite3 for `retention_days`, within `max_bytes`.
    enabled: bool = False
    sample: float = 0.1
    keys: list[str] = []
    teams: list[str] = []
    models: list[str] = []
    retention_days: float = 30.0
    max_bytes: int = 256 * 1024 * 1024


class ShadowSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # Live requests for served name `model` are also sent, in a `sample` share, to served name
    # `candidate` after the client has its answer (README, "Evidence before a switch").
    model: str
    candidate: str
    sample: float = 0.1
    max_in_flight: int = 4
    budget_usd: float = 1.0  # shadow spend a day, per route (judge calls included)
    # A served name that judges the pairs the deterministic checks leave undecided, both orders
    # (none: such a pair is a tie). Its calls are shadow traffic: eval ledger, same budget.
    judge: str | None = None


class QualitySection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    capture: CaptureSection = CaptureSection()
    shadow: list[ShadowSection] = []


class ConfigFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    server: ServerSection = ServerSection()
    embedded: EmbeddedSection = EmbeddedSection()
    providers: dict[str, ProviderSection] = {}
    models: list[ModelSection] = []
    aliases: dict[str, list[str] | AliasSection] = {}
    routing: RoutingSection = RoutingSection()
    auth: AuthSection = AuthSection()
    # The global policy, in the same shape as team and key policies (see README, Governance).
    policy: dict[str, Any] = {}
    storage: StorageSection = StorageSection()
    limits: LimitsSection = LimitsSection()
    savings: SavingsSection = SavingsSection()
    responses: ResponsesSection = ResponsesSection()
    # Overrides and additions to the shipped catalog, in the catalog's own shape; `files`
    # lists override files (such as the one `crossroads catalog sync` writes), applied first,
    # relative to this config file.
    catalog: dict[str, list[Any]] = {}
    quality: QualitySection = QualitySection()
    # Providers from the catalog whose key variable is set are added automatically unless false.
    auto_providers: bool = True
    telemetry: TelemetrySection = TelemetrySection()
