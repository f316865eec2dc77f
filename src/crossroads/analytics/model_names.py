"""Matching the model names other tools write (OpenRouter slugs and permaslugs, LiteLLM model
strings, hosts' own ids) to catalog models, by a fixed list of rules, never by similarity: a name
no rule matches stays unknown and is reported, so no price is ever guessed."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from crossroads.catalog import Catalog

__all__ = ["LITELLM_PROVIDER_HOSTS", "ModelResolver", "Resolution"]

LITELLM_PROVIDER_HOSTS: Mapping[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "deepseek": "deepseek",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "groq": "groq",
    "deepinfra": "deepinfra",
    "openrouter": "openrouter",
    "moonshot": "moonshot",
    "gemini": "google",
    "dashscope": "dashscope-intl",
    "minimax": "minimax",
    "zai": "zai",
}
"""LiteLLM's provider prefixes (`together_ai/...`, its `custom_llm_provider` column) mapped to
catalog host ids. A prefix not listed here is simply not used."""

# A release-date suffix: OpenRouter permaslugs ("openai/gpt-4.1-2025-04-14") and dated API ids
# ("claude-sonnet-4-5-20250929"). Four-digit suffixes such as Kimi's "-0905" are part of a name.
_DATE_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|20\d{6})$")


@dataclass(frozen=True, slots=True)
class Resolution:
    """`model_id` is the catalog model, or None when no rule matched; `rule` says how it matched
    when that was not an exact catalog id (for the report's notes)."""

    model_id: str | None
    rule: str | None = None


class ModelResolver:
    """Resolves names to catalog model ids, trying in order:

    1. `aliases` (the user's explicit `NAME=MODEL_ID` mapping);
    2. the name is a catalog model id (`deepseek/deepseek-v3.2`);
    3. `provider/upstream-id` (or the `provider` argument with the name as upstream id), where
       the provider is a catalog host id or a LiteLLM prefix in `LITELLM_PROVIDER_HOSTS` and that
       host has an offering with exactly that upstream id
       (`together_ai/moonshotai/Kimi-K2-Instruct-0905`);
    4. the name is the upstream id of offerings that all serve one model (`deepseek-chat`,
       OpenRouter's `z-ai/glm-4.6`);
    5. rules 2-4 again with a release-date suffix dropped (`openai/gpt-4.1-2025-04-14`).

    Results are cached per (name, provider); the resolver is not thread-safe."""

    def __init__(self, catalog: Catalog, aliases: Mapping[str, str] | None = None) -> None:
        """Raises ValueError when an alias targets a model the catalog does not have."""
        self._catalog = catalog
        self._aliases = dict(aliases or {})
        for name, target in self._aliases.items():
            if catalog.model(target) is None:
                raise ValueError(f"model map {name}={target}: {target!r} is not a catalog model")
        self._by_upstream: dict[str, set[str]] = {}
        for offering in catalog.offerings():
            self._by_upstream.setdefault(offering.upstream_model, set()).add(offering.model)
        self._cache: dict[tuple[str, str | None], Resolution] = {}

    def resolve(self, name: str, provider: str | None = None) -> Resolution:
        """The catalog model `name` stands for (see the class docstring for the rules)."""
        key = (name, provider)
        found = self._cache.get(key)
        if found is None:
            found = self._resolve(name.strip(), provider)
            self._cache[key] = found
        return found

    def _resolve(self, name: str, provider: str | None) -> Resolution:
        if name in self._aliases:
            return Resolution(self._aliases[name], "mapped by --model-map")
        found = self._match(name, provider)
        if found is not None:
            return found
        undated = _DATE_SUFFIX.sub("", name)
        if undated != name:
            found = self._match(undated, provider)
            if found is not None:
                why = "date suffix dropped" + (f", {found.rule}" if found.rule else "")
                return Resolution(found.model_id, why)
        return Resolution(None)

    def _match(self, name: str, provider: str | None) -> Resolution | None:
        if self._catalog.model(name) is not None:
            return Resolution(name)
        candidates: list[tuple[str, str]] = []
        if provider:
            candidates.append((provider, name))
        prefix, _, rest = name.partition("/")
        if rest:
            candidates.append((prefix, rest))
        for host_name, upstream in candidates:
            host = LITELLM_PROVIDER_HOSTS.get(host_name, host_name)
            offering = self._catalog.find_offering_by_upstream(host, upstream)
            if offering is not None:
                return Resolution(offering.model, f"{host}'s id {upstream!r}")
        models = self._by_upstream.get(name, set())
        if len(models) == 1:
            return Resolution(next(iter(models)), "a host's id for it")
        return None
