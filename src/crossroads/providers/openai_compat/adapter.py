"""The OpenAI-compatible adapter: one pooled aiohttp session per provider, reused by every
request. The request is fitted to the host's profile (renames, refused parameters, the reasoning
knob) and re-encoded once; answers pass through as the bytes the upstream sent unless the
profile says their reasoning must be normalised (`reasoning_out.py`), or the client asked to
exclude it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from crossroads.errors import UpstreamError, UpstreamTimeoutError
from crossroads.providers import http
from crossroads.providers.base import Completion, ProviderSpec, StreamChunk, UpstreamCall
from crossroads.providers.openai_compat.errors import from_status
from crossroads.providers.openai_compat.reasoning_cache import ReasoningCache
from crossroads.providers.openai_compat.reasoning_out import (
    OutputPlan,
    StreamNormaliser,
    normalise_completion,
    output_plan,
)
from crossroads.providers.openai_compat.settings import Settings
from crossroads.providers.profiles import Prepared, prepare_request
from crossroads.schemas import Usage
from crossroads.schemas.usage import from_responses
from crossroads.sse import SSEDecoder

log = logging.getLogger(__name__)


class OpenAICompatProvider:
    """See `crossroads.providers.base.Provider` for the contract; also `Embeddings`,
    `HealthProbe` and `ResponsesPassThrough` (with the `responses` option). Options: see
    `settings.py` (`profile`, `on_unsupported`, `stream_usage`, `reasoning_cache_size`,
    `responses`); a bad one raises ConfigError here.

    Before any upstream call, a request the profile cannot serve raises UpstreamError (400, not
    retryable): a refused parameter under `on_unsupported: reject`, or a malformed `reasoning`.
    """

    def __init__(self, spec: ProviderSpec) -> None:
        self.id = spec.id
        self._spec = spec
        self._settings = Settings.from_spec(spec)
        self.profile = self._settings.profile
        self._chat_url = f"{spec.base_url}/chat/completions"
        self._responses_url = f"{spec.base_url}/responses"
        self.speaks_responses = self._settings.responses
        self._embeddings_url = f"{spec.base_url}/embeddings"
        self._replay = (
            ReasoningCache(self._settings.reasoning_cache_size)
            if self.profile.reasoning_replay
            else None
        )
        headers = {"Content-Type": "application/json", **spec.headers}
        if spec.api_key:
            headers["Authorization"] = f"Bearer {spec.api_key}"
        self._headers = headers
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            self._session = http.pooled_session(self._headers, self._spec.timeouts.connect)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _prepare(self, call: UpstreamCall, stream: bool) -> tuple[bytes, Prepared, OutputPlan]:
        """The request bytes for the host, what was left out, and what to do to the answer.
        Raises UpstreamError (400) for a request the profile says the host cannot serve."""
        prepared = prepare_request(
            self.profile, call.body, policy=self._settings.on_unsupported, provider=self.id
        )
        body: Mapping[str, Any] = prepared.body
        if self._replay is not None:
            fold = self.profile.reasoning_out == "think_tags"
            body = self._replay.restore(body, fold=fold) or body
        if stream and self._settings.stream_usage:
            options = body.get("stream_options")
            merged = dict(options) if isinstance(options, dict) else {}
            merged["include_usage"] = True
            body = {**body, "stream": True, "stream_options": merged}
        plan = output_plan(
            self.profile.reasoning_out,
            exclude=prepared.exclude_reasoning,
            capture=self._replay is not None,
        )
        return orjson.dumps(body), prepared, plan

    def _ready(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(f"provider {self.id} used before start()")
        return self._session

    async def probe(self) -> None:
        """GET {base_url}/models: answered by every OpenAI-compatible server, free of charge."""
        session = self._ready()
        try:
            async with asyncio.timeout(self._spec.timeouts.first_byte):
                async with session.get(f"{self._spec.base_url}/models") as response:
                    if response.status >= 400:
                        raise await http.refusal(self.id, response, from_status)
        except TimeoutError:
            raise UpstreamTimeoutError(f"provider '{self.id}' did not answer its probe") from None
        except aiohttp.ClientError as exc:
            raise http.transport_error(self.id, exc) from None

    async def _read_json(self, url: str, data: bytes, call: UpstreamCall) -> tuple[bytes, Any]:
        """POSTs and reads a whole JSON answer within the timeouts: (raw bytes, decoded)."""
        body = await http.post_and_read(
            self._ready(),
            url,
            data,
            call,
            provider=self.id,
            first_byte=self._spec.timeouts.first_byte,
            read_error=from_status,
        )
        try:
            return body, orjson.loads(body)
        except orjson.JSONDecodeError:
            raise http.bad_answer(self.id, "a response that is not valid JSON") from None

    async def _read_first(self, content: aiohttp.StreamReader, call: UpstreamCall) -> bytes:
        """The stream's next bytes while its first event has not come: bounded by the
        first-byte timeout and the request's deadline. b"" at the end of the body. Once the
        first event came, reads go straight to `content.readany()` under one StreamDeadline
        for the rest of the stream."""
        first_byte = self._spec.timeouts.first_byte
        timeout = min(http.remaining(call), first_byte)
        if timeout <= 0:
            raise UpstreamTimeoutError(
                f"provider '{self.id}' was still streaming when {http.DEADLINE} passed"
            )
        try:
            async with asyncio.timeout(timeout):
                return await content.readany()
        except TimeoutError:
            raise http.timed_out(self.id, "sent no first event", timeout, first_byte) from None

    def _past_deadline(self) -> UpstreamTimeoutError:
        return UpstreamTimeoutError(
            f"provider '{self.id}' was still streaming when {http.DEADLINE} passed"
        )

    async def complete(self, call: UpstreamCall) -> Completion:
        request, prepared, plan = self._prepare(call, stream=False)
        body, data = await self._read_json(self._chat_url, request, call)
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise http.bad_answer(self.id, "a JSON document that is not a chat completion")
        if plan.active:
            normalised = normalise_completion(data, plan, self._replay)
            if plan.rewrites:
                data, body = normalised, orjson.dumps(normalised)
        usage = Usage.from_openai(data.get("usage"))
        return Completion(body=body, data=data, usage=usage, dropped=prepared.dropped)

    async def respond(self, call: UpstreamCall) -> Completion:
        """POST {base_url}/responses with the client's request as it is (`model` excepted);
        see `base.ResponsesPassThrough`. No profile applies: the host speaks OpenAI's API."""
        body, data = await self._read_json(self._responses_url, orjson.dumps(call.body), call)
        if not isinstance(data, dict) or data.get("object") != "response":
            raise http.bad_answer(self.id, "a JSON document that is not a Response")
        return Completion(
            body=body, data=data, usage=from_responses(data.get("usage")), native=True
        )

    async def respond_stream(self, call: UpstreamCall) -> AsyncIterator[StreamChunk]:
        """The Responses stream's events as they arrive, each chunk one event's JSON."""
        response = await http.post(
            self._ready(),
            self._responses_url,
            orjson.dumps(call.body),
            call,
            provider=self.id,
            first_byte=self._spec.timeouts.first_byte,
            read_error=from_status,
        )
        decoder = SSEDecoder()
        ended = False  # a terminal event (completed, incomplete, failed) arrived
        content = response.content
        deadline: http.StreamDeadline | None = None  # armed once the first event came
        try:
            waiting_first = True
            while not ended:
                if waiting_first:
                    raw = await self._read_first(content, call)
                else:
                    if deadline is None:
                        deadline = http.StreamDeadline(content, call)
                    raw = await content.readany()
                if not raw:
                    break
                events = decoder.feed(raw)
                last = len(events) - 1
                for i, event in enumerate(events):
                    if event.data == "[DONE]":
                        continue
                    chunk, ended = _response_event(self.id, event.data, more=i < last)
                    waiting_first = False
                    yield chunk
                    if ended:
                        break
        except http.DeadlinePassed:
            raise self._past_deadline() from None
        except aiohttp.ClientError as exc:
            raise http.transport_error(self.id, exc, mid_stream=True) from None
        finally:
            if deadline is not None:
                deadline.cancel()
            response.close()
        if not ended:
            raise UpstreamError(
                f"provider '{self.id}' stream ended before the response was complete",
                retryable=True,
                code="upstream_truncated",
            )

    async def embed(self, call: UpstreamCall) -> Completion:
        """POST {base_url}/embeddings with the body as sent; see `base.Embeddings`."""
        body, data = await self._read_json(self._embeddings_url, orjson.dumps(call.body), call)
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise http.bad_answer(self.id, "a JSON document that is not an embeddings list")
        return Completion(body=body, data=data, usage=Usage.from_openai(data.get("usage")))

    async def stream(self, call: UpstreamCall) -> AsyncIterator[StreamChunk]:
        request, prepared, plan = self._prepare(call, stream=True)
        normaliser = StreamNormaliser(plan, self._replay) if plan.active else None
        rewrite = plan.rewrites
        dropped = prepared.dropped
        response = await http.post(
            self._ready(),
            self._chat_url,
            request,
            call,
            provider=self.id,
            first_byte=self._spec.timeouts.first_byte,
            read_error=from_status,
        )
        decoder = SSEDecoder()
        finished = False  # a choice reported its finish_reason
        done = False  # the [DONE] sentinel arrived
        reusable = False  # the body was read to its end, so the connection can be pooled
        content = response.content
        deadline: http.StreamDeadline | None = None  # armed once the first event came
        try:
            waiting_first = True  # the first event is held to the first-byte timeout too
            while not done:
                if waiting_first:
                    raw = await self._read_first(content, call)
                else:
                    if deadline is None:
                        deadline = http.StreamDeadline(content, call)
                    raw = await content.readany()
                if not raw:
                    break
                # Everything this read completed is decoded first and handed over together,
                # each chunk but the last marked `more`, so the ingress can send it in one write.
                batch: list[tuple[bytes, dict[str, Any], tuple[str, ...]]] = []
                failure: UpstreamError | None = None
                try:
                    for event in decoder.feed(raw):
                        if event.data == "[DONE]":
                            done = True
                            break
                        obj = _decode_event(self.id, event.data)
                        if not finished:
                            finished = _finishes(obj)
                        data = event.data.encode()
                        if normaliser is not None:
                            out, payload = normaliser.chunk(obj)
                            if not payload and not waiting_first:
                                continue  # nothing left to send in it (held back, or excluded)
                            if rewrite:
                                data = orjson.dumps(out)
                        batch.append((data, obj, dropped if waiting_first else ()))
                        waiting_first = False
                except UpstreamError as exc:
                    failure = exc  # after the events before it, which the client may still get
                last = len(batch) - 1 if failure is None else len(batch)
                for i, (data, obj, lost) in enumerate(batch):
                    yield _chunk(data, obj, lost, i < last)
                if failure is not None:
                    raise failure
            if deadline is not None:
                deadline.cancel()
            if done:
                # Read what follows [DONE] (with chunked encoding, the terminating chunk) so the
                # connection goes back to the pool instead of being closed.
                reusable = await _drain(content, min(0.2, http.remaining(call)))
        except http.DeadlinePassed:
            raise self._past_deadline() from None
        except aiohttp.ClientError as exc:
            raise http.transport_error(self.id, exc, mid_stream=True) from None
        finally:
            if deadline is not None:
                deadline.cancel()
            # Closing (not releasing) drops the connection, which is how an upstream learns
            # that nobody is reading any more and stops generating.
            if done and reusable:
                response.release()
            else:
                response.close()
        if not done and (decoder.has_partial or not finished):
            raise UpstreamError(
                f"provider '{self.id}' stream ended before the answer was complete",
                retryable=True,
                code="upstream_truncated",
            )


