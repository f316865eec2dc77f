"""What a request handler needs from the running gateway, built once by the server at start."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from crossroads.governance.gate import Gate
from crossroads.ingress.body import DepthGauge
from crossroads.ingress.inflight import InFlight
from crossroads.ingress.responses.store import ResponseStore
from crossroads.ledger.baseline import Baselines
from crossroads.ledger.writer import LedgerWriter
from crossroads.quality.capture import CaptureWriter
from crossroads.quality.settings import CaptureRules
from crossroads.quality.shadow import Shadower
from crossroads.routing.router import Router
from crossroads.scrub import Scrubber
from crossroads.telemetry import GatewayMetrics

if TYPE_CHECKING:  # loaded only when OTLP export is on
    from crossroads.telemetry.tracing import Tracing


@dataclass(frozen=True, slots=True)
class Services:
    gate: Gate
    router: Router
    ledger: LedgerWriter
    max_body_bytes: int
    request_timeout: float
    models_body: bytes  # the GET /v1/models answer, encoded once
    baselines: Baselines = field(default_factory=Baselines)
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)  # counted in finish()
    scrub: Scrubber = field(default_factory=Scrubber)  # error text bound for a client or ledger
    json_depth: DepthGauge = field(default_factory=DepthGauge)  # server.max_json_depth
    max_model_name_chars: int = 256  # server.max_model_name_chars
    inflight: InFlight = field(default_factory=InFlight)  # what shutdown stops past its grace
    responses: ResponseStore = field(default_factory=lambda: ResponseStore(None))  # stored ones
    tracing: Tracing | None = None  # OpenTelemetry spans and gen_ai metrics; None: off
    # quality.capture: sampled request and answer bodies (off by default)
    capture: CaptureWriter = field(
        default_factory=lambda: CaptureWriter(None, CaptureRules(), Scrubber())
    )
    eval_ledger: LedgerWriter | None = None  # replay, shadow and judge records go here
    shadow: Shadower = field(default_factory=lambda: Shadower((), None))  # quality.shadow
