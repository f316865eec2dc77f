"""The `telemetry` section and the standard OTEL_* variables: off by default, on by an endpoint
variable, the variables winning over the file, clear errors, and collector headers kept out of
repr and scrubbed from logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossroads.config import load_settings
from crossroads.errors import ConfigError
from crossroads.telemetry.otlp import OtlpSettings, sampler

ENDPOINT = "http://collector.example:4318"


def load(tmp_path: Path, text: str = "", **environ: str) -> OtlpSettings | None:
    path = tmp_path / "gw.yaml"
    path.write_text(text or "{}\n")
    return load_settings(path, environ=environ).otlp


def test_off_by_default(tmp_path: Path) -> None:
    assert load(tmp_path) is None
    assert load_settings(environ={}).otlp is None


def test_an_endpoint_variable_turns_export_on(tmp_path: Path) -> None:
    otlp = load(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=ENDPOINT + "/")
    assert otlp is not None
    assert otlp.traces_endpoint == ENDPOINT + "/v1/traces"
    assert otlp.metrics_endpoint == ENDPOINT + "/v1/metrics"
    assert otlp.service_name == "crossroads"
    assert otlp.capture_content is False


def test_enabled_false_in_the_file_wins_over_the_variables(tmp_path: Path) -> None:
    text = "telemetry: {enabled: false}\n"
    assert load(tmp_path, text, OTEL_EXPORTER_OTLP_ENDPOINT=ENDPOINT) is None


def test_sdk_disabled_turns_everything_off(tmp_path: Path) -> None:
    text = "telemetry: {enabled: true}\n"
    assert load(tmp_path, text, OTEL_SDK_DISABLED="true") is None
    assert load(tmp_path, text, OTEL_SDK_DISABLED="false") is not None


def test_the_file_alone_configures_export(tmp_path: Path) -> None:
    text = """
telemetry:
  enabled: true
  endpoint: http://otel:4318
  metrics: false
  service_name: gw-eu
  sampler: parentbased_traceidratio
  sampler_arg: 0.25
  timeout: 3
  capture_content: true
"""
    otlp = load(tmp_path, text)
    assert otlp is not None
    assert otlp.traces_endpoint == "http://otel:4318/v1/traces"
    assert otlp.metrics_endpoint is None
    assert (otlp.service_name, otlp.sampler, otlp.sampler_arg) == (
        "gw-eu",
        "parentbased_traceidratio",
        0.25,
    )
    assert otlp.timeout == 3
    assert otlp.capture_content is True


def test_variables_win_over_the_file(tmp_path: Path) -> None:
    text = "telemetry: {enabled: true, endpoint: 'http://file:4318', service_name: f}\n"
    otlp = load(
        tmp_path,
        text,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="https://traces.example/custom",
        OTEL_SERVICE_NAME="from-env",
        OTEL_EXPORTER_OTLP_TIMEOUT="2500",
        OTEL_TRACES_SAMPLER="always_off",
        OTEL_BSP_SCHEDULE_DELAY="250",
        OTEL_METRIC_EXPORT_INTERVAL="15000",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=prod,team=a%20b",
    )
    assert otlp is not None
    assert otlp.traces_endpoint == "https://traces.example/custom"  # used as it is
    assert otlp.metrics_endpoint == "http://file:4318/v1/metrics"
    assert otlp.service_name == "from-env"
    assert otlp.timeout == 2.5  # the variable is in milliseconds
    assert otlp.sampler == "always_off"
    assert otlp.schedule_delay == 0.25
    assert otlp.metric_interval == 15
    assert otlp.resource_attributes == {"deployment.environment": "prod", "team": "a b"}


def test_an_exporter_set_to_none_turns_that_signal_off(tmp_path: Path) -> None:
    otlp = load(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=ENDPOINT, OTEL_METRICS_EXPORTER="none")
    assert otlp is not None
    assert otlp.metrics_endpoint is None and otlp.traces_endpoint is not None
    both_off = {"OTEL_METRICS_EXPORTER": "none", "OTEL_TRACES_EXPORTER": "none"}
    assert load(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=ENDPOINT, **both_off) is None


def test_headers_are_read_kept_out_of_repr_and_scrubbed(tmp_path: Path) -> None:
    key = "hny-secret-" + "k" * 20
    path = tmp_path / "gw.yaml"
    path.write_text("{}\n")
    settings = load_settings(
        path,
        environ={
            "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT,
            "OTEL_EXPORTER_OTLP_HEADERS": f"x-honeycomb-team={key},x-other=1",
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "authorization=Bearer%20" + key,
        },
    )
    otlp = settings.otlp
    assert otlp is not None
    assert otlp.traces_headers == {"x-honeycomb-team": key, "x-other": "1"}
    assert otlp.metrics_headers == {"authorization": "Bearer " + key}  # the signal's own
    assert key not in repr(otlp) and key not in repr(settings)
    assert key not in settings.scrubber()(f"export failed with header {key}")


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        ("", {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "'grpc' is not supported"),
        ("telemetry: {enabled: true, protocol: http/json}\n", {}, "telemetry.protocol"),
        ("telemetry: {enabled: true, endpoint: 'otel:4318'}\n", {}, "not an http:// or https://"),
        ("", {"OTEL_TRACES_SAMPLER": "sometimes"}, "unknown sampler 'sometimes'"),
        ("", {"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"}, "OTEL_EXPORTER_OTLP_TIMEOUT"),
        ("", {"OTEL_EXPORTER_OTLP_HEADERS": "novalue"}, "entry 1 is not key=value"),
        ("", {"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        ("telemetry: {enabled: true, timeout: 0}\n", {}, "telemetry.timeout"),
        ("telemetry: {enabled: true, sampler_arg: 2}\n", {}, "telemetry.sampler_arg"),
        ("telemetry: {enabled: true, max_queue_size: 0}\n", {}, "telemetry.max_queue_size"),
        ("telemetry: {enabled: true, tracez: true}\n", {}, "tracez"),
    ],
)
def test_bad_settings_are_refused_with_the_key_or_variable_named(
    tmp_path: Path, text: str, environ: dict[str, str], expected: str
) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, **environ} if not text else environ
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text, **env)
    assert expected in err.value.message


def test_a_bad_header_value_is_never_shown(tmp_path: Path) -> None:
    secret = "s3cret-" + "x" * 20
    with pytest.raises(ConfigError) as err:
        load(
            tmp_path,
            OTEL_EXPORTER_OTLP_ENDPOINT=ENDPOINT,
            OTEL_EXPORTER_OTLP_HEADERS=f"good=1,{secret}",
        )
    assert secret not in err.value.message


def test_every_sampler_name_builds() -> None:
    for name in (
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    ):
        assert sampler(name, 0.5) is not None
    with pytest.raises(ValueError):
        sampler("nope", 1.0)