async def _drain(content: aiohttp.StreamReader, seconds: float) -> bool:
    """Reads to the end of the body within `seconds`; True when the end was reached."""
    if seconds <= 0:
        return False
    try:
        async with asyncio.timeout(seconds):
            while await content.readany():
                pass
    except (TimeoutError, aiohttp.ClientError):
        return False
    return True


def _decode_event(provider: str, data: str) -> dict[str, Any]:
    """One stream event's JSON object. Raises UpstreamError for garbage and for the error
    events some hosts send mid-stream."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise http.bad_answer(provider, "a stream event that is not valid JSON") from None
    if not isinstance(obj, dict):
        raise http.bad_answer(provider, "a stream event that is not a JSON object")
    error = obj.get("error")
    if error is not None:
        message = error.get("message") if isinstance(error, dict) else str(error)
        raise UpstreamError(
            f"provider '{provider}' reported an error mid-stream: {message}",
            retryable=True,
            code="upstream_stream_error",
        )
    return obj


_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _response_event(provider: str, data: str, *, more: bool) -> tuple[StreamChunk, bool]:
    """One Responses stream event as a chunk (with the usage of a terminal event), and whether
    it ends the stream. An `error` event ends it with an UpstreamError."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise http.bad_answer(provider, "a stream event that is not valid JSON") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise http.bad_answer(provider, "a stream event without a type")
    kind = obj["type"]
    if kind == "error":
        raise UpstreamError(
            f"provider '{provider}' reported an error mid-stream: {obj.get('message')}",
            retryable=True,
            code="upstream_stream_error",
        )
    usage = None
    if kind in _TERMINAL:
        response = obj.get("response")
        usage = from_responses(response.get("usage")) if isinstance(response, dict) else None
    return StreamChunk(data=data.encode(), usage=usage, more=more), kind in _TERMINAL


def _finishes(obj: dict[str, Any]) -> bool:
    choices = obj.get("choices")
    if isinstance(choices, list):
        for c in choices:
            if isinstance(c, dict) and c.get("finish_reason"):
                return True
    return False


def _chunk(data: bytes, obj: dict[str, Any], dropped: tuple[str, ...], more: bool) -> StreamChunk:
    """`more`: another chunk of the same read follows, so the ingress may join their writes."""
    raw_usage = obj.get("usage")
    if raw_usage is None:  # most events: no usage to read
        return StreamChunk(data=data, dropped=dropped, more=more)
    usage = Usage.from_openai(raw_usage)
    usage_only = usage is not None and not obj.get("choices")
    return StreamChunk(data=data, usage=usage, usage_only=usage_only, dropped=dropped, more=more)
