"""Deterministic checks of a candidate's answer against the baseline's, before any judge: both
answered, the same tools called with equivalent arguments, JSON valid against the schema the
request asked for, the same finish reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from crossroads.quality.answers import Reply

__all__ = ["Checked", "check", "schema_errors"]


@dataclass(frozen=True, slots=True)
class Checked:
    """`outcome` is the candidate's 'win' or 'loss' when a check decides, else None (a judge
    or a tie decides). `tool_agree` is None when neither answer called a tool."""

    outcome: str | None
    tool_agree: bool | None
    same_finish: bool
    identical: bool
    reasons: tuple[str, ...]


def schema_errors(value: Any, schema: Any, path: str = "$") -> list[str]:
    """Where `value` breaks `schema`: the subset of JSON Schema that response formats use
    (type, properties, required, additionalProperties false, items, enum)."""
    if not isinstance(schema, dict):
        return []
    errors: list[str] = []
    kinds = schema.get("type")
    types: dict[str, type | tuple[type, ...]] = {
        "object": dict,
        "array": list,
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "null": type(None),
    }
    if kinds is not None:
        allowed = kinds if isinstance(kinds, list) else [kinds]
        ok = any(
            isinstance(value, types.get(str(k), object))
            and not (k in ("integer", "number") and isinstance(value, bool))
            for k in allowed
        )
        if not ok:
            return [f"{path}: not of type {kinds}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: not one of {schema['enum']}")
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        errors += [f"{path}.{k}: missing" for k in schema.get("required") or () if k not in value]
        for key, item in value.items():
            if key in props:
                errors += schema_errors(item, props[key], f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}.{key}: not allowed")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{path}[{i}]")
    return errors


def _json_ok(reply: Reply, schema: dict[str, Any]) -> tuple[bool, str]:
    try:
        value = orjson.loads(reply.text)
    except orjson.JSONDecodeError:
        return False, "not JSON"
    errors = schema_errors(value, schema)
    return not errors, "; ".join(errors[:3])


def check(baseline: Reply, candidate: Reply, schema: dict[str, Any] | None) -> Checked:
    """Compares the two answers. The baseline's tool calls are the reference: a candidate that
    calls other tools, or the same with other arguments, loses (the team's application acts
    on those calls); a schema the baseline meets and the candidate breaks is a loss, and the
    other way round a win; so is an answer cut off at the output limit ('length') where the
    other finished. The first check that decides wins; all are in the reasons."""
    reasons: list[str] = []
    outcome: str | None = None
    if schema is not None:
        base_ok, base_why = _json_ok(baseline, schema)
        cand_ok, cand_why = _json_ok(candidate, schema)
        if base_ok and not cand_ok:
            outcome = "loss"
            reasons.append(f"candidate's JSON breaks the requested schema: {cand_why}")
        elif cand_ok and not base_ok:
            outcome = "win"
            reasons.append(f"baseline's JSON breaks the requested schema: {base_why}")
        else:
            reasons.append("schema: both valid" if base_ok else "schema: both invalid")
    tool_agree: bool | None = None
    if baseline.tool_calls or candidate.tool_calls:
        tool_agree = baseline.tool_calls == candidate.tool_calls
        if tool_agree:
            reasons.append("tool calls: same tools, equivalent arguments")
        else:
            base_names = [n for n, _ in baseline.tool_calls]
            cand_names = [n for n, _ in candidate.tool_calls]
            what = "arguments" if base_names == cand_names else "tools"
            reasons.append(f"tool calls differ in {what}: {base_names} vs {cand_names}")
            outcome = outcome or "loss"
    same_finish = baseline.finish == candidate.finish
    if not same_finish:
        reasons.append(f"finish reason differs: {baseline.finish!r} vs {candidate.finish!r}")
        # An answer cut off at the output limit is incomplete; the other one is not.
        if candidate.finish == "length":
            outcome = outcome or "loss"
        elif baseline.finish == "length":
            outcome = outcome or "win"
    identical = baseline == candidate
    if identical:
        reasons.append("answers identical")
    return Checked(outcome, tool_agree, same_finish, identical, tuple(reasons))
