"""The shape of a provider profile: what an OpenAI-compatible host refuses, renames and ignores,
and how it speaks reasoning. Decoded from `data/<id>.yaml` by `loader.py`; frozen, pure data."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Literal

import msgspec

__all__ = [
    "Profile",
    "ReasoningKnob",
    "ReasoningOut",
    "Rule",
    "ToolChoiceSupport",
]

ReasoningKnob = Literal[
    "deepseek",
    "qwen_enable_thinking",
    "glm_thinking",
    "kimi",
    "openai_effort",
    "openrouter",
    "passthrough",
    "none",
]
"""How the neutral `reasoning` request field is sent to the host:

- `deepseek`: `thinking: {type: enabled|disabled}` and `reasoning_effort` (DeepSeek thinking mode);
- `qwen_enable_thinking`: `enable_thinking: bool` and `thinking_budget: int` (DashScope);
- `glm_thinking`: `thinking: {type: enabled|disabled}` (Z.ai);
- `kimi`: nothing: thinking is chosen by the model id (a thinking model);
- `openai_effort`: `reasoning_effort` (OpenAI and most OpenAI-compatible servers);
- `openrouter`: the neutral object itself, which is OpenRouter's own `reasoning` parameter;
- `passthrough`: the host is unknown (the `generic` profile): the client's fields go as sent;
- `none`: the host has no knob; the fields are removed.
"""

ReasoningOut = Literal["reasoning_content", "reasoning", "think_tags", "none"]
"""Where the host puts reasoning in its answers:

- `reasoning_content`: beside `content` in messages and deltas (the neutral form: passed through);
- `reasoning`: in a field named `reasoning`, renamed to `reasoning_content` on the way out;
- `think_tags`: inline in `content` as `<think>...</think>`, split out into `reasoning_content`
  (a `reasoning` field, where one also comes, is renamed too);
- `none`: the host returns no reasoning text.
"""

ToolChoiceSupport = Literal["full", "auto_only"]


class Rule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Request parameters a host treats specially, for the models matching `models` (shell-style
    patterns on the upstream model id, case-sensitive; empty: every model). `why` says what
    the host's documentation says, for error messages."""

    params: tuple[str, ...]
    why: str
    models: tuple[str, ...] = ()

    def applies_to(self, model: str) -> bool:
        return not self.models or any(fnmatchcase(model, pattern) for pattern in self.models)


class Profile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What one family of OpenAI-compatible hosts accepts and returns.

    `hosts` are the catalog host ids this profile serves by default. `refuses` lists parameters
    the host rejects (dropped or refused per the provider's `on_unsupported` option); `ignores`
    lists parameters the host accepts but documents as having no effect (sent unchanged; the
    list is for operators). `renames` maps a parameter the client may send to the name the host
    understands (`max_completion_tokens: max_tokens`). `stream_usage` says whether the host
    accepts `stream_options.include_usage`. `reasoning_replay` makes the adapter remember the
    reasoning of assistant turns that ended in tool calls and send it back when an agent drops
    it (hosts that need or want it in tool loops). `docs` are the sources of the facts.
    """

    id: str
    name: str
    docs: tuple[str, ...]
    hosts: tuple[str, ...] = ()
    refuses: tuple[Rule, ...] = ()
    ignores: tuple[Rule, ...] = ()
    renames: dict[str, str] = {}
    stream_usage: bool = True
    reasoning: ReasoningKnob = "passthrough"
    reasoning_out: ReasoningOut = "reasoning_content"
    reasoning_replay: bool = False
    tool_choice: ToolChoiceSupport = "full"

    def refused(self, model: str) -> list[tuple[str, str]]:
        """(parameter, why) for every parameter this host refuses for `model`, in file order."""
        return [
            (p, rule.why) for rule in self.refuses if rule.applies_to(model) for p in rule.params
        ]
