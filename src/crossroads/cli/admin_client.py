"""A small client for a running gateway's admin API, for the CLI (stdlib only). The admin key
comes from $CROSSROADS_ADMIN_KEY; it is sent, never printed."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from crossroads.config import admin_key_from_env
from crossroads.errors import ConfigError


def call(url: str, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
    """Sends one admin request; returns the decoded JSON answer. Raises ConfigError with the
    gateway's own error message for a non-2xx answer, or saying why it could not be reached."""
    headers = {"content-type": "application/json"}
    key = admin_key_from_env()
    if key:
        headers["authorization"] = f"Bearer {key}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{url.rstrip('/')}{path}", data=data, headers=headers, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        raise ConfigError(f"{method} {path}: HTTP {exc.code}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ConfigError(f"cannot reach the gateway at {url}: {exc}") from None
