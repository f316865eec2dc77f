"""An OpenAI Responses request, validated into typed Structs once and turned into the neutral
chat request (OpenAI's Chat Completions shape, as a dict ready for the router).

Every problem is an InvalidRequestError (400) whose message starts with the JSON path of the
offending field, e.g. `input[3].call_id: field required`.

The mapping, item by item:

- `instructions` becomes the first system message; `developer` and `system` messages become
  system messages, and those before the first user or assistant turn are joined into that one
  system prompt (open models' chat templates take a single leading system prompt).
- `input` as a string is one user message. Message items keep their role; `input_text`,
  `output_text` and `refusal` parts become text, `input_image` an `image_url` part. Files
  (`input_file`) are refused: no open-model host takes them.
- A `reasoning` item, the assistant `message` and the `function_call` / `custom_tool_call`
  items that follow it form one assistant message: the calls become its `tool_calls`, the
  reasoning its `reasoning_content`, restored from the item's `encrypted_content` (the gateway's
  sealed reasoning, `crossroads.schemas.sealed_reasoning`) or else its `reasoning_text` parts;
  summaries are not the reasoning and are not sent back.
- `function_call_output` / `custom_tool_call_output` become `tool` messages; their `call_id`
  must name an earlier call.
- Function tools become Chat Completions function tools. A `custom` tool (free-form text input)
  becomes a function taking one string `input`, and its calls come back as `custom_tool_call`
  items. A `namespace` tool's function tools are served under their own names.
- Built-in tools the gateway cannot run (`web_search`, `file_search`, `code_interpreter`,
  `computer_use_preview`, `image_generation`, `mcp`, `local_shell`, ...) are dropped from the
  request and named in the `x-crossroads-dropped-params` header (`tools.web_search`): the
  model works with the tools it can call, which is what lets Codex run on any model. A
  `tool_choice` that forces one of them is a 400.
- `reasoning.effort` becomes the neutral `reasoning` field (`none` turns reasoning off,
  `xhigh` asks for `high`); `text.format` becomes `response_format`; `max_output_tokens`
  becomes `max_tokens`; `safety_identifier` (or `user`) becomes `user`.

`store`, `previous_response_id`, `include`, `metadata`, `prompt_cache_key`, `truncation`,
`service_tier`, `text.verbosity` and `client_metadata` do not reach the upstream: the handler
uses the first four, and the others have no Chat Completions equivalent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec
import orjson

from crossroads.ingress.validation import bad, convert_at, tagged
from crossroads.schemas.sealed_reasoning import unseal_any

__all__ = [
    "ENCRYPTED_REASONING",
    "ITEMS",
    "MAX_SEALED_REASONING",
    "Converted",
    "Item",
    "ResponsesRequest",
    "parse_request",
    "to_chat_request",
]

JSON = dict[str, Any]
INT32_MAX = 2**31 - 1
Positive = Annotated[int, msgspec.Meta(ge=1, le=INT32_MAX)]
ENCRYPTED_REASONING = "reasoning.encrypted_content"
MAX_SEALED_REASONING = 4 * 1024 * 1024
"""Bytes of reasoning one request may restore from the gateway's sealed reasoning."""
MAX_ID_CHARS = 256

BUILTIN_TOOLS = frozenset(
    {
        "web_search",
        "web_search_preview",
        "web_search_preview_2025_03_11",
        "web_search_2025_08_26",
        "file_search",
        "code_interpreter",
        "computer_use_preview",
        "computer_use",
        "image_generation",
        "mcp",
        "local_shell",
        "shell",
        "apply_patch",
        "tool_search",
    }
)
"""Tools OpenAI runs on its side (or, for `local_shell`, `shell` and `apply_patch`, only
OpenAI's own models are trained to call): dropped, see the module docstring."""


# --- content parts -----------------------------------------------------------------------------


class InputText(msgspec.Struct, tag_field="type", tag="input_text"):
    text: str


class OutputText(msgspec.Struct, tag_field="type", tag="output_text"):
    text: str
    annotations: list[Any] = []


class Refusal(msgspec.Struct, tag_field="type", tag="refusal"):
    refusal: str


class InputImage(msgspec.Struct, tag_field="type", tag="input_image"):
    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None


