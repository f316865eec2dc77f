"""Fits an OpenAI-format chat request to a host's profile before it is sent: renames, refused
parameters (dropped or refused, by policy), tool choice, and the reasoning knob. Pure: the
caller's body is never mutated, and is returned as is when nothing needs to change."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from crossroads.errors import UpstreamError
from crossroads.providers.profiles.model import Profile
from crossroads.providers.profiles.reasoning import ReasoningAsk, apply_reasoning, read_ask

__all__ = ["Policy", "Prepared", "prepare_request"]

Policy = Literal["drop", "reject"]
"""What to do with a parameter the host refuses: drop it (and report it), or refuse the request
with a 400 before anything is sent upstream."""

_NEEDS_REASONING = ("reasoning", "reasoning_effort")
_OWN_EFFORT = frozenset({"openai_effort", "kimi"})  # hosts that understand `reasoning_effort`


@dataclass(frozen=True, slots=True)
class Prepared:
    """The body to send, the client parameters left out of it (in the order met), and the
    client's reasoning request (None when it made none)."""

    body: Mapping[str, Any]
    dropped: tuple[str, ...] = ()
    reasoning: ReasoningAsk | None = None

    @property
    def exclude_reasoning(self) -> bool:
        return self.reasoning is not None and self.reasoning.exclude


def _refusal(provider: str, profile: Profile, param: str, why: str) -> UpstreamError:
    error = UpstreamError(
        f"provider '{provider}' ({profile.name}) does not accept '{param}': {why}. Remove it, "
        "or ask the gateway operator to set on_unsupported: drop for this provider.",
        retryable=False,
        status=400,
        code="unsupported_parameter",
    )
    error.param = param
    return error


def prepare_request(
    profile: Profile, body: Mapping[str, Any], *, policy: Policy, provider: str
) -> Prepared:
    """The request as `profile`'s host will accept it.

    In order: `renames` (when both names are present the host's own wins and the other is
    dropped); `refuses` for the body's model; `tool_choice` on hosts that take only "auto"
    ("none" removes the tools, so nothing can be called; "required" or a named function becomes
    "auto"); then the reasoning knob. A refused parameter sent as null is removed silently.

    Raises UpstreamError (400, not retryable, `param` set) under the `reject` policy for the
    first refused parameter present, or for a malformed `reasoning` field.
    """
    out: dict[str, Any] | None = None
    dropped: list[str] = []

    def edit() -> dict[str, Any]:
        nonlocal out
        if out is None:
            out = dict(body)
        return out

    for source, target in profile.renames.items():
        if source in body:
            copy = edit()
            value = copy.pop(source)
            if target in copy:
                if value is not None:
                    dropped.append(source)
            else:
                copy[target] = value
    model = body.get("model")
    for param, why in profile.refused(model if isinstance(model, str) else ""):
        current = out if out is not None else body
        if param not in current:
            continue
        if current[param] is not None:
            if policy == "reject":
                raise _refusal(provider, profile, param, why)
            dropped.append(param)
        edit().pop(param)
    if profile.tool_choice == "auto_only":
        _auto_only_tools(profile, body if out is None else out, edit, dropped, policy, provider)
    ask = None
    current = body if out is None else out
    if any(name in current for name in _NEEDS_REASONING):
        # Hosts that take the client's fields as they are need no copy of the body.
        as_is = profile.reasoning in ("openrouter", "passthrough") or (
            "reasoning" not in current and profile.reasoning in _OWN_EFFORT
        )
        ask = read_ask(current) if as_is else apply_reasoning(profile.reasoning, edit())
    return Prepared(body if out is None else out, tuple(dropped), ask)


def _auto_only_tools(
    profile: Profile,
    current: Mapping[str, Any],
    edit: Callable[[], dict[str, Any]],
    dropped: list[str],
    policy: Policy,
    provider: str,
) -> None:
    choice = current.get("tool_choice")
    if choice is None or choice == "auto":
        return
    if policy == "reject":
        raise _refusal(provider, profile, "tool_choice", f'only "auto" is accepted, not {choice!r}')
    copy = edit()
    if choice == "none":
        # Degrading "none" to "auto" could call a tool the client forbade; without the tools
        # the model cannot call one, which is what "none" asks for.
        copy.pop("tools", None)
        copy.pop("tool_choice")
        copy.pop("parallel_tool_calls", None)
    else:
        copy["tool_choice"] = "auto"
    dropped.append("tool_choice")
