"""The mock upstream's `/_mock/*` endpoints: the request log, counters and the script queue,
for tests that drive the mock over HTTP (from another process, or through a gateway)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from crossroads.mockupstream.answers import error_body
from crossroads.mockupstream.script import ScriptError

if TYPE_CHECKING:
    from crossroads.mockupstream.server import MockUpstream

__all__ = ["add_control_routes", "json_response", "script_error_response"]


def json_response(data: Any, status: int = 200) -> web.Response:
    """`data` serialised with orjson, as application/json."""
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def script_error_response(exc: ScriptError) -> web.Response:
    """A 400 with an OpenAI error body naming the bad script token."""
    return json_response(error_body(400, str(exc), "invalid_mock_script"), 400)


def add_control_routes(app: web.Application, upstream: MockUpstream) -> None:
    """Add to `app`:

    - `GET /_mock/requests`: the request log, a JSON list; `DELETE` clears it and the counters.
    - `GET /_mock/stats`: {requests, completed, cancelled, aborted, in_flight}.
    - `POST /_mock/script` with {"scripts": [...]}: queue scripts for the next chat requests
      (400 naming the token if one does not parse; then none is queued); `GET` lists the
      queue; `DELETE` empties it.
    """

    async def get_requests(request: web.Request) -> web.Response:
        return json_response(upstream.requests())

    async def delete_requests(request: web.Request) -> web.Response:
        upstream.clear_requests()
        return web.Response(status=204)

    async def get_stats(request: web.Request) -> web.Response:
        return json_response(upstream.stats())

    async def get_scripts(request: web.Request) -> web.Response:
        return json_response({"scripts": upstream.queued()})

    async def post_scripts(request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        scripts = body.get("scripts") if isinstance(body, dict) else None
        if not isinstance(scripts, list) or not all(isinstance(s, str) for s in scripts):
            message = 'expected {"scripts": ["script", ...]}'
            return json_response(error_body(400, message), 400)
        try:
            queued = upstream.enqueue(scripts)
        except ScriptError as exc:
            return script_error_response(exc)
        return json_response({"queued": queued})

    async def delete_scripts(request: web.Request) -> web.Response:
        upstream.clear_queue()
        return web.Response(status=204)

    app.router.add_get("/_mock/requests", get_requests)
    app.router.add_delete("/_mock/requests", delete_requests)
    app.router.add_get("/_mock/stats", get_stats)
    app.router.add_get("/_mock/script", get_scripts)
    app.router.add_post("/_mock/script", post_scripts)
    app.router.add_delete("/_mock/script", delete_scripts)
