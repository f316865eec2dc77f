"""Shared fixtures: a scripted mock upstream (a real HTTP server) and a factory for real gateway
servers on 127.0.0.1 configured against it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from crossroads.mockupstream import MockUpstreamThread, run_in_thread
from support.gateway import GatewayThread, gateway_for


@pytest.fixture
def mock() -> Iterator[MockUpstreamThread]:
    with run_in_thread() as upstream:
        yield upstream


def mock_config(*urls: str, names: tuple[str, ...] = ("m",)) -> dict[str, Any]:
    """A config serving each name from one deployment per mock URL, tried in order."""
    providers = {f"up{i}": {"type": "openai", "base_url": url} for i, url in enumerate(urls)}
    models = [
        {"name": name, "provider": provider, "upstream_model": "mock"}
        for name in names
        for provider in providers
    ]
    return {"embedded": {"enabled": False}, "providers": providers, "models": models}


GatewayFactory = Callable[..., GatewayThread]


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayFactory]:
    """`gateway(config, environ=None)` starts a real gateway; all are stopped after the test."""
    started: list[GatewayThread] = []

    def start(config: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> GatewayThread:
        gw = gateway_for(tmp_path / f"gw{len(started)}", config, environ)
        started.append(gw.__enter__())
        return gw

    yield start
    for gw in started:
        gw.stop()


def client(gw: GatewayThread, **kwargs: Any) -> OpenAI:
    """An official OpenAI client for `gw`, closed when the gateway stops."""
    openai_client = OpenAI(base_url=gw.v1, api_key="unused", max_retries=0, **kwargs)
    gw.clients.append(openai_client)
    return openai_client
