"""POST /v1/embeddings: validate, route to a deployment whose provider serves embeddings, answer
with the upstream's embeddings list as it came, and ledger the outcome.

Every path through here submits exactly one ledger record, as for chat completions."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from crossroads.errors import GatewayError, InvalidRequestError
from crossroads.ingress.disconnect import unless_disconnected
from crossroads.ingress.estimate import estimated_embedding_usage
from crossroads.ingress.openai.errors import error_response
from crossroads.ingress.pipeline import Call

__all__ = ["embeddings", "validate_embeddings_request"]

MAX_INPUTS = 2048
"""OpenAI's limit on the number of inputs in one request."""

MAX_DIMENSIONS = 65_536
"""The most `dimensions` a request may ask for: above any embedding model's width (the widest
served today have 4,096), and a 32-bit integer everywhere."""

MAX_TOKEN_ID = 2**31 - 1
"""Token ids in a token-array `input` are 32-bit integers at every host."""

_FORMATS = ("float", "base64")


def _bad(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKEN_ID


def _check_input(value: Any) -> None:
    """`input` is a non-empty string, a list of them, a token array (a list of non-negative
    integers), or a list of token arrays; at most MAX_INPUTS items."""
    if isinstance(value, str):
        if not value:
            raise _bad("'input' must not be an empty string.", "input")
        return
    if not isinstance(value, list) or not value:
        raise _bad(
            "'input' must be a string, a list of strings, a token array or a list of token "
            "arrays, and must not be empty.",
            "input",
        )
    if len(value) > MAX_INPUTS:
        raise _bad(f"'input' may hold at most {MAX_INPUTS} items; got {len(value)}.", "input")
    first = value[0]
    if isinstance(first, str):
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise _bad(f"'input[{index}]' must be a non-empty string.", f"input[{index}]")
    elif _is_token(first):
        if not all(_is_token(item) for item in value):
            raise _bad(
                f"A token array in 'input' must hold integers from 0 to {MAX_TOKEN_ID} only.",
                "input",
            )
    elif isinstance(first, list):
        for index, item in enumerate(value):
            if not isinstance(item, list) or not item or not all(_is_token(t) for t in item):
                raise _bad(
                    f"'input[{index}]' must be a non-empty array of integers from 0 to "
                    f"{MAX_TOKEN_ID}.",
                    f"input[{index}]",
                )
    else:
        raise _bad("'input' items must be strings, integers or token arrays.", "input")


def validate_embeddings_request(data: dict[str, Any]) -> str:
    """Checks an OpenAI embeddings request and returns its model name. Fields the gateway does
    not interpret pass through to the upstream. Raises InvalidRequestError (400) naming the
    field."""
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("'model' is required and must be a non-empty string.", "model")
    if "input" not in data:
        raise _bad("'input' is required.", "input")
    _check_input(data["input"])
    encoding = data.get("encoding_format")
    if encoding is not None and encoding not in _FORMATS:
        raise _bad(
            f"'encoding_format' must be float or base64; got {encoding!r:.40}.", "encoding_format"
        )
    dimensions = data.get("dimensions")
    if dimensions is not None and not (_is_token(dimensions) and 1 <= dimensions <= MAX_DIMENSIONS):
        raise _bad(
            f"'dimensions' must be an integer from 1 to {MAX_DIMENSIONS}; got {dimensions!r:.40}.",
            "dimensions",
        )
    user = data.get("user")
    if user is not None and not isinstance(user, str):
        raise _bad("'user' must be a string.", "user")
    return model


async def embeddings(request: Request) -> Response:
    return await Call(request, "embeddings").run(request, _embed, _error)


def _error(exc: GatewayError, call: Call) -> Response:
    return error_response(exc, call.headers())


async def _embed(call: Call, request: Request) -> Response:
    principal, data, options = await call.read(request)
    call.exchange.stream = False  # a `stream` field passes through; embeddings never stream
    model = validate_embeddings_request(data)
    admitted = await call.admit(request, principal, model, options, stream=False, max_output=0)
    _, result = await unless_disconnected(
        request, call.services.router.embed(admitted.plan, data, admitted.trace)
    )
    call.answered(result.usage or estimated_embedding_usage(data))
    return Response(result.body, media_type="application/json", headers=call.headers())
