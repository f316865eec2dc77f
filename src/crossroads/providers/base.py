"""The narrow seam every provider adapter implements, and the values that cross it.

The neutral wire between adapters and ingresses is OpenAI's chat format: a completion is an
OpenAI `chat.completion` JSON document and a stream is a sequence of `chat.completion.chunk`
documents. An adapter for an OpenAI-compatible host therefore passes bytes through untouched;
adapters for other formats translate into it; ingresses for other formats translate out of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import msgspec

from crossroads.schemas import Usage
from crossroads.schemas.chat_wire import ChatChunk

NO_HEADERS: Mapping[str, str] = MappingProxyType({})
"""`UpstreamCall.headers` of an attempt that adds none (one shared, read-only, empty map)."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. `connect`: to open a connection; `first_byte`: from sending the request to the
    first byte of the answer (headers and, on streams, the first event); `total`: the whole call."""

    connect: float = 10.0
    first_byte: float = 120.0
    total: float = 600.0


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """What an adapter factory is given: the validated config of one provider."""

    id: str
    type: str
    base_url: str = ""
    # The secret itself, resolved from the environment by config; adapters must never log it,
    # put it in an error message or return it.
    api_key: str | None = field(default=None, repr=False)
    timeouts: Timeouts = Timeouts()
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    options: Mapping[str, Any] = field(default_factory=dict)
    # The catalog host this provider is (for prices and jurisdiction), when the catalog knows it.
    catalog_host: str | None = None


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """One attempt at one deployment.

    `body` is an OpenAI-format chat request whose `model` is already the upstream's own model id;
    adapters may copy it but must not mutate it (the router reuses it for the next attempt).
    `deadline` is an `asyncio` loop time by which the whole attempt must be over.
    `headers` go with the HTTP request, besides the adapter's own (the W3C `traceparent` of the
    attempt when tracing is on); adapters that make no HTTP request ignore them.
    """

    body: Mapping[str, Any]
    deadline: float
    request_id: str
    headers: Mapping[str, str] = field(default_factory=lambda: NO_HEADERS)


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole non-streamed answer: `body` is the OpenAI `chat.completion` JSON the client may
    get as it is (from `Embeddings.embed`, the embeddings `list` JSON); `data` is the same
    document decoded, for ingresses that translate it.

    `dropped` names the request parameters the adapter left out because the host refuses them
    (its profile's `on_unsupported: drop`), for the ingress to report (the
    `x-crossroads-dropped-params` header); empty when the request went as sent.
    """

    body: bytes
    data: Mapping[str, Any]
    usage: Usage | None
    dropped: tuple[str, ...] = ()
    native: bool = False  # a Responses API answer from `ResponsesPassThrough.respond`


class StreamChunk(msgspec.Struct, frozen=True):
    """One `chat.completion.chunk` JSON document of a stream, as bytes (no `data:` framing).
    A frozen msgspec Struct rather than a dataclass: one is made per event of every stream.

    `usage` is set on the chunk that carries the request's usage (normally the last one);
    `usage_only` marks a chunk with no choices that exists only to carry usage, which an
    ingress drops when its client did not ask for usage. `dropped` is set on the first chunk
    only, as `Completion.dropped`.

    `parsed` is the same document as a typed Struct when the adapter built it that way (one
    that translates from another wire format): a translating ingress uses it instead of decoding
    `data` again. Pass-through adapters leave it None.

    `more` says that the next chunk is already here (it came in the same upstream read), so an
    ingress may hold this one and send both in one write to its client. A chunk with `more`
    unset is to be sent at once: the next one may be seconds away. Adapters that cannot tell
    leave it unset.
    """

    data: bytes
    usage: Usage | None = None
    usage_only: bool = False
    dropped: tuple[str, ...] = ()
    more: bool = False
    parsed: ChatChunk | None = None  # `data` as typed, when the adapter built it so


@runtime_checkable
class Provider(Protocol):
    """An upstream that serves chat completions.

    Errors: every failure is raised as `crossroads.errors.UpstreamError` (or its subclass
    `UpstreamTimeoutError`), with `retryable` set as the router needs it; nothing else escapes.
    Messages must be safe to show a client (no secrets, no raw upstream auth text).
    """

    id: str

    async def start(self) -> None:
        """Acquire long-lived resources (connection pools, loaded models). Called once."""

    async def aclose(self) -> None:
        """Release them. Idempotent."""

    async def complete(self, call: UpstreamCall) -> Completion:
        """One non-streamed completion. Cancelling the awaiting task aborts the upstream call."""

    def stream(self, call: UpstreamCall) -> AsyncIterator[StreamChunk]:
        """The chunks of a streamed completion, as they arrive (nothing is buffered whole).

        An error before the first chunk is raised from the first `__anext__`, so the router can
        still fall back; an error after it is raised from the `__anext__` where it happened.
        Closing the iterator early (`aclose()`, or cancelling its consumer) aborts the upstream
        request promptly so no orphaned generation goes on burning tokens.
        """


@runtime_checkable
class HealthProbe(Protocol):
    """Optional capability: a cheap request that shows whether the upstream answers at all."""

    async def probe(self) -> None:
        """Returns when the upstream answered; raises UpstreamError otherwise. Sends no
        generation request and costs no tokens."""


@runtime_checkable
class Embeddings(Protocol):
    """Optional capability: an upstream that serves OpenAI's `POST /embeddings`."""

    async def embed(self, call: UpstreamCall) -> Completion:
        """One embeddings request. `call.body` is an OpenAI embeddings request whose `model` is
        the upstream's own id. Returns the OpenAI embeddings `list` JSON as `body` and `data`,
        with `usage` (prompt tokens only). Errors, timeouts and cancellation follow
        `Provider.complete`."""


@runtime_checkable
class ResponsesPassThrough(Protocol):
    """Optional capability: an upstream that serves OpenAI's Responses API itself (`POST
    /responses`), to which the Responses ingress passes its requests unchanged instead of
    translating them. `speaks_responses` says whether this provider is configured to."""

    speaks_responses: bool

    async def respond(self, call: UpstreamCall) -> Completion:
        """One Responses request: `call.body` is the client's Responses request with `model`
        set to the upstream's id. Returns the Response JSON as `body` and `data`, with its
        `usage` read, and `native` set. Errors, timeouts and cancellation follow `complete`."""

    def respond_stream(self, call: UpstreamCall) -> AsyncIterator[StreamChunk]:
        """A streamed Responses request: each chunk's `data` is one event's JSON (its `type`
        names the event); the usage rides on the terminal event's chunk. Errors follow
        `stream`; a stream that ends without a terminal event is truncated."""


class ProviderFactory(Protocol):
    def __call__(self, spec: ProviderSpec) -> Provider: ...
