"""An Anthropic Messages request, validated and turned into the neutral chat request (OpenAI's
Chat Completions shape, as a dict ready for the router).

Every problem is an InvalidRequestError (400) whose message starts with the JSON path of the
offending field, e.g. `messages[2].content[0].type: ...`. What has no Chat Completions
equivalent travels in extension fields that OpenAI-compatible hosts ignore and an Anthropic
upstream can use: on the request `top_k` and `reasoning` ({"enabled", "max_tokens", "effort"},
from `thinking` and `output_config.effort`); on assistant messages `reasoning_signature` and
`reasoning_redacted` (the opaque data of redacted_thinking blocks). `output_config.format`
becomes a strict `json_schema` response_format. Text-only content becomes a plain string
(blocks joined by a newline), the form every open-model chat template accepts. Server tools
(web search and the like) and block types other than text, image, tool_use, tool_result,
thinking and redacted_thinking are refused with a 400 rather than silently dropped."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
import orjson

from crossroads.ingress.validation import bad as _bad
from crossroads.ingress.validation import convert_at as _convert
from crossroads.ingress.validation import tagged
from crossroads.schemas.sealed_reasoning import is_sealed, unseal

__all__ = ["TOOL_ERROR_PREFIX", "Converted", "to_chat_request"]

JSON = dict[str, Any]

TOOL_ERROR_PREFIX = "[tool error] "
MAX_SEALED_REASONING = 4 * 1024 * 1024
"""Bytes of reasoning one request may restore from the gateway's sealed signatures."""
"""Put before the content of a `tool_result` with `is_error: true`: Chat Completions tool
messages have no error flag, and the model should still learn that the tool failed."""

_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}
INT32_MAX = 2**31 - 1  # hosts read token counts as 32-bit integers; some wrap larger ones
Positive = Annotated[int, msgspec.Meta(ge=1, le=INT32_MAX)]
Unit = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class TextBlock(msgspec.Struct, tag_field="type", tag="text"):
    text: str


class Base64Source(msgspec.Struct, tag_field="type", tag="base64"):
    media_type: str
    data: str


class UrlSource(msgspec.Struct, tag_field="type", tag="url"):
    url: str


class ImageBlock(msgspec.Struct, tag_field="type", tag="image"):
    source: Base64Source | UrlSource


class ToolUseBlock(msgspec.Struct, tag_field="type", tag="tool_use"):
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(msgspec.Struct, tag_field="type", tag="tool_result"):
    tool_use_id: str
    content: str | list[JSON] = ""
    is_error: bool = False


class ThinkingBlock(msgspec.Struct, tag_field="type", tag="thinking"):
    thinking: str
    signature: str = ""


class RedactedThinkingBlock(msgspec.Struct, tag_field="type", tag="redacted_thinking"):
    data: str


Block = (
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock
)
_TEXT_BLOCKS: dict[str, type[Block]] = {"text": TextBlock}
_RESULT_BLOCKS: dict[str, type[Block]] = {"text": TextBlock, "image": ImageBlock}
_USER_BLOCKS: dict[str, type[Block]] = {**_RESULT_BLOCKS, "tool_result": ToolResultBlock}
_ASSISTANT_BLOCKS: dict[str, type[Block]] = {
    "text": TextBlock,
    "tool_use": ToolUseBlock,
    "thinking": ThinkingBlock,
    "redacted_thinking": RedactedThinkingBlock,
}


class InputMessage(msgspec.Struct):
    role: Literal["user", "assistant", "system"]
    content: str | list[JSON]


class Metadata(msgspec.Struct):
    user_id: str | None = None


class ToolDef(msgspec.Struct):
    name: str
    input_schema: JSON
    description: str | None = None


class ToolChoice(msgspec.Struct):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool = False


class ThinkingConfig(msgspec.Struct):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: Positive | None = None


class OutputFormat(msgspec.Struct, tag_field="type", tag="json_schema"):
    schema: JSON


class OutputConfig(msgspec.Struct):
    effort: str | None = None
    format: OutputFormat | None = None


class MessagesRequest(msgspec.Struct):
    """The fields of an Anthropic Messages request this ingress reads; others are ignored."""

    model: str
    messages: list[InputMessage]
    max_tokens: Positive | None = None  # required by /v1/messages, not by count_tokens
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    temperature: Unit | None = None
    top_p: Unit | None = None
    top_k: Annotated[int, msgspec.Meta(ge=0, le=INT32_MAX)] | None = None
    metadata: Metadata | None = None
    stream: bool = False
    tools: list[JSON] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None
    output_config: OutputConfig | None = None


