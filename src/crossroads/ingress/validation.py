"""Validation shared by the ingresses that decode a request into typed msgspec Structs: every
problem becomes an InvalidRequestError (400) whose message starts with the JSON path of the
offending field, e.g. `messages[2].content[0].type: ...` or `input[3].call_id: field required`."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import msgspec

from crossroads.errors import InvalidRequestError

__all__ = ["bad", "convert_at", "tagged"]

T = TypeVar("T")

_AT = re.compile(r" - at `\$\.?([^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `([^`]*)`$")


def convert_at(value: Any, cls: type[T], path: str) -> T:
    """`value` as `cls`; a type error becomes a 400 naming `path` plus msgspec's inner path."""
    try:
        return msgspec.convert(value, cls, str_keys=True)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _AT.search(text)
        inner = match.group(1) if match else ""
        message = (text[: match.start()] if match else text).replace(" | null", "")
        missing = _MISSING.match(message)
        if missing:
            inner = join_path(inner, missing.group(1))
            message = "field required"
        raise bad(join_path(path, inner), message) from None


def tagged(
    items: Sequence[Mapping[str, Any]],
    path: str,
    allowed: Mapping[str, type[T]],
    *,
    what: str = "content block",
    default: str | None = None,
) -> list[T]:
    """Each item validated as the Struct its `type` names (`default` when it has none); a type
    not in `allowed` (unknown, or not allowed in this place) is a 400 naming its position and
    the types that are."""
    out: list[T] = []
    for index, raw in enumerate(items):
        where = f"{path}[{index}]"
        if not isinstance(raw, dict):
            raise bad(where, f"expected an object, got {type(raw).__name__}")
        kind = raw.get("type", default)
        if not isinstance(kind, str):
            raise bad(f"{where}.type", "field required" if kind is None else "must be a string")
        cls = allowed.get(kind)
        if cls is None:
            expected = ", ".join(allowed)
            raise bad(
                f"{where}.type", f"unsupported {what} type '{kind}'; expected one of: {expected}"
            )
        out.append(convert_at(raw, cls, where))
    return out


def join_path(outer: str, inner: str) -> str:
    if not outer or not inner:
        return outer or inner
    return outer + inner if inner.startswith("[") else f"{outer}.{inner}"


def bad(param: str, problem: str) -> InvalidRequestError:
    where = param or "body"
    return InvalidRequestError(f"{where}: {problem}", param=param or None)
