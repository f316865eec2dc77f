"""The request converter: the neutral chat request in, an Anthropic Messages request out
(`build_request` from a JSON-shaped body, `to_messages_request` from the typed request that
`decode_request` makes of it). Pure, no I/O. Answers come back through `answer.py` and
`stream.py`.

Source for the Anthropic side: the Messages API reference, "Tool use", "Vision" and "Extended
thinking" guides."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

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
from crossroads.schemas.chat import (
    AssistantMessage,
    ContentPart,
    DeveloperMessage,
    ImageUrlPart,
    RefusalPart,
    SystemMessage,
    TextPart,
    Tool,
    ToolCall,
    ToolMessage,
    TranslatedRequest,
    UserMessage,
)

__all__ = ["build_request", "decode_request", "to_messages_request", "unservable"]

JSON = dict[str, Any]

_DATA_URL = re.compile(r"data:(?P<media>[^;,]+);base64,(?P<data>.*)", re.DOTALL)
_EMPTY_SCHEMA: JSON = {"type": "object", "properties": {}}
_AT = re.compile(r" - at `\$\.?([^`]*)`$")
_ARGUMENTS = msgspec.json.Decoder(dict[str, Any])


def unservable(message: str, code: str) -> UpstreamError:
    """A request this adapter cannot send to an Anthropic upstream: the client's to fix, so
    HTTP 400 and not retryable (another Anthropic deployment would refuse it the same way)."""
    return UpstreamError(message, retryable=False, status=400, code=code)


def build_request(body: Mapping[str, Any], *, default_max_tokens: int) -> MessagesRequest:
    """The Anthropic Messages request for the OpenAI-format chat request `body` (not mutated):
    `to_messages_request(decode_request(body))`. Raises what those two raise."""
    return to_messages_request(decode_request(body), default_max_tokens=default_max_tokens)


def decode_request(body: Mapping[str, Any]) -> TranslatedRequest:
    """`body` as the typed neutral request, validated once. Raises UpstreamError(status 400,
    retryable False, code `invalid_request`, `param` the field's path) when a field has the
    wrong shape: an unknown role or content part type, a tool call without a function, a
    `reasoning` that is not an object, ..."""
    try:
        return msgspec.convert(body, TranslatedRequest, str_keys=True)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _AT.search(text)
        param = match.group(1) if match else None
        reason = text[: match.start()] if match else text
        error = unservable(
            f"the request cannot be sent to an Anthropic upstream: "
            f"{param + ': ' if param else ''}{reason}",
            "invalid_request",
        )
        error.param = param
        raise error from None


def to_messages_request(req: TranslatedRequest, *, default_max_tokens: int) -> MessagesRequest:
    """The Anthropic Messages request for the neutral request `req` (not mutated).

    Only fields Anthropic knows are sent; the others are dropped, because Anthropic rejects
    unknown fields. `stream` is left for the caller to set.

    Raises UpstreamError(status 400, retryable False) for what Anthropic cannot serve: `n` > 1,
    `logprobs`, a `response_format` other than text, audio or file content, an image URL that
    is neither a base64 data URL nor http(s), tool-call arguments that are not a JSON object,
    an unknown tool choice or reasoning effort.
    """
    _refuse_unsupported(req)
    system, messages = _convert_messages(req)
    max_tokens = _positive(req.max_completion_tokens) or _positive(req.max_tokens)
    request: MessagesRequest = {
        "model": req.model,
        "max_tokens": max_tokens or default_max_tokens,
        "messages": messages,
    }
    if system:
        request["system"] = system
    match req.stop:
        case str(stop):
            request["stop_sequences"] = [stop]
        case [*stops] if stops:
            request["stop_sequences"] = stops
    if req.temperature is not None:
        request["temperature"] = float(req.temperature)
    if req.top_p is not None:
        request["top_p"] = float(req.top_p)
    top_k = _positive(req.top_k)
    if top_k:
        request["top_k"] = top_k
    if req.user:
        request["metadata"] = {"user_id": req.user}
    if req.tools:  # Anthropic rejects a tool_choice without tools, so it goes too
        request["tools"] = [_tool(tool) for tool in req.tools]
        choice = _tool_choice(req)
        if choice is not None:
            request["tool_choice"] = choice
    thinking = _thinking(req)
    if thinking is not None:
        budget = thinking.get("budget_tokens", 0)
        if budget >= request["max_tokens"]:
            # Anthropic requires budget_tokens < max_tokens, and thinking counts against
            # max_tokens. Raise the cap by the budget so the answer keeps the room the client
            # asked for, rather than failing the request or leaving no room to answer.
            request["max_tokens"] = budget + request["max_tokens"]
        request["thinking"] = thinking
    return request


def _refuse_unsupported(req: TranslatedRequest) -> None:
    if req.n is not None and req.n != 1:
        raise unservable(
            "Anthropic upstreams return one choice per request: n must be 1", "n_unsupported"
        )
    if req.logprobs or req.top_logprobs:
        raise unservable(
            "logprobs are not supported by Anthropic upstreams", "logprobs_unsupported"
        )
    if req.response_format is not None and req.response_format.get("type", "text") != "text":
        raise unservable(
            "response_format is not supported by Anthropic upstreams", "response_format_unsupported"
        )


def _positive(value: int | None) -> int | None:
    return value if value is not None and value > 0 else None


def _text_of(content: str | list[TextPart] | list[TextPart | RefusalPart] | None) -> str:
    """The text of a `content` that is a string or a list of text (or refusal) parts."""
    match content:
        case str():
            return content
        case None:
            return ""
    texts = []
    for part in content:
        match part:
            case TextPart(text=text) | RefusalPart(refusal=text):
                texts.append(text)
    return "".join(texts)


def _convert_messages(req: TranslatedRequest) -> tuple[str, list[MessageParam]]:
    """(system text, turns): system and developer messages move to the top-level `system`;
    tool results become user turns; adjacent turns of one role merge, because Anthropic
    requires user and assistant turns to alternate."""
    system: list[str] = []
    turns: list[MessageParam] = []
    for index, message in enumerate(req.messages):
        match message:
            case SystemMessage(content=content) | DeveloperMessage(content=content):
                text = _text_of(content)
                if text:
                    system.append(text)
            case UserMessage(content=content):
                _append(turns, "user", _user_blocks(content, index))
            case AssistantMessage():
                _append(turns, "assistant", _assistant_blocks(message, index))
            case ToolMessage():
                _append(turns, "user", [_tool_result(message)])
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


def _user_blocks(content: str | list[ContentPart], index: int) -> list[ContentBlock]:
    if isinstance(content, str):
        return _text_block(content)
    blocks: list[ContentBlock] = []
    for part in content:
        match part:
            case TextPart(text=text):
                blocks += _text_block(text)
            case ImageUrlPart():
                blocks.append(_image_block(part.image_url.url, index))
            case _:
                kind = type(part).__struct_config__.tag
                raise unservable(
                    f"messages[{index}]: Anthropic upstreams accept text and image parts only, "
                    f"not {kind!r}",
                    "content_part_unsupported",
                )
    return blocks


def _image_block(url: str, index: int) -> ImageBlock:
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


def _assistant_blocks(message: AssistantMessage, index: int) -> list[ContentBlock]:
    blocks: list[ContentBlock] = []
    # Anthropic verifies the signature of a thinking block sent back to it and rejects one
    # without, so unsigned reasoning (from another host, or an edited history) is dropped.
    if message.reasoning_content and message.reasoning_signature:
        blocks.append(
            {
                "type": "thinking",
                "thinking": message.reasoning_content,
                "signature": message.reasoning_signature,
            }
        )
    blocks += _text_block(_text_of(message.content))
    for position, call in enumerate(message.tool_calls or ()):
        blocks.append(_tool_use(call, f"messages[{index}].tool_calls[{position}]"))
    return blocks


def _tool_use(call: ToolCall, where: str) -> ToolUseBlock:
    name, arguments = call.function.name, call.function.arguments
    # Some models write "" for a call without arguments; that means no arguments, not an error.
    if not arguments.strip():
        return {"type": "tool_use", "id": call.id, "name": name, "input": {}}
    try:
        parsed = _ARGUMENTS.decode(arguments)
    except msgspec.DecodeError:  # not JSON, or JSON that is not an object
        raise unservable(
            f"{where} (function '{name}', id '{call.id}'): arguments are not a JSON object",
            "invalid_tool_call_arguments",
        ) from None
    return {"type": "tool_use", "id": call.id, "name": name, "input": parsed}


def _tool_result(message: ToolMessage) -> ToolResultBlock:
    content = message.content
    result: str | list[TextBlock] = (
        content
        if isinstance(content, str)
        else [TextBlock(type="text", text=part.text) for part in content if part.text]
    )
    return {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": result}


def _tool(tool: Tool) -> ToolParam:
    function = tool.function
    param: ToolParam = {
        "name": function.name,
        "input_schema": dict(function.parameters or _EMPTY_SCHEMA),
    }
    if function.description:
        param["description"] = function.description
    return param


def _tool_choice(req: TranslatedRequest) -> ToolChoice | None:
    choice: ToolChoice | None
    match req.tool_choice:
        case None:
            choice = None
        case "auto":
            choice = {"type": "auto"}
        case "required":
            choice = {"type": "any"}
        case "none":
            choice = {"type": "none"}
        case {"function": {"name": str(name)}}:
            choice = {"type": "tool", "name": name}
        case other:
            raise unservable(f"unknown tool_choice {other!r}", "invalid_tool_choice")
    if req.parallel_tool_calls is False:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
    return choice


def _effort_budget(effort: str) -> int:
    budget = EFFORT_BUDGETS.get(effort)
    if budget is None:
        raise unservable(
            f"unknown reasoning effort {effort!r}; use low, medium or high",
            "invalid_reasoning_effort",
        )
    return budget


def _thinking(req: TranslatedRequest) -> ThinkingConfig | None:
    """The `thinking` config from the neutral `reasoning` extension ({enabled, max_tokens,
    effort}) or OpenAI's `reasoning_effort`; None when the request says nothing about it."""
    reasoning = req.reasoning
    if reasoning is not None:
        if reasoning.enabled is False:
            return {"type": "disabled"}
        budget = _positive(reasoning.max_tokens)
        if budget is None and reasoning.effort is not None:
            budget = _effort_budget(reasoning.effort)
        if budget is None and reasoning.enabled:
            budget = EFFORT_BUDGETS["medium"]
    elif req.reasoning_effort is None:
        return None
    elif req.reasoning_effort == "none":
        return {"type": "disabled"}
    else:
        budget = _effort_budget(req.reasoning_effort)
    if budget is None:
        return None
    return {"type": "enabled", "budget_tokens": max(budget, THINKING_MIN_BUDGET)}
