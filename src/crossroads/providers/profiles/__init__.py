"""Provider profiles: declarative data about OpenAI-compatible hosts (what each refuses, renames
and ignores, how it takes and returns reasoning) plus the pure functions that apply it.

Shared by provider adapters; it is data and pure functions, not a provider, and imports none."""

from crossroads.providers.profiles.loader import GENERIC, Profiles, load_builtin, load_documents
from crossroads.providers.profiles.model import (
    Profile,
    ReasoningKnob,
    ReasoningOut,
    Rule,
    ToolChoiceSupport,
)
from crossroads.providers.profiles.reasoning import (
    EFFORT_BUDGETS,
    ReasoningAsk,
    apply_reasoning,
    read_ask,
)
from crossroads.providers.profiles.request import Policy, Prepared, prepare_request

__all__ = [
    "EFFORT_BUDGETS",
    "GENERIC",
    "Policy",
    "Prepared",
    "Profile",
    "Profiles",
    "ReasoningAsk",
    "ReasoningKnob",
    "ReasoningOut",
    "Rule",
    "ToolChoiceSupport",
    "apply_reasoning",
    "load_builtin",
    "load_documents",
    "prepare_request",
    "read_ask",
]
