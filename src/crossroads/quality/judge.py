"""The pairwise LLM judge: any served model, asked through the gateway (so the team's policy
and budget apply and its cost is in the eval ledger) to compare two answers with the rubric in
`rubric.md`, once in each order so position bias cancels; ties allowed. Its output is parsed
leniently (a small model rarely writes clean JSON); what cannot be read is a tie, said so."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import orjson

from crossroads.quality.answers import Reply

__all__ = ["Judged", "combine", "parse_verdict", "prompt"]

_VERDICT = re.compile(r'"?verdict"?\s*[:=]\s*"?\s*(A|B|tie)\b', re.IGNORECASE)
_LEADING = re.compile(r"^\W*(A|B|tie)\b", re.IGNORECASE)
_JUDGE_TEXT_CHARS = 6000  # of each answer and of the request shown to the judge


@dataclass(frozen=True, slots=True)
class Judged:
    outcome: str  # the candidate's 'win', 'tie' or 'loss'
    reasons: tuple[str, ...]
    readable: bool  # False when neither order's output could be read


def rubric() -> str:
    return resources.files("crossroads.quality").joinpath("rubric.md").read_text()


def prompt(question: str, first: Reply, second: Reply) -> str:
    """The rubric with the request and the two answers (A shown first) filled in."""
    return (
        rubric()
        .replace("{question}", question[:_JUDGE_TEXT_CHARS])
        .replace("{first}", first.render()[:_JUDGE_TEXT_CHARS])
        .replace("{second}", second.render()[:_JUDGE_TEXT_CHARS])
    )


def parse_verdict(text: str) -> tuple[str | None, str]:
    """('A' | 'B' | 'tie' | None, reason) from a judge's output: a JSON object if there is
    one, else a `verdict: X` phrase, else a leading A, B or tie. None when none is found."""
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        try:
            data = orjson.loads(text[start : end + 1])
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            verdict = str(data.get("verdict", "")).strip()
            reason = str(data.get("reason", ""))[:500]
            if verdict.lower() == "tie":
                return "tie", reason
            if verdict.upper() in ("A", "B"):
                return verdict.upper(), reason
    found = _VERDICT.search(text) or _LEADING.search(text)
    if found:
        word = found.group(1)
        return ("tie" if word.lower() == "tie" else word.upper()), text.strip()[:200]
    return None, text.strip()[:200]


def combine(first: str | None, second: str | None, reasons: tuple[str, str]) -> Judged:
    """The candidate's outcome from the two orders: `first` judged (A=baseline, B=candidate),
    `second` (A=candidate, B=baseline). A win or loss needs both orders to agree; a
    disagreement (position bias) or a tie in either is a tie; an unreadable order counts as
    a tie, and both unreadable is a tie that says so."""
    as_candidate = [
        {"B": "win", "A": "loss", "tie": "tie"}.get(first or ""),
        {"A": "win", "B": "loss", "tie": "tie"}.get(second or ""),
    ]
    notes = (
        f"judge, baseline shown first: {first or 'unreadable'} ({reasons[0]})",
        f"judge, candidate shown first: {second or 'unreadable'} ({reasons[1]})",
    )
    readable = [o for o in as_candidate if o is not None]
    if not readable:
        return Judged("tie", notes, readable=False)
    if len(readable) == 2 and readable[0] == readable[1]:
        return Judged(readable[0], notes, readable=True)
    return Judged("tie", notes, readable=True)
