"""The request converter: an OpenAI-format chat request in, an Anthropic Messages request out
(`build_request`). Pure, no I/O. Answers come back through `answer.py` and `stream.py`.

Source for the Anthropic side: the Messages API reference, "Tool use", "Vision" and "Extended
thinking" guides."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

import orjson

from crossroads.errors import UpstreamError
from crossroads.providers.anthropic.wire import (
    EFFORT_BUDGETS,
    THINKING_MIN_BUDGET,
    ContentBlock,
    ImageBlock,
    MessageParam,
    MessagesRequest,
    TextBlock,
    ThinkingConfig,
    ToolChoice,
    ToolParam,
    ToolResultBlock,
    ToolUseBlock,
)

__all__ = ["build_request", "unservable"]

JSON = dict[str, Any]

_DATA_URL = re.compile(r"data:(?P<media>[^;,]+);base64,(?P<data>.*)", re.DOTALL)
_TEXT_PARTS = frozenset({"text", "refusal"})
_EMPTY_SCHEMA: JSON = {"type": "object", "properties": {}}


def unservable(message: str, code: str) -> UpstreamError:
    """A request this adapter cannot send to an Anthropic upstream: the client's to fix, so
    HTTP 400 and not retryable (another Anthropic deployment would refuse it the same way)."""
    return UpstreamError(message, retryable=False, status=400, code=code)


def build_request(body: Mapping[str, Any], *, default_max_tokens: int) -> MessagesRequest:
    """The Anthropic Messages request for the OpenAI-format chat request `body` (not mutated).

    Only fields Anthropic knows are sent; the others are dropped, because Anthropic rejects
    unknown fields. `stream` is left for the caller to set.

    Raises UpstreamError(status 400, retryable False) for what Anthropic cannot serve: `n` > 1,
    `logprobs`, a `response_format` other than text, audio or file content, an image URL that
    is neither a base64 data URL nor http(s), tool-call arguments that are not a JSON object,
    an unknown role, tool choice or reasoning effort.
    """
    _refuse_unsupported(body)
    system, messages = _convert_messages(body.get("messages"))
    max_tokens = _positive_int(body.get("max_completion_tokens")) or _positive_int(
        body.get("max_tokens")
    )
    request: MessagesRequest = {
        "model": str(body.get("model", "")),
        "max_tokens": max_tokens or default_max_tokens,
        "messages": messages,
    }
    if system:
        request["system"] = system
    stop = body.get("stop")
    if isinstance(stop, str):
        request["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        request["stop_sequences"] = [str(s) for s in stop]
    temperature = _number(body.get("temperature"))
    if temperature is not None:
        request["temperature"] = temperature
    top_p = _number(body.get("top_p"))
    if top_p is not None:
        request["top_p"] = top_p
    top_k = _positive_int(body.get("top_k"))
    if top_k:
        request["top_k"] = top_k
    user = body.get("user")
    if isinstance(user, str) and user:
        request["metadata"] = {"user_id": user}
    _add_tools(request, body)
    thinking = _thinking(body)
    if thinking is not None:
        budget = thinking.get("budget_tokens", 0)
        if budget >= request["max_tokens"]:
            # Anthropic requires budget_tokens < max_tokens, and thinking counts against
            # max_tokens. Raise the cap by the budget so the answer keeps the room the client
            # asked for, rather than failing the request or leaving no room to answer.
            request["max_tokens"] = budget + request["max_tokens"]
        request["thinking"] = thinking
    return request


def _refuse_unsupported(body: Mapping[str, Any]) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise unservable(
            "Anthropic upstreams return one choice per request: n must be 1", "n_unsupported"
        )
    if body.get("logprobs") or body.get("top_logprobs"):
        raise unservable(
            "logprobs are not supported by Anthropic upstreams", "logprobs_unsupported"
        )
    response_format = body.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type", "text") != "text":
        raise unservable(
            "response_format is not supported by Anthropic upstreams", "response_format_unsupported"
        )


def _positive_int(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    return value if ok else None


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else None


def _text_of(content: Any) -> str:
    """The text of a `content` that is a string or a list of text (or refusal) parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = []
    for part in content:
        if isinstance(part, Mapping) and part.get("type") in _TEXT_PARTS:
            texts.append(str(part.get("text") or part.get("refusal") or ""))
    return "".join(texts)


def _convert_messages(raw: Any) -> tuple[str, list[MessageParam]]:
    """(system text, turns): system and developer messages move to the top-level `system`;
    tool results become user turns; adjacent turns of one role merge, because Anthropic
    requires user and assistant turns to alternate."""
    if not isinstance(raw, list):
        raise unservable("messages must be a list", "invalid_messages")
    system: list[str] = []
    turns: list[MessageParam] = []
    for index, message in enumerate(raw):
        if not isinstance(message, Mapping):
            raise unservable(f"messages[{index}] must be an object", "invalid_messages")
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            text = _text_of(content)
            if text:
                system.append(text)
            continue
        if role == "user":
            _append(turns, "user", _user_blocks(content, index))
        elif role == "assistant":
            _append(turns, "assistant", _assistant_blocks(message, index))
        elif role == "tool":
            _append(turns, "user", [_tool_result(message)])
        else:
            raise unservable(f"messages[{index}] has an unknown role {role!r}", "invalid_messages")
    return "\n\n".join(system), turns


def _append(
    turns: list[MessageParam], role: Literal["user", "assistant"], blocks: list[ContentBlock]
) -> None:
    if not blocks:  # Anthropic rejects empty turns and empty text blocks
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _text_block(text: str) -> list[ContentBlock]:
    return [TextBlock(type="text", text=text)] if text else []


