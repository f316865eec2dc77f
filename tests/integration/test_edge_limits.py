"""Hostile connections at the HTTP edge, over raw sockets: oversized headers get 431 before they
end, connections that send nothing, half their headers or part of a body are answered 408 and
closed, and the connection cap closes the longest-idle connection so real requests are served."""

from __future__ import annotations

import json
import resource
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from conftest import GatewayFactory, client, mock_config
from crossroads.mockupstream import MockUpstreamThread
from support.gateway import GatewayThread, write_config
from support.process import Served

USER = [{"role": "user", "content": "hello"}]
CAP = 60.0  # seconds: a generous bound for anything to happen on a busy machine
SHORT = {"header_timeout": 1, "body_timeout": 3, "body_idle_timeout": 1, "keep_alive_timeout": 1}


def connect(gw: GatewayThread | int) -> socket.socket:
    port = gw if isinstance(gw, int) else gw.port
    return socket.create_connection(("127.0.0.1", port), timeout=CAP)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the gateway sends until it closes the connection (a reset counts as the
    close). Fails if it is still open after CAP seconds."""
    sock.settimeout(CAP)
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise AssertionError(f"still open after {CAP} s; got {received[:200]!r}") from None
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def error_of(response: bytes, status: int) -> dict[str, Any]:
    """The OpenAI-shaped error in a raw response with `status`, closing the connection."""
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), response[:200]
    assert b"connection: close" in head.lower()
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return dict(error)


def is_closed(sock: socket.socket) -> bool:
    """Whether the gateway closed `sock` (without waiting)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.setblocking(True)


def poll(condition: Any, what: str) -> None:
    deadline = time.monotonic() + CAP
    while not condition():
        assert time.monotonic() < deadline, f"not {what} after {CAP} s"
        time.sleep(0.05)


@pytest.fixture
def sockets() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def chat_head(length: int, extra: str = "") -> bytes:
    return (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"content-type: application/json\r\ncontent-length: {length}\r\n{extra}\r\n"
    ).encode()


class TestHeaderSize:
    def test_headers_over_the_limit_get_431_before_they_end(
        self, gateway: GatewayFactory, mock: MockUpstreamThread, sockets: ExitStack
    ) -> None:
        """The gateway answers while the header is still arriving (it never ends here): it
        does not wait to read the whole of it, and stops reading once it has answered."""
        gw = gateway(mock_config(mock.url))
        sock = sockets.enter_context(connect(gw))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nx-big: " + b"a" * 256 * 1024)
        error = error_of(read_until_closed(sock), 431)
        assert error["code"] == "headers_too_large" and "65536 bytes" in error["message"]
        # Whatever the client goes on sending is dropped: the connection is reset long
        # before 64 MB (the kernel's buffers hold a few), so nothing accumulates.
        sent = 0
        with pytest.raises(OSError):
            while sent < 64 * 1024 * 1024:
                sock.sendall(b"a" * 65536)
                sent += 65536
        assert httpx.get(f"{gw.url}/healthz").status_code == 200

    def test_the_limit_is_configurable_and_counts_only_the_head(
        self, gateway: GatewayFactory, mock: MockUpstreamThread, sockets: ExitStack
    ) -> None:
        """Headers just under the limit pass, even when the body arrives in the same read."""
        gw = gateway(mock_config(mock.url) | {"server": {"max_header_bytes": 4096}})
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 300_000}]})
        sock = sockets.enter_context(connect(gw))
        head = chat_head(len(body), f"x-pad: {'p' * 3800}\r\nconnection: close\r\n")
        sock.sendall(head + body.encode())  # one write: the first read holds body bytes too
        assert read_until_closed(sock).startswith(b"HTTP/1.1 200 ")
        refused = sockets.enter_context(connect(gw))
        refused.sendall(chat_head(len(body), f"x-pad: {'p' * 4200}\r\n") + body.encode())
        error_of(read_until_closed(refused), 431)

    def test_too_many_header_fields_get_431(
        self, gateway: GatewayFactory, mock: MockUpstreamThread, sockets: ExitStack
    ) -> None:
        """Each field costs far more memory parsed than its few bytes: counted too, also while
        the fields still arrive."""
        gw = gateway(mock_config(mock.url))
        many = "".join(f"x-{i}: v\r\n" for i in range(101))
        sock = sockets.enter_context(connect(gw))
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n{many}\r\n".encode())
        assert "header fields" in error_of(read_until_closed(sock), 431)["message"]
        slow = sockets.enter_context(connect(gw))
        slow.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n{many}".encode())
        error_of(read_until_closed(slow), 431)  # before the headers end
        fewer = "".join(f"x-{i}: v\r\n" for i in range(90))
        ok = httpx.get(
            f"{gw.url}/healthz", headers=dict(h.split(": ") for h in fewer.split("\r\n") if h)
        )
        assert ok.status_code == 200

    def test_malformed_http_gets_400_in_the_api_shape(
        self, gateway: GatewayFactory, mock: MockUpstreamThread, sockets: ExitStack
    ) -> None:
        gw = gateway(mock_config(mock.url))
        sock = sockets.enter_context(connect(gw))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nbad header\r\n\r\n")
        assert error_of(read_until_closed(sock), 400)["code"] == "invalid_http"


