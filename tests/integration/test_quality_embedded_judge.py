"""The judge pipeline with a real model as judge: the embedded llama.cpp SmolLM2-135M, through
the real gateway. Its verdicts are poor; what is tested is that the pipeline runs end to end,
reads or refuses whatever the model writes, stores every verdict with its reasons, and ledgers
the judge's calls as eval traffic."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from crossroads.cli.main import main
from crossroads.ledger.record import LedgerRecord
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.mockupstream import MockUpstreamThread, run_in_thread
from crossroads.quality.replay import Replay, items_from_jsonl
from crossroads.quality.store import EVAL_LEDGER_FILE, QUALITY_FILE, Answer, QualityStore
from support.gateway import GatewayThread, gateway_for

pytestmark = pytest.mark.model
MODEL = "local/smollm2-135m"
CANDIDATE = "candidate"  # a served name whose answers the test stores itself
QUESTIONS = ["What is the capital of France?", "Name a colour.", "What is 2 + 2?"]


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockUpstreamThread]:
    with run_in_thread() as mock:
        yield mock


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, upstream: MockUpstreamThread
) -> Iterator[GatewayThread]:
    tmp: Path = tmp_path_factory.mktemp("judge")
    config = {
        "embedded": {"enabled": True, "parallel": 2},
        "providers": {"up": {"type": "openai", "base_url": upstream.url}},
        "models": [{"name": "scripted", "provider": "up", "upstream_model": "mock"}],
    }
    with gateway_for(tmp, config) as gateway:
        yield gateway


def eval_records(data_dir: Path) -> list[LedgerRecord]:
    async def read() -> list[LedgerRecord]:
        store = SQLiteLedgerStore(data_dir / EVAL_LEDGER_FILE)
        await store.open()
        try:
            return await store.recent(10_000)
        finally:
            await store.close()

    return asyncio.run(read())


def test_the_embedded_model_judges_through_the_gateway(gw: GatewayThread) -> None:
    items = items_from_jsonl(
        f'{{"id": "q{i}", "request": {{"messages": [{{"role": "user", "content": "{q}"}}]}}}}'
        for i, q in enumerate(QUESTIONS)
    )
    store = QualityStore(gw.settings.data_dir / QUALITY_FILE)
    try:
        # The candidate's answers are already stored (as a resumed run finds them): the checks
        # cannot tell them from the mock's (text, no tools, both finished), so the judge must.
        for item in items:
            body = {
                "choices": [
                    {
                        "message": {"role": "assistant", "content": "I think it is Lyon."},
                        "finish_reason": "stop",
                    }
                ]
            }
            store.save_answer("judged", item.id, Answer(CANDIDATE, 200, body))
        replay = Replay(
            store=store,
            url=gw.url,
            key=None,
            run="judged",
            baseline="scripted",
            candidates=[CANDIDATE],
            judge=MODEL,
            concurrency=2,
        )
        counts = asyncio.run(replay.run_all(items))
        assert counts == {"items": 3, "sent": 3, "judged": 3, "failed": 0, "refused": 0}
        verdicts = store.verdicts("scripted", CANDIDATE)
        judge_answers = [(item, a) for _, item, a in store.answers("judged") if "#judge" in item]
    finally:
        store.close()
    assert len(verdicts) == 3
    for verdict in verdicts:
        assert verdict.outcome in ("win", "tie", "loss")
        # Whatever the small model wrote, both orders are on record: read, or said unreadable.
        assert verdict.decided_by in ("judge", "none")
        judged = [r for r in verdict.reasons if r.startswith("judge, ")]
        assert len(judged) == 2
    assert len(judge_answers) == 6 and all(a.status == 200 for _, a in judge_answers)
    gw.stop()
    records = eval_records(gw.settings.data_dir)
    judge_ids = {a.request_id for _, a in judge_answers}
    assert judge_ids <= {r.request_id for r in records}
    assert {r.requested_model for r in records if r.request_id in judge_ids} == {MODEL}
    assert not judge_ids & {r.request_id for r in gw.ledger()}  # never in production

    code = main(
        [
            "report",
            "switch",
            "--from",
            "scripted",
            "--to",
            MODEL,
            "--format",
            "json",
            "--data-dir",
            str(gw.settings.data_dir),
        ]
    )
    assert code == 0
