"""Web pages cannot drive a gateway in open mode: requests for other Host names (DNS rebinding),
from other sites' pages (Origin, Sec-Fetch-Site) and bodies a page can send without a CORS
preflight (no or a non-JSON Content-Type) are refused in the API's shape on every route; the
gateway never redirects to a Host it was sent; CORS headers go only to configured origins."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import GatewayFactory, client, mock_config
from crossroads.errors import ConfigError
from crossroads.mockupstream import MockUpstreamThread
from support.gateway import GatewayThread, gateway_for

ADMIN_KEY = "admin-" + "k" * 24
CHAT = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
NO_CORS_FETCH = {"content-type": ""}  # fetch(url, {mode: "no-cors", body: new Blob([json])})


def send(gw: GatewayThread, method: str, path: str, **headers: str) -> httpx.Response:
    """`method path` with exactly these extra headers (a `host` replaces the real one)."""
    content = CHAT.encode() if method in ("POST", "PUT") else None
    return httpx.request(
        method, f"{gw.url}{path}", content=content, headers=headers, follow_redirects=False
    )


def refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert "location" not in response.headers
    assert response.json()["error"]["code"] == code, response.text


@pytest.fixture
def gw(gateway: GatewayFactory, mock: MockUpstreamThread) -> GatewayThread:
    return gateway(mock_config(mock.url))


def test_the_no_cors_fetch_of_a_rebound_page_is_refused(
    gw: GatewayThread, mock: MockUpstreamThread
) -> None:
    """What a page at attacker.example, rebound to 127.0.0.1, sends with fetch(no-cors): its
    own Host and Origin, and an empty Content-Type. No chat, no key, no ledger read."""
    page = {"host": "attacker.example", "origin": "http://attacker.example"}
    refused(
        send(gw, "POST", "/v1/chat/completions", **NO_CORS_FETCH, host="attacker.example"),
        403,
        "host_not_allowed",
    )
    refused(
        send(gw, "POST", "/v1/chat/completions", **NO_CORS_FETCH, **page), 403, "host_not_allowed"
    )
    refused(send(gw, "POST", "/admin/keys", **NO_CORS_FETCH, **page), 403, "host_not_allowed")
    refused(send(gw, "GET", "/admin/ledger", host="attacker.example:8080"), 403, "host_not_allowed")
    assert mock.requests() == []
    assert httpx.get(f"{gw.url}/admin/keys").json()["data"] == []
    gw.stop()
    assert gw.ledger() == []


def test_other_sites_pages_are_refused_and_loopback_names_answered(
    gw: GatewayThread, mock: MockUpstreamThread
) -> None:
    """The page's Host is the gateway's own (a plain cross-site request, no rebinding)."""
    json_type = {"content-type": "application/json"}
    refused(
        send(gw, "POST", "/v1/chat/completions", **json_type, origin="https://evil.example"),
        403,
        "origin_not_allowed",
    )
    refused(
        send(gw, "POST", "/v1/chat/completions", **json_type, origin="null"),
        403,
        "origin_not_allowed",
    )
    refused(
        send(gw, "GET", "/admin/ledger", **{"sec-fetch-site": "cross-site"}),
        403,
        "origin_not_allowed",
    )
    refused(
        send(gw, "GET", "/admin/ledger", **{"sec-fetch-site": "same-site"}),
        403,
        "origin_not_allowed",
    )
    assert mock.requests() == []
    port = gw.port
    for host in (
        f"localhost:{port}",
        f"127.0.0.1:{port}",
        f"[::1]:{port}",
        "LOCALHOST",
        "127.0.0.1",
    ):
        assert send(gw, "GET", "/healthz", host=host).status_code == 200, host
    local_page = {"origin": "http://localhost:3000", "sec-fetch-site": "same-site"}
    assert send(gw, "POST", "/v1/chat/completions", **json_type, **local_page).status_code == 200
    same = {"origin": gw.url, "sec-fetch-site": "same-origin"}
    assert send(gw, "GET", "/dashboard/api/data", **same).status_code == 200


@pytest.mark.parametrize(
    "content_type",
    [
        "",
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ],
)
def test_bodies_a_page_can_send_without_asking_are_415(
    gw: GatewayThread, mock: MockUpstreamThread, content_type: str
) -> None:
    """The types a cross-site page may send without a CORS preflight. JSON passes."""
    refused(
        send(gw, "POST", "/v1/chat/completions", **{"content-type": content_type}),
        415,
        "unsupported_media_type",
    )
    refused(
        send(gw, "POST", "/admin/keys", **{"content-type": content_type}),
        415,
        "unsupported_media_type",
    )
    # No Content-Type at all (httpx sends none for a body given as an iterator).
    bare = httpx.post(f"{gw.v1}/chat/completions", content=iter([CHAT.encode()]))
    refused(bare, 415, "unsupported_media_type")
    assert mock.requests() == []
    for ok in ("application/json", "application/json; charset=utf-8", "application/vnd.api+json"):
        assert send(gw, "POST", "/v1/chat/completions", **{"content-type": ok}).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/messages"),
        ("POST", "/admin/keys"),
        ("GET", "/dashboard"),
        ("GET", "/v1/models/m"),
        ("GET", "/no/such/path"),
    ],
)
def test_the_guard_runs_on_every_route(gw: GatewayThread, method: str, path: str) -> None:
    """Direct routes (dispatched past Starlette's middleware), Starlette's routes and 404s."""
    response = send(gw, method, path, host="evil.example", **{"content-type": "application/json"})
    assert response.status_code == 403
    if path.startswith("/v1/messages"):
        assert response.json()["type"] == "error"
        assert response.json()["error"]["type"] == "permission_error"
    else:
        assert response.json()["error"]["code"] == "host_not_allowed"


def test_a_trailing_slash_is_a_404_never_a_redirect_to_the_host_sent(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    config = mock_config(mock.url) | {"auth": {"mode": "keys"}}
    keyed = gateway(config, environ={"CROSSROADS_ADMIN_KEY": ADMIN_KEY})
    json_type = {"content-type": "application/json"}
    response = send(keyed, "POST", "/v1/chat/completions/", host="evil.example", **json_type)
    assert response.status_code == 404 and "location" not in response.headers
    assert response.json()["error"]["type"] == "not_found_error"
    assert "evil.example" not in response.text
    opened = gateway(mock_config(mock.url))
    again = send(opened, "POST", "/v1/chat/completions/", **json_type)
    assert again.status_code == 404 and again.json()["error"]["type"] == "not_found_error"


def test_allowed_hosts_is_configurable(gateway: GatewayFactory, mock: MockUpstreamThread) -> None:
    gw = gateway(mock_config(mock.url) | {"server": {"allowed_hosts": ["gateway.internal", "::1"]}})
    assert send(gw, "GET", "/healthz", host="gateway.internal:8080").status_code == 200
    assert send(gw, "GET", "/healthz", host="[::1]:8080").status_code == 200
    refused(send(gw, "GET", "/healthz", host="localhost"), 403, "host_not_allowed")


class TestCors:
    ORIGIN = "https://app.example"

    def keyed(
        self, gateway: GatewayFactory, mock: MockUpstreamThread, **server: Any
    ) -> GatewayThread:
        config = mock_config(mock.url) | {"auth": {"mode": "keys"}, "server": server}
        return gateway(config, environ={"CROSSROADS_ADMIN_KEY": ADMIN_KEY})

    def test_keys_mode_sends_cors_headers_only_to_configured_origins(
        self, gateway: GatewayFactory, mock: MockUpstreamThread
    ) -> None:
        asked = {
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
        }
        plain = self.keyed(gateway, mock)
        answer = send(plain, "GET", "/healthz", origin=self.ORIGIN, host="any.example")
        assert answer.status_code == 200  # keys mode answers any Host: keys guard it
        assert not [h for h in answer.headers if h.startswith("access-control-")]
        preflight = send(plain, "OPTIONS", "/v1/chat/completions", origin=self.ORIGIN, **asked)
        assert "access-control-allow-origin" not in preflight.headers

        gw = self.keyed(gateway, mock, cors_origins=[self.ORIGIN])
        preflight = send(gw, "OPTIONS", "/v1/chat/completions", origin=self.ORIGIN, **asked)
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == self.ORIGIN
        assert preflight.headers["access-control-allow-headers"] == "authorization, content-type"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        json_type = {"content-type": "application/json"}
        unauthorised = send(gw, "POST", "/v1/chat/completions", origin=self.ORIGIN, **json_type)
        # CORS lets the page read the answer; a key is still needed.
        assert unauthorised.status_code == 401
        assert unauthorised.headers["access-control-allow-origin"] == self.ORIGIN
        assert "x-request-id" in unauthorised.headers["access-control-expose-headers"]
        other = send(gw, "GET", "/healthz", origin="https://other.example")
        assert "access-control-allow-origin" not in other.headers

    def test_open_mode_lets_a_configured_origin_through(
        self, gateway: GatewayFactory, mock: MockUpstreamThread
    ) -> None:
        gw = gateway(mock_config(mock.url) | {"server": {"cors_origins": [self.ORIGIN]}})
        json_type = {"content-type": "application/json"}
        answer = send(gw, "POST", "/v1/chat/completions", origin=self.ORIGIN, **json_type)
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == self.ORIGIN
        refused(
            send(gw, "POST", "/v1/chat/completions", origin="https://evil.example", **json_type),
            403,
            "origin_not_allowed",
        )
        assert client(gw).models.list().data


@pytest.mark.parametrize(
    ("server", "auth", "needle"),
    [
        ({"cors_origins": ["*"]}, {}, "any web page"),
        ({"cors_origins": ["https://app.example/"]}, {}, "not an origin"),
        ({"allowed_hosts": ["http://localhost"]}, {}, "not a host name"),
        ({"allowed_hosts": ["localhost:8080"]}, {}, "not a host name"),
        ({"max_header_bytes": 10}, {}, "at least 1024"),
        ({"header_timeout": 0}, {}, "positive"),
        ({"max_connections": 0}, {}, "at least 1"),
    ],
)
def test_bad_edge_settings_are_config_errors(
    tmp_path: Path, server: dict[str, Any], auth: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle):
        gateway_for(
            tmp_path,
            {"embedded": {"enabled": False}, "server": server, "auth": auth or {"mode": "open"}},
        )


def test_a_middleware_added_later_is_refused_loudly() -> None:
    """Starlette middleware would wrap only the routes Starlette dispatches, not the direct
    /v1/* ones: adding one must fail, not silently miss the busiest paths."""
    from starlette.middleware.gzip import GZipMiddleware

    from crossroads.config import load_settings
    from crossroads.server.app import build_app

    app = build_app(load_settings(None, environ={}))
    with pytest.raises(RuntimeError, match="would not see them"):
        app.add_middleware(GZipMiddleware)
