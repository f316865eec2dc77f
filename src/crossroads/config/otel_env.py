"""The `telemetry` section and the standard OpenTelemetry environment variables, resolved into
`OtlpSettings` (or None: export off). The variables win over the file, as the SDKs have them
(https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/ and
https://opentelemetry.io/docs/specs/otel/protocol/exporter/): resolving them here keeps every
read of the environment in `crossroads.config`, and the SDK is handed explicit values only."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from crossroads.config.schema import TelemetrySection
from crossroads.errors import ConfigError
from crossroads.telemetry.otlp import SAMPLERS, OtlpSettings

ENDPOINT_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
)
"""Setting any of these turns export on unless the file says `telemetry.enabled: false`."""

PROTOCOL = "http/protobuf"

Fail = Callable[[str, str], ConfigError]
"""(key path, message) -> the ConfigError naming the file and line."""


def otlp_settings(
    section: TelemetrySection, env: Mapping[str, str], fail: Fail
) -> OtlpSettings | None:
    """The export settings, or None when export is off (the default). Raises ConfigError for a
    value that cannot be used, naming the variable or key."""
    if _flag(env, "OTEL_SDK_DISABLED"):
        return None
    wanted = section.enabled
    if wanted is None:
        wanted = any(env.get(name) for name in ENDPOINT_VARIABLES)
    if not wanted:
        return None
    base, base_where = _pick(
        env, ("OTEL_EXPORTER_OTLP_ENDPOINT",), section.endpoint, "$.telemetry.endpoint"
    )
    signals = {}
    for signal, on, explicit in (
        ("traces", section.traces, section.traces_endpoint),
        ("metrics", section.metrics, section.metrics_endpoint),
    ):
        upper = signal.upper()
        exporter = env.get(f"OTEL_{upper}_EXPORTER", "otlp").strip().lower()
        if exporter not in ("otlp", "none"):
            raise fail(f"OTEL_{upper}_EXPORTER", f"{exporter!r} is not supported (otlp or none)")
        protocol, where = _pick(
            env,
            (f"OTEL_EXPORTER_OTLP_{upper}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"),
            section.protocol,
            "$.telemetry.protocol",
        )
        if protocol != PROTOCOL:
            raise fail(
                where,
                f"OTLP protocol {protocol!r} is not supported: the gateway exports "
                f"{PROTOCOL} (every OpenTelemetry collector takes it, by default on port 4318)",
            )
        url, where = _pick(
            env,
            (f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT",),
            explicit,
            f"$.telemetry.{signal}_endpoint",
        )
        if url is None:
            url, where = base.rstrip("/") + f"/v1/{signal}", base_where
        if not url.startswith(("http://", "https://")):
            raise fail(
                where, f"the OTLP {signal} endpoint {url!r} is not an http:// or https:// URL"
            )
        headers = _headers(env, f"OTEL_EXPORTER_OTLP_{upper}_HEADERS", fail)
        if headers is None:
            headers = _headers(env, "OTEL_EXPORTER_OTLP_HEADERS", fail) or {}
        signals[signal] = (url if on and exporter == "otlp" else None, headers)
    timeout = section.timeout
    if env.get("OTEL_EXPORTER_OTLP_TIMEOUT"):
        timeout = _number(env, "OTEL_EXPORTER_OTLP_TIMEOUT", fail) / 1000.0  # milliseconds
    sampler, where = _pick(env, ("OTEL_TRACES_SAMPLER",), section.sampler, "$.telemetry.sampler")
    if sampler not in SAMPLERS:
        raise fail(where, f"unknown sampler {sampler!r} ({', '.join(SAMPLERS)})")
    ratio = section.sampler_arg
    if env.get("OTEL_TRACES_SAMPLER_ARG"):
        ratio = _number(env, "OTEL_TRACES_SAMPLER_ARG", fail)
    compression = env.get("OTEL_EXPORTER_OTLP_COMPRESSION") or section.compression
    if compression not in ("none", "gzip"):  # the file's value is checked by its schema
        raise fail("OTEL_EXPORTER_OTLP_COMPRESSION", f"{compression!r} is not none or gzip")
    settings = OtlpSettings(
        traces_endpoint=signals["traces"][0],
        metrics_endpoint=signals["metrics"][0],
        traces_headers=signals["traces"][1],
        metrics_headers=signals["metrics"][1],
        timeout=timeout,
        compression="gzip" if compression == "gzip" else "none",
        service_name=env.get("OTEL_SERVICE_NAME") or section.service_name,
        resource_attributes=_headers(env, "OTEL_RESOURCE_ATTRIBUTES", fail) or {},
        sampler=sampler,
        sampler_arg=ratio,
        max_queue_size=_int(env, "OTEL_BSP_MAX_QUEUE_SIZE", section.max_queue_size, fail),
        max_export_batch_size=_int(
            env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", section.max_export_batch_size, fail
        ),
        schedule_delay=_millis(env, "OTEL_BSP_SCHEDULE_DELAY", section.schedule_delay, fail),
        metric_interval=_millis(env, "OTEL_METRIC_EXPORT_INTERVAL", section.metric_interval, fail),
        capture_content=section.capture_content,
        max_content_chars=section.max_content_chars,
    )
    _check(settings, fail)
    return settings if settings.enabled else None


def _check(s: OtlpSettings, fail: Fail) -> None:
    checks = (
        ("timeout", 0 < s.timeout <= 300, "must be more than 0 and at most 300 seconds"),
        ("sampler_arg", 0 <= s.sampler_arg <= 1, "must be a ratio from 0 to 1"),
        ("max_queue_size", 1 <= s.max_queue_size <= 1_000_000, "must be 1 to 1000000"),
        (
            "max_export_batch_size",
            1 <= s.max_export_batch_size <= s.max_queue_size,
            "must be at least 1 and at most max_queue_size",
        ),
        ("schedule_delay", 0 < s.schedule_delay <= 3600, "must be more than 0, at most 3600 s"),
        ("metric_interval", 1 <= s.metric_interval <= 86400, "must be 1 to 86400 seconds"),
        ("max_content_chars", 256 <= s.max_content_chars <= 1_048_576, "must be 256 to 1048576"),
    )
    for key, ok, what in checks:
        if not ok:
            raise fail(f"$.telemetry.{key}", what)


def _pick(
    env: Mapping[str, str], names: tuple[str, ...], default: str | None, key: str
) -> tuple[Any, str]:
    """The first of the variables `names` that is set, else the file's `default`; and where
    the value came from (the variable, or the file's key path), for an error message."""
    for name in names:
        value = env.get(name)
        if value:
            return value.strip(), name
    return default, key


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() == "true"


def _headers(env: Mapping[str, str], name: str, fail: Fail) -> dict[str, str] | None:
    """`key1=value1,key2=value2` (values URL-encoded), as the OTLP exporter spec has it. None
    when the variable is unset. The message of a bad entry never shows its value."""
    text = env.get(name)
    if text is None:
        return None
    out: dict[str, str] = {}
    for index, item in enumerate(text.split(",")):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise fail(name, f"entry {index + 1} is not key=value")
        out[unquote(key.strip())] = unquote(value.strip())
    return out


def _number(env: Mapping[str, str], name: str, fail: Fail) -> float:
    try:
        value = float(env[name])
    except ValueError:
        raise fail(name, f"{env[name]!r} is not a number") from None
    if not math.isfinite(value):
        raise fail(name, "must be a finite number")
    return value


def _int(env: Mapping[str, str], name: str, default: int, fail: Fail) -> int:
    if not env.get(name):
        return default
    value = _number(env, name, fail)
    if value != int(value):
        raise fail(name, f"{env[name]!r} is not a whole number")
    return int(value)


def _millis(env: Mapping[str, str], name: str, default: float, fail: Fail) -> float:
    """Seconds, from a variable in milliseconds (as the spec gives these) or the default."""
    return _number(env, name, fail) / 1000.0 if env.get(name) else default
