"""The Anthropic Messages adapter: one pooled aiohttp session per provider, reused by every
request; `POST {base_url}/v1/messages`, translated from the neutral OpenAI format by
`convert.py` and back by `answer.py` and `stream.py`. Serves Anthropic itself and the
Anthropic-compatible endpoints of DeepSeek, Moonshot, Z.ai and MiniMax."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from crossroads.errors import ConfigError, UpstreamError, UpstreamTimeoutError
from crossroads.providers import http
from crossroads.providers.anthropic.answer import completion_from_message
from crossroads.providers.anthropic.convert import decode_request, to_messages_request
from crossroads.providers.anthropic.errors import from_error_object, from_status
from crossroads.providers.anthropic.stream import StreamConverter
from crossroads.providers.anthropic.thinking_memory import StreamThinking, ThinkingMemory
from crossroads.providers.anthropic.wire import API_VERSION
from crossroads.providers.base import Completion, ProviderSpec, StreamChunk, UpstreamCall
from crossroads.schemas.chat_wire import ChatChunk, encode_chunk
from crossroads.sse import SSEDecoder

_AUTH_SCHEMES = ("x-api-key", "bearer")


class AnthropicProvider:
    """See `crossroads.providers.base.Provider` for the contract.

    Options (`spec.options`): `default_max_tokens` (default 4096), sent when the request sets no
    limit, because Anthropic requires `max_tokens`; `auth_scheme`, "x-api-key" (default, what
    Anthropic documents) or "bearer" (`Authorization: Bearer`, for a compatible endpoint that
    wants it). Raises ConfigError for a bad option.
    """

    def __init__(self, spec: ProviderSpec) -> None:
        self.id = spec.id
        self._spec = spec
        base = spec.base_url.rstrip("/")
        # The catalog's base URLs have no /v1 (https://api.anthropic.com); tolerate one that does.
        self._url = f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"
        self._default_max_tokens = _option_max_tokens(spec)
        self._thinking = ThinkingMemory()
        scheme = spec.options.get("auth_scheme", "x-api-key")
        if scheme not in _AUTH_SCHEMES:
            raise ConfigError(
                f"provider '{spec.id}': auth_scheme must be one of {', '.join(_AUTH_SCHEMES)}"
            )
        headers = {
            "Content-Type": "application/json",
            "anthropic-version": API_VERSION,
            **spec.headers,
        }
        if spec.api_key and scheme == "bearer":
            headers["Authorization"] = f"Bearer {spec.api_key}"
        elif spec.api_key:
            headers["x-api-key"] = spec.api_key
        self._headers = headers
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            self._session = http.pooled_session(self._headers, self._spec.timeouts.connect)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _encode(self, call: UpstreamCall, stream: bool) -> bytes:
        typed = self._thinking.restore(decode_request(call.body))
        request: dict[str, Any] = dict(
            to_messages_request(typed, default_max_tokens=self._default_max_tokens)
        )
        if stream:
            request["stream"] = True
        return orjson.dumps(request)

    def _ready(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(f"provider {self.id} used before start()")
        return self._session

    async def complete(self, call: UpstreamCall) -> Completion:
        body = await http.post_and_read(
            self._ready(),
            self._url,
            self._encode(call, stream=False),
            call,
            provider=self.id,
            first_byte=self._spec.timeouts.first_byte,
            read_error=from_status,
        )
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise http.bad_answer(self.id, "a response that is not valid JSON") from None
        if isinstance(data, dict) and data.get("type") == "error":
            raise from_error_object(self.id, data.get("error"))
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            raise http.bad_answer(self.id, "a JSON document that is not a message")
        document, usage = completion_from_message(
            data, created=int(time.time()), model=str(call.body.get("model", ""))
        )
        for choice in document.get("choices") or ():
            self._thinking.remember_message(choice.get("message") or {})
        return Completion(body=orjson.dumps(document), data=document, usage=usage)

    async def stream(self, call: UpstreamCall) -> AsyncIterator[StreamChunk]:
        response = await http.post(
            self._ready(),
            self._url,
            self._encode(call, stream=True),
            call,
            provider=self.id,
            first_byte=self._spec.timeouts.first_byte,
            read_error=from_status,
        )
        decoder = SSEDecoder()
        converter = StreamConverter(
            self.id, created=int(time.time()), model=str(call.body.get("model", ""))
        )
        thinking = StreamThinking()
        content = response.content
        deadline = http.StreamDeadline(content, call)  # one timer for the whole body
        try:
            while not converter.finished:
                raw = await content.readany()
                if not raw:
                    break
                for event in decoder.feed(raw):
                    for chunk in converter.feed(event.data, event.event):
                        thinking.see(chunk)
                        yield _stream_chunk(chunk, converter)
                    if converter.finished:
                        thinking.commit(self._thinking)
                        break
        except http.DeadlinePassed:
            raise UpstreamTimeoutError(
                f"provider '{self.id}' was still streaming when {http.DEADLINE} passed"
            ) from None
        except aiohttp.ClientError as exc:
            raise http.transport_error(self.id, exc, mid_stream=True) from None
        finally:
            deadline.cancel()
            # Closing (not releasing) drops the connection, which is how an upstream learns
            # that nobody is reading any more and stops generating.
            if converter.finished:
                response.release()
            else:
                response.close()
        if not converter.finished:
            raise UpstreamError(
                f"provider '{self.id}' stream ended before the answer was complete",
                retryable=True,
                code="upstream_truncated",
            )


def _stream_chunk(chunk: ChatChunk, converter: StreamConverter) -> StreamChunk:
    """The chunk encoded once for OpenAI clients, and kept typed for translating ingresses."""
    data = encode_chunk(chunk)
    if chunk.choices:
        return StreamChunk(data=data, parsed=chunk)
    return StreamChunk(data=data, usage=converter.usage, usage_only=True, parsed=chunk)


def _option_max_tokens(spec: ProviderSpec) -> int:
    value = spec.options.get("default_max_tokens", 4096)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"provider '{spec.id}': default_max_tokens must be a positive integer")
    return value
