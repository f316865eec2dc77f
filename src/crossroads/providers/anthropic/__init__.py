"""Adapter for upstreams that speak Anthropic's Messages API: Anthropic itself, and the
Anthropic-compatible endpoints of DeepSeek, Moonshot, Z.ai and MiniMax. Requests are translated
from the neutral OpenAI format and answers back into it. Registered as the `anthropic` provider
type through the same entry-point group as every other adapter."""

from __future__ import annotations

from crossroads.providers.anthropic.adapter import AnthropicProvider
from crossroads.providers.base import Provider, ProviderSpec

__all__ = ["AnthropicProvider", "create"]


def create(spec: ProviderSpec) -> Provider:
    """The provider for `spec`. Raises ConfigError for a bad option (`default_max_tokens`,
    `auth_scheme`); nothing is connected until `start()`."""
    return AnthropicProvider(spec)
