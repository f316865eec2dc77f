"""The attempt loop: tries a request's candidate deployments until one answers.

Order: the route's deployments (then those of the request's `models` fallbacks), filtered by the
request's preferences, ordered by the strategy, with circuit-open deployments skipped.

Per deployment: a retryable failure (transport error, timeout, 408/409/429/5xx, a malformed
answer) is retried on the same deployment up to `policy.retries` times with exponential back-off
and full jitter, or after the upstream's Retry-After when that is short; then the next
deployment is tried. An upstream that rejects the gateway's credentials (401/403) is skipped at
once and its circuit opened. A non-retryable failure (the client's own mistake) comes back at
once. Everything happens within the request's deadline. Streams may fall back only until their
first chunk has been read, so a client never sees two answers spliced together.

Every upstream error is scrubbed of the gateway's secrets and cut to length (`Scrubber.upstream`)
here, as it enters the gateway's core: before the health board, the trace, a log or a client
sees its text, whichever provider raised it."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeGuard, TypeVar, cast

import msgspec

from crossroads.errors import (
    GatewayError,
    InvalidRequestError,
    NotFoundError,
    PolicyError,
    UpstreamError,
)
from crossroads.providers.base import (
    NO_HEADERS,
    Completion,
    Embeddings,
    Provider,
    ResponsesPassThrough,
    StreamChunk,
    UpstreamCall,
)
from crossroads.routing.deployment import Deployment
from crossroads.routing.health import Circuit, HealthBoard
from crossroads.routing.observer import AttemptObserver
from crossroads.routing.options import DEFAULT_OPTIONS, RoutingOptions
from crossroads.routing.policy import RoutingPolicy
from crossroads.routing.strategy import allowed, order
from crossroads.routing.table import Route, RoutingTable
from crossroads.scrub import Scrubber

log = logging.getLogger(__name__)

T = TypeVar("T")
AUTH_FAILED = "upstream_auth_failed"


MAX_ATTEMPTS_SHOWN = 8
"""Attempts an exhausted request's error message lists (the latest ones)."""


@dataclass(slots=True)
class Trace:
    """What the router did for one request: read by the ingress for headers and the ledger."""

    request_id: str
    deadline: float  # event-loop time by which the request must be over
    attempts: int = 0
    deployment: Deployment | None = None  # the one that answered, or the last one tried
    errors: list[str] = field(default_factory=list)
    observer: AttemptObserver | None = None  # told of each attempt (tracing); None: nobody


@dataclass(slots=True)
class Plan:
    """The deployments to try, in order, and why any others were left out (by policy first,
    then by the request's own preferences)."""

    route: Route
    candidates: list[Deployment]
    excluded: list[tuple[Deployment, str]]
    policy_excluded: list[tuple[Deployment, str]] = field(default_factory=list)
    # Candidates that serve the request with its tools dropped (their model cannot call them).
    tools_dropped: frozenset[str] = frozenset()


class OpenStream:
    """A stream whose first chunk has arrived: from here on it is committed to `deployment`.
    Iterating `rest` reports the outcome to the health board when the stream ends."""

    def __init__(
        self,
        deployment: Deployment,
        first: StreamChunk,
        chunks: AsyncIterator[StreamChunk],
        on_end: Callable[[UpstreamError | None, int], None],
        on_abandon: Callable[[], None],
        scrub: Scrubber | None = None,
        native: bool = False,
    ) -> None:
        self.deployment = deployment
        self.native = native  # Responses API events from a pass-through, not chat chunks
        self.first = first
        self._chunks = chunks
        self._on_end = on_end
        self._on_abandon = on_abandon
        self._scrub = scrub or Scrubber()
        self.rest = self._relay()

    async def _relay(self) -> AsyncIterator[StreamChunk]:
        tokens = 0
        judged = False
        try:
            async for chunk in self._chunks:
                if chunk.usage is not None:
                    tokens = chunk.usage.completion_tokens
                yield chunk
        except UpstreamError as exc:
            judged = True
            self._scrub.upstream(exc)
            self._on_end(exc, tokens)
            raise
        else:
            judged = True
            self._on_end(None, tokens)
        finally:
            if not judged:  # the client went away: no verdict on the upstream
                self._on_abandon()

    async def aclose(self) -> None:
        await self.rest.aclose()  # type: ignore[attr-defined]
        await _aclose(self._chunks)


