"""Provider profiles: every shipped profile loads and names real catalog hosts; requests are
fitted to a profile (renames, refused parameters dropped or refused, tool choice degraded)
without touching the caller's body; bad profile files fail with the file named."""

from __future__ import annotations

from typing import Any

import pytest

from crossroads.catalog import load_builtin as load_catalog
from crossroads.errors import ConfigError, UpstreamError
from crossroads.providers.base import ProviderSpec
from crossroads.providers.openai_compat.settings import Settings
from crossroads.providers.profiles import (
    GENERIC,
    Profile,
    load_builtin,
    load_documents,
    prepare_request,
)

EXPECTED = {
    "openai", "deepseek", "dashscope", "moonshot", "zai", "minimax", "together", "fireworks",
    "groq", "deepinfra", "openrouter", "vllm", "sglang", "ollama", "llamacpp", GENERIC,
}  # fmt: skip
USER = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


def zai() -> Profile:
    return load_builtin().get("zai")


def prepare(profile: Profile, body: dict[str, Any], policy: str = "drop") -> Any:
    return prepare_request(profile, body, policy=policy, provider="glm")  # type: ignore[arg-type]


def test_every_profile_loads_and_each_host_maps_to_one() -> None:
    profiles = load_builtin()
    assert set(profiles.by_id) == EXPECTED
    hosts = {host.id for host in load_catalog().hosts()}
    assert set(profiles.by_host) <= hosts
    for host in ("dashscope-intl", "dashscope-us", "dashscope-cn"):
        assert profiles.by_host[host] == "dashscope"
    for profile in profiles.by_id.values():
        assert profile.docs and all(url.startswith("https://") for url in profile.docs)


def test_profile_resolution_explicit_then_host_then_generic() -> None:
    profiles = load_builtin()
    assert profiles.for_provider(explicit=None, catalog_host="zai").id == "zai"
    assert profiles.for_provider(explicit="vllm", catalog_host="zai").id == "vllm"
    assert profiles.for_provider(explicit=None, catalog_host=None).id == GENERIC
    assert profiles.for_provider(explicit=None, catalog_host="google").id == GENERIC
    with pytest.raises(ConfigError, match=r"unknown provider profile 'glm'.*zai"):
        profiles.for_provider(explicit="glm", catalog_host=None)


def test_glm_drops_refused_params_renames_and_keeps_the_rest() -> None:
    body = {
        "model": "glm-4.6",
        "messages": USER,
        "frequency_penalty": 0.5,
        "presence_penalty": 0.1,
        "max_completion_tokens": 100,
        "temperature": 0.3,
        "top_p": 0.9,
    }
    original = dict(body)
    prepared = prepare(zai(), body)
    assert prepared.dropped == ("frequency_penalty", "presence_penalty")
    assert prepared.body == {
        "model": "glm-4.6",
        "messages": USER,
        "max_tokens": 100,
        "temperature": 0.3,
        "top_p": 0.9,
    }
    assert body == original  # the caller's body is never mutated


def test_rename_when_both_names_are_sent_keeps_the_hosts_own() -> None:
    prepared = prepare(zai(), {"model": "g", "max_tokens": 5, "max_completion_tokens": 9})
    assert prepared.body == {"model": "g", "max_tokens": 5}
    assert prepared.dropped == ("max_completion_tokens",)


def test_glm_reject_policy_names_the_parameter_and_host() -> None:
    with pytest.raises(UpstreamError) as err:
        prepare(zai(), {"model": "g", "messages": USER, "presence_penalty": 1}, "reject")
    assert err.value.status == 400 and not err.value.retryable
    assert err.value.param == "presence_penalty"
    assert "'glm'" in err.value.message and "Z.ai" in err.value.message
    # Renames are not refusals: the same request without the penalty goes through.
    assert prepare(zai(), {"model": "g", "max_completion_tokens": 3}, "reject").dropped == ()


def test_glm_stream_options_refused_and_null_params_dropped_silently() -> None:
    body = {"model": "g", "stream": True, "stream_options": {"include_usage": True}}
    assert prepare(zai(), body).dropped == ("stream_options",)
    quiet = prepare(zai(), {"model": "g", "frequency_penalty": None}, "reject")
    assert quiet.dropped == () and "frequency_penalty" not in quiet.body


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("required", {"tools": TOOLS, "tool_choice": "auto"}),
        ({"type": "function", "function": {"name": "f"}}, {"tools": TOOLS, "tool_choice": "auto"}),
        ("none", {}),
    ],
)
def test_glm_tool_choice_degrades_to_auto_or_removes_the_tools(
    choice: Any, expected: dict[str, Any]
) -> None:
    body = {"model": "g", "tools": TOOLS, "tool_choice": choice, "parallel_tool_calls": True}
    prepared = prepare(zai(), body)
    assert prepared.dropped == ("tool_choice",)
    kept = {k: v for k, v in prepared.body.items() if k in ("tools", "tool_choice")}
    assert kept == expected


