"""Checks an OpenAI chat request beyond its types, and turns msgspec's type errors into
messages that name the offending field."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from crossroads.errors import InvalidRequestError
from crossroads.schemas import ChatRequest

_AT = re.compile(r" - at `\$\.?([^`]*)`$")

INT32_MAX = 2**31 - 1
"""The most tokens any request may ask for: hosts read token counts as 32-bit integers, and
some (llama.cpp) wrap larger ones round instead of refusing them."""
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def parse_chat_request(data: dict[str, Any]) -> ChatRequest:
    """Raises InvalidRequestError (400) naming the field for every problem found."""
    try:
        req = msgspec.convert(data, ChatRequest, str_keys=True)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _AT.search(text)
        param = match.group(1) if match else None
        message = text[: match.start()] if match else text
        where = f" at '{param}'" if param else ""
        raise InvalidRequestError(f"Invalid request{where}: {message}.", param=param) from None
    if not req.messages:
        raise InvalidRequestError("'messages' must contain at least one message.", param="messages")
    _range(req.n, "n", 1, 128)
    _range(req.max_tokens, "max_tokens", 1, INT32_MAX)
    _range(req.max_completion_tokens, "max_completion_tokens", 1, INT32_MAX)
    _range(req.temperature, "temperature", 0, 2)
    _range(req.top_p, "top_p", 0, 1)
    _range(req.top_logprobs, "top_logprobs", 0, 20)
    _range(req.seed, "seed", INT64_MIN, INT64_MAX)
    for name in ("frequency_penalty", "presence_penalty"):
        _number(data.get(name), name, -2, 2)
    if isinstance(req.stop, list) and len(req.stop) > 4:
        raise InvalidRequestError("'stop' accepts at most 4 sequences.", param="stop")
    if req.stream_options is not None and not req.stream:
        raise InvalidRequestError(
            "'stream_options' is only allowed when 'stream' is true.", param="stream_options"
        )
    return req


def _range(value: float | None, name: str, low: float, high: float | None) -> None:
    if value is None:
        return
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InvalidRequestError(f"'{name}' must be {bound}; got {value}.", param=name)


def _number(value: Any, name: str, low: float, high: float) -> None:
    """A field the gateway passes through untyped, checked where it is a number."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequestError(f"'{name}' must be a number.", param=name)
    _range(value, name, low, high)
