"""The embedded provider: a small open-weight GGUF model (SmolLM2-135M by default) run in this
process by llama.cpp, so the gateway can answer with no upstream host at all. Registered as the
`embedded` provider type through the same entry-point group as every other adapter."""

from __future__ import annotations

from crossroads.providers.base import Provider, ProviderSpec
from crossroads.providers.embedded.adapter import EmbeddedProvider

__all__ = ["EmbeddedProvider", "create"]


def create(spec: ProviderSpec) -> Provider:
    """The provider for `spec`. Raises ConfigError for an unknown or ill-typed option; the model
    file is looked up and loaded by `start()`, not here."""
    return EmbeddedProvider(spec)
