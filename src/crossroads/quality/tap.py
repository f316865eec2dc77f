"""The ingress's one touch point with capture and shadow: `select` decides, once the request is
read, whether it is captured and whether it is shadowed; `Tapped.answered` hands the answered
request over to both. Neither blocks nor raises."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crossroads.quality.capture import TASK_HEADER, CaptureWriter
from crossroads.quality.settings import ShadowRoute
from crossroads.quality.shadow import Shadower

__all__ = ["TAPPED_ENDPOINTS", "Incoming", "Tapped", "select"]

TAPPED_ENDPOINTS = frozenset({"chat.completions", "messages", "responses"})


@dataclass(frozen=True, slots=True)
class Incoming:
    """What the ingress knows of a read request."""

    request_id: str
    endpoint: str
    key_id: str | None
    team_id: str | None
    model: str  # the served name asked for
    stream: bool
    raw: bytes  # the body as the client sent it
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Tapped:
    request: Incoming
    capture: CaptureWriter | None  # set when this request is captured
    shadow: Shadower | None  # set, with `route`, when it is shadowed
    route: ShadowRoute | None

    def answered(self, app: Any, body: bytes | None) -> None:
        """The client got a 200 with `body` (None for a stream): capture it, and start the
        shadow call of a whole answer."""
        req = self.request
        task = req.headers.get(TASK_HEADER)
        if self.capture is not None:
            self.capture.offer(
                request_id=req.request_id,
                endpoint=req.endpoint,
                key_id=req.key_id,
                team_id=req.team_id,
                model=req.model,
                task=task,
                request=req.raw,
                response=body,
            )
        if self.shadow is not None and self.route is not None and body is not None:
            self.shadow.launch(
                app,
                self.route,
                endpoint=req.endpoint,
                request_id=req.request_id,
                headers=req.headers,
                request=req.raw,
                answer=body,
                task=task,
            )


def select(capture: CaptureWriter, shadow: Shadower, request: Incoming) -> Tapped | None:
    """Whether `request` is captured (`quality.capture`) or shadowed (`quality.shadow`); None
    when neither (the usual case, and cheap: two lookups and at most two random draws)."""
    if request.endpoint not in TAPPED_ENDPOINTS:
        return None
    captured = capture.wants(request.key_id, request.team_id, request.model)
    route = shadow.wants(request.model, stream=request.stream)
    if not captured and route is None:
        return None
    return Tapped(request, capture if captured else None, shadow if route else None, route)
