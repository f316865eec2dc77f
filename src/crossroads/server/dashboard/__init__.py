"""The economics dashboard: one HTML page, its script and stylesheet (package data under
`static/`) and plotly.js (from the `plotly` package), all served by the gateway itself, so it
works with no internet; and GET /dashboard/api/data, the JSON it charts (`data.py`).

The page and its assets hold no data and are served to anyone: a browser cannot send a Bearer
header when it navigates. The data API is guarded like the admin API (`require_admin`); the page
asks for the admin key when the API answers 401 and sends it as a Bearer header, never in a URL.
"""

from __future__ import annotations

import hashlib
import importlib.util
from datetime import UTC, datetime
from importlib import metadata, resources
from pathlib import Path

import orjson
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

from crossroads.errors import GatewayError, InvalidRequestError, NotFoundError
from crossroads.ingress.openai.errors import error_response
from crossroads.quality.switch import load_switch_report
from crossroads.server.admin import admin_error, require_admin
from crossroads.server.dashboard.data import dashboard_data, parse_window
from crossroads.server.runtime import Gateway

__all__ = ["asset", "data", "page", "plotly_js_path", "switch_data", "switch_page"]

PLOTLY_JS = "plotly.min.js"
_ASSETS = {
    "charts.js": "text/javascript; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "switch.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
# Asset URLs carry a version (`?v=`), so a browser may keep them as long as it likes.
_LONG_CACHE = "public, max-age=31536000, immutable"
# Plotly sets inline styles and adds <style> elements, hence 'unsafe-inline' for styles only.
_PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


async def page(request: Request) -> Response:
    """GET /dashboard: the page, with versioned asset URLs and a strict content policy: every
    script, style and request goes to this gateway."""
    return _page("index.html")


async def switch_page(request: Request) -> Response:
    """GET /dashboard/switch: the switch report page (`crossroads report switch`)."""
    return _page("switch.html")


async def switch_data(request: Request) -> Response:
    """GET /dashboard/api/switch?from=A&to=B[&run=R]: the switch report's JSON, guarded like
    the data API; 400 without both names."""
    try:
        require_admin(request)
        source = request.query_params.get("from", "")
        target = request.query_params.get("to", "")
        if not source or not target:
            raise InvalidRequestError("Name both served models: ?from=A&to=B.")
        gateway: Gateway = request.app.state.gateway
        body = await load_switch_report(
            gateway.settings.data_dir,
            gateway.store,
            source,
            target,
            request.query_params.get("run") or None,
        )
    except GatewayError as exc:
        return admin_error(exc, headers={"cache-control": "no-store"})
    return _json(body)


def _page(name: str) -> Response:
    html = _static(name).decode()
    for name in _ASSETS:
        html = html.replace(f"{{{{version:{name}}}}}", _digest(_static(name)))
    html = html.replace(f"{{{{version:{PLOTLY_JS}}}}}", _plotly_version())
    return HTMLResponse(
        html,
        headers={
            "content-security-policy": _PAGE_POLICY,
            "cache-control": "no-cache",
            "referrer-policy": "no-referrer",
            "x-content-type-options": "nosniff",
        },
    )


async def asset(request: Request) -> Response:
    """GET /dashboard/static/{name}: the page's scripts, stylesheet and icon, and plotly.js from
    the installed `plotly` package. 404 for any other name; 500 when plotly is not installed."""
    name = request.path_params["name"]
    headers = {"cache-control": _LONG_CACHE, "x-content-type-options": "nosniff"}
    if name == PLOTLY_JS:
        path = plotly_js_path()
        if path is None:
            # A broken install, not a client error: the pinned runtime dependencies include it.
            return error_response(GatewayError("plotly.js is missing: install `plotly`."))
        return FileResponse(path, media_type="text/javascript; charset=utf-8", headers=headers)
    media_type = _ASSETS.get(name)
    if media_type is None:
        return error_response(NotFoundError(f"No dashboard asset named {name!r}."))
    return Response(_static(name), media_type=media_type, headers=headers)


async def data(request: Request) -> Response:
    """GET /dashboard/api/data?since=&until=&interval=: the charts' JSON (see `data.py`). 401
    without the admin key (403 with another key), 400 for an unreadable window, 503 when the
    ledger store fails; errors in OpenAI's shape."""
    try:
        require_admin(request)
        window = parse_window(request.query_params, datetime.now(UTC))
        gateway: Gateway = request.app.state.gateway
        baseline = gateway.settings.baselines.default
        body = await dashboard_data(
            gateway.store,
            window,
            baseline_model=baseline.model if baseline else None,
            baselines=gateway.settings.baselines.all(),
        )
    except GatewayError as exc:
        return admin_error(exc, headers={"cache-control": "no-store"})
    return _json(body)


def plotly_js_path() -> Path | None:
    """plotly.min.js inside the installed `plotly` package, found without importing it; None
    when the package (or the file) is missing."""
    spec = importlib.util.find_spec("plotly")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "package_data" / PLOTLY_JS
        if candidate.is_file():
            return candidate
    return None


def _static(name: str) -> bytes:
    """A file of this package's `static/` folder (package data)."""
    return (resources.files(__name__) / "static" / name).read_bytes()


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()[:16]


def _plotly_version() -> str:
    try:
        return metadata.version("plotly")
    except metadata.PackageNotFoundError:
        return "missing"


def _json(body: object) -> Response:
    return Response(
        orjson.dumps(body, default=str),  # Decimals as exact strings
        media_type="application/json",
        headers={"cache-control": "no-store"},
    )