@dataclass(slots=True)
class _RunState:
    last: UpstreamError | None = None
    skipped_open: list[Deployment] = field(default_factory=list)


class Router:
    def __init__(
        self,
        table: RoutingTable,
        providers: Mapping[str, Provider],
        policy: RoutingPolicy | None = None,
        *,
        rng: random.Random | None = None,
        scrub: Scrubber | None = None,
    ) -> None:
        """`scrub` cleans every upstream error (default: no secrets known, text cut to
        `crossroads.scrub.DEFAULT_MAX_MESSAGE_CHARS`)."""
        self._table = table
        self._providers = providers
        self.policy = policy or RoutingPolicy()
        self.scrub = scrub or Scrubber()
        self.health = HealthBoard(
            {d.id for r in table.routes() for d in r.deployments}, self.policy.breaker
        )
        self._rng = rng or random.Random()

    @property
    def table(self) -> RoutingTable:
        return self._table

    def route(self, model: str) -> Route:
        """Raises ModelNotFoundError (404) for a name nothing serves."""
        return self._table.resolve(model)

    def plan(
        self,
        route: Route,
        options: RoutingOptions = DEFAULT_OPTIONS,
        *,
        stream: bool = False,
        policy: Callable[[Deployment, str], str | None] | None = None,
    ) -> Plan:
        """The candidates for `route` (then its `models` fallbacks) in the order to try them.
        `policy(deployment, served_name)` says why governance rules a deployment out, or None;
        it filters before anything else. Raises ModelNotFoundError for an unknown fallback
        model name, and PolicyError (403) when policy leaves no candidate at all."""
        excluded: list[tuple[Deployment, str]] = []
        policy_excluded: list[tuple[Deployment, str]] = []
        candidates: list[Deployment] = []
        seen: set[str] = set()
        routes = [route, *(self._table.resolve(name) for name in options.fallback_models)]
        for r in routes:
            kept = []
            for dep in r.deployments:
                if dep.id in seen:
                    continue
                seen.add(dep.id)
                blocked = policy(dep, r.name) if policy is not None else None
                if blocked is not None:
                    policy_excluded.append((dep, blocked))
                    continue
                reason = allowed(dep, options)
                if reason is None:
                    kept.append(dep)
                else:
                    excluded.append((dep, reason))
            strategy = r.strategy or self.policy.strategy
            candidates.extend(
                order(kept, strategy, options, self.health, stream=stream, rng=self._rng)
            )
        candidates, dropping = self._tool_fallbacks(candidates, excluded, options)
        if not options.allow_fallbacks:
            excluded.extend((dep, "provider.allow_fallbacks is false") for dep in candidates[1:])
            candidates = candidates[:1]
        if not candidates and policy_excluded and not excluded:
            reasons = "; ".join(f"{dep.id}: {why}" for dep, why in policy_excluded)
            raise PolicyError(
                f"no deployment of '{route.name}' is allowed by policy ({reasons})",
                param="model",
                code="policy_denied",
            )
        return Plan(route, candidates, excluded, policy_excluded, dropping)

    @staticmethod
    def _tool_fallbacks(
        candidates: list[Deployment],
        excluded: list[tuple[Deployment, str]],
        options: RoutingOptions,
    ) -> tuple[list[Deployment], frozenset[str]]:
        """Deployments set to drop the tools their model cannot call serve a tool request only
        when no candidate can call them: an agent whose tool-calling model is down must get
        that failure, not a text answer from a fallback that silently ignored its tools."""
        if not options.needs_tools:
            return candidates, frozenset()
        dropping = [d for d in candidates if not d.calls_tools]
        if not dropping:
            return candidates, frozenset()
        capable = [d for d in candidates if d.calls_tools]
        if not capable:
            return candidates, frozenset(d.id for d in dropping)
        excluded.extend(
            (d, f"model '{d.catalog_id}' does not support tool calling") for d in dropping
        )
        return capable, frozenset()

    async def complete(
        self,
        plan: Plan,
        body: Mapping[str, Any],
        trace: Trace,
        native: Mapping[str, Any] | None = None,
    ) -> tuple[Deployment, Completion]:
        """The first successful completion among the plan's candidates. Raises the last
        UpstreamError when every candidate failed, or the first non-retryable one.

        `native` is the client's own Responses request, sent as it is to a deployment whose
        provider speaks the Responses API (`ResponsesPassThrough`); the others get `body`."""

        async def attempt(dep: Deployment, call: UpstreamCall) -> tuple[Deployment, Completion]:
            started = time.perf_counter()
            provider = self._providers[dep.provider]
            if native is not None and _speaks_responses(provider):
                result = await provider.respond(_native(native, dep, call))
            else:
                result = await provider.complete(_prepared(plan, dep, call))
            if dep.id in plan.tools_dropped:
                result = replace(result, dropped=(*result.dropped, "tools"))
            self.health.success(
                dep.id,
                latency_ms=(time.perf_counter() - started) * 1000.0,
                completion_tokens=result.usage.completion_tokens if result.usage else 0,
            )
            return dep, result

        return await self._run(plan, body, trace, attempt)

    async def embed(
        self, plan: Plan, body: Mapping[str, Any], trace: Trace
    ) -> tuple[Deployment, Completion]:
        """The first successful embeddings answer among the plan's candidates whose provider has
        the `Embeddings` capability; the others are left out, with the reason. Raises
        InvalidRequestError (400) when no candidate can embed, else as `complete`."""
        able: list[Deployment] = []
        unable: list[tuple[Deployment, str]] = []
        for dep in plan.candidates:
            if isinstance(self._providers[dep.provider], Embeddings):
                able.append(dep)
            else:
                unable.append((dep, "its provider does not serve embeddings"))
        if not able and unable:
            reasons = "; ".join(f"{d.id}: {why}" for d, why in unable)
            raise InvalidRequestError(
                f"no deployment of '{plan.route.name}' serves embeddings ({reasons})",
                param="model",
                code="embeddings_not_supported",
            )
        plan = Plan(plan.route, able, [*plan.excluded, *unable], plan.policy_excluded)

        async def attempt(dep: Deployment, call: UpstreamCall) -> tuple[Deployment, Completion]:
            started = time.perf_counter()
            provider = cast(Embeddings, self._providers[dep.provider])
            result = await provider.embed(call)
            self.health.success(dep.id, latency_ms=(time.perf_counter() - started) * 1000.0)
            return dep, result

        return await self._run(plan, body, trace, attempt)

    async def open_stream(
        self,
        plan: Plan,
        body: Mapping[str, Any],
        trace: Trace,
        native: Mapping[str, Any] | None = None,
    ) -> OpenStream:
        """Opens a stream on the first candidate that produces a first chunk. `native`: as
        for `complete`; such a stream's chunks are Responses events (`OpenStream.native`)."""

        async def attempt(dep: Deployment, call: UpstreamCall) -> OpenStream:
            started = time.perf_counter()
            provider = self._providers[dep.provider]
            passed = native is not None and _speaks_responses(provider)
            if passed:
                assert native is not None
                chunks = cast(ResponsesPassThrough, provider).respond_stream(
                    _native(native, dep, call)
                )
            else:
                chunks = provider.stream(_prepared(plan, dep, call))
            try:
                first = await anext(chunks)
                if dep.id in plan.tools_dropped:
                    first = msgspec.structs.replace(first, dropped=(*first.dropped, "tools"))
            except StopAsyncIteration:
                raise UpstreamError(
                    f"provider '{dep.provider}' sent an empty stream",
                    retryable=True,
                    code="upstream_bad_response",
                ) from None
            except BaseException:
                await _aclose(chunks)
                raise
            ttft_ms = (time.perf_counter() - started) * 1000.0

            def on_end(error: UpstreamError | None, tokens: int) -> None:
                if error is None:
                    self.health.success(
                        dep.id,
                        latency_ms=(time.perf_counter() - started) * 1000.0,
                        ttft_ms=ttft_ms,
                        completion_tokens=tokens,
                    )
                elif error.retryable:
                    self.health.failure(dep.id, error.message)

            return OpenStream(
                dep,
                first,
                chunks,
                on_end,
                lambda: self.health.release(dep.id),
                self.scrub,
                native=passed,
            )

        return await self._run(plan, body, trace, attempt)

    async def _run(
        self,
        plan: Plan,
        body: Mapping[str, Any],
        trace: Trace,
        attempt: Callable[[Deployment, UpstreamCall], Awaitable[T]],
    ) -> T:
        state = _RunState()
        for dep in plan.candidates:
            if not self.health.admit(dep.id):
                state.skipped_open.append(dep)
                continue
            found, result = await self._try(dep, plan, body, trace, attempt, state)
            if found:
                return result  # type: ignore[return-value]
        if state.skipped_open and self.policy.open_circuits == "last":
            # The healthy candidates are used up: rather than refuse, try the circuit-open ones
            # too, the one that opened first first (the likeliest to have recovered).
            for dep in sorted(state.skipped_open, key=lambda d: -self.health.retry_in(d.id)):
                found, result = await self._try(dep, plan, body, trace, attempt, state)
                if found:
                    return result  # type: ignore[return-value]
            state.skipped_open = []
        raise self._exhausted(plan, state.last, state.skipped_open, trace.errors)

    async def _try(
        self,
        dep: Deployment,
        plan: Plan,
        body: Mapping[str, Any],
        trace: Trace,
        attempt: Callable[[Deployment, UpstreamCall], Awaitable[T]],
        state: _RunState,
    ) -> tuple[bool, T | None]:
        """Tries one deployment, with its retries. Returns (True, result) on success and
        (False, None) when the caller should move on; raises what must reach the client."""
        loop = asyncio.get_running_loop()
        for retry in range(self.policy.retries + 1):
            if loop.time() >= trace.deadline:
                self.health.release(dep.id)
                raise self._deadline(plan, state.last)
            trace.attempts += 1
            trace.deployment = dep
            watch = None
            if trace.observer is not None:
                watch = trace.observer.attempt(dep, self.health.get(dep.id).state)
            call = UpstreamCall(
                body={**body, "model": dep.upstream_model},
                deadline=trace.deadline,
                request_id=trace.request_id,
                headers=watch.headers if watch is not None else NO_HEADERS,
            )
            try:
                result = await attempt(dep, call)
            except UpstreamError as exc:
                self.scrub.upstream(exc)
                if watch is not None:
                    watch.failed(exc)
                log.debug("deployment %s failed (attempt %d): %s", dep.id, retry + 1, exc.message)
                trace.errors.append(f"{dep.id}: {exc.message}")
                state.last = exc
                if not exc.retryable:
                    self.health.success(dep.id)  # the upstream is fine; the request is not
                    raise
                if exc.code == AUTH_FAILED:
                    self.health.failure(dep.id, exc.message, trip=True)
                    return False, None
                if exc.upstream_status == 429:
                    self.health.release(dep.id)
                else:
                    self.health.failure(dep.id, exc.message)
                    if self.health.get(dep.id).state is not Circuit.CLOSED:
                        # This failure opened the circuit (or a half-open probe failed): no
                        # more attempts on this deployment in this request.
                        return False, None
                if retry == self.policy.retries:
                    return False, None
                delay = self._delay(retry, exc)
                if delay is None or loop.time() + delay >= trace.deadline:
                    return False, None
                await asyncio.sleep(delay)
            except BaseException as exc:
                if watch is not None:
                    watch.failed(exc)
                self.health.release(dep.id)
                raise
            else:
                if watch is not None:
                    watch.succeeded(result)
                return True, result
        return False, None

    def _delay(self, retry: int, exc: UpstreamError) -> float | None:
        """Seconds to wait before retrying the same deployment, or None to move on now."""
        if exc.retry_after is not None:
            return exc.retry_after if exc.retry_after <= self.policy.max_retry_after else None
        ceiling = min(self.policy.backoff_max, self.policy.backoff_base * (2**retry))
        return self._rng.uniform(0, ceiling)

    def _deadline(self, plan: Plan, last: UpstreamError | None) -> GatewayError:
        detail = f"; last error: {last.message}" if last else ""
        return UpstreamError(
            f"the request deadline passed before '{plan.route.name}' could answer{detail}",
            retryable=False,
            status=504,
            code="deadline_exceeded",
        )

    def _exhausted(
        self,
        plan: Plan,
        last: UpstreamError | None,
        skipped_open: list[Deployment],
        attempts: list[str],
    ) -> GatewayError:
        name = plan.route.name
        if last is None and skipped_open:
            wait = min(self.health.retry_in(d.id) for d in skipped_open)
            return UpstreamError(
                f"every deployment of '{name}' is unavailable (circuit open after repeated "
                f"failures); retry in {wait:.0f}s",
                retryable=False,
                status=503,
                retry_after=max(wait, 1.0),
                code="circuit_open",
            )
        if last is None and plan.excluded and all(d.retired for d, _ in plan.excluded):
            # Every deployment is of a model its host retired: say so, not "preferences".
            retired = "; ".join(f"{d.id}: {d.retired}" for d, _ in plan.excluded)
            return NotFoundError(
                f"'{name}' is no longer served: {retired}", param="model", code="model_retired"
            )
        if last is None:
            reasons = (
                "; ".join(f"{d.id}: {why}" for d, why in (*plan.policy_excluded, *plan.excluded))
                or "none configured"
            )
            return UpstreamError(
                f"no deployment of '{name}' matches the request's routing preferences ({reasons})",
                retryable=False,
                status=400 if plan.excluded else 503,
                code="no_eligible_deployment",
            )
        tried = len(plan.candidates) - len(skipped_open)
        if tried > 1:
            # Each attempt's outcome, so a fallback's failure never hides the primary's; the
            # status is that of the last failure, one of those that happened (502, 503, 504, 429).
            shown = attempts[-MAX_ATTEMPTS_SHOWN:]
            more = len(attempts) - len(shown)
            listing = "; ".join(shown) + (f"; and {more} earlier" if more else "")
            last.message = f"all {tried} deployments of '{name}' failed: {listing}"
        return last


def _prepared(plan: Plan, dep: Deployment, call: UpstreamCall) -> UpstreamCall:
    """The attempt as `dep` gets it: its sampling defaults, and without the tools its model
    cannot call when the plan serves the request that way. `call` itself when nothing changes
    (the common case: no copy on the request path)."""
    body = call.body
    if dep.id in plan.tools_dropped:
        body = dep.without_tools(body)
    body = dep.with_defaults(body)
    return call if body is call.body else replace(call, body=body)


def _speaks_responses(provider: object) -> TypeGuard[ResponsesPassThrough]:
    return isinstance(provider, ResponsesPassThrough) and provider.speaks_responses


def _native(native: Mapping[str, Any], dep: Deployment, call: UpstreamCall) -> UpstreamCall:
    """The attempt as a Responses pass-through: the client's request, the upstream's model id."""
    return replace(call, body={**native, "model": dep.upstream_model})


async def _aclose(chunks: AsyncIterator[StreamChunk]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
