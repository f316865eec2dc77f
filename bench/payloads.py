"""The fixed bytes of the benchmark: the client's chat request, and the mock upstream's answers
(one `chat.completion` with usage, and an SSE stream of 20 content chunks, a usage chunk and
`[DONE]`). No I/O here."""

from __future__ import annotations

import json
from typing import Any

STREAM_CHUNKS = 20
CHUNK_TEXT = "word "  # each content chunk carries one word; 20 of them make the answer
ANSWER_TEXT = CHUNK_TEXT * STREAM_CHUNKS
USAGE = {
    "prompt_tokens": 57,
    "completion_tokens": STREAM_CHUNKS,
    "total_tokens": 57 + STREAM_CHUNKS,
}
CREATED = 1_767_225_600
UPSTREAM_MODEL = "bench-upstream"


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def request_body(model: str, *, stream: bool) -> str:
    """A chat request of about 350 bytes, as a client would send it."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {
                "role": "system",
                "content": "You are a concise assistant. Answer in one short paragraph and "
                "do not use lists.",
            },
            {
                "role": "user",
                "content": "Summarise in two sentences why a gateway in front of several "
                "model hosts should price every request exactly and keep one ledger "
                "record for each.",
            },
        ],
        "max_tokens": 64,
        "temperature": 0.2,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return _compact(body)


def completion_json() -> str:
    """The mock's whole answer: an OpenAI `chat.completion` with usage."""
    return _compact(
        {
            "id": "chatcmpl-bench0000000000000000000001",
            "object": "chat.completion",
            "created": CREATED,
            "model": UPSTREAM_MODEL,
            "system_fingerprint": "fp_bench",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER_TEXT.strip()},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    )


def _chunk(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> str:
    obj: dict[str, Any] = {
        "id": "chatcmpl-bench0000000000000000000002",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": UPSTREAM_MODEL,
        "system_fingerprint": "fp_bench",
        "choices": choices,
    }
    if usage is not None:
        obj["usage"] = usage
    return f"data: {_compact(obj)}\n\n"


def sse_events() -> list[str]:
    """The mock's stream, one string per SSE event: 20 content chunks (the first also carries
    the role, the last the finish reason), one usage-only chunk, then `data: [DONE]`."""
    events = []
    for i in range(STREAM_CHUNKS):
        delta: dict[str, Any] = {"content": CHUNK_TEXT}
        if i == 0:
            delta = {"role": "assistant", **delta}
        finish = "stop" if i == STREAM_CHUNKS - 1 else None
        events.append(
            _chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])
        )
    events.append(_chunk([], USAGE))
    events.append("data: [DONE]\n\n")
    return events


# What each mode's answer must look like to the client, checked once before measuring.
SSE_CLIENT_EVENTS = STREAM_CHUNKS + 2  # content chunks, the usage chunk, [DONE]
