"""A deployment: one model at one provider endpoint, the unit the router chooses between."""

from __future__ import annotations

from dataclasses import dataclass

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

    @property
    def catalog_id(self) -> str | None:
        return self.model.id if self.model else None
