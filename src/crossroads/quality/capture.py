"""Capture: a sampled share of request and answer bodies kept in the quality store, scrubbed of
secrets, under a retention period and a size cap; opt-in (`quality.capture` in the config).

The ingress hands over the decoded request body and, for whole answers, the answer's bytes;
`CaptureWriter.offer` never blocks and never raises: the capture is scrubbed and queued, and a
full queue drops it (counted in `dropped`), so capture cannot slow or fail a request. One task
writes the queue in batches on a worker thread."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from crossroads.quality.settings import CaptureRules
from crossroads.quality.store import QualityStore
from crossroads.scrub import REDACTED, Scrubber

__all__ = ["TASK_HEADER", "CaptureWriter", "scrub_body"]

log = logging.getLogger(__name__)

TASK_HEADER = "x-crossroads-task"
"""A client-supplied task tag (at most 64 characters kept), by which the switch report breaks
its results down."""

# Credentials people paste into prompts, beyond the gateway's own secrets (which the Scrubber
# knows): provider key shapes (OpenAI/Anthropic `sk-...`, AWS access key ids, GitHub tokens,
# Google API keys), and `Bearer` tokens (the Scrubber's own rule).
_KEY_SHAPES = re.compile(
    r"\bsk-[A-Za-z0-9_\-]{16,}|\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{20,}"
    r"|\bAIza[0-9A-Za-z_\-]{30,}"
)


def scrub_body(body: bytes, scrub: Scrubber) -> bytes | None:
    """`body` (JSON) with the gateway's secrets and common credential shapes replaced by
    `[redacted]`; None if the result is not JSON any more (then nothing is kept)."""
    text = _KEY_SHAPES.sub(REDACTED, scrub(body.decode("utf-8", "replace")))
    encoded = text.encode()
    try:
        orjson.loads(encoded)
    except orjson.JSONDecodeError:
        return None
    return encoded


class CaptureWriter:
    """Keeps captures in `path` (the quality store) under `rules`. Disabled rules: `wants`
    is always False and nothing is opened."""

    def __init__(
        self,
        path: Path | None,
        rules: CaptureRules,
        scrub: Scrubber,
        *,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.rules = rules
        self._path = path
        self._scrub = scrub
        self._draw = draw
        self._queue: asyncio.Queue[tuple[Any, ...]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._store: QualityStore | None = None
        self.dropped = 0
        self.written = 0

    @property
    def enabled(self) -> bool:
        return self.rules.enabled and self._path is not None

    async def start(self) -> None:
        if not self.enabled:
            return
        assert self._path is not None
        self._store = await asyncio.to_thread(QualityStore, self._path)
        self._queue = asyncio.Queue(self.rules.queue)
        self._task = asyncio.create_task(self._run(), name="capture-writer")

    async def aclose(self) -> None:
        """Writes what is queued (a batch at a time), then closes the store."""
        if self._task is None or self._queue is None:
            return
        await self._queue.join()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        if self._store is not None:
            await asyncio.to_thread(self._store.close)

    def wants(self, key_id: str | None, team_id: str | None, model: str) -> bool:
        """Whether to capture this request (one random draw). Cheap when disabled."""
        return self.enabled and self.rules.selects(key_id, team_id, model, self._draw())

    def offer(
        self,
        *,
        request_id: str,
        endpoint: str,
        key_id: str | None,
        team_id: str | None,
        model: str,
        task: str | None,
        request: bytes,
        response: bytes | None,
    ) -> None:
        """Queues one capture (`request` and `response` are JSON bytes as the client sent and
        got them), scrubbed; drops it when the queue is full or it is larger than
        `max_item_bytes`. Never raises."""
        queue = self._queue
        if queue is None:
            return
        body = scrub_body(request, self._scrub)
        answer = scrub_body(response, self._scrub) if response else None
        if body is None:
            self.dropped += 1
            return
        size = len(body) + len(answer or b"")
        if size > self.rules.max_item_bytes or queue.full():
            self.dropped += 1
            return
        row = (
            request_id,
            time.time(),
            endpoint,
            key_id,
            team_id,
            model,
            task[:64] if task else None,
            body,
            answer,
            size,
        )
        queue.put_nowait(row)

    async def _run(self) -> None:
        assert self._queue is not None and self._store is not None
        queue, store, rules = self._queue, self._store, self.rules
        while True:
            rows = [await queue.get()]
            while not queue.empty() and len(rows) < 256:
                rows.append(queue.get_nowait())
            try:
                await asyncio.to_thread(
                    store.add_captures,
                    rows,
                    retention_days=rules.retention_days,
                    max_bytes=rules.max_bytes,
                )
                self.written += len(rows)
            except Exception:  # a full disk or a broken file loses captures, never requests
                log.exception("%d captures not written", len(rows))
                self.dropped += len(rows)
            finally:
                for _ in rows:
                    queue.task_done()