class TestReadTimeouts:
    def test_a_connection_that_sends_nothing_is_closed(
        self, gateway: GatewayFactory, mock: MockUpstreamThread, sockets: ExitStack
    ) -> None:
        gw = gateway(mock_config(mock.url) | {"server": SHORT})
        sock = sockets.enter_context(connect(gw))
        error = error_of(read_until_closed(sock), 408)
        assert error["code"] == "request_timeout" and "headers" in error["message"]

    def test_half_sent_headers_get_408(
        self, gateway: GatewayFactory, mock: MockUpstreamThread, sockets: ExitStack
    ) -> None:
        gw = gateway(mock_config(mock.url) | {"server": SHORT})
        sock = sockets.enter_context(connect(gw))
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-ty")
        response = read_until_closed(sock)
        assert response.startswith(b"HTTP/1.1 408 ")
        body = json.loads(response.partition(b"\r\n\r\n")[2])
        assert body["type"] == "error"  # Anthropic's shape on /v1/messages

    def test_a_body_that_stops_gets_408_and_the_handler_sees_the_client_gone(
        self, gateway: GatewayFactory, mock: MockUpstreamThread, sockets: ExitStack
    ) -> None:
        gw = gateway(mock_config(mock.url) | {"server": SHORT})
        sock = sockets.enter_context(connect(gw))
        sock.sendall(chat_head(500) + b'{"model": "m", "messages": [')
        error = error_of(read_until_closed(sock), 408)
        assert "body" in error["message"]
        assert mock.requests() == []
        assert httpx.get(f"{gw.url}/healthz").status_code == 200

    def test_a_body_trickled_forever_is_cut_off(
        self, gateway: GatewayFactory, mock: MockUpstreamThread, sockets: ExitStack
    ) -> None:
        """One byte every 0.3 s never pauses long enough for the idle limit; the total limit
        (3 s here) ends it."""
        gw = gateway(mock_config(mock.url) | {"server": SHORT})
        sock = sockets.enter_context(connect(gw))
        sock.sendall(chat_head(10_000))
        deadline = time.monotonic() + CAP
        try:
            while not is_closed(sock):
                assert time.monotonic() < deadline, f"still open after {CAP} s"
                sock.sendall(b" ")
                time.sleep(0.3)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def test_an_idle_kept_alive_connection_is_closed(
        self, gateway: GatewayFactory, mock: MockUpstreamThread, sockets: ExitStack
    ) -> None:
        gw = gateway(mock_config(mock.url) | {"server": SHORT | {"header_timeout": 600}})
        sock = sockets.enter_context(connect(gw))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        response = read_until_closed(sock)  # closed by the keep-alive timeout, not before
        assert response.startswith(b"HTTP/1.1 200 ") and b"connection: close" not in response


