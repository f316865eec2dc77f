"""The gateway's error tree. Every error that reaches a client is one of these, turned into the
client's own API error shape by its ingress; nothing else is allowed to escape as a 500."""

from __future__ import annotations

MAX_MESSAGE_CHARS = 2000
"""The longest error message a client, a log or the ledger gets: messages quote what the
client sent (a model name, a field's value), which may be megabytes long."""

MAX_PARAM_CHARS = 200


def clip(text: str, limit: int) -> str:
    """`text`, cut to at most `limit` characters with an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose.

    `status` is the HTTP status the client gets; `kind` is the machine-readable error type
    (OpenAI's `error.type`); `param` names the offending request field where there is one.
    The message is cut to `MAX_MESSAGE_CHARS`, the param to `MAX_PARAM_CHARS`.
    """

    status: int = 500
    kind: str = "api_error"
    max_message_chars: int | None = MAX_MESSAGE_CHARS

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        if self.max_message_chars is not None:
            message = clip(message, self.max_message_chars)
        super().__init__(message)
        self.message = message
        self.param = None if param is None else clip(param, MAX_PARAM_CHARS)
        self.code = code


class ConfigError(GatewayError):
    """The configuration or catalog data is invalid. Raised at start, never per request (so its
    message, written by the gateway about the operator's own files, is never cut)."""

    kind = "config_error"
    max_message_chars = None


class InvalidRequestError(GatewayError):
    """The client's request is malformed or asks for something impossible."""

    status = 400
    kind = "invalid_request_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int = 400,
    ) -> None:
        super().__init__(message, param=param, code=code)
        self.status = status


class AuthenticationError(GatewayError):
    status = 401
    kind = "authentication_error"


class PermissionDeniedError(GatewayError):
    status = 403
    kind = "permission_error"


class EvalNotPermittedError(PermissionDeniedError):
    """A request asked to be eval traffic (`x-crossroads-eval`) from a key that may not mark
    its traffic so. Its message starts with `LEAD` in every API shape (Anthropic's has no
    code), so a client such as `crossroads eval replay` can tell it from a policy's 403."""

    LEAD = "This key may not mark traffic as evaluation"

    def __init__(self, header: str) -> None:
        super().__init__(
            f"{self.LEAD} ({header}): eval traffic is kept out of the production reports, so "
            "only the admin key or a key with the eval permission may send it. Ask an admin "
            'for such a key (`crossroads keys create --can-eval`, or "can_eval": true in '
            "POST /admin/keys), or send the request as production traffic, without it.",
            code="eval_not_permitted",
        )


class PolicyError(PermissionDeniedError):
    """No deployment the caller's policy allows can serve the request."""

    kind = "policy_error"


class NotFoundError(GatewayError):
    status = 404
    kind = "not_found_error"


class ModelNotFoundError(NotFoundError):
    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model '{clip(model, 200)}' does not exist or is not served by this gateway. "
            "GET /v1/models lists the models you can use.",
            param="model",
            code="model_not_found",
        )


class RateLimitError(GatewayError):
    status = 429
    kind = "rate_limit_error"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, code="rate_limit_exceeded")
        self.retry_after = retry_after


class BudgetError(RateLimitError):
    kind = "budget_exceeded"


class ShuttingDownError(GatewayError):
    """The gateway is shutting down and stopped this request before its answer was complete
    (the grace period for requests in flight ran out). Retryable: another replica, or this
    one after its restart, can serve it. 503, which the official SDKs retry."""

    status = 503
    kind = "service_unavailable"

    def __init__(self) -> None:
        super().__init__(
            "The gateway is shutting down and stopped this request; retry it.",
            code="gateway_shutting_down",
        )


class UpstreamError(GatewayError):
    """An upstream host failed. `retryable` says whether another try (same or next deployment)
    may succeed; `upstream_status` is the host's own HTTP status, or None for transport errors.

    The message must already be safe to show a client: never an upstream key or raw auth text.
    """

    status = 502
    kind = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        upstream_status: int | None = None,
        status: int = 502,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.retryable = retryable
        self.upstream_status = upstream_status
        self.status = status
        self.retry_after = retry_after


class UpstreamTimeoutError(UpstreamError):
    kind = "timeout_error"

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True, status=504, code="upstream_timeout")