def _user_blocks(content: Any, index: int) -> list[ContentBlock]:
    if isinstance(content, str):
        return _text_block(content)
    blocks: list[ContentBlock] = []
    for part in content if isinstance(content, list) else []:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            blocks += _text_block(str(part.get("text") or ""))
        elif kind == "image_url":
            blocks.append(_image_block(part.get("image_url"), index))
        else:
            raise unservable(
                f"messages[{index}]: Anthropic upstreams accept text and image parts only, "
                f"not {kind!r}",
                "content_part_unsupported",
            )
    return blocks


def _image_block(image_url: Any, index: int) -> ImageBlock:
    url = image_url.get("url") if isinstance(image_url, Mapping) else image_url
    url = url if isinstance(url, str) else ""
    match = _DATA_URL.fullmatch(url)
    if match:
        source = {"type": "base64", "media_type": match["media"], "data": match["data"]}
        return {"type": "image", "source": source}  # type: ignore[typeddict-item]
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise unservable(
        f"messages[{index}]: an image must be a base64 data URL or an http(s) URL",
        "invalid_image_url",
    )


def _assistant_blocks(message: Mapping[str, Any], index: int) -> list[ContentBlock]:
    blocks: list[ContentBlock] = []
    reasoning = message.get("reasoning_content")
    signature = message.get("reasoning_signature")
    # Anthropic verifies the signature of a thinking block sent back to it and rejects one
    # without, so unsigned reasoning (from another host, or an edited history) is dropped.
    if isinstance(reasoning, str) and reasoning and isinstance(signature, str) and signature:
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": signature})
    blocks += _text_block(_text_of(message.get("content")))
    calls = message.get("tool_calls")
    for position, call in enumerate(calls if isinstance(calls, list) else []):
        blocks.append(_tool_use(call, f"messages[{index}].tool_calls[{position}]"))
    return blocks


def _tool_use(call: Any, where: str) -> ToolUseBlock:
    function = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(function, Mapping):
        raise unservable(f"{where} has no function", "invalid_tool_call")
    name = str(function.get("name") or "")
    call_id = str(call.get("id") or "")
    arguments = function.get("arguments")
    parsed: Any = {}
    # Some models write "" for a call without arguments; that means no arguments, not an error.
    if isinstance(arguments, str) and arguments.strip():
        try:
            parsed = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            parsed = None
    if not isinstance(parsed, dict):
        raise unservable(
            f"{where} (function '{name}', id '{call_id}'): arguments are not a JSON object",
            "invalid_tool_call_arguments",
        )
    return {"type": "tool_use", "id": call_id, "name": name, "input": parsed}


def _tool_result(message: Mapping[str, Any]) -> ToolResultBlock:
    content = message.get("content")
    result: str | list[TextBlock]
    if isinstance(content, list):
        result = [TextBlock(type="text", text=_text_of([p])) for p in content if _text_of([p])]
    else:
        result = str(content) if content is not None else ""
    call_id = str(message.get("tool_call_id") or "")
    return {"type": "tool_result", "tool_use_id": call_id, "content": result}


def _add_tools(request: MessagesRequest, body: Mapping[str, Any]) -> None:
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools:
        return  # Anthropic rejects a tool_choice without tools, so it goes too
    converted: list[ToolParam] = []
    for position, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or tool.get("type", "function") != "function":
            raise unservable(f"tools[{position}] is not a function tool", "tool_type_unsupported")
        param: ToolParam = {
            "name": str(function.get("name") or ""),
            "input_schema": dict(function.get("parameters") or _EMPTY_SCHEMA),
        }
        if function.get("description"):
            param["description"] = str(function["description"])
        converted.append(param)
    request["tools"] = converted
    choice = _tool_choice(body.get("tool_choice"))
    if body.get("parallel_tool_calls") is False:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    if choice is not None:
        request["tool_choice"] = choice


def _tool_choice(choice: Any) -> ToolChoice | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    function = choice.get("function") if isinstance(choice, Mapping) else None
    if isinstance(function, Mapping) and isinstance(function.get("name"), str):
        return {"type": "tool", "name": function["name"]}
    raise unservable(f"unknown tool_choice {choice!r}", "invalid_tool_choice")


def _effort_budget(effort: Any) -> int:
    budget = EFFORT_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None:
        raise unservable(
            f"unknown reasoning effort {effort!r}; use low, medium or high",
            "invalid_reasoning_effort",
        )
    return budget


def _thinking(body: Mapping[str, Any]) -> ThinkingConfig | None:
    """The `thinking` config from the neutral `reasoning` extension ({enabled, max_tokens,
    effort}) or OpenAI's `reasoning_effort`; None when the request says nothing about it."""
    reasoning = body.get("reasoning")
    if isinstance(reasoning, Mapping):
        if reasoning.get("enabled") is False:
            return {"type": "disabled"}
        budget = _positive_int(reasoning.get("max_tokens"))
        if budget is None and reasoning.get("effort") is not None:
            budget = _effort_budget(reasoning.get("effort"))
        if budget is None and reasoning.get("enabled") is True:
            budget = EFFORT_BUDGETS["medium"]
    else:
        effort = body.get("reasoning_effort")
        if effort is None:
            return None
        if effort == "none":
            return {"type": "disabled"}
        budget = _effort_budget(effort)
    if budget is None:
        return None
    return {"type": "enabled", "budget_tokens": max(budget, THINKING_MIN_BUDGET)}