Part = InputText | OutputText | Refusal | InputImage
_USER_PARTS: dict[str, type[Part]] = {"input_text": InputText, "input_image": InputImage}
_ASSISTANT_PARTS: dict[str, type[Part]] = {"output_text": OutputText, "refusal": Refusal}
# Clients send history back as they got it; be liberal about which text part a role carries.
_ANY_TEXT: dict[str, type[Part]] = {
    "input_text": InputText,
    "output_text": OutputText,
    "refusal": Refusal,
}


# --- input items -------------------------------------------------------------------------------


class Message(msgspec.Struct, tag_field="type", tag="message"):
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[JSON]
    id: str | None = None
    status: str | None = None


class FunctionCall(msgspec.Struct, tag_field="type", tag="function_call"):
    call_id: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
    name: str
    arguments: str
    id: str | None = None
    status: str | None = None


class FunctionCallOutput(msgspec.Struct, tag_field="type", tag="function_call_output"):
    call_id: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
    output: str | list[JSON]
    id: str | None = None
    status: str | None = None


class CustomToolCall(msgspec.Struct, tag_field="type", tag="custom_tool_call"):
    call_id: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
    name: str
    input: str
    id: str | None = None


class CustomToolCallOutput(msgspec.Struct, tag_field="type", tag="custom_tool_call_output"):
    call_id: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
    output: str | list[JSON]
    id: str | None = None


class SummaryText(msgspec.Struct, tag_field="type", tag="summary_text"):
    text: str


class ReasoningText(msgspec.Struct, tag_field="type", tag="reasoning_text"):
    text: str


class Reasoning(msgspec.Struct, tag_field="type", tag="reasoning"):
    summary: list[SummaryText] = []
    content: list[ReasoningText] | None = None
    encrypted_content: str | None = None
    id: str | None = None
    status: str | None = None


Item = (
    Message | FunctionCall | FunctionCallOutput | CustomToolCall | CustomToolCallOutput | Reasoning
)
ITEMS: dict[str, type[Item]] = {
    "message": Message,
    "function_call": FunctionCall,
    "function_call_output": FunctionCallOutput,
    "custom_tool_call": CustomToolCall,
    "custom_tool_call_output": CustomToolCallOutput,
    "reasoning": Reasoning,
}


# --- tools and the request ---------------------------------------------------------------------