class TestConnectionCap:
    def test_past_the_cap_the_longest_idle_connections_are_closed_first(
        self, gateway: GatewayFactory, mock: MockUpstreamThread, sockets: ExitStack
    ) -> None:
        """Policy: a new connection past `max_connections` closes the connection that has
        waited longest without a request in progress, so real requests are still served."""
        gw = gateway(mock_config(mock.url) | {"server": {"max_connections": 50}})
        idle = [sockets.enter_context(connect(gw)) for _ in range(60)]
        poll(lambda: sum(map(is_closed, idle)) >= 10, "10 connections closed")
        answer = client(gw).chat.completions.create(model="m", messages=USER)  # type: ignore[arg-type]
        assert answer.choices[0].message.content
        closed = [i for i, sock in enumerate(idle) if is_closed(sock)]
        assert closed == list(range(len(closed)))  # the oldest, in order
        assert len(closed) <= 11  # 60 idle and the client's connection, less 50
        assert gw.connections()[0] <= 50

    def test_with_none_idle_a_new_connection_gets_503(
        self, gateway: GatewayFactory, mock: MockUpstreamThread, sockets: ExitStack
    ) -> None:
        gw = gateway(mock_config(mock.url) | {"server": {"max_connections": 3}})
        busy = [sockets.enter_context(connect(gw)) for _ in range(3)]
        for sock in busy:  # each in a request: its body has begun
            sock.sendall(chat_head(500) + b"{")
        poll(lambda: gw.connections() == (3, 0), "3 busy connections")
        refused = sockets.enter_context(connect(gw))
        response = read_until_closed(refused)
        error = error_of(response, 503)
        assert error["code"] == "too_many_connections" and b"retry-after: 1" in response
        for sock in busy:
            sock.close()
        poll(lambda: gw.connections()[0] == 0, "the busy connections gone")
        answer = client(gw).chat.completions.create(model="m", messages=USER)  # type: ignore[arg-type]
        assert answer.choices[0].message.content


SLOW_CLIENTS = 2000


@pytest.fixture
def many_open_files() -> Iterator[None]:
    """This test process may hold SLOW_CLIENTS sockets: its soft open-file limit is raised to
    the hard one for the test (skipped where the hard limit is too low)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4 * SLOW_CLIENTS:
        pytest.skip(f"the open-file hard limit ({hard}) is too low for {SLOW_CLIENTS} sockets")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.usefixtures("many_open_files")
def test_thousands_of_slow_clients_do_not_starve_real_requests(
    tmp_path: Path, mock: MockUpstreamThread, sockets: ExitStack
) -> None:
    """`crossroads serve` started with the common default of 1,024 open files (it raises its
    own limit to the hard one) holds 2,000 connections that send nothing, half their headers,
    or their headers and part of a body, with long timeouts, while 50 real requests through
    the openai client are all answered, and without closing any slow one."""
    config = mock_config(mock.url) | {
        "server": {"header_timeout": 600, "body_timeout": 600, "body_idle_timeout": 600}
    }
    served = Served(write_config(tmp_path, config), tmp_path / "data", open_files=1024)
    proc, url = served.proc, served.url
    try:
        port = int(url.rsplit(":", 1)[1])
        slow = []
        for i in range(SLOW_CLIENTS):
            sock = sockets.enter_context(connect(port))
            if i % 3 == 1:
                sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            elif i % 3 == 2:
                sock.sendall(chat_head(500) + b'{"model": "m"')
            slow.append(sock)
        real = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=CAP)
        try:
            for i in range(50):
                answer = real.chat.completions.create(
                    model="m",
                    messages=[{"role": "user", "content": f"n{i}"}],
                )
                assert answer.choices[0].message.content
        finally:
            real.close()
        assert not any(map(is_closed, slow))
    finally:
        sockets.close()
        proc.terminate()
        served.wait(CAP)