@dataclass(frozen=True, slots=True)
class Converted:
    """The neutral request `body`, and what the answer's conversion needs from the request."""

    body: JSON
    model: str
    stream: bool
    stop_sequences: tuple[str, ...]


def to_chat_request(data: Mapping[str, Any], *, require_max_tokens: bool = True) -> Converted:
    """Validates an Anthropic Messages request and converts it. Streams always ask the upstream
    for usage (`stream_options.include_usage`). Raises InvalidRequestError naming the field."""
    req = _convert(data, MessagesRequest, "")
    if req.max_tokens is None and require_max_tokens:
        raise _bad("max_tokens", "field required")
    if not req.messages:
        raise _bad("messages", "at least one message is required")
    body: JSON = {"model": req.model, "messages": _messages(req)}
    if req.max_tokens is not None:
        body["max_tokens"] = req.max_tokens
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    optional = {
        "stop": req.stop_sequences or None,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "top_k": req.top_k,
        "user": req.metadata.user_id if req.metadata else None,
    }
    body.update((key, value) for key, value in optional.items() if value is not None)
    if req.tools:
        body["tools"] = [_tool(raw, f"tools[{i}]") for i, raw in enumerate(req.tools)]
    if req.tool_choice is not None:
        body.update(_tool_choice(req.tool_choice))
    reasoning = _thinking(req.thinking) if req.thinking is not None else {}
    output = req.output_config or OutputConfig()
    if output.effort is not None:
        reasoning["effort"] = output.effort
    if reasoning:
        body["reasoning"] = reasoning
    if output.format is not None:
        schema = {"name": "output", "schema": output.format.schema, "strict": True}
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
    return Converted(body, req.model, req.stream, tuple(req.stop_sequences or ()))


def _messages(req: MessagesRequest) -> list[JSON]:
    out: list[JSON] = []
    if req.system:
        text = req.system if isinstance(req.system, str) else _join(b.text for b in req.system)
        out.append({"role": "system", "content": text})
    tool_ids: set[str] = set()
    unsealer = _Unsealer(MAX_SEALED_REASONING)
    last = len(req.messages) - 1
    for i, message in enumerate(req.messages):
        path = f"messages[{i}]"
        content = message.content
        if (
            isinstance(content, list)
            and not content
            and not (message.role == "assistant" and i == last)
        ):
            raise _bad(f"{path}.content", "must not be empty")
        if message.role == "assistant":
            out.append(_assistant(content, path, tool_ids, unsealer))
        elif message.role == "user":
            out.extend(_user(content, path, tool_ids))
        else:
            if isinstance(content, list):
                blocks = _blocks(content, f"{path}.content", _TEXT_BLOCKS)
                content = _join(b.text for b in blocks if isinstance(b, TextBlock))
            out.append({"role": "system", "content": content})
    return out


def _user(content: str | list[JSON], path: str, tool_ids: set[str]) -> list[JSON]:
    """Tool results become `tool` messages, placed before the turn's other content (Chat
    Completions wants them right after the assistant's calls). Images inside tool results,
    which tool messages cannot hold, lead the user message that follows."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tools: list[JSON] = []
    leading: list[JSON] = []
    parts: list[JSON] = []
    for j, block in enumerate(_blocks(content, f"{path}.content", _USER_BLOCKS)):
        if isinstance(block, ToolResultBlock):
            if block.tool_use_id not in tool_ids:
                raise _bad(
                    f"{path}.content[{j}].tool_use_id",
                    f"no earlier tool_use block has the id '{block.tool_use_id}'",
                )
            result = block.content
            if isinstance(result, list):
                inner = _blocks(result, f"{path}.content[{j}].content", _RESULT_BLOCKS)
                leading += [_part(b) for b in inner if isinstance(b, ImageBlock)]
                result = _join(b.text for b in inner if isinstance(b, TextBlock))
            text = TOOL_ERROR_PREFIX + result if block.is_error else result
            tools.append({"role": "tool", "tool_call_id": block.tool_use_id, "content": text})
        else:
            parts.append(_part(block))
    parts = leading + parts
    if not parts:
        return tools
    if all(p["type"] == "text" for p in parts):
        return [*tools, {"role": "user", "content": _join(p["text"] for p in parts)}]
    return [*tools, {"role": "user", "content": parts}]


class _Unsealer:
    """Opens the gateway's sealed reasoning (`crossroads.schemas.sealed_reasoning`) within one
    byte budget for the whole request: each token is small, but what it opens to is chosen by
    the client, and thousands of them must not inflate into gigabytes."""

    __slots__ = ("_left",)

    def __init__(self, budget: int) -> None:
        self._left = budget

    def open(self, token: str) -> str:
        """The reasoning in `token`, or "" when it is not the gateway's or the budget is spent."""
        text = unseal(token, self._left) if self._left > 0 else None
        if text is None:
            return ""
        self._left -= len(text.encode())
        return text


