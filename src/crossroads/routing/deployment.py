"""A deployment: one model at one provider endpoint, the unit the router chooses between."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crossroads.catalog.model import Host, Maker, Model, Prices


@dataclass(frozen=True, slots=True)
class Deployment:
    """`id` is unique across the gateway (`provider:upstream_model`); `name` is the served name
    it was declared under. Catalog facts (`model`, `maker`, `host`, `prices`) are None where the
    catalog does not know the model or host; such a deployment still serves, unpriced."""

    id: str
    name: str
    provider: str
    upstream_model: str
    model: Model | None = None
    maker: Maker | None = None
    host: Host | None = None
    prices: Prices | None = None
    weight: float = 1.0  # for the weighted strategy
    # (parameter, value) pairs a chat request gets when it does not set that parameter
    sampling_defaults: tuple[tuple[str, float], ...] = ()

    def with_defaults(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """`body` with this deployment's sampling defaults for the parameters it leaves unset
        or null; `body` itself when there is nothing to add. Never mutates `body`."""
        missing = [(k, v) for k, v in self.sampling_defaults if body.get(k) is None]
        return {**body, **dict(missing)} if missing else body

    @property
    def catalog_id(self) -> str | None:
        return self.model.id if self.model else None
