"""SSE decoding and encoding: one test per parsing rule, plus property tests over chunkings,
line endings and encode/decode round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossroads.sse import DONE, ServerSentEvent, SSEDecoder, encode_event


def decode(stream: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    return decoder.feed(stream) + decoder.flush()


def decode_chunked(stream: bytes, cuts: list[int]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    start = 0
    for cut in sorted(set(cuts)):
        events += decoder.feed(stream[start:cut])
        start = cut
    events += decoder.feed(stream[start:])
    return events + decoder.flush()


# --- one rule each -------------------------------------------------------------------------


def test_single_data_event() -> None:
    assert decode(b"data: hello\n\n") == [ServerSentEvent("hello")]


def test_multiple_data_lines_join_with_newline() -> None:
    assert decode(b"data: a\ndata: b\ndata:\n\n") == [ServerSentEvent("a\nb\n")]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_each_line_ending(eol: bytes) -> None:
    stream = b"event: e" + eol + b"data: 1" + eol + b"data: 2" + eol + eol
    assert decode(stream) == [ServerSentEvent("1\n2", event="e")]


def test_cr_at_chunk_end_then_lf_is_one_line_ending() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n") == []  # the LF completes the CRLF; it is not a blank line
    assert decoder.feed(b"data: b\r") == []
    assert decoder.feed(b"\n\r") == [ServerSentEvent("a\nb")]
    assert not decoder.has_partial


def test_cr_then_cr_is_two_line_endings() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\r") == [ServerSentEvent("a")]


def test_event_field_sets_type_and_resets_after_dispatch() -> None:
    assert decode(b"event: add\ndata: 1\n\ndata: 2\n\n") == [
        ServerSentEvent("1", event="add"),
        ServerSentEvent("2"),
    ]


def test_empty_event_field_means_default_type() -> None:
    assert decode(b"event:\ndata: x\n\n") == [ServerSentEvent("x", event=None)]


def test_id_persists_until_changed() -> None:
    events = decode(b"id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\n")
    assert [e.id for e in events] == ["7", "7", ""]


def test_id_with_nul_is_ignored() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n")
    assert [e.id for e in events] == ["1", "1"]
    assert decoder.last_event_id == "1"


@pytest.mark.parametrize(
    ("line", "retry"),
    [(b"retry: 3000", 3000), (b"retry: 30x", None), (b"retry: -1", None), (b"retry:", None)],
)
def test_retry_only_ascii_digits(line: bytes, retry: int | None) -> None:
    assert decode(line + b"\ndata: x\n\n") == [ServerSentEvent("x", retry=retry)]


def test_retry_non_ascii_digits_ignored() -> None:
    assert decode("retry: ١٢\ndata: x\n\n".encode()) == [ServerSentEvent("x")]


def test_comment_lines_ignored() -> None:
    assert decode(b": keep-alive\n:\ndata: x\n: more\n\n") == [ServerSentEvent("x")]


def test_comment_only_block_dispatches_nothing() -> None:
    assert decode(b": ping\n\n") == []


def test_field_without_colon_has_empty_value() -> None:
    assert decode(b"data\n\n") == [ServerSentEvent("")]
    assert decode(b"data\ndata\n\n") == [ServerSentEvent("\n")]


def test_only_one_leading_space_stripped() -> None:
    assert decode(b"data:  two\ndata:none\n\n") == [ServerSentEvent(" two\nnone")]
    assert decode(b"event:  spaced\ndata: x\n\n") == [ServerSentEvent("x", event=" spaced")]


def test_unknown_fields_ignored() -> None:
    assert decode(b"foo: bar\nDATA: no\ndata: yes\n\n") == [ServerSentEvent("yes")]


def test_block_without_data_is_not_dispatched() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: e\nid: 9\nretry: 5\n\n") == []
    # the id still took effect; the event type and retry did not carry over
    assert decoder.feed(b"data: x\n\n") == [ServerSentEvent("x", id="9")]


def test_incomplete_event_at_eof_is_discarded_and_reported() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: b\n") == [ServerSentEvent("a")]
    assert decoder.has_partial
    assert decoder.flush() == []
    assert not decoder.has_partial


def test_unterminated_line_is_partial() -> None:
    decoder = SSEDecoder()
    decoder.feed(b'data: {"choi')
    assert decoder.has_partial


def test_pending_event_field_is_partial() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"event: x\n")
    assert decoder.has_partial


def test_complete_stream_has_no_partial() -> None:
    decoder = SSEDecoder()
    decoder.feed(b": hi\ndata: a\n\n" + DONE)
    assert not decoder.has_partial


def test_decoder_reusable_after_flush() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"id: 4\ndata: cut")
    decoder.flush()
    assert decoder.feed(b"data: new\n\n") == [ServerSentEvent("new", id="4")]


def test_leading_bom_skipped_even_when_split() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"\xef") == []
    assert decoder.feed(b"\xbb") == []
    assert decoder.feed(b"\xbfdata: x\n\n") == [ServerSentEvent("x")]
    # only at the start of the stream
    assert decode(b"data: \xef\xbb\xbfx\n\n") == [ServerSentEvent("\ufeffx")]


def test_multibyte_utf8_split_across_chunks() -> None:
    stream = "data: héllo 世界 🎉\n\n".encode()
    expected = [ServerSentEvent("héllo 世界 🎉")]
    for cut in range(len(stream) + 1):
        assert decode_chunked(stream, [cut]) == expected
    # one byte at a time
    assert decode_chunked(stream, list(range(len(stream)))) == expected


def test_invalid_utf8_replaced() -> None:
    assert decode(b"data: a\xffb\n\n") == [ServerSentEvent("a\ufffdb")]


def test_openai_stream_with_done() -> None:
    stream = b'data: {"a":1}\n\ndata: {"a":2}\n\n' + DONE
    assert [e.data for e in decode(stream)] == ['{"a":1}', '{"a":2}', "[DONE]"]


# --- encoding ------------------------------------------------------------------------------


def test_encode_simple() -> None:
    assert encode_event("hi") == b"data: hi\n\n"
    assert encode_event(b"hi", event="msg") == b"event: msg\ndata: hi\n\n"


def test_encode_multiline() -> None:
    assert encode_event("a\nb\r\nc\rd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"
    assert encode_event("") == b"data: \n\n"


def test_encode_rejects_line_break_in_event_name() -> None:
    with pytest.raises(ValueError, match="line break"):
        encode_event("x", event="a\nb")


def test_done_constant() -> None:
    assert decode(DONE) == [ServerSentEvent("[DONE]")]


# --- properties ----------------------------------------------------------------------------

_line = st.one_of(
    st.text(max_size=20).map(lambda t: t.replace("\r", "").replace("\n", "")),
    st.sampled_from(["data: x", "data:", "data", "event: e", "id: 1", "retry: 10", ": c", ""]),
)
_eol = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def _streams(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(_line, max_size=30))
    eols = draw(st.lists(_eol, min_size=len(lines), max_size=len(lines)))
    return "".join(line + eol for line, eol in zip(lines, eols, strict=True)).encode()


@given(_streams(), st.lists(st.integers(min_value=0, max_value=400), max_size=20))
def test_any_chunking_gives_same_events(stream: bytes, cuts: list[int]) -> None:
    assert decode_chunked(stream, cuts) == decode(stream)


@given(st.binary(max_size=200), st.lists(st.integers(min_value=0, max_value=200), max_size=10))
def test_any_chunking_of_arbitrary_bytes(stream: bytes, cuts: list[int]) -> None:
    whole = SSEDecoder()
    events = whole.feed(stream)
    chunked = SSEDecoder()
    start, pieces = 0, []
    for cut in sorted(set(cuts)):
        pieces += chunked.feed(stream[start:cut])
        start = cut
    pieces += chunked.feed(stream[start:])
    assert pieces == events
    assert chunked.has_partial == whole.has_partial


@given(st.lists(_line, max_size=30), _eol, _eol)
def test_line_endings_equivalent(lines: list[str], eol_a: str, eol_b: str) -> None:
    # A CR ending followed by an empty line ending in LF would merge into one CRLF, so the
    # comparison uses one line ending throughout each stream.
    a = "".join(line + eol_a for line in lines).encode()
    b = "".join(line + eol_b for line in lines).encode()
    assert decode(a) == decode(b)


_event_names = st.one_of(
    st.none(), st.text(min_size=1).filter(lambda t: "\r" not in t and "\n" not in t)
)


@given(st.lists(st.tuples(st.text(), _event_names), max_size=5), st.integers(1, 7))
def test_encode_decode_round_trip(items: list[tuple[str, str | None]], step: int) -> None:
    stream = b"".join(encode_event(data, event) for data, event in items)
    cuts = list(range(0, len(stream), step))
    expected = [
        ServerSentEvent(data.replace("\r\n", "\n").replace("\r", "\n"), event)
        for data, event in items
    ]
    assert decode_chunked(stream, cuts) == expected


@given(st.binary())
def test_encode_bytes_round_trip(data: bytes) -> None:
    normalized = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    assert decode(encode_event(data)) == [ServerSentEvent(normalized.decode("utf-8", "replace"))]