def _assistant(
    content: str | list[JSON], path: str, tool_ids: set[str], unsealer: _Unsealer
) -> JSON:
    """Text blocks are joined, tool_use blocks become `tool_calls` (ids kept exactly), thinking
    goes to `reasoning_content` with the first non-empty signature in `reasoning_signature`,
    and redacted thinking's opaque data to `reasoning_redacted`, in order."""
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    blocks = _blocks(content, f"{path}.content", _ASSISTANT_BLOCKS)
    texts = [b.text for b in blocks if isinstance(b, TextBlock)]
    calls = [b for b in blocks if isinstance(b, ToolUseBlock)]
    thinking = [b for b in blocks if isinstance(b, ThinkingBlock)]
    redacted = [b.data for b in blocks if isinstance(b, RedactedThinkingBlock)]
    tool_ids.update(call.id for call in calls)
    message: JSON = {"role": "assistant", "content": _join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": orjson.dumps(call.input).decode()},
            }
            for call in calls
        ]
    if thinking:
        # A block the gateway signed carries its reasoning in the signature too: restored from
        # there when the client sent the signature back without the text. Such a signature is
        # the gateway's, not an upstream's, so it never goes upstream as one.
        message["reasoning_content"] = _join(
            b.thinking or unsealer.open(b.signature) for b in thinking
        )
        signature = next(
            (b.signature for b in thinking if b.signature and not is_sealed(b.signature)), None
        )
        if signature:
            message["reasoning_signature"] = signature
    if redacted:
        message["reasoning_redacted"] = redacted
    return message


def _blocks(content: list[JSON], path: str, allowed: Mapping[str, type[Block]]) -> list[Block]:
    """Each content block, validated as the struct its `type` names; a type not in `allowed`
    (unknown, or not allowed in this place) is a 400 naming its position."""
    return tagged(content, path, allowed)


def _part(block: Block) -> JSON:
    """A user content part: text, or an image as an `image_url` (base64 as a data: URL)."""
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    assert isinstance(block, ImageBlock)
    source = block.source
    if isinstance(source, Base64Source):
        url = f"data:{source.media_type};base64,{source.data}"
    else:
        url = source.url
    return {"type": "image_url", "image_url": {"url": url}}


def _tool(raw: JSON, path: str) -> JSON:
    kind = raw.get("type")
    if kind not in (None, "custom"):
        raise _bad(
            f"{path}.type",
            f"tool type '{kind}' is not supported; this gateway serves client (custom) tools only",
        )
    tool = _convert(raw, ToolDef, path)
    function: JSON = {"name": tool.name, "parameters": tool.input_schema}
    if tool.description is not None:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def _tool_choice(choice: ToolChoice) -> JSON:
    if choice.type != "tool":
        out: JSON = {"tool_choice": _TOOL_CHOICES[choice.type]}
    elif choice.name is None:
        raise _bad("tool_choice.name", "field required when tool_choice.type is 'tool'")
    else:
        out = {"tool_choice": {"type": "function", "function": {"name": choice.name}}}
    if choice.disable_parallel_tool_use and choice.type != "none":
        out["parallel_tool_calls"] = False
    return out


def _thinking(config: ThinkingConfig) -> JSON:
    if config.type != "enabled":  # adaptive: the model decides how much to think
        return {"enabled": config.type == "adaptive"}
    if config.budget_tokens is None:
        raise _bad("thinking.budget_tokens", "field required when thinking.type is 'enabled'")
    return {"enabled": True, "max_tokens": config.budget_tokens}


def _join(texts: Any) -> str:
    return "\n".join(texts)
