"""The OpenAI-compatible adapter: one pooled aiohttp session per provider, reused by every
request; the request body is re-encoded only to set the upstream model id, and answers pass
through as the bytes the upstream sent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from crossroads.errors import UpstreamError, UpstreamTimeoutError
from crossroads.providers.base import Completion, ProviderSpec, StreamChunk, UpstreamCall
from crossroads.providers.openai_compat.errors import from_status
from crossroads.schemas import Usage
from crossroads.sse import SSEDecoder

log = logging.getLogger(__name__)

_MAX_ERROR_BODY = 64 * 1024


class OpenAICompatProvider:
    """See `crossroads.providers.base.Provider` for the contract.

    Options (`spec.options`): `stream_usage` (default true) asks for usage on streams with
    `stream_options.include_usage`; set false for hosts that refuse `stream_options` (GLM).
    """

    def __init__(self, spec: ProviderSpec) -> None:
        self.id = spec.id
        self._spec = spec
        self._url = f"{spec.base_url}/chat/completions"
        self._stream_usage = bool(spec.options.get("stream_usage", True))
        headers = {"Content-Type": "application/json", **spec.headers}
        if spec.api_key:
            headers["Authorization"] = f"Bearer {spec.api_key}"
        self._headers = headers
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=0, ttl_dns_cache=300, keepalive_timeout=30, enable_cleanup_closed=True
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._spec.timeouts.connect),
                auto_decompress=True,
                raise_for_status=False,
                skip_auto_headers=("User-Agent",),
            )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _encode(self, call: UpstreamCall, stream: bool) -> bytes:
        body: Mapping[str, Any] = call.body
        if stream and self._stream_usage:
            options = body.get("stream_options")
            merged = dict(options) if isinstance(options, dict) else {}
            merged["include_usage"] = True
            body = {**body, "stream": True, "stream_options": merged}
        return orjson.dumps(body)

    def _remaining(self, call: UpstreamCall) -> float:
        return call.deadline - asyncio.get_running_loop().time()

    async def _post(self, call: UpstreamCall, stream: bool) -> aiohttp.ClientResponse:
        """Sends the request and waits for the answer's headers, within the first-byte timeout
        and the call's deadline. Raises UpstreamError for transport failures and HTTP errors."""
        if self._session is None:
            raise RuntimeError(f"provider {self.id} used before start()")
        timeout = min(self._spec.timeouts.first_byte, self._remaining(call))
        if timeout <= 0:
            raise UpstreamTimeoutError(f"no time left for provider '{self.id}'")
        try:
            async with asyncio.timeout(timeout):
                response = await self._session.post(self._url, data=self._encode(call, stream))
                if response.status >= 400:
                    try:
                        body = await response.content.read(_MAX_ERROR_BODY)
                    finally:
                        response.release()
                    raise from_status(
                        self.id, response.status, body, response.headers.get("Retry-After")
                    )
                return response
        except TimeoutError:
            raise UpstreamTimeoutError(
                f"provider '{self.id}' sent no answer within {timeout:.1f}s"
            ) from None
        except aiohttp.ClientError as exc:
            raise _transport_error(self.id, exc) from None

    async def probe(self) -> None:
        """GET {base_url}/models: answered by every OpenAI-compatible server, free of charge."""
        if self._session is None:
            raise RuntimeError(f"provider {self.id} used before start()")
        try:
            async with asyncio.timeout(self._spec.timeouts.first_byte):
                async with self._session.get(f"{self._spec.base_url}/models") as response:
                    if response.status >= 400:
                        body = await response.content.read(_MAX_ERROR_BODY)
                        raise from_status(
                            self.id, response.status, body, response.headers.get("Retry-After")
                        )
        except TimeoutError:
            raise UpstreamTimeoutError(f"provider '{self.id}' did not answer its probe") from None
        except aiohttp.ClientError as exc:
            raise _transport_error(self.id, exc) from None

    async def complete(self, call: UpstreamCall) -> Completion:
        response = await self._post(call, stream=False)
        try:
            async with asyncio.timeout(max(self._remaining(call), 0)):
                body = await response.read()
        except TimeoutError:
            raise UpstreamTimeoutError(
                f"provider '{self.id}' did not finish its answer before the deadline"
            ) from None
        except aiohttp.ClientError as exc:
            raise _transport_error(self.id, exc) from None
        finally:
            response.release()
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise _garbage(self.id, "a response that is not valid JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise _garbage(self.id, "a JSON document that is not a chat completion")
        return Completion(body=body, data=data, usage=Usage.from_openai(data.get("usage")))

    async def stream(self, call: UpstreamCall) -> AsyncIterator[StreamChunk]:
        response = await self._post(call, stream=True)
        decoder = SSEDecoder()
        finished = False  # a choice reported its finish_reason
        done = False  # the [DONE] sentinel arrived
        try:
            content = response.content
            waiting_first = True  # the first event is held to the first-byte timeout too
            while not done:
                timeout = self._remaining(call)
                if waiting_first:
                    timeout = min(timeout, self._spec.timeouts.first_byte)
                if timeout <= 0:
                    raise UpstreamTimeoutError(
                        f"provider '{self.id}' stream passed the request deadline"
                    )
                try:
                    async with asyncio.timeout(timeout):
                        raw = await content.readany()
                except TimeoutError:
                    what = "sent no first event" if waiting_first else "stream stalled"
                    raise UpstreamTimeoutError(
                        f"provider '{self.id}' {what} within {timeout:.1f}s"
                    ) from None
                if not raw:
                    break
                for event in decoder.feed(raw):
                    if event.data == "[DONE]":
                        done = True
                        break
                    chunk, chunk_finished = _parse_chunk(self.id, event.data)
                    finished = finished or chunk_finished
                    waiting_first = False
                    yield chunk
        except aiohttp.ClientError as exc:
            raise _transport_error(self.id, exc, mid_stream=True) from None
        finally:
            # Closing (not releasing) drops the connection, which is how an upstream learns
            # that nobody is reading any more and stops generating.
            if done:
                response.release()
            else:
                response.close()
        if not done and (decoder.has_partial or not finished):
            raise UpstreamError(
                f"provider '{self.id}' stream ended before the answer was complete",
                retryable=True,
                code="upstream_truncated",
            )


def _parse_chunk(provider: str, data: str) -> tuple[StreamChunk, bool]:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise _garbage(provider, "a stream event that is not valid JSON") from None
    if not isinstance(obj, dict):
        raise _garbage(provider, "a stream event that is not a JSON object")
    error = obj.get("error")
    if error is not None:
        message = error.get("message") if isinstance(error, dict) else str(error)
        raise UpstreamError(
            f"provider '{provider}' reported an error mid-stream: {message}",
            retryable=True,
            code="upstream_stream_error",
        )
    choices = obj.get("choices")
    usage = Usage.from_openai(obj.get("usage"))
    finished = isinstance(choices, list) and any(
        isinstance(c, dict) and c.get("finish_reason") for c in choices
    )
    return (
        StreamChunk(data=data.encode(), usage=usage, usage_only=usage is not None and not choices),
        finished,
    )


def _garbage(provider: str, what: str) -> UpstreamError:
    return UpstreamError(
        f"provider '{provider}' returned {what}", retryable=True, code="upstream_bad_response"
    )


def _transport_error(
    provider: str, exc: aiohttp.ClientError, *, mid_stream: bool = False
) -> UpstreamError:
    if isinstance(exc, aiohttp.ClientConnectorError):
        what = "could not be reached"
    elif mid_stream:
        what = "dropped the connection mid-stream"
    else:
        what = "dropped the connection"
    # The exception text can carry URLs but never our headers; keep only its class name.
    return UpstreamError(
        f"provider '{provider}' {what} ({type(exc).__name__})",
        retryable=True,
        code="upstream_connection_error",
    )
