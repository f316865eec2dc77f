"""Shadow traffic: a sample of live requests on a shadowed route, sent again to the route's
candidate after the client has its whole answer, and checked against that answer.

It never touches the client's answer: the shadow call starts only once the primary answered
(the handler has its response), runs as its own task, and every failure in it is logged and
dropped. It is bounded: at most `max_in_flight` shadow calls per route (more are dropped, never
queued), and `budget_usd` of shadow spend per UTC day (`note_cost`, fed from the eval ledger's
records). It goes through the gateway's own app in-process (an ASGI call with the client's own
credentials and `x-crossroads-eval: shadow:<route>`), so the client's team policy, budget and
routing apply and the record lands in the eval ledger. The client's key need not have the eval
permission: the ingress accepts the eval header from a shadow call on the proof of its ASGI
scope (`Shadower.sent`), which only this process can set. The deterministic checks judge each pair
first; with the route's `judge`, the pairs they leave undecided go to that model in both orders
(`replay.judge_pair`), as shadow traffic too. Streams are not shadowed."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson

from crossroads.quality.replay import PATHS, REFUSED, checks_verdict, judge_pair
from crossroads.quality.settings import ShadowRoute
from crossroads.quality.store import Answer, Captured, QualityStore

__all__ = ["FORWARDED_HEADERS", "SHADOW_RUN_PREFIX", "SHADOW_SCOPE_KEY", "Shadower"]

log = logging.getLogger(__name__)

SHADOW_RUN_PREFIX = "shadow:"
FORWARDED_HEADERS = (
    "authorization",
    "x-api-key",
    "host",
    "anthropic-version",
    "anthropic-beta",
    "x-crossroads-task",
)
"""The client's headers a shadow call carries: its credentials (so its team's policy and
budget apply), the Host the edge checks, the API version, and its task tag."""
SHADOW_SCOPE_KEY = "crossroads.shadow"
"""The ASGI scope key that proves a request is one of this process's shadow calls. A scope is
built by the server from the connection, so no client can set it: no header, secret or cookie
to forge, log or forward upstream."""


class Shadower:
    """Shadows the routes in `routes`; inert when there are none."""

    def __init__(
        self,
        routes: tuple[ShadowRoute, ...],
        store_path: Path | None,
        *,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._routes = {route.model: route for route in routes}
        self._path = store_path
        self._draw = draw
        self._store: QualityStore | None = None
        self._lock = threading.Lock()  # one connection, used from worker threads
        self._tasks: set[asyncio.Task[None]] = set()
        self.in_flight: dict[str, int] = dict.fromkeys(self._routes, 0)
        self._spent: dict[str, tuple[str, Decimal]] = {}  # route -> (UTC day, spend)
        self.dropped = 0  # sampled calls dropped at the in-flight cap
        self.over_budget = 0  # sampled calls skipped past the day's budget
        self.done = 0
        self.refused = 0  # shadow calls the client's policy refused: nothing kept
        # The proof a request is one of ours (`sent`): an object only this one holds.
        self._mark = object()

    def sent(self, scope: Mapping[str, Any]) -> bool:
        """Whether the request with ASGI `scope` is one of this shadower's own calls, which
        may mark itself as eval traffic on a client key without the eval permission."""
        return scope.get(SHADOW_SCOPE_KEY) is self._mark

    def _transport(self, app: Any) -> httpx.ASGITransport:
        """An in-process transport to `app` whose every request carries the shadow mark."""
        mark = self._mark

        async def marked(scope: Any, receive: Any, send: Any) -> None:
            await app({**scope, SHADOW_SCOPE_KEY: mark}, receive, send)

        return httpx.ASGITransport(app=marked)

    def wants(self, model: str, *, stream: bool) -> ShadowRoute | None:
        """The route to shadow this request on, or None: not shadowed, a stream, not in the
        sample, at the in-flight cap (dropped) or past the day's budget."""
        route = self._routes.get(model)
        if route is None or stream or self._draw() >= route.sample:
            return None
        if self.in_flight[model] >= route.max_in_flight:
            self.dropped += 1
            return None
        if self.spent(model) >= Decimal(str(route.budget_usd)):
            self.over_budget += 1
            return None
        return route

    def spent(self, model: str) -> Decimal:
        day, amount = self._spent.get(model, ("", Decimal(0)))
        return amount if day == _today() else Decimal(0)

    def note_cost(self, run: str, cost: Decimal | None) -> None:
        """Counts a shadow call's cost (from its ledger record) against its route's budget."""
        if cost is None or not run.startswith(SHADOW_RUN_PREFIX):
            return
        model = run[len(SHADOW_RUN_PREFIX) :]
        if model in self._routes:
            self._spent[model] = (_today(), self.spent(model) + cost)

    def launch(
        self,
        app: Any,
        route: ShadowRoute,
        *,
        endpoint: str,
        request_id: str,
        headers: Mapping[str, str],
        request: bytes,
        answer: bytes,
        task: str | None,
    ) -> None:
        """Starts the shadow call of one answered request. Never blocks, never raises."""
        self.in_flight[route.model] += 1
        job = asyncio.create_task(
            self._shadow(app, route, endpoint, request_id, headers, request, answer, task),
            name=f"shadow-{request_id}",
        )
        self._tasks.add(job)
        job.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Cancels the shadow calls in flight (shutdown), then closes the store."""
        for job in list(self._tasks):
            job.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._store is not None:
            await asyncio.to_thread(self._store.close)

    async def _shadow(
        self,
        app: Any,
        route: ShadowRoute,
        endpoint: str,
        request_id: str,
        headers: Mapping[str, str],
        request: bytes,
        answer: bytes,
        task: str | None,
    ) -> None:
        run = SHADOW_RUN_PREFIX + route.model
        try:
            body = orjson.loads(request)
            primary = orjson.loads(answer)
            sent = {**body, "model": route.candidate, "stream": False}
            if endpoint == "responses":
                sent["store"] = False
            forwarded = {k: v for k, v in headers.items() if k in FORWARDED_HEADERS}
            forwarded["x-crossroads-eval"] = run
            transport = self._transport(app)
            started = time.perf_counter()
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
                reply = await http.post(PATHS[endpoint], json=sent, headers=forwarded)
            latency = (time.perf_counter() - started) * 1000.0
            if reply.status_code in REFUSED:
                self.refused += 1
                return
            data = reply.json() if reply.status_code == 200 else None
            item = Captured(request_id, endpoint, route.model, body, primary, task=task)
            base = Answer(route.model, 200, primary, None, request_id)
            cand = Answer(
                route.candidate,
                reply.status_code,
                data if isinstance(data, dict) else None,
                latency,
                reply.headers.get("x-request-id"),
                None if reply.status_code == 200 else reply.text[:300],
            )
            judge = route.judge
            verdict = checks_verdict(run, item, base, cand, judge=judge is not None)
            if verdict is None and judge is not None:

                async def ask(judged: Captured, request: dict[str, Any]) -> Answer:
                    started = time.perf_counter()
                    async with httpx.AsyncClient(
                        transport=self._transport(app), base_url="http://gateway"
                    ) as http:
                        reply = await http.post(
                            PATHS["chat.completions"],
                            json={**request, "model": judge},
                            headers=forwarded,
                        )
                    data = reply.json() if reply.status_code == 200 else None
                    answer = Answer(
                        judge,
                        reply.status_code,
                        data if isinstance(data, dict) else None,
                        (time.perf_counter() - started) * 1000.0,
                        reply.headers.get("x-request-id"),
                        None if reply.status_code == 200 else reply.text[:300],
                    )
                    await asyncio.to_thread(self._save_one, run, judged.id, answer)
                    return answer

                verdict = await judge_pair(run, item, base, cand, ask)
            await asyncio.to_thread(self._save, run, request_id, base, cand, verdict)
            self.done += 1
        except Exception:  # a shadow call's failure is its own: logged, never the client's
            log.exception("shadow call for %s failed", request_id)
        finally:
            self.in_flight[route.model] -= 1

    def _save_one(self, run: str, item: str, answer: Answer) -> None:
        if self._path is None:
            return
        with self._lock:
            if self._store is None:
                self._store = QualityStore(self._path)
            self._store.save_answer(run, item, answer)

    def _save(self, run: str, item: str, base: Answer, cand: Answer, verdict: Any) -> None:
        if self._path is None:
            return
        with self._lock:
            if self._store is None:
                self._store = QualityStore(self._path)
            self._store.save_answer(run, item, base)
            self._store.save_answer(run, item, cand)
            if verdict is not None:
                self._store.save_verdict(verdict)


def _today() -> str:
    return datetime.now(UTC).date().isoformat()
