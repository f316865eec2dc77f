"""Incremental Server-Sent Events decoding and encoding: bytes in, events out, no I/O.
Decoding follows the WHATWG HTML spec, "Interpreting an event stream" (9.2.6); encoding
writes the subset the gateway emits."""

from __future__ import annotations

import msgspec

__all__ = ["DONE", "SSEDecoder", "ServerSentEvent", "encode_event"]

DONE = b"data: [DONE]\n\n"
"""The OpenAI stream terminator, ready to write."""

_BOM = b"\xef\xbb\xbf"
_DATA_PREFIX = b"data: "
_CR = 13
_LF = 10
_COLON = 58


class ServerSentEvent(msgspec.Struct, frozen=True):
    """One dispatched event (a frozen msgspec Struct: one is made per event, and it builds in
    an eighth of a frozen dataclass's time).

    `data` is the event's data lines joined by "\\n". `event` is the `event` field, or None when
    it was absent or empty (the spec's default type "message"). `id` is the stream's last event
    ID when the event was dispatched: per the spec it persists across later events until another
    `id` field changes it, and is None until the stream sets one. `retry` is the reconnection time
    in milliseconds from a `retry` field seen in this event's block, else None.
    """

    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Turns the bytes of one event stream, fed in chunks of any size, into events.

    Lines end in CRLF, LF or CR; a CR that ends one chunk and an LF that starts the next count as
    one line ending. Bytes are decoded as UTF-8 (invalid sequences become U+FFFD) one complete line
    at a time, so a multibyte character split across chunks decodes correctly: line endings are
    ASCII and never occur inside a multibyte sequence. A leading byte-order mark is skipped.

    Not thread-safe; one decoder per stream.
    """

    __slots__ = (
        "_at_start",
        "_data",
        "_event",
        "_fields_pending",
        "_last_id",
        "_retry",
        "_skip_lf",
        "_tail",
    )

    def __init__(self) -> None:
        self._tail: list[bytes] = []  # an unterminated line, in the pieces it arrived in
        self._data: list[bytes] = []  # data lines of the event being built
        self._event: str | None = None
        self._retry: int | None = None
        self._last_id: str | None = None
        self._fields_pending = False  # a non-data field was seen since the last blank line
        self._skip_lf = False  # the previous chunk ended in CR: drop a leading LF
        self._at_start = True  # nothing fed yet: a BOM may come

    @property
    def has_partial(self) -> bool:
        """True when bytes of an undispatched event are buffered: an unterminated line, or
        field lines not yet followed by the blank line. At the end of a stream this means it was
        cut mid-event. Read it before `flush()`, which discards that state."""
        return bool(self._tail or self._data or self._fields_pending)

    @property
    def last_event_id(self) -> str | None:
        """The last event ID set by an `id` field, or None if the stream never set one."""
        return self._last_id

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Consume the next bytes of the stream; return the events they complete, in order.

        Never raises on malformed input: unknown fields and bad `retry` values are ignored, as the
        spec requires.
        """
        if self._at_start:
            chunk = self._strip_bom(chunk)
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[0] == _LF:
                chunk = chunk[1:]
        if not chunk:
            return []
        if b"\n" not in chunk and b"\r" not in chunk:
            self._tail.append(chunk)
            return []
        if self._tail:
            self._tail.append(chunk)
            chunk = b"".join(self._tail)
            self._tail.clear()
        if b"\r" in chunk:
            self._skip_lf = chunk[-1] == _CR
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = chunk.split(b"\n")
        rest = lines.pop()
        if rest:
            self._tail.append(rest)
        return self._process(lines)

    def flush(self) -> list[ServerSentEvent]:
        """End the stream. Per the spec an event without its final blank line is discarded, so
        this returns no events (a list, so callers can treat it like `feed`); check
        `has_partial` first to detect truncation. The decoder is then ready for a new stream;
        the last event ID is kept, as on an EventSource reconnection."""
        self._tail.clear()
        self._data.clear()
        self._event = None
        self._retry = None
        self._fields_pending = False
        self._skip_lf = False
        self._at_start = True
        return []

    def _strip_bom(self, chunk: bytes) -> bytes:
        head = b"".join(self._tail) + chunk if self._tail else chunk
        if len(head) < len(_BOM) and _BOM.startswith(head):
            self._tail[:] = [head] if head else []
            return b""
        self._tail.clear()
        self._at_start = False
        return head[len(_BOM) :] if head.startswith(_BOM) else head

    def _process(self, lines: list[bytes]) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append(
                        ServerSentEvent(
                            b"\n".join(data).decode("utf-8", "replace"),
                            self._event,
                            self._last_id,
                            self._retry,
                        )
                    )
                    data.clear()
                self._event = None
                self._retry = None
                self._fields_pending = False
            elif line.startswith(_DATA_PREFIX):
                data.append(line[6:])
            elif line[0] != _COLON:
                self._field(line)
        return events

    def _field(self, line: bytes) -> None:
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace") or None
            self._fields_pending = True
        elif name == b"id":
            if b"\x00" not in value:
                self._last_id = value.decode("utf-8", "replace")
            self._fields_pending = True
        elif name == b"retry":
            if value.isdigit():  # bytes.isdigit() accepts ASCII digits only, as the spec wants
                self._retry = int(value)
            self._fields_pending = True


def encode_event(data: bytes | str, event: str | None = None) -> bytes:
    """Encode one event as `event: <event>\\n` (omitted when None or empty), one `data: ` line
    per line of `data`, and the blank line that dispatches it.

    SSE cannot carry a carriage return in data: CRLF and lone CR in `data` become line breaks,
    so they decode as "\\n". Raises ValueError if `event` contains CR or LF.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if b"\n" in raw or b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\ndata: ")
    if not event:
        return b"data: " + raw + b"\n\n"
    if "\n" in event or "\r" in event:
        raise ValueError(f"SSE event name must not contain a line break: {event!r}")
    return b"event: " + event.encode("utf-8") + b"\ndata: " + raw + b"\n\n"