class FunctionTool(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
    description: str | None = None
    parameters: JSON | None = None
    strict: bool | None = None


class CustomTool(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
    description: str | None = None
    format: JSON | None = None


class NamespaceTool(msgspec.Struct):
    name: str
    tools: list[JSON]
    description: str | None = None


class ReasoningConfig(msgspec.Struct):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


class TextFormat(msgspec.Struct):
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema: JSON | None = None
    strict: bool | None = None
    description: str | None = None


class TextConfig(msgspec.Struct):
    format: TextFormat | None = None
    verbosity: str | None = None


class ResponsesRequest(msgspec.Struct):
    model: Annotated[str, msgspec.Meta(min_length=1)]
    input: str | list[JSON] = []
    instructions: str | None = None
    tools: list[JSON] = []
    tool_choice: str | JSON | None = None
    parallel_tool_calls: bool | None = None
    reasoning: ReasoningConfig | None = None
    text: TextConfig | None = None
    max_output_tokens: Positive | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    stream: bool = False
    store: bool | None = None
    previous_response_id: Annotated[str, msgspec.Meta(max_length=MAX_ID_CHARS)] | None = None
    include: list[str] = []
    metadata: dict[str, str] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    background: bool = False
    conversation: Any = None
    prompt: Any = None


@dataclass(slots=True)
class Converted:
    """The neutral request `body`, and what the answer's conversion needs from the request:
    the custom tools' names (their calls go back as `custom_tool_call` items), whether the
    client wants its reasoning sealed into `encrypted_content` and summarised, the tools the
    gateway dropped, and the typed request itself (echoed in the Response object)."""

    body: JSON
    request: ResponsesRequest
    custom_tools: frozenset[str] = frozenset()
    encrypted_reasoning: bool = False
    summaries: bool = False
    dropped: tuple[str, ...] = ()
    items: list[Item] = field(default_factory=list)


def parse_request(data: JSON) -> ResponsesRequest:
    """The request's typed top level; items and tools are validated by `to_chat_request`."""
    req = convert_at(data, ResponsesRequest, "")
    if req.metadata is not None and len(req.metadata) > 16:
        raise bad("metadata", "at most 16 key-value pairs")
    # OpenAI-side features with no gateway equivalent: refused rather than silently ignored.
    if req.background:
        raise bad(
            "background",
            "background responses are not supported; send the request in the foreground "
            "(stream: true keeps long answers flowing)",
        )
    if req.conversation is not None:
        raise bad(
            "conversation",
            "the Conversations API is not supported; continue with previous_response_id or "
            "send the whole conversation in input",
        )
    if req.prompt is not None:
        raise bad(
            "prompt", "stored prompt templates are not supported; send instructions and input"
        )
    return req


def to_chat_request(req: ResponsesRequest, history: Sequence[Item] = ()) -> Converted:
    """The neutral request for `req`, after the stored items of a `previous_response_id`
    (`history`: that response's input and output). Streams always ask the upstream for usage.
    Raises InvalidRequestError naming the field."""
    items = _items(req.input)
    if not history and not items:
        raise bad("input", "at least one input item is required")
    tools, custom, dropped = _tools(req.tools)
    body: JSON = {"model": req.model, "messages": _messages(req.instructions, [*history, *items])}
    if tools:
        body["tools"] = tools
    if req.tool_choice is not None:
        body.update(_tool_choice(req.tool_choice, tools, dropped))
    if req.parallel_tool_calls is not None and tools:
        body["parallel_tool_calls"] = req.parallel_tool_calls
    if req.max_output_tokens is not None:
        body["max_tokens"] = req.max_output_tokens
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    optional = {
        "temperature": req.temperature,
        "top_p": req.top_p,
        "user": req.safety_identifier or req.user,
    }
    body.update((key, value) for key, value in optional.items() if value is not None)
    reasoning = req.reasoning
    if reasoning is not None and reasoning.effort is not None:
        effort = reasoning.effort
        body["reasoning"] = (
            {"enabled": False}
            if effort == "none"
            else {"effort": "high" if effort == "xhigh" else effort}
        )
    fmt = req.text.format if req.text is not None else None
    if fmt is not None and fmt.type != "text":
        body["response_format"] = _response_format(fmt)
    summaries = (
        reasoning is not None and (reasoning.summary or reasoning.generate_summary) is not None
    )
    return Converted(
        body,
        req,
        custom_tools=frozenset(custom),
        encrypted_reasoning=ENCRYPTED_REASONING in req.include,
        summaries=summaries,
        dropped=tuple(f"tools.{kind}" for kind in dropped),
        items=items,
    )


def _items(raw: str | list[JSON]) -> list[Item]:
    if isinstance(raw, str):
        return [Message(role="user", content=raw)] if raw else []
    for index, item in enumerate(raw):
        if isinstance(item, dict) and item.get("type") == "item_reference":
            raise bad(
                f"input[{index}].type",
                "item_reference is not supported; send the item itself, or continue a stored "
                "response with previous_response_id",
            )
    return tagged(raw, "input", ITEMS, what="input item", default="message")


class _Assistant:
    """The assistant turn being assembled from consecutive reasoning, message and call items."""

    __slots__ = ("calls", "reasoning", "signature", "texts")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.calls: list[JSON] = []
        self.reasoning: list[str] = []
        self.signature: str | None = None

    def message(self) -> JSON:
        out: JSON = {
            "role": "assistant",
            "content": "\n".join(self.texts) if self.texts or not self.calls else None,
        }
        if self.calls:
            out["tool_calls"] = self.calls
        if self.reasoning:
            out["reasoning_content"] = "\n".join(self.reasoning)
            if self.signature:
                out["reasoning_signature"] = self.signature
        return out


def _messages(instructions: str | None, items: Sequence[Item]) -> list[JSON]:
    system: list[str] = [instructions] if instructions else []
    out: list[JSON] = []
    call_ids: set[str] = set()
    turn: _Assistant | None = None
    sealed_left = MAX_SEALED_REASONING

    def close() -> None:
        nonlocal turn
        if turn is not None:
            out.append(turn.message())
            turn = None

    for index, item in enumerate(items):
        path = f"input[{index}]"
        if isinstance(item, Message) and item.role != "assistant":
            close()
            if item.role in ("system", "developer"):
                text = _text(item.content, f"{path}.content", _ANY_TEXT)
                if out:
                    out.append({"role": "system", "content": text})
                else:
                    system.append(text)
            else:
                out.append({"role": "user", "content": _user_content(item.content, path)})
            continue
        if isinstance(item, FunctionCallOutput | CustomToolCallOutput):
            close()
            if item.call_id not in call_ids:
                raise bad(f"{path}.call_id", f"no earlier call has the call_id '{item.call_id}'")
            output = item.output
            if isinstance(output, list):
                output = _text(output, f"{path}.output", _ANY_TEXT)
            out.append({"role": "tool", "tool_call_id": item.call_id, "content": output})
            continue
        if turn is None:
            turn = _Assistant()
        if isinstance(item, Message):
            if turn.calls:  # text after calls starts a new assistant turn
                close()
                turn = _Assistant()
            turn.texts.append(_text(item.content, f"{path}.content", _ASSISTANT_PARTS | _ANY_TEXT))
        elif isinstance(item, Reasoning):
            if turn.calls or turn.texts:
                close()
                turn = _Assistant()
            text = ""
            if item.encrypted_content and sealed_left > 0:
                opened = unseal_any(item.encrypted_content, sealed_left)
                if opened is not None:
                    text, signature = opened
                    sealed_left -= len(text.encode())
                    turn.signature = turn.signature or signature
            if not text and item.content:
                text = "\n".join(part.text for part in item.content)
            if text:
                turn.reasoning.append(text)
        else:
            call_ids.add(item.call_id)
            arguments = (
                item.arguments
                if isinstance(item, FunctionCall)
                else orjson.dumps({"input": item.input}).decode()
            )
            turn.calls.append(
                {
                    "id": item.call_id,
                    "type": "function",
                    "function": {"name": item.name, "arguments": arguments},
                }
            )
    close()
    if system:
        out.insert(0, {"role": "system", "content": "\n\n".join(system)})
    if not any(m["role"] != "system" for m in out):
        raise bad("input", "at least one user, assistant or tool item is required")
    return out


def _text(content: str | list[JSON], path: str, allowed: dict[str, type[Part]]) -> str:
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for part in tagged(content, path, allowed, what="content part"):
        if isinstance(part, InputText | OutputText):
            texts.append(part.text)
        elif isinstance(part, Refusal):
            texts.append(part.refusal)
    return "\n".join(texts)


def _user_content(content: str | list[JSON], path: str) -> str | list[JSON]:
    """Text-only content as one string (what every chat template takes); with images, parts."""
    if isinstance(content, str):
        return content
    parts = tagged(content, f"{path}.content", _USER_PARTS | _ANY_TEXT, what="content part")
    if not any(isinstance(p, InputImage) for p in parts):
        return _text(content, f"{path}.content", _ANY_TEXT)
    out: list[JSON] = []
    for index, part in enumerate(parts):
        if isinstance(part, InputImage):
            if not part.image_url:
                raise bad(
                    f"{path}.content[{index}].image_url",
                    "field required (file_id images are not supported: send the image as a "
                    "URL or a data: URL)",
                )
            url: JSON = {"url": part.image_url}
            if part.detail in ("low", "high", "auto"):
                url["detail"] = part.detail
            out.append({"type": "image_url", "image_url": url})
        elif isinstance(part, InputText | OutputText):
            out.append({"type": "text", "text": part.text})
        elif isinstance(part, Refusal):
            out.append({"type": "text", "text": part.refusal})
    return out


def _tools(raw: list[JSON]) -> tuple[list[JSON], list[str], list[str]]:
    """The chat tools, the names of the custom tools among them, and the built-in tool types
    dropped (once each, in order)."""
    tools: list[JSON] = []
    custom: list[str] = []
    dropped: list[str] = []
    for index, tool in enumerate(raw):
        path = f"tools[{index}]"
        kind = tool.get("type")
        if kind == "function":
            tools.append(_function(convert_at(tool, FunctionTool, path)))
        elif kind == "custom":
            spec = convert_at(tool, CustomTool, path)
            custom.append(spec.name)
            tools.append(_custom(spec))
        elif kind == "namespace":
            spec_ns = convert_at(tool, NamespaceTool, path)
            inner, inner_custom, inner_dropped = _tools(spec_ns.tools)
            tools += inner
            custom += inner_custom
            dropped += [d for d in inner_dropped if d not in dropped]
        elif isinstance(kind, str) and kind in BUILTIN_TOOLS:
            if kind not in dropped:
                dropped.append(kind)
        elif kind is None:
            raise bad(f"{path}.type", "field required")
        else:
            raise bad(
                f"{path}.type",
                f"unsupported tool type '{kind}'; expected function, custom, namespace, or a "
                "built-in tool (which the gateway drops)",
            )
    seen: set[str] = set()
    for tool in tools:  # one pass: a client may send tens of thousands of tools
        name = tool["function"]["name"]
        if name in seen:
            raise bad("tools", f"two tools are named '{name}'")
        seen.add(name)
    return tools, custom, dropped


def _function(spec: FunctionTool) -> JSON:
    function: JSON = {"name": spec.name}
    if spec.description is not None:
        function["description"] = spec.description
    function["parameters"] = spec.parameters or {"type": "object", "properties": {}}
    if spec.strict is not None:
        function["strict"] = spec.strict
    return {"type": "function", "function": function}


def _custom(spec: CustomTool) -> JSON:
    """A free-form tool as a function of one string; its grammar, if any, goes in the text."""
    described = spec.description or ""
    fmt = spec.format or {}
    if fmt.get("type") == "grammar" and isinstance(fmt.get("definition"), str):
        described += (
            f"\n\nThe input must follow this {fmt.get('syntax', '')} grammar:\n{fmt['definition']}"
        )
    function: JSON = {
        "name": spec.name,
        "parameters": {
            "type": "object",
            "properties": {"input": {"type": "string", "description": "The tool's input text."}},
            "required": ["input"],
        },
    }
    if described:
        function["description"] = described.strip()
    return {"type": "function", "function": function}


def _tool_choice(choice: str | JSON, tools: list[JSON], dropped: list[str]) -> JSON:
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise bad("tool_choice", "expected 'auto', 'none', 'required' or an object")
        return {"tool_choice": choice} if tools else {}
    kind = choice.get("type")
    if kind in ("function", "custom"):
        name = choice.get("name")
        if not isinstance(name, str) or not any(t["function"]["name"] == name for t in tools):
            raise bad("tool_choice.name", f"no tool is named {orjson.dumps(name).decode()}")
        return {"tool_choice": {"type": "function", "function": {"name": name}}}
    if kind == "allowed_tools":
        mode = choice.get("mode", "auto")
        listed = choice.get("tools")
        if mode not in ("auto", "required") or not isinstance(listed, list):
            raise bad(
                "tool_choice", "allowed_tools needs mode 'auto' or 'required' and a tools list"
            )
        allowed = {t.get("name") for t in listed if isinstance(t, dict)}
        tools[:] = [t for t in tools if t["function"]["name"] in allowed]
        return {"tool_choice": mode} if tools else {}
    if isinstance(kind, str) and kind in BUILTIN_TOOLS:
        raise bad(
            "tool_choice.type",
            f"the built-in tool '{kind}' is not available on this gateway (it is dropped from "
            "tools); let the model choose among its function tools",
        )
    raise bad("tool_choice.type", f"unsupported tool_choice type {orjson.dumps(kind).decode()}")


def _response_format(fmt: TextFormat) -> JSON:
    if fmt.type == "json_object":
        return {"type": "json_object"}
    if fmt.schema is None:
        raise bad("text.format.schema", "field required when text.format.type is 'json_schema'")
    schema: JSON = {"name": fmt.name or "output", "schema": fmt.schema}
    if fmt.strict is not None:
        schema["strict"] = fmt.strict
    if fmt.description is not None:
        schema["description"] = fmt.description
    return {"type": "json_schema", "json_schema": schema}
