"""A deployment: one model at one provider endpoint, the unit the router chooses between."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from crossroads.catalog.model import Host, Maker, Model, PricePoint, Prices, price_in_force

TOOL_FIELDS = frozenset({"tools", "tool_choice", "parallel_tool_calls"})
"""The chat request fields a deployment that drops unsupported tools leaves out."""


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
    prices: Prices | None = None  # the current list price (the history's latest entry)
    # The offering's dated price history, oldest first; a request is priced at the entry in
    # force when it started. Empty: `prices` holds for every date.
    price_history: tuple[PricePoint, ...] = ()
    quantization: str | None = None  # as served: "fp8", "fp4", ...; None when not known
    # Why the model is no longer served (retired by its maker), or None; routing leaves a
    # retired deployment out with this as the reason.
    retired: str | None = None
    weight: float = 1.0  # for the weighted strategy
    # (parameter, value) pairs a chat request gets when it does not set that parameter
    sampling_defaults: tuple[tuple[str, float], ...] = ()
    # A request with tools the model cannot call: left out of routing ("refuse"), or served
    # with its tools dropped, answered in text ("drop"), when no deployment that can call them
    # is among the candidates.
    unsupported_tools: Literal["refuse", "drop"] = "refuse"

    def prices_at(self, when: datetime) -> Prices | None:
        """The prices in force when a request started at `when` (UTC); None when unpriced."""
        if not self.price_history:
            return self.prices
        return price_in_force(self.price_history, when)

    @property
    def calls_tools(self) -> bool:
        """Whether the model can call tools: False only when the catalog says it cannot."""
        return self.model is None or self.model.capabilities.tools is not False

    def with_defaults(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """`body` with this deployment's sampling defaults for the parameters it leaves unset
        or null; `body` itself when there is nothing to add. Never mutates `body`."""
        missing = [(k, v) for k, v in self.sampling_defaults if body.get(k) is None]
        return {**body, **dict(missing)} if missing else body

    def without_tools(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """`body` with its tool definitions and tool-choice settings left out."""
        return {k: v for k, v in body.items() if k not in TOOL_FIELDS}

    @property
    def catalog_id(self) -> str | None:
        return self.model.id if self.model else None
