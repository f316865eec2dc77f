"""Replay: captured (or file-given) requests sent again, through a running gateway over HTTP,
to a baseline and to candidate models, then checked and judged.

Why over HTTP rather than in-process: the replay then takes exactly the path a client's request
takes (the key's authentication, its team's policy on origins and hosts, its budget and rate
limits, routing and fallbacks, the ledger), with nothing to keep in step, against a gateway
that may run elsewhere. Each request carries `x-crossroads-eval: <run>`, so the gateway records
it in the eval ledger, apart from production; the gateway takes that header only from the admin
key or a key with the eval permission (`crossroads keys create --can-eval`), and a refusal stops
the run (`EvalNotPermitted`) with nothing stored, so a rerun with such a key resumes it.

Resumable: every answer and verdict is stored as it comes, under the run's name; running the
same run again sends only what is missing. Concurrency-limited by a semaphore."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from crossroads.errors import EvalNotPermittedError
from crossroads.quality.answers import question, read_reply, requested_schema
from crossroads.quality.checks import check
from crossroads.quality.judge import combine, parse_verdict, prompt
from crossroads.quality.store import Answer, Captured, QualityStore, Verdict

__all__ = [
    "PATHS",
    "REFUSED",
    "EvalNotPermitted",
    "Replay",
    "checks_verdict",
    "items_from_jsonl",
]

PATHS = {
    "chat.completions": "/v1/chat/completions",
    "messages": "/v1/messages",
    "responses": "/v1/responses",
}
_RETRYABLE = frozenset({0, 408, 409, 429, 500, 502, 503, 504})  # not stored: a rerun retries
REFUSED = frozenset({401, 403})
"""The key's policy (or the key itself) refuses the model: no verdict, counted as refused. The
captured request was not sent to that model."""


class EvalNotPermitted(Exception):
    """The gateway refused the replay's key to send eval traffic (403): the key lacks the eval
    permission. Raised by `Replay.run_all`, which stops the run; what was stored stays."""


def items_from_jsonl(lines: Iterable[str]) -> list[Captured]:
    """Items from a JSONL file: each line a request body (Chat Completions), or an object with
    `request` and optionally `id`, `endpoint`, `model` (served name), `task`, `team`. Raises
    ValueError naming the line of a bad one."""
    items: list[Captured] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"line {number}: not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError(f"line {number}: not a JSON object")
        request = data.get("request", data)
        endpoint = str(data.get("endpoint", "chat.completions"))
        if not isinstance(request, dict) or endpoint not in PATHS:
            raise ValueError(f"line {number}: needs a request object and a known endpoint")
        items.append(
            Captured(
                id=str(data.get("id", f"line-{number}")),
                endpoint=endpoint,
                model=str(data.get("model", request.get("model", ""))),
                request=request,
                team_id=data.get("team"),
                task=data.get("task"),
            )
        )
    return items


def checks_verdict(
    run: str, item: Captured, base: Answer, cand: Answer, *, judge: bool
) -> Verdict | None:
    """The verdict the deterministic checks reach on their own: a failed answer loses, then
    `checks.check`; identical answers tie. Undecided: None when a `judge` will decide, else a
    tie that says no judge was asked."""

    def verdict(outcome: str, agree: bool | None, reasons: Sequence[str]) -> Verdict:
        return Verdict(
            run,
            item.id,
            base.model,
            cand.model,
            item.model,
            item.task,
            outcome,
            "checks",
            agree,
            tuple(reasons),
        )

    if base.body is None or cand.body is None:
        if base.body is None and cand.body is None:
            return verdict("tie", None, ["both failed"])
        failed = cand if cand.body is None else base
        side = "candidate" if cand.body is None else "baseline"
        outcome = "loss" if cand.body is None else "win"
        return verdict(outcome, None, [f"{side} failed: HTTP {failed.status}"])
    b = read_reply(item.endpoint, base.body)
    c = read_reply(item.endpoint, cand.body)
    checked = check(b, c, requested_schema(item.endpoint, item.request))
    if checked.outcome is not None:
        return verdict(checked.outcome, checked.tool_agree, checked.reasons)
    if checked.identical or not judge:
        why = "identical" if checked.identical else "no judge: undecided is a tie"
        return verdict("tie", checked.tool_agree, [*checked.reasons, why])
    return None


@dataclass
class Replay:
    """One replay run: `items` sent to `baseline` and each of `candidates` through the gateway
    at `url` with `key`; with `judge` (a served name), undecided pairs go to that model."""

    store: QualityStore
    url: str
    key: str | None
    run: str
    baseline: str
    candidates: Sequence[str]
    judge: str | None = None
    concurrency: int = 4
    timeout: float = 300.0
    progress: Callable[[int], None] = lambda done: None

    async def run_all(self, items: Sequence[Captured]) -> dict[str, int]:
        """Replays and judges every item; returns counts: items, sent, judged, failed, and
        refused (pairs whose model the key's policy refused). Raises EvalNotPermitted, once
        the items in flight are cancelled, when the gateway refuses the key eval traffic."""
        counts = {"items": len(items), "sent": 0, "judged": 0, "failed": 0, "refused": 0}
        gate = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency * 2)
        async with httpx.AsyncClient(timeout=self.timeout, limits=limits) as http:

            async def one(item: Captured) -> None:
                async with gate:
                    await self._item(http, item, counts)
                self.progress(1)

            tasks = [asyncio.ensure_future(one(item)) for item in items]
            try:
                await asyncio.gather(*tasks)
            except EvalNotPermitted:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
        return counts

    async def _item(self, http: httpx.AsyncClient, item: Captured, counts: dict[str, int]) -> None:
        if item.endpoint == "responses" and item.request.get("previous_response_id"):
            counts["failed"] += 1  # continues a stored response this replay cannot rebuild
            return
        answers: dict[str, Answer] = {}
        for model in [self.baseline, *self.candidates]:
            answer = self.store.answer(self.run, item.id, model)
            if answer is None:
                answer = await self._send(http, item, model, item.endpoint, item.request)
                counts["sent"] += 1
                if answer.status in _RETRYABLE:
                    counts["failed"] += 1
                    return  # not stored: a rerun of this run tries again
                self.store.save_answer(self.run, item.id, answer)
            answers[model] = answer
        for candidate in self.candidates:
            if self.store.has_verdict(self.run, item.id, self.baseline, candidate):
                continue
            if {answers[self.baseline].status, answers[candidate].status} & REFUSED:
                counts["refused"] += 1
                continue
            verdict = await self._verdict(http, item, answers[self.baseline], answers[candidate])
            if verdict is None:
                counts["failed"] += 1
                continue
            self.store.save_verdict(verdict)
            counts["judged"] += 1

    async def _send(
        self,
        http: httpx.AsyncClient,
        item: Captured,
        model: str,
        endpoint: str,
        request: dict[str, Any],
    ) -> Answer:
        body = {**request, "model": model, "stream": False}
        if endpoint == "responses":
            body["store"] = False
        headers = {"x-crossroads-eval": self.run}
        if self.key:
            headers["authorization"] = f"Bearer {self.key}"
        if item.task:
            headers["x-crossroads-task"] = item.task
        if item.team_id is not None:  # the gateway refuses a key of another team (403)
            headers["x-crossroads-eval-team"] = item.team_id
        started = time.perf_counter()
        try:
            reply = await http.post(
                f"{self.url.rstrip('/')}{PATHS[endpoint]}", json=body, headers=headers
            )
        except httpx.HTTPError as exc:
            return Answer(model, 0, None, error=f"{type(exc).__name__}: {exc}"[:300])
        latency = (time.perf_counter() - started) * 1000.0
        if reply.status_code == 403 and EvalNotPermittedError.LEAD in reply.text:
            raise EvalNotPermitted(_refusal(reply))
        try:
            data = reply.json()
        except ValueError:
            data = None
        ok = reply.status_code == 200 and isinstance(data, dict)
        error = None if ok else reply.text[:300]
        return Answer(
            model,
            reply.status_code,
            data if ok else None,
            latency,
            reply.headers.get("x-request-id"),
            error,
        )

    async def _verdict(
        self, http: httpx.AsyncClient, item: Captured, base: Answer, cand: Answer
    ) -> Verdict | None:
        decided = checks_verdict(self.run, item, base, cand, judge=self.judge is not None)
        if decided is not None or base.body is None or cand.body is None:
            return decided

        async def ask(judged: Captured, request: dict[str, Any]) -> Answer:
            assert self.judge is not None
            answer = await self._send(http, judged, self.judge, "chat.completions", request)
            self.store.save_answer(self.run, judged.id, answer)  # the report sums its cost
            return answer

        return await judge_pair(self.run, item, base, cand, ask)


def _refusal(reply: httpx.Response) -> str:
    """The gateway's message in either error shape (OpenAI's or Anthropic's)."""
    try:
        message = reply.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return reply.text[:500]
    return str(message)[:500]


JudgeCall = Callable[[Captured, dict[str, Any]], Awaitable[Answer]]
"""Sends one judge request (a chat completion) and returns, and keeps, its answer."""


async def judge_pair(
    run: str, item: Captured, base: Answer, cand: Answer, ask: JudgeCall
) -> Verdict | None:
    """The LLM judge's verdict on a pair the checks left undecided: the judge is asked with
    the answers in both orders (`ask`), and `combine` rules. None when the judge could not be
    reached (a rerun judges again)."""
    assert base.body is not None and cand.body is not None
    b = read_reply(item.endpoint, base.body)
    c = read_reply(item.endpoint, cand.body)
    checked = check(b, c, requested_schema(item.endpoint, item.request))
    asked = question(item.endpoint, item.request)
    verdicts = []
    for order, text in (("ab", prompt(asked, b, c)), ("ba", prompt(asked, c, b))):
        request = {"messages": [{"role": "user", "content": text}], "temperature": 0}
        request["max_tokens"] = 200
        judged = Captured(f"{item.id}#judge-{order}", "chat.completions", item.model, request)
        answer = await ask(judged, request)
        if answer.status in _RETRYABLE or answer.body is None:
            return None
        verdicts.append(parse_verdict(read_reply("chat.completions", answer.body).text))
    (first, first_why), (second, second_why) = verdicts
    judged_pair = combine(first, second, (first_why, second_why))
    return Verdict(
        run,
        item.id,
        base.model,
        cand.model,
        item.model,
        item.task,
        judged_pair.outcome,
        "judge" if judged_pair.readable else "none",
        checked.tool_agree,
        (*checked.reasons, *judged_pair.reasons),
    )
