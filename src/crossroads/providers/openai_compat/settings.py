"""The OpenAI-compatible adapter's options (`ProviderSpec.options`), checked once when the
provider is created so a typo fails at start-up, not on the first request.

- `profile`: the provider profile to use (see `crossroads.providers.profiles`); default: the
  profile serving the provider's catalog host, else `generic`.
- `on_unsupported`: `drop` (default) leaves out what the host refuses and reports it in the
  answer; `reject` refuses such a request with a 400 before anything is sent upstream.
- `stream_usage`: whether to ask for usage on streams with `stream_options.include_usage`;
  default: what the profile says the host accepts.
- `reasoning_cache_size`: tool turns whose reasoning is remembered for hosts that need it back
  (default 10,000).
- `responses`: the host serves OpenAI's Responses API itself (OpenAI; vLLM and SGLang for
  gpt-oss): requests to the gateway's `/v1/responses` are passed to its `/responses` unchanged
  rather than translated to Chat Completions (default false)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crossroads.errors import ConfigError
from crossroads.providers.base import ProviderSpec
from crossroads.providers.openai_compat.reasoning_cache import DEFAULT_SIZE
from crossroads.providers.profiles import Policy, Profile, load_builtin

__all__ = ["Settings"]

_KNOWN = frozenset(
    {"profile", "on_unsupported", "stream_usage", "reasoning_cache_size", "responses"}
)


@dataclass(frozen=True, slots=True)
class Settings:
    profile: Profile
    on_unsupported: Policy
    stream_usage: bool
    reasoning_cache_size: int
    responses: bool = False

    @classmethod
    def from_spec(cls, spec: ProviderSpec) -> Settings:
        """Reads and checks the options. Raises ConfigError naming the provider and the bad or
        unknown option (an unknown profile lists the known ones)."""
        options = spec.options
        unknown = sorted(set(options) - _KNOWN)
        if unknown:
            raise ConfigError(
                f"provider '{spec.id}': unknown option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(_KNOWN))}"
            )
        explicit = options.get("profile")
        if explicit is not None and not isinstance(explicit, str):
            raise ConfigError(f"provider '{spec.id}': option profile must be a profile name")
        try:
            profile = load_builtin().for_provider(explicit=explicit, catalog_host=spec.catalog_host)
        except ConfigError as exc:
            raise ConfigError(f"provider '{spec.id}': {exc.message}") from None
        policy = options.get("on_unsupported", "drop")
        if policy not in ("drop", "reject"):
            raise ConfigError(f"provider '{spec.id}': option on_unsupported must be drop or reject")
        return cls(
            profile=profile,
            on_unsupported=policy,
            stream_usage=_bool(spec, options, "stream_usage", profile.stream_usage),
            reasoning_cache_size=_size(spec, options),
            responses=_bool(spec, options, "responses", False),
        )


def _bool(spec: ProviderSpec, options: Mapping[str, Any], key: str, default: bool) -> bool:
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"provider '{spec.id}': option {key} must be true or false")
    return value


def _size(spec: ProviderSpec, options: Mapping[str, Any]) -> int:
    value = options.get("reasoning_cache_size", DEFAULT_SIZE)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"provider '{spec.id}': option reasoning_cache_size must be >= 1")
    return value
