"""POST /v1/responses, GET and DELETE /v1/responses/{id}: OpenAI's Responses API over every model
the gateway serves, whatever its upstream's wire format.

POST validates the request into typed Structs (`request`), converts it to the neutral chat
request, routes it like every other request (policy, limits, budgets, fallbacks, deadlines),
and converts the answer back (`output`): a whole Response object, or the Responses streaming
events. Every path through it submits exactly one ledger record (endpoint "responses"). The
response id is `resp_` plus the hex of the request id (`req_...`), so a ledger row and a
response name each other. Errors have OpenAI's shape.

`store` (OpenAI's default: true) keeps the response for `previous_response_id` and GET when
the gateway's response storage is on (`responses.store`, `store`); with storage off, a request
that asks for it explicitly (`store: true`) or continues one (`previous_response_id`) gets a
400 that says so, and other requests are answered unstored (`"store": false` in the answer).
GET and DELETE read and remove a stored response of the same API key; they call no upstream
and write no ledger record."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import orjson
from starlette.requests import Request
from starlette.responses import Response

from crossroads.errors import (
    AuthenticationError,
    GatewayError,
    InvalidRequestError,
    NotFoundError,
    UpstreamError,
)
from crossroads.ingress.body import headers_of
from crossroads.ingress.disconnect import unless_disconnected
from crossroads.ingress.estimate import estimate_input_tokens, estimated_answer_usage
from crossroads.ingress.openai.errors import error_response
from crossroads.ingress.pipeline import Call, dropped_header
from crossroads.ingress.relay import StreamEncoder, StreamRelay
from crossroads.ingress.responses.output import (
    ResponseShell,
    StreamTranslator,
    encode_events,
    error_code,
    whole_response,
)
from crossroads.ingress.responses.request import (
    ITEMS,
    Converted,
    Item,
    ResponsesRequest,
    parse_request,
    to_chat_request,
)
from crossroads.ingress.responses.store import ResponseStore
from crossroads.ingress.services import Services
from crossroads.ingress.validation import tagged
from crossroads.providers.base import Completion, StreamChunk
from crossroads.routing.router import Trace
from crossroads.schemas import Usage
from crossroads.schemas.chat_wire import WireError, decode_chunk, decode_completion
from crossroads.sse import encode_event

__all__ = ["create_response", "delete_response", "get_response"]

JSON = dict[str, Any]


async def create_response(request: Request) -> Response:
    return await Call(request, "responses").run(request, _create, _error)


def _error(exc: GatewayError, call: Call) -> Response:
    return error_response(exc, call.headers())


def response_id(request_id: str) -> str:
    return "resp_" + request_id.removeprefix("req_")


async def _create(call: Call, request: Request) -> Response:
    principal, data, options = await call.read(request)
    req = parse_request(data)
    store: ResponseStore = call.services.responses
    if not store.enabled and (req.store is True or req.previous_response_id is not None):
        param = "store" if req.store is True else "previous_response_id"
        raise InvalidRequestError(
            f"{param}: response storage is off on this gateway (responses.store in its "
            "config), so responses cannot be stored or continued; send store: false and the "
            "whole conversation in input",
            param=param,
            code="storage_disabled",
        )
    history: list[Item] = []
    if req.previous_response_id is not None:
        previous = await store.get(req.previous_response_id, call.exchange.api_key_id)
        if previous is None:
            raise InvalidRequestError(
                f"previous_response_id: no stored response '{req.previous_response_id}' "
                "(it never existed, was deleted, expired, or belongs to another key)",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        history = tagged(previous.items(), "previous_response", ITEMS, what="stored item")
    converted = to_chat_request(req, history)
    if call.span is not None:  # the neutral form: spans read `messages`, not `input`
        call.span.request_body(converted.body)
    admitted = await call.admit(
        request,
        principal,
        req.model,
        options,
        stream=req.stream,
        max_output=req.max_output_tokens,
        body=converted.body,
    )
    keep = store.enabled and req.store is not False
    shell = ResponseShell(response_id(call.exchange.request_id), req.model, converted, keep)
    saver = _Saver(store, call.exchange.api_key_id, history, converted) if keep else None
    router, trace = call.services.router, admitted.trace
    native = _native_request(data, req, history)
    if req.stream:
        stream = await unless_disconnected(
            request, router.open_stream(admitted.plan, converted.body, trace, native)
        )
        encoder: StreamEncoder
        if stream.native:
            encoder = _PassThroughEncoder(req.model, converted, saver)
        else:
            encoder = _EventEncoder(shell, trace, saver)
        dropped = () if stream.native else converted.dropped
        return StreamRelay(
            call,
            stream,
            encoder,
            {**call.headers(), **dropped_header(dropped + stream.first.dropped)},
        )
    _, completion = await unless_disconnected(
        request, router.complete(admitted.plan, converted.body, trace, native)
    )
    if completion.native:
        return _passed_through(call, completion, req.model, converted, saver)
    call.usage = completion.usage or estimated_answer_usage(converted.body, completion.data)
    try:
        parsed = decode_completion(completion.body)
    except WireError as exc:
        raise _bad_upstream(trace, f"an answer that is not a chat completion ({exc})") from None
    body, output = whole_response(shell, parsed, call.usage)
    if saver is not None:
        saver.save(body, output)
    encoded = orjson.dumps(body)
    call.answered(call.usage)
    return Response(
        encoded,
        media_type="application/json",
        headers={**call.headers(), **dropped_header(converted.dropped + completion.dropped)},
    )


def _native_request(data: JSON, req: ResponsesRequest, history: list[Item]) -> JSON:
    """The request for an upstream that speaks the Responses API: the client's own, except that
    a `previous_response_id` the gateway holds becomes the stored items at the head of `input`
    (the upstream never saw the gateway's ids)."""
    if req.previous_response_id is None:
        return data
    items = req.input if isinstance(req.input, list) else [{"role": "user", "content": req.input}]
    native = {k: v for k, v in data.items() if k != "previous_response_id"}
    native["input"] = [*msgspec.to_builtins(history), *items]
    return native


_MODEL_FIELD = re.compile(rb'"model"\s*:\s*"(?:[^"\\]|\\.)*"')
"""A JSON `"model": "..."` member (a quote inside a JSON string is escaped, so this matches
only real members); in a Response object the first one is the top-level `model`."""
_LIFECYCLE = frozenset(
    f"response.{name}"
    for name in ("created", "in_progress", "queued", "completed", "incomplete", "failed")
)
"""The events that carry the Response object (and so its `model`)."""


def _named(data: bytes, model: str) -> bytes:
    """`data` with its first `model` member naming the model the client asked for."""
    field = (b'"model":' + orjson.dumps(model)).replace(b"\\", b"\\\\")
    return _MODEL_FIELD.sub(field, data, count=1)


def _passed_through(
    call: Call, completion: Completion, model: str, converted: Converted, saver: _Saver | None
) -> Response:
    """A pass-through's whole answer: the upstream's Response, naming the requested model."""
    call.usage = completion.usage or Usage(
        prompt_tokens=estimate_input_tokens(converted.body), estimated=True
    )
    data = completion.data
    if saver is not None and isinstance(data.get("output"), list):
        saver.save({**data, "model": model}, data["output"])
    body = _named(completion.body, model)
    call.answered(call.usage)
    return Response(
        body,
        media_type="application/json",
        headers={**call.headers(), **dropped_header(completion.dropped)},
    )


class _PassThroughEncoder:
    """A pass-through's stream: the upstream's events as they came (named by their `type`),
    the lifecycle events naming the requested model; the usage of the terminal event."""

    __slots__ = ("_converted", "_model", "_saver", "_seen", "_usage")

    def __init__(self, model: str, converted: Converted, saver: _Saver | None) -> None:
        self._model = model
        self._converted = converted
        self._saver = saver
        self._seen = 0
        self._usage: Usage | None = None

    def feed(self, chunk: StreamChunk) -> bytes:
        self._seen += 1
        if chunk.usage is not None:
            self._usage = chunk.usage
        data = chunk.data
        event = orjson.loads(data)  # the adapter checked it is an object with a `type`
        name = str(event["type"])
        if name in _LIFECYCLE:
            data = _named(data, self._model)
            response = event.get("response")
            if (
                self._saver is not None
                and name == "response.completed"
                and isinstance(response, dict)
                and isinstance(response.get("output"), list)
            ):
                self._saver.save({**response, "model": self._model}, response["output"])
        return encode_event(data, name)

    def end(self) -> bytes:
        return b""

    def error(self, exc: GatewayError) -> bytes:
        payload = {
            "type": "error",
            "code": error_code(exc),
            "message": exc.message,
            "param": None,
            "sequence_number": self._seen,
        }
        return encode_event(orjson.dumps(payload), "error")

    def usage(self) -> Usage:
        return self._usage or Usage(
            prompt_tokens=estimate_input_tokens(self._converted.body),
            completion_tokens=0,
            estimated=True,
        )


class _Saver:
    """Stores a finished response with its context: the stored history it continued, this
    request's input items, and its output."""

    __slots__ = ("_converted", "_history", "_owner", "_store")

    def __init__(
        self, store: ResponseStore, owner: str | None, history: list[Item], converted: Converted
    ) -> None:
        self._store = store
        self._owner = owner
        self._history = history
        self._converted = converted

    def save(self, response: JSON, output: list[JSON]) -> None:
        inputs = msgspec.to_builtins([*self._history, *self._converted.items])
        self._store.save(response["id"], self._owner, response, inputs, output)


class _EventEncoder:
    """The Responses stream: chunks decoded into typed Structs once and translated into
    numbered events (`StreamTranslator`). A completed response is stored when asked."""

    __slots__ = ("_input_estimate", "_saver", "_seen", "_sequence", "_trace", "_translator")

    def __init__(self, shell: ResponseShell, trace: Trace, saver: _Saver | None) -> None:
        self._translator = StreamTranslator(shell)
        self._input_estimate = estimate_input_tokens(shell.converted.body)
        self._trace = trace
        self._saver = saver
        self._sequence = 0
        self._seen = 0  # content chunks: the completion-token estimate when no usage arrives

    def _encode(self, events: list[tuple[str, JSON]]) -> bytes:
        if not events:
            return b""
        out = encode_events(events, self._sequence)
        self._sequence += len(events)
        return out

    def feed(self, chunk: StreamChunk) -> bytes:
        if not chunk.usage_only:
            self._seen += 1
        try:
            decoded = chunk.parsed or decode_chunk(chunk.data)
        except WireError as exc:
            raise _bad_upstream(
                self._trace, f"a stream chunk that is not a chat chunk ({exc})"
            ) from None
        return self._encode(self._translator.feed(decoded))

    def end(self) -> bytes:
        translator = self._translator
        if translator.usage is None:
            translator.usage = self.usage()
        events = translator.finish()
        if self._saver is not None:
            self._saver.save(events[-1][1]["response"], translator.items())
        return self._encode(events)

    def error(self, exc: GatewayError) -> bytes:
        return self._encode(self._translator.fail(exc))

    def usage(self) -> Usage:
        """The upstream's usage; without one, the input estimate and one token per content
        chunk (hosts stream about a token per chunk), marked estimated."""
        return self._translator.usage or Usage(
            prompt_tokens=self._input_estimate,
            completion_tokens=max(self._seen - 1, 0),
            estimated=True,
        )


def _bad_upstream(trace: Trace, what: str) -> UpstreamError:
    provider = trace.deployment.provider if trace.deployment else "upstream"
    return UpstreamError(
        f"provider '{provider}' sent {what}", retryable=False, code="upstream_bad_response"
    )


# --- GET and DELETE ----------------------------------------------------------------------------


async def get_response(request: Request) -> Response:
    return await _stored(request, delete=False)


async def delete_response(request: Request) -> Response:
    return await _stored(request, delete=True)


async def _stored(request: Request, *, delete: bool) -> Response:
    services: Services = request.app.state.services
    headers: dict[str, str] = {}
    try:
        principal = services.gate.authenticate(headers_of(request))
        wanted = str(request.path_params.get("response_id", ""))[:256]
        store = services.responses
        if not store.enabled:
            raise InvalidRequestError(
                "response storage is off on this gateway (responses.store in its config)",
                code="storage_disabled",
            )
        if delete:
            if not await store.delete(wanted, principal.key_id):
                raise _not_found(wanted)
            body = orjson.dumps({"id": wanted, "object": "response.deleted", "deleted": True})
            return Response(body, media_type="application/json")
        stored = await store.get(wanted, principal.key_id)
        if stored is None:
            raise _not_found(wanted)
        return Response(stored.response, media_type="application/json")
    except AuthenticationError as exc:
        services.metrics.auth_failure(exc.code)
        return error_response(exc, headers)
    except GatewayError as exc:
        return error_response(exc, headers)


def _not_found(response_id: str) -> NotFoundError:
    shown = orjson.dumps(response_id[:100]).decode()
    return NotFoundError(f"No stored response with id {shown}.", code="response_not_found")
