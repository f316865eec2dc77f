"""The mock upstream's script language: a comma-separated list of tokens that says how to answer
one request (`status=503,retry_after=2`, `drip=0.05`, `mix=...`), parsed into a `Script`."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import unquote

__all__ = ["Script", "ScriptError", "parse_script"]

ResetMode = Literal["before", "during"]
ReasoningField = Literal["reasoning_content", "reasoning"]


class ScriptError(ValueError):
    """A script could not be parsed. `token` is the offending token, as written."""

    def __init__(self, token: str, reason: str) -> None:
        super().__init__(f"mock script token {token!r}: {reason}")
        self.token = token


@dataclass(frozen=True, slots=True)
class Script:
    """How to answer one request. The defaults answer normally, at once, in 5 chunks.

    `mix` holds weighted alternatives (script, probability); `pick` resolves it per request.
    `source` is the text the script was parsed from, for the request log.
    """

    status: int = 200
    retry_after: str | None = None
    latency: float = 0.0
    first_byte: float = 0.0
    drip: float = 0.0
    chunks: int = 5
    reset: ResetMode | None = None
    hang: bool = False
    malformed: bool = False
    truncate: bool = False
    no_done: bool = False
    tool_call: bool = False
    tool_name: str | None = None
    tool_args: str | None = None
    error_body: bool = False
    usage: tuple[int, int] | None = None
    cached: int = 0
    reasoning: int = 0
    think_tags: bool = False
    reasoning_field: ReasoningField = "reasoning_content"
    parallel_tools: bool = False
    refuse: tuple[str, ...] = ()
    require_reasoning_replay: bool = False
    no_usage: bool = False
    echo_key: bool = False
    error_event: bool = False
    error_text: str | None = None
    say: str | None = None
    mix: tuple[tuple[Script, float], ...] = ()
    source: str = ""

    def pick(self, rng: random.Random) -> Script:
        """Resolve `mix`: draw one alternative by its probability, or this script itself (without
        the mix) with the remaining probability. A script without a mix is returned as is."""
        if not self.mix:
            return self
        draw = rng.random()
        for alternative, probability in self.mix:
            if draw < probability:
                return alternative
            draw -= probability
        return replace(self, mix=())


def _seconds(value: str) -> float:
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("must be a finite number of seconds >= 0")
    return seconds


def _count(value: str) -> int:
    count = int(value)
    if count < 0:
        raise ValueError("must be an integer >= 0")
    return count


def _chunks(value: str) -> int:
    count = int(value)
    if count < 1:
        raise ValueError("must be an integer >= 1")
    return count


def _status(value: str) -> int:
    status = int(value)
    if not 200 <= status <= 599:  # a 1xx cannot be a final response
        raise ValueError("must be an HTTP status code, 200 to 599")
    return status


def _retry_after(value: str) -> str:
    _seconds(value)
    return value


def _text(value: str) -> str:
    text = unquote(value)
    if not text:
        raise ValueError("must be some percent-encoded text")
    return text


def _tool_name(value: str) -> str:
    if not value or not value.replace("_", "a").replace("-", "a").replace(".", "a").isalnum():
        raise ValueError("must be a tool name: letters, digits, '_', '-', '.'")
    return value


def _json_object(value: str) -> str:
    text = unquote(value)
    try:
        document = json.loads(text)
    except ValueError:
        raise ValueError("must be a percent-encoded JSON object") from None
    if not isinstance(document, dict):
        raise ValueError("must be a percent-encoded JSON object")
    return text


def _reset(value: str) -> ResetMode:
    if value == "before":
        return "before"
    if value == "during":
        return "during"
    raise ValueError("must be 'before' or 'during'")


def _reasoning_field(value: str) -> ReasoningField:
    if value == "reasoning_content":
        return "reasoning_content"
    if value == "reasoning":
        return "reasoning"
    raise ValueError("must be 'reasoning_content' or 'reasoning'")


def _fields(value: str) -> tuple[str, ...]:
    names = tuple(value.split("+"))
    if not all(name.isidentifier() for name in names):
        raise ValueError("must be request field names joined by '+', e.g. refuse=logprobs+n")
    return names


def _usage(value: str) -> tuple[int, int]:
    prompt, slash, completion = value.partition("/")
    if not slash:
        raise ValueError("must be PROMPT/COMPLETION, e.g. usage=10/20")
    return _count(prompt), _count(completion)


_VALUED: dict[str, Callable[[str], Any]] = {
    "status": _status,
    "retry_after": _retry_after,
    "latency": _seconds,
    "first_byte": _seconds,
    "drip": _seconds,
    "chunks": _chunks,
    "reset": _reset,
    "usage": _usage,
    "cached": _count,
    "reasoning": _count,
    "reasoning_field": _reasoning_field,
    "refuse": _fields,
    "error_text": _text,
    "say": _text,
    "tool": _tool_name,
    "tool_args": _json_object,
}
_FLAGS = frozenset(
    {
        "hang", "malformed", "truncate", "no_done", "tool_call", "error_body", "think_tags",
        "parallel_tools", "require_reasoning_replay", "echo_key", "error_event", "no_usage",
    },
)  # fmt: skip


def _apply_tokens(text: str, fields: dict[str, Any]) -> None:
    for raw in text.split(","):
        token = raw.strip()
        if not token or token == "ok":
            continue
        name, equals, value = token.partition("=")
        if not equals:
            if name not in _FLAGS:
                raise ScriptError(token, "unknown token")
            fields[name] = True
            continue
        convert = _VALUED.get(name)
        if convert is None:
            raise ScriptError(token, "unknown token")
        try:
            fields["tool_name" if name == "tool" else name] = convert(value)
            if name == "tool":
                fields["tool_call"] = True
        except ValueError as exc:
            raise ScriptError(token, str(exc)) from None


def _parse_mix(base: str, spec: str) -> tuple[tuple[Script, float], ...]:
    alternatives: list[tuple[Script, float]] = []
    total = 0.0
    for raw in spec.split("|"):
        text, colon, weight = raw.rpartition(":")
        if not colon:
            raise ScriptError(raw, "a mix alternative must be SCRIPT:PROBABILITY")
        try:
            probability = float(weight)
        except ValueError:
            raise ScriptError(raw, "the probability must be a number") from None
        if not 0.0 <= probability <= 1.0:
            raise ScriptError(raw, "the probability must be between 0 and 1")
        if "mix=" in text:
            raise ScriptError(raw, "mixes do not nest")
        total += probability
        alternatives.append((parse_script(f"{base},{text}" if base else text), probability))
    if total > 1.0 + 1e-9:
        raise ScriptError(spec, "the probabilities add up to more than 1")
    return tuple(alternatives)


def parse_script(text: str) -> Script:
    """Parse a script such as `status=429,retry_after=1` or `drip=0.01,mix=status=500:0.2|hang:0.1`.

    Tokens (later ones override earlier ones; `ok` and empty tokens do nothing):

    - `status=N` (200-599): answer with that status and a text body; `error_body`: make the body
      an OpenAI error object (alone, a 200 carrying an error, as some hosts send);
      `retry_after=S`: add a `Retry-After: S` header.
    - `first_byte=S`: sleep before the headers; `latency=S`: sleep before the answer (in a
      stream, after the headers and before the first event); `drip=S`: sleep between events.
    - `hang`: never answer; the request ends when the client disconnects.
    - `reset=before|during`: reset the TCP connection before answering, or after half the
      body or half the stream's events.
    - `truncate`: end the body after half of it; a stream after half its events plus half of
      the next one, without `[DONE]`, closing the connection. `no_done`: end a stream cleanly
      without `[DONE]`. `malformed`: a 200 body, or one stream event, that is not JSON.
    - `chunks=N`: content pieces; `tool_call`: call a tool when the request offers tools;
      `usage=P/C`: prompt/completion tokens to report; `cached=N`: cached prompt tokens;
      `reasoning=N`: N reasoning tokens and a `reasoning_content` answer before the content;
      `think_tags`: that reasoning inline in `content` as `<think>...</think>` instead (as
      MiniMax and some DeepSeek-R1 hosts send it), streamed in pieces that cut the tags;
      `reasoning_field=reasoning`: that reasoning in a `reasoning` field instead of
      `reasoning_content` (as OpenRouter, Groq and vLLM send it).
    - `no_usage`: the answer reports no usage, as some hosts do: no `usage` in a whole chat or
      embeddings body, no usage chunk in a stream even when `stream_options` asks for one
      (OpenAI-format endpoints only).
    - `tool=NAME`: `tool_call`, calling the offered tool named NAME (whatever `tool_choice`
      says; no call when no such tool is offered); `tool_args=JSON` (a percent-encoded JSON
      object): the arguments of the call, instead of placeholders filled from the schema (so
      a test can script a call a real agent will run, e.g. Codex's `exec_command`).
    - `parallel_tools`: with `tool_call`, call every offered tool in one answer (unless the
      request names one tool or sets `parallel_tool_calls: false`); the Anthropic endpoint
      always does.
    - `response_format` `json_object` or `json_schema` in the request (no token): the answer's
      content is a JSON object, as a host in JSON mode writes it.
    - Request checks, each answered with the host's own 400 before any answer: `refuse=A+B`:
      the request carries one of those top-level fields (as GLM refuses `stream_options`);
      `require_reasoning_replay`: an assistant turn that called tools came back without its
      reasoning (DeepSeek's thinking mode: no `reasoning_content`; with `think_tags`, no
      `<think>` block in `content`; Anthropic with thinking enabled: a final assistant turn
      with tool_use that does not start with a thinking block).
    - `echo_key`: an error status's body quotes the credential the request presented, as
      OpenAI's 401 does ("Incorrect API key provided: ..."), so tests can prove the gateway
      never relays it.
    - `error_event`: a stream sends half its events, then an error event, and ends (an OpenAI
      `data: {"error": ...}` chunk, as some hosts send a failure after the answer began; on
      the Anthropic endpoint an `error` event, as with `error_body`).
    - `say=TEXT` (percent-encoded): the answer's content is TEXT, instead of "mock answer: "
      and the user's text (so a test can script what a judge model writes).
    - `error_text=TEXT` (percent-encoded, so it may hold commas): added to the message of every
      error the script makes (a status's body, plain text or JSON, an error body or event), so
      tests can plant any text, secrets included, in what an upstream says.
    - `mix=SCRIPT:P|SCRIPT:P|...` must come last and takes the rest of the text: weighted
      alternatives, each applied on top of the tokens before `mix=`; the left-over
      probability answers with those tokens alone.

    Raises ScriptError naming the first bad token.
    """
    base, mix_spec = text, ""
    tokens = text.split(",")
    for index, token in enumerate(tokens):
        if token.strip().startswith("mix="):
            base = ",".join(tokens[:index])
            mix_spec = ",".join(tokens[index:]).strip()[4:]
            if not mix_spec:
                raise ScriptError(token.strip(), "a mix needs at least one alternative")
            break
    fields: dict[str, Any] = {}
    _apply_tokens(base, fields)
    if mix_spec:
        fields["mix"] = _parse_mix(base, mix_spec)
    return Script(source=text, **fields)