def test_glm_tool_choice_auto_passes_and_reject_refuses_others() -> None:
    body = {"model": "g", "tools": TOOLS, "tool_choice": "auto"}
    assert prepare(zai(), body).body is body  # nothing to change: the same object
    with pytest.raises(UpstreamError) as err:
        prepare(zai(), {**body, "tool_choice": "required"}, "reject")
    assert err.value.param == "tool_choice"


def test_model_scoped_refusals() -> None:
    deepseek = load_builtin().get("deepseek")
    logprobs = {"messages": USER, "logprobs": True, "top_logprobs": 2}
    assert prepare(deepseek, {"model": "deepseek-reasoner", **logprobs}).dropped == (
        "logprobs",
        "top_logprobs",
    )
    assert prepare(deepseek, {"model": "deepseek-chat", **logprobs}).dropped == ()
    openai = load_builtin().get("openai")
    reasoning_model = prepare(openai, {"model": "o3-mini", "temperature": 1, "max_tokens": 9})
    assert reasoning_model.body == {"model": "o3-mini", "max_completion_tokens": 9}
    chat_model = prepare(openai, {"model": "gpt-4.1", "temperature": 1})
    assert chat_model.dropped == () and chat_model.body["temperature"] == 1


def test_generic_profile_leaves_requests_alone() -> None:
    generic = load_builtin().get(GENERIC)
    body = {"model": "m", "messages": USER, "frequency_penalty": 1, "tool_choice": "required"}
    assert prepare(generic, body).body is body


def test_adapter_settings_pick_the_profile_and_check_options() -> None:
    spec = ProviderSpec(id="p", type="openai", base_url="http://x", catalog_host="zai")
    settings = Settings.from_spec(spec)
    assert settings.profile.id == "zai" and settings.on_unsupported == "drop"
    assert settings.stream_usage is False  # GLM refuses stream_options
    named = ProviderSpec(id="p", type="openai", options={"profile": "vllm", "stream_usage": False})
    assert Settings.from_spec(named).profile.id == "vllm"
    for options, message in [
        ({"profile": "nope"}, "unknown provider profile 'nope'"),
        ({"on_unsupported": "ignore"}, "on_unsupported must be drop or reject"),
        ({"stream_usage": "yes"}, "stream_usage must be true or false"),
        ({"profil": "zai"}, "unknown option"),
        ({"reasoning_cache_size": 0}, "reasoning_cache_size"),
    ]:
        with pytest.raises(ConfigError, match=message):
            Settings.from_spec(ProviderSpec(id="p", type="openai", options=options))


def doc(text: str, name: str = "x") -> tuple[str, bytes]:
    return f"profiles/data/{name}.yaml", text.encode()


GENERIC_DOC = doc("id: generic\nname: G\ndocs: [https://example.com]\n", "generic")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id: x\nname: X\ndocs: [https://a]\nrefuses: [{params: [a]}]\n", "why"),
        ("id: y\nname: X\ndocs: [https://a]\n", "must match the file name"),
        ("id: x\nname: X\ndocs: [http://a]\n", "https://"),
        ("id: x\nname: X\ndocs: [https://a]\nreasoning: magic\n", "reasoning"),
        ("id: x\nname: X\ndocs: [https://a]\nbogus: 1\n", "bogus"),
        ("id: x\nname: X\ndocs: [https://a]\nrenames: {a: b, b: c}\n", "loop"),
        (
            "id: x\nname: X\ndocs: [https://a]\nrenames: {a: b}\n"
            "refuses: [{params: [b], why: w}]\n",
            "refused",
        ),
        ("id: x\nname: X\ndocs: [https://a]\nhosts: [h]\n---\n", "YAML"),
    ],
)
def test_bad_profile_documents_fail_naming_the_file(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load_documents([GENERIC_DOC, doc(text)])
    assert "profiles/data/" in err.value.message


def test_a_host_claimed_twice_and_a_missing_generic_are_errors() -> None:
    first = doc("id: a\nname: A\ndocs: [https://a]\nhosts: [h]\n", "a")
    second = doc("id: b\nname: B\ndocs: [https://b]\nhosts: [h]\n", "b")
    with pytest.raises(ConfigError, match="already served by profile 'a'"):
        load_documents([GENERIC_DOC, first, second])
    with pytest.raises(ConfigError, match="'generic' provider profile is missing"):
        load_documents([first])
