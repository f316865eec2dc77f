"""Finds provider adapter factories by type name through the `crossroads.providers` entry-point
group. Built-in adapters are registered there by our own pyproject, exactly as a third-party
package would register its own."""

from __future__ import annotations

from importlib.metadata import entry_points

from crossroads.errors import ConfigError
from crossroads.providers.base import ProviderFactory

GROUP = "crossroads.providers"


def available_types() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=GROUP))


def load_factory(provider_type: str) -> ProviderFactory:
    """Returns the factory registered for `provider_type`; ConfigError names the known types."""
    matches = entry_points(group=GROUP, name=provider_type)
    for ep in matches:
        factory: ProviderFactory = ep.load()
        return factory
    raise ConfigError(
        f"unknown provider type {provider_type!r}; known types: {', '.join(available_types())}"
    )
