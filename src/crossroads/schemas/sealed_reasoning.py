"""Reasoning sealed into an opaque token the gateway can open again: the signature of a thinking
block it produced from an upstream that signs nothing (DeepSeek, Kimi, GLM, vLLM and other
OpenAI-compatible hosts), so that clients which drop unsigned thinking keep it, and the
reasoning can be restored from the token alone when a client sends back only the signature."""

from __future__ import annotations

import base64
import binascii
import zlib

import orjson

PREFIX = "crossroads.r1."
"""Marks the gateway's own tokens: an Anthropic upstream's signatures never start with it."""


def seal(reasoning: str) -> str:
    """The token for `reasoning`: compressed and base64url-encoded, with PREFIX in front."""
    packed = zlib.compress(reasoning.encode(), 6)
    return PREFIX + base64.urlsafe_b64encode(packed).decode("ascii")


def is_sealed(signature: str) -> bool:
    return signature.startswith(PREFIX)


def unseal(token: str, limit: int) -> str | None:
    """The reasoning in a token made by `seal`, or None when `token` is not one, is damaged, or
    would open to more than `limit` bytes (a client chooses what it sends back: a small token
    must not inflate into a huge prompt)."""
    if not is_sealed(token):
        return None
    try:
        packed = base64.urlsafe_b64decode(token[len(PREFIX) :])
        opener = zlib.decompressobj()
        raw = opener.decompress(packed, limit + 1)
        if len(raw) > limit or not opener.eof:
            return None
        return raw.decode()
    except (binascii.Error, ValueError, zlib.error, UnicodeDecodeError):
        return None


SIGNED_PREFIX = "crossroads.r2."
"""Marks a sealed reasoning that carries its upstream's signature too (an Anthropic upstream's
thinking, relayed to a Responses client, which has no field for a signature)."""


def seal_signed(reasoning: str, signature: str) -> str:
    """The token for `reasoning` and the upstream `signature` that vouches for it."""
    packed = zlib.compress(orjson.dumps({"text": reasoning, "signature": signature}), 6)
    return SIGNED_PREFIX + base64.urlsafe_b64encode(packed).decode("ascii")


def unseal_any(token: str, limit: int) -> tuple[str, str | None] | None:
    """The reasoning and signature (None when it had none) in a token made by `seal` or
    `seal_signed`; None when `token` is neither, is damaged, or opens to more than `limit`
    bytes."""
    if token.startswith(PREFIX):
        text = unseal(token, limit)
        return None if text is None else (text, None)
    if not token.startswith(SIGNED_PREFIX):
        return None
    try:
        packed = base64.urlsafe_b64decode(token[len(SIGNED_PREFIX) :])
        opener = zlib.decompressobj()
        raw = opener.decompress(packed, limit + 1)
        if len(raw) > limit or not opener.eof:
            return None
        data = orjson.loads(raw)
    except (binascii.Error, ValueError, zlib.error):
        return None
    if not isinstance(data, dict):
        return None
    text, signature = data.get("text"), data.get("signature")
    if not isinstance(text, str) or not isinstance(signature, str):
        return None
    return text, signature
