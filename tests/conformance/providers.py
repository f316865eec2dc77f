"""The conformance targets: every provider profile behind the OpenAI-compatible adapter, the
native Anthropic adapter, and the Anthropic-compatible endpoints, each declared with its wire
format, the upstream model id it is configured with, the mock script tokens that make the mock
answer (and refuse) as that host does, and the capabilities it lacks, each with the reason.

A capability is present unless `absent` names it; the scenarios that need it are then skipped
with that reason. `test_conformance.py` checks this table against the shipped profiles, so a
profile change that the table does not follow fails the suite."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from crossroads.mockupstream import parse_script

Wire = Literal["openai", "anthropic"]
Reasoning = Literal["reasoning_content", "reasoning", "think_tags", "thinking_blocks"]
"""How the host returns reasoning: `reasoning_content` or `reasoning` beside the content,
inline `<think>` tags in the content, or Anthropic thinking blocks."""

CAPABILITIES = (
    "tools",
    "parallel_tools",
    "reasoning",
    "reasoning_replay",
    "json_mode",
    "cached_usage",
    "stream_usage",
)
"""`reasoning_replay`: an OpenAI-client agent that drops `reasoning_content` from its tool-call
turns still completes the loop on a host that requires that reasoning back."""

NO_REASONING_TEXT = (
    "OpenAI's Chat Completions API returns no reasoning text, only reasoning_tokens in usage "
    "(profile openai: reasoning_out none)"
)
ANTHROPIC_NO_JSON_MODE = (
    "Anthropic Messages has no response_format; the adapter refuses it with a 400 rather than "
    "drop it silently"
)
ANTHROPIC_QUIRKS = "require_reasoning_replay"  # Anthropic's rule for thinking in tool loops
THINKS = "reasoning=4"  # a model that always reasons: every answer carries reasoning first
R1 = "deepseek-ai/DeepSeek-R1"


@dataclass(frozen=True, slots=True)
class Target:
    """One provider as the gateway is configured for it. `id` is both the provider id and the
    served model name; `profile` is the OpenAI-compatible adapter's profile (None for the
    Anthropic adapter); `quirks` are mock script tokens added to every scripted answer."""

    id: str
    wire: Wire
    upstream_model: str
    profile: str | None = None
    quirks: str = ""
    reasoning: Reasoning | None = "reasoning_content"
    absent: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.absent) - set(CAPABILITIES))
        if unknown:
            raise ValueError(f"target {self.id}: unknown capabilities {unknown}")
        if (self.reasoning is None) != ("reasoning" in self.absent):
            raise ValueError(f"target {self.id}: declare a reasoning kind, or why there is none")
        if any(not why.strip() for why in self.absent.values()):
            raise ValueError(f"target {self.id}: every absent capability needs a reason")
        parse_script(self.quirks)  # a typo in a quirk fails at collection

    def lacks(self, capability: str) -> str | None:
        """Why the target lacks `capability`, or None when it has it."""
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown capability {capability!r}")
        return self.absent.get(capability)

    @property
    def refused(self) -> tuple[str, ...]:
        """The request fields this host answers 400 for (its mock's `refuse=` quirk)."""
        return parse_script(self.quirks).refuse

    @property
    def requires_replay(self) -> bool:
        """The host refuses a tool loop whose reasoning did not come back."""
        return parse_script(self.quirks).require_reasoning_replay


def _openai(
    profile: str,
    model: str,
    *,
    quirks: str = "",
    reasoning: Reasoning | None = "reasoning_content",
    absent: Mapping[str, str] | None = None,
) -> Target:
    return Target(profile, "openai", model, profile, quirks, reasoning, absent or {})


def _anthropic(target_id: str, model: str) -> Target:
    return Target(
        id=target_id,
        wire="anthropic",
        upstream_model=model,
        quirks=ANTHROPIC_QUIRKS,
        reasoning="thinking_blocks",
        absent={"json_mode": ANTHROPIC_NO_JSON_MODE},
    )


TARGETS: tuple[Target, ...] = (
    # An o-series model: the profile's refusals apply, and max_tokens is renamed because these
    # models reject it.
    _openai(
        "openai",
        "o4-mini",
        quirks="refuse=max_tokens+temperature+top_p+presence_penalty+frequency_penalty"
        "+logprobs+top_logprobs",
        reasoning=None,
        absent={"reasoning": NO_REASONING_TEXT},
    ),
    # deepseek-reasoner refuses logprobs and answers 400 when a tool turn's reasoning is missing.
    _openai(
        "deepseek",
        "deepseek-reasoner",
        quirks=f"{THINKS},refuse=logprobs+top_logprobs,require_reasoning_replay",
    ),
    # Qwen's hybrid models think only when asked (enable_thinking).
    _openai("dashscope", "qwen-plus"),
    # Kimi asks agents to keep reasoning across tool calls (not documented as a 400); the mock
    # refuses, which proves the replay the profile promises.
    _openai("moonshot", "kimi-k2-thinking", quirks=f"{THINKS},require_reasoning_replay"),
    # GLM takes no penalties, no stream_options and max_tokens (not max_completion_tokens).
    _openai(
        "zai",
        "glm-4.6",
        quirks=f"{THINKS},require_reasoning_replay,"
        "refuse=stream_options+frequency_penalty+presence_penalty+max_completion_tokens",
        absent={"stream_usage": "GLM takes no stream_options (profile zai: stream_usage false)"},
    ),
    # MiniMax M2 thinks inline in <think> tags and wants the whole turn, tags included, back.
    _openai(
        "minimax",
        "MiniMax-M2",
        quirks=f"{THINKS},think_tags,require_reasoning_replay",
        reasoning="think_tags",
    ),
    _openai("together", R1, quirks=f"{THINKS},think_tags", reasoning="think_tags"),
    _openai("fireworks", "accounts/fireworks/models/deepseek-r1", quirks=THINKS),
    _openai(
        "groq",
        "openai/gpt-oss-120b",
        quirks=f"{THINKS},reasoning_field=reasoning",
        reasoning="reasoning",
    ),
    _openai("deepinfra", R1, quirks=f"{THINKS},think_tags", reasoning="think_tags"),
    _openai(
        "openrouter",
        "deepseek/deepseek-r1",
        quirks=f"{THINKS},reasoning_field=reasoning",
        reasoning="reasoning",
    ),
    # Hybrid models, reasoning only when a scenario asks for it.
    _openai("vllm", "Qwen/Qwen3-8B", quirks="reasoning_field=reasoning", reasoning="reasoning"),
    _openai("sglang", "Qwen/Qwen3-8B"),
    _openai(
        "ollama",
        "qwen3:8b",
        quirks="reasoning_field=reasoning",
        reasoning="reasoning",
        absent={
            "cached_usage": "Ollama's OpenAI-compatible usage has no prompt_tokens_details "
            "(docs.ollama.com/api/openai-compatibility)"
        },
    ),
    _openai("llamacpp", "qwen3-8b"),
    _anthropic("anthropic", "claude-sonnet-4-5"),
    _anthropic("deepseek-anthropic", "deepseek-reasoner"),
    _anthropic("moonshot-anthropic", "kimi-k2-thinking"),
    _anthropic("zai-anthropic", "glm-4.6"),
    _anthropic("minimax-anthropic", "MiniMax-M2"),
)
