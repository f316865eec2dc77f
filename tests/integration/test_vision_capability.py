"""Images to a text-only model: a 400 in the client's own shape that names the problem, before
any upstream sees the request; a vision model behind the same name still serves it."""

from __future__ import annotations

import anthropic
import pytest

from conftest import GatewayFactory, client
from crossroads.mockupstream import MockUpstreamThread

PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


def config(url: str, catalog_model: str) -> dict[str, object]:
    return {
        "embedded": {"enabled": False},
        "providers": {"up": {"type": "openai", "base_url": url, "host": "deepseek"}},
        "models": [
            {
                "name": "m",
                "provider": "up",
                "upstream_model": "mock",
                "catalog_model": catalog_model,
            }
        ],
    }


def test_images_to_a_text_only_model_are_refused(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(config(mock.url, "deepseek/deepseek-v4-pro"))
    with (
        anthropic.Anthropic(base_url=gw.url, api_key="x", max_retries=0) as claude,
        pytest.raises(anthropic.BadRequestError) as err,
    ):
        claude.messages.create(
            model="m",
            max_tokens=16,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
                        },
                        {"type": "text", "text": "What is this?"},
                    ],
                }
            ],
        )
    assert err.value.body["type"] == "error"  # type: ignore[index]
    assert "does not accept images" in err.value.body["error"]["message"]  # type: ignore[index]
    import openai

    with pytest.raises(openai.BadRequestError) as oerr:
        client(gw).chat.completions.create(
            model="m",
            messages=[
                {
                    "role": "user",
                    "content": [  # type: ignore[list-item]
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{PIXEL}"},
                        },
                        {"type": "text", "text": "What is this?"},
                    ],
                }
            ],
        )
    assert "does not accept images" in str(oerr.value)
    assert mock.requests() == []


def test_text_to_the_same_model_is_served(
    gateway: GatewayFactory, mock: MockUpstreamThread
) -> None:
    gw = gateway(config(mock.url, "deepseek/deepseek-v4-pro"))
    reply = client(gw).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content
