"""The `quality` section of the config once validated: what is captured, and which routes are
shadowed to which candidate."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CaptureRules", "QualitySettings", "ShadowRoute"]


@dataclass(frozen=True, slots=True)
class CaptureRules:
    """Which requests are captured. Off unless `enabled`; then a request is a candidate when
    its API key id, its team or its requested (served) name is listed (when nothing is
    listed, every request is), and `sample` of the candidates are kept."""

    enabled: bool = False
    sample: float = 0.0
    keys: frozenset[str] = frozenset()
    teams: frozenset[str] = frozenset()
    models: frozenset[str] = frozenset()
    retention_days: float = 30.0
    max_bytes: int = 256 * 1024 * 1024  # the capture store's size cap; oldest go first
    max_item_bytes: int = 1024 * 1024  # a larger request-and-answer pair is not kept
    queue: int = 1000  # captures waiting to be written past which new ones are dropped

    def selects(self, key_id: str | None, team_id: str | None, model: str, draw: float) -> bool:
        """Whether a request with these ids is captured; `draw` is uniform in [0, 1)."""
        if not self.enabled or draw >= self.sample:
            return False
        if not (self.keys or self.teams or self.models):
            return True
        return (
            (key_id is not None and key_id in self.keys)
            or (team_id is not None and team_id in self.teams)
            or model in self.models
        )


@dataclass(frozen=True, slots=True)
class ShadowRoute:
    """Live requests for served name `model` are sent, in a `sample` share, to `candidate`
    after the client has its answer, within `max_in_flight` at once (more are dropped) and
    `budget_usd` a day of shadow spend (past it, shadowing stops until the next UTC day).
    `judge`: a served name that judges the pairs the checks leave undecided (None: a tie)."""

    model: str
    candidate: str
    sample: float = 0.1
    max_in_flight: int = 4
    budget_usd: float = 1.0
    judge: str | None = None


@dataclass(frozen=True, slots=True)
class QualitySettings:
    capture: CaptureRules = field(default_factory=CaptureRules)
    shadow: tuple[ShadowRoute, ...] = ()

    def shadow_for(self, model: str) -> ShadowRoute | None:
        return next((route for route in self.shadow if route.model == model), None)
