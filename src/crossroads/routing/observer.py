"""The hook through which the router reports each upstream attempt as it happens (tracing uses
it). Protocols only: `crossroads.telemetry` implements them above this layer, so routing never
imports telemetry. A request's `Trace.observer` is None when nothing watches, and the router
then does no more than one attribute check per attempt."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from crossroads.routing.deployment import Deployment
from crossroads.routing.health import Circuit


class AttemptWatch(Protocol):
    """One attempt at one deployment, from just before its upstream call.

    `headers` go upstream with the attempt (the W3C `traceparent` naming this attempt). Exactly
    one of `succeeded` or `failed` is called, from the event loop; neither awaits or raises."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    def succeeded(self, answer: object) -> None:
        """The attempt answered: `answer` is what the router returns for it, a
        `(Deployment, Completion)` pair or an `OpenStream` (whose stream goes on after this)."""

    def failed(self, error: BaseException) -> None:
        """The attempt failed with `error` (an UpstreamError already scrubbed of the gateway's
        secrets), or was cancelled. Whether it is retried, falls back or ends the request is
        told by the attempts that follow, or by none following."""


class AttemptObserver(Protocol):
    """Watches one request's attempts."""

    def attempt(self, deployment: Deployment, circuit: Circuit) -> AttemptWatch:
        """An attempt at `deployment`, whose circuit is in state `circuit`, is about to start."""
        ...
