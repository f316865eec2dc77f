"""The attempt loop: tries a route's deployments in order until one answers.

A retryable failure (transport error, timeout, 408/409/429/5xx, bad upstream answer, upstream
auth failure) moves on to the next deployment; a non-retryable one (the client's own mistake)
comes back at once. Streams may fall back only until their first chunk has been read, so a client
never sees two answers spliced together. Every attempt is noted on the request's `Trace`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from crossroads.errors import GatewayError, UpstreamError
from crossroads.providers.base import Completion, Provider, StreamChunk, UpstreamCall
from crossroads.routing.deployment import Deployment
from crossroads.routing.table import Route, RoutingTable


@dataclass(slots=True)
class Trace:
    """What the router did for one request: read by the ingress for headers and the ledger."""

    request_id: str
    deadline: float  # event-loop time by which the request must be over
    attempts: int = 0
    deployment: Deployment | None = None  # the one that answered, or the last one tried
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OpenStream:
    """A stream whose first chunk has arrived: from here on it is committed to `deployment`."""

    deployment: Deployment
    first: StreamChunk
    rest: AsyncIterator[StreamChunk]

    async def aclose(self) -> None:
        aclose = getattr(self.rest, "aclose", None)
        if aclose is not None:
            await aclose()


class Router:
    def __init__(self, table: RoutingTable, providers: Mapping[str, Provider]) -> None:
        self._table = table
        self._providers = providers

    @property
    def table(self) -> RoutingTable:
        return self._table

    def route(self, model: str) -> Route:
        """Raises ModelNotFoundError (404) for a name nothing serves."""
        return self._table.resolve(model)

    def _call(self, dep: Deployment, body: Mapping[str, Any], trace: Trace) -> UpstreamCall:
        trace.attempts += 1
        trace.deployment = dep
        return UpstreamCall(
            body={**body, "model": dep.upstream_model},
            deadline=trace.deadline,
            request_id=trace.request_id,
        )

    async def complete(
        self, route: Route, body: Mapping[str, Any], trace: Trace
    ) -> tuple[Deployment, Completion]:
        """The first successful completion among the route's deployments. Raises the last
        UpstreamError when every deployment failed, or the first non-retryable one."""
        last: UpstreamError | None = None
        for dep in route.deployments:
            if self._expired(trace):
                break
            call = self._call(dep, body, trace)
            try:
                return dep, await self._providers[dep.provider].complete(call)
            except UpstreamError as exc:
                trace.errors.append(f"{dep.id}: {exc.message}")
                if not exc.retryable:
                    raise
                last = exc
        raise self._exhausted(route, last)

    async def open_stream(self, route: Route, body: Mapping[str, Any], trace: Trace) -> OpenStream:
        """Opens a stream on the first deployment that produces a first chunk."""
        last: UpstreamError | None = None
        for dep in route.deployments:
            if self._expired(trace):
                break
            call = self._call(dep, body, trace)
            chunks = self._providers[dep.provider].stream(call)
            try:
                first = await anext(chunks)
            except StopAsyncIteration:
                last = UpstreamError(
                    f"provider '{dep.provider}' sent an empty stream", retryable=True
                )
                trace.errors.append(f"{dep.id}: {last.message}")
                continue
            except UpstreamError as exc:
                trace.errors.append(f"{dep.id}: {exc.message}")
                if not exc.retryable:
                    raise
                last = exc
                continue
            except BaseException:
                await _aclose(chunks)
                raise
            return OpenStream(dep, first, chunks)
        raise self._exhausted(route, last)

    @staticmethod
    def _expired(trace: Trace) -> bool:
        return asyncio.get_running_loop().time() >= trace.deadline

    @staticmethod
    def _exhausted(route: Route, last: UpstreamError | None) -> GatewayError:
        if last is None:
            return UpstreamError(
                f"the request deadline passed before any deployment of '{route.name}' could answer",
                retryable=False,
                status=504,
                code="deadline_exceeded",
            )
        if len(route.deployments) > 1:
            last.message = (
                f"all {len(route.deployments)} deployments of '{route.name}' failed; "
                f"last error: {last.message}"
            )
        return last


async def _aclose(chunks: AsyncIterator[StreamChunk]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
