"""POST /v1/embeddings: validate, route to a deployment whose provider serves embeddings, answer
with the upstream's embeddings list as it came, and ledger the outcome.

Every path through here submits exactly one ledger record, as for chat completions."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from crossroads.errors import GatewayError, InvalidRequestError
from crossroads.ingress.body import ClientGone
from crossroads.ingress.disconnect import unless_disconnected
from crossroads.ingress.openai.errors import error_response
from crossroads.ingress.pipeline import Call

__all__ = ["embeddings", "validate_embeddings_request"]

MAX_INPUTS = 2048
"""OpenAI's limit on the number of inputs in one request."""

_FORMATS = ("float", "base64")


def _bad(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


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
            raise _bad("A token array in 'input' must hold non-negative integers only.", "input")
    elif isinstance(first, list):
        for index, item in enumerate(value):
            if not isinstance(item, list) or not item or not all(_is_token(t) for t in item):
                raise _bad(
                    f"'input[{index}]' must be a non-empty array of non-negative integers.",
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
            f"'encoding_format' must be float or base64; got {encoding!r}.", "encoding_format"
        )
    dimensions = data.get("dimensions")
    if dimensions is not None and not (_is_token(dimensions) and dimensions >= 1):
        raise _bad(f"'dimensions' must be a positive integer; got {dimensions!r}.", "dimensions")
    user = data.get("user")
    if user is not None and not isinstance(user, str):
        raise _bad("'user' must be a string.", "user")
    return model


async def embeddings(request: Request) -> Response:
    call = Call(request, "embeddings")
    try:
        async with call.stoppable():
            principal, data, options = await call.read(request)
            call.exchange.stream = False  # a `stream` field passes through; embeddings never stream
            model = validate_embeddings_request(data)
            admitted = await call.admit(
                request, principal, model, options, stream=False, max_output=0
            )
            _, result = await unless_disconnected(
                request, call.services.router.embed(admitted.plan, data, admitted.trace)
            )
            call.answered(result.usage)
            return Response(result.body, media_type="application/json", headers=call.headers())
    except GatewayError as exc:
        call.failed(exc)
        return error_response(exc, call.headers())
    except ClientGone:
        call.gone()
        return Response(status_code=499)
