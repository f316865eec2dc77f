"""Every scenario against every provider target, through one real gateway that serves each
target from a mock upstream speaking that target's wire format and quirks. A scenario is skipped
only where the target declares a capability it needs absent, with the declared reason. The
target table itself is checked against the shipped provider profiles."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest
from openai import OpenAI

from conformance.harness import (
    CLIENT_TIMEOUT,
    KEY_ENV,
    SECRET,
    Context,
    gateway_config,
)
from conformance.providers import TARGETS, Target
from conformance.scenarios import SCENARIOS, Scenario
from conftest import client
from crossroads.mockupstream import MockUpstreamThread, run_in_thread
from crossroads.providers.profiles import GENERIC, load_builtin
from support.gateway import GatewayThread, gateway_for


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockUpstreamThread]:
    with run_in_thread() as mock:
        yield mock


@pytest.fixture(scope="module")
def served(
    upstream: MockUpstreamThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    """One gateway for the whole catalogue: a provider and a served model per target."""
    folder = tmp_path_factory.mktemp("conformance")
    with gateway_for(folder, gateway_config(upstream.url), {KEY_ENV: SECRET}) as gw:
        yield gw


@pytest.fixture(scope="module")
def clients(served: GatewayThread) -> tuple[OpenAI, anthropic.Anthropic]:
    """The official clients, shared by every scenario (making one costs more than a scenario);
    closed when the gateway stops."""
    anthropic_client = anthropic.Anthropic(
        base_url=served.url, api_key="unused", max_retries=0, timeout=CLIENT_TIMEOUT
    )
    served.clients.append(anthropic_client)
    return client(served, timeout=CLIENT_TIMEOUT), anthropic_client


def _skip_reason(scenario: Scenario, target: Target) -> str | None:
    for capability in scenario.needs:
        why = target.lacks(capability)
        if why is not None:
            return f"{target.id} has no {capability}: {why}"
    return None


def _case(target: Target, scenario: Scenario) -> object:
    reason = _skip_reason(scenario, target)
    marks = [pytest.mark.skip(reason=reason)] if reason else []
    return pytest.param(target, scenario, id=f"{target.id}-{scenario.name}", marks=marks)


@pytest.mark.parametrize(("target", "scenario"), [_case(t, s) for t in TARGETS for s in SCENARIOS])
def test_conformance(
    served: GatewayThread,
    upstream: MockUpstreamThread,
    clients: tuple[OpenAI, anthropic.Anthropic],
    target: Target,
    scenario: Scenario,
) -> None:
    upstream.wait_idle()
    upstream.clear()
    openai_client, anthropic_client = clients
    ctx = Context(target, openai_client, anthropic_client, upstream, served.url)
    scenario.run(ctx, target)


# --- the table is true to the profiles ------------------------------------------------------


def test_every_profile_has_a_target() -> None:
    profiles = set(load_builtin().by_id) - {GENERIC}
    assert profiles <= {t.profile for t in TARGETS}


@pytest.mark.parametrize("target", [t for t in TARGETS if t.wire == "openai"], ids=lambda t: t.id)
def test_target_agrees_with_its_profile(target: Target) -> None:
    """The mock refuses what the profile says the host refuses or renames away, returns
    reasoning where the profile says the host puts it, and needs it back where the profile
    replays it; stream usage is declared as the profile asks for it."""
    assert target.profile is not None
    profile = load_builtin().get(target.profile)
    refused = {param for param, _ in profile.refused(target.upstream_model)}
    assert set(target.refused) == refused | set(profile.renames)
    kind = target.reasoning or "none"
    quirks = set(target.quirks.split(","))
    assert profile.reasoning_out == kind
    assert ("think_tags" in quirks) == (kind == "think_tags")
    assert ("reasoning_field=reasoning" in quirks) == (kind == "reasoning")
    assert profile.reasoning_replay == target.requires_replay
    assert profile.stream_usage == (target.lacks("stream_usage") is None)
