"""What the scenarios drive and read: the gateway config that serves every target from one mock
upstream, the per-test context (the official clients, the target's scripted mock), and readers
for what the upstream received, in either wire format."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
from openai import OpenAI

from conformance.providers import TARGETS, Target
from crossroads.mockupstream import MockUpstreamThread

JSON = dict[str, Any]

KEY_ENV = "CONFORMANCE_API_KEY"
SECRET = "sk-conformance-0123456789abcdef"  # the upstream key; no client may ever see it
CLIENT_TIMEOUT = 10.0  # seconds: a broken scenario fails instead of hanging


def gateway_config(mock_url: str) -> JSON:
    """One provider and one served model (both named by the target id) per target, all at the
    mock upstream. No retries, so each client call is exactly one upstream request."""
    providers: JSON = {}
    for target in TARGETS:
        if target.wire == "openai":
            options = {"profile": target.profile}
            section = {"type": "openai", "base_url": mock_url, "options": options}
        else:  # the Anthropic adapter appends /v1/messages to the host root
            section = {"type": "anthropic", "base_url": mock_url.removesuffix("/v1")}
        providers[target.id] = {**section, "api_key_env": KEY_ENV}
    models = [{"name": t.id, "provider": t.id, "upstream_model": t.upstream_model} for t in TARGETS]
    return {
        "embedded": {"enabled": False},
        "auto_providers": False,
        "providers": providers,
        "models": models,
        "routing": {"retries": 0},
        # The suite checks the wire quirks these ids were documented with; that their hosts
        # have since retired them (a catalog fact, tested in test_catalog_routing) is not its
        # subject, so it serves them as live offerings.
        "catalog": {
            "offerings": [
                {
                    "model": "deepseek/deepseek-v3.2-reasoner",
                    "host": "deepseek",
                    "upstream_model": "deepseek-reasoner",
                },
                {
                    "model": "moonshotai/kimi-k2-thinking",
                    "host": "moonshot",
                    "upstream_model": "kimi-k2-thinking",
                },
            ]
        },
    }


@dataclass(frozen=True, slots=True)
class Context:
    """One scenario's view of the world: the official clients pointed at the gateway, and the
    mock upstream behind it, scripted with the target's quirks."""

    target: Target
    openai: OpenAI
    anthropic: anthropic.Anthropic
    mock: MockUpstreamThread
    gateway_url: str  # the gateway's root, for raw HTTP

    @property
    def model(self) -> str:
        """The served name that reaches this target."""
        return self.target.id

    def script(self, *scripts: str) -> None:
        """Queue one mock script per upstream request the scenario will cause, each with the
        target's quirks in front."""
        quirks = self.target.quirks
        self.mock.script([f"{quirks},{s}" if quirks else s for s in scripts])

    def received(self) -> list[JSON]:
        """The request bodies the upstream received, oldest first."""
        return [r["json"] for r in self.mock.requests()]


# --- what the upstream received, in its own wire format -------------------------------------


def _blocks(message: JSON) -> Iterator[JSON]:
    content = message.get("content")
    if isinstance(content, list):
        yield from (b for b in content if isinstance(b, dict))


def sent_call_ids(body: JSON) -> list[str]:
    """The ids of the tool calls in the assistant turns of a request the upstream received."""
    ids: list[str] = []
    for message in body["messages"]:
        if message["role"] != "assistant":
            continue
        ids += [c["id"] for c in message.get("tool_calls") or []]
        ids += [b["id"] for b in _blocks(message) if b.get("type") == "tool_use"]
    return ids


def sent_result_ids(body: JSON) -> list[str]:
    """The tool-call ids the tool results answer, in a request the upstream received."""
    ids = [m["tool_call_id"] for m in body["messages"] if m["role"] == "tool"]
    for message in body["messages"]:
        ids += [b["tool_use_id"] for b in _blocks(message) if b.get("type") == "tool_result"]
    return ids


def sent_reasoning(body: JSON) -> str:
    """The reasoning of the last assistant turn of a request the upstream received, in whichever
    form the host takes it back: `reasoning_content`, a `<think>` block or a thinking block."""
    message = [m for m in body["messages"] if m["role"] == "assistant"][-1]
    if message.get("reasoning_content"):
        return str(message["reasoning_content"])
    content = message.get("content")
    if isinstance(content, str) and "<think>" in content:
        return content.split("<think>", 1)[1].split("</think>", 1)[0]
    return "".join(b["thinking"] for b in _blocks(message) if b.get("type") == "thinking")
