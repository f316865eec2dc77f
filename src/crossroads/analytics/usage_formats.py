"""The usage-export formats the what-if reads: for each, which header feeds each field and which
headers are known to carry nothing it needs. docs/whatif.md documents each mapping and where it
was verified.

OpenRouter's activity export: the column names are those of exports seen in several independent
importers (OpenRouter's own docs describe the export but list no columns). LiteLLM: the columns
of its `LiteLLM_SpendLogs` table (schema.prisma in BerriAI/litellm), which `/spend/logs` returns.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["FIELDS", "IGNORED", "INPUT_FORMATS", "MAPPINGS", "REQUIRED"]

INPUT_FORMATS = ("auto", "openrouter", "litellm", "generic", "crossroads")

FIELDS = (
    "model",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "timestamp",
    "requests",
    "provider",
)
"""What a row may carry; `--column FIELD=HEADER` maps a header to any of them."""

REQUIRED = ("model", "prompt_tokens", "completion_tokens")

MAPPINGS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "openrouter": {
        "model": ("model_permaslug", "model"),
        "prompt_tokens": ("tokens_prompt",),
        "completion_tokens": ("tokens_completion",),
        "cached_tokens": ("tokens_cached",),
        "reasoning_tokens": ("tokens_reasoning",),
        "cost_usd": ("cost_total",),  # plus byok_usage_inference, added by the importer
        "timestamp": ("created_at",),
    },
    "litellm": {
        "model": ("model",),
        "prompt_tokens": ("prompt_tokens",),
        "completion_tokens": ("completion_tokens",),
        "cost_usd": ("spend",),
        "timestamp": ("startTime",),
        "provider": ("custom_llm_provider",),
    },
    "generic": {
        "model": ("model",),
        "prompt_tokens": ("prompt_tokens", "input_tokens"),
        "completion_tokens": ("completion_tokens", "output_tokens"),
        "cached_tokens": ("cached_tokens",),
        "cache_write_tokens": ("cache_write_tokens",),
        "reasoning_tokens": ("reasoning_tokens",),
        "cost_usd": ("cost", "cost_usd"),
        "timestamp": ("timestamp",),
        "requests": ("requests",),
    },
}
"""For each format, field -> the headers that may hold it; the first one present wins."""

_OPENROUTER_OTHER = """generation_id byok_usage_inference cost_web_search cost_cache
cost_file_processing provider_name variant cancelled streamed user finish_reason_raw
finish_reason_normalized generation_time_ms time_to_first_token_ms api_key_name app_name
num_search_results"""
_LITELLM_OTHER = """request_id call_type api_key total_tokens endTime request_duration_ms
completionStartTime model_id model_group api_base user metadata cache_hit cache_key request_tags
team_id organization_id end_user requester_ip_address messages response session_id status
mcp_namespaced_tool_name agent_id proxy_server_request"""

IGNORED: Mapping[str, frozenset[str]] = {
    "openrouter": frozenset(_OPENROUTER_OTHER.split()),
    "litellm": frozenset(_LITELLM_OTHER.split()),
    "generic": frozenset(),
}
"""Headers each format is known to have that the what-if does not need: not reported."""
