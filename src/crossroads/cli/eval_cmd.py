"""`crossroads eval replay` (captured or JSONL requests replayed through a running gateway to a
baseline and candidates, checked and judged) and `crossroads report switch` (what moving one
served name to another saves and loses)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from crossroads.cli.tables import table, to_json
from crossroads.config import admin_key_from_env, load_settings
from crossroads.errors import ConfigError
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.quality.replay import EvalNotPermitted, Replay, items_from_jsonl
from crossroads.quality.store import QUALITY_FILE, Captured, QualityStore
from crossroads.quality.switch import load_switch_report
from crossroads.server.runtime import LEDGER_FILE

__all__ = ["add_parsers", "report_switch"]


def add_parsers(sub: Any) -> None:
    ev = sub.add_parser("eval", help="replay captured traffic against candidate models")
    ev_sub = ev.add_subparsers(dest="eval_command", required=True)
    replay = ev_sub.add_parser(
        "replay", help="replay requests to a baseline and candidates through a running gateway"
    )
    replay.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="MODEL",
        help="the served name in use now (the baseline)",
    )
    replay.add_argument(
        "--to",
        dest="targets",
        action="append",
        required=True,
        metavar="MODEL",
        help="a candidate served name (repeatable)",
    )
    replay.add_argument("--file", help="a JSONL file of requests (default: the captures)")
    replay.add_argument("--model", help="only captures of this served name (default: --from)")
    replay.add_argument("--team", help="only captures of this team")
    replay.add_argument("--limit", type=int, help="at most this many items")
    replay.add_argument("--run", default="replay", help="the run's name; rerun it to resume")
    replay.add_argument("--judge", metavar="MODEL", help="a served model to judge undecided pairs")
    replay.add_argument("--concurrency", type=int, default=4)
    replay.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway")
    replay.add_argument(
        "--key-env",
        default="CROSSROADS_API_KEY",
        help="the variable holding the API key to replay with (its team's policy and budget "
        "apply); the key needs the eval permission (`crossroads keys create --can-eval`) or "
        "must be the admin key, since replay traffic is kept out of the production reports",
    )
    replay.add_argument("--config", help="YAML config file (for its data_dir)")
    replay.add_argument("--data-dir", help="where the quality store lives")
    replay.set_defaults(func=run_replay)


class _Progress:
    """A one-line progress bar on a terminal's stderr (redrawn with a carriage return, so it
    writes to the real stream: `printable_output` would escape that); elsewhere, one line at
    the end. It prints only counts, never a value a client or upstream chose."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0

    def __call__(self, step: int) -> None:
        self.done += step
        stream = sys.__stderr__
        finished = self.done >= self.total
        if stream is None or not (stream.isatty() or finished):
            return
        filled = 30 * self.done // max(self.total, 1)
        bar = "#" * filled + "." * (30 - filled)
        start = "\r" if stream.isatty() else ""
        stream.write(f"{start}[{bar}] {self.done}/{self.total}" + ("\n" if finished else ""))
        stream.flush()


def _items(args: argparse.Namespace, store: QualityStore) -> list[Captured]:
    if args.file:
        try:
            items = items_from_jsonl(Path(args.file).read_text().splitlines())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--file {args.file}: {exc}") from None
    else:
        items = store.captures(model=args.model or args.source, team=args.team)
    return items[: args.limit] if args.limit else items


def run_replay(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise ConfigError("--concurrency must be 1 or more")
    settings = load_settings(args.config, data_dir=args.data_dir)
    store = QualityStore(settings.data_dir / QUALITY_FILE)
    try:
        items = _items(args, store)
        if not items:
            print("Nothing to replay: no captures match (is quality.capture on?).", file=sys.stderr)
            return 1
        replay = Replay(
            store=store,
            url=args.url,
            key=admin_key_from_env(args.key_env),
            run=args.run,
            baseline=args.source,
            candidates=args.targets,
            judge=args.judge,
            concurrency=args.concurrency,
            progress=_Progress(len(items)),
        )
        try:
            counts = asyncio.run(replay.run_all(items))
        except EvalNotPermitted:
            raise ConfigError(
                "The gateway refused to take this replay as eval traffic (403): the key in "
                f"${args.key_env} lacks the eval permission, which eval traffic needs because "
                "it is kept out of the production reports. Replay with a key created with "
                "`crossroads keys create --can-eval`, or with the admin key; the same --run "
                "resumes."
            ) from None
    finally:
        store.close()
    print(
        f"Run {args.run!r}: {counts['items']} items, {counts['sent']} requests sent, "
        f"{counts['judged']} verdicts, {counts['refused']} refused by the key's policy, "
        f"{counts['failed']} not finished"
        + (" (run it again to retry them)." if counts["failed"] else ".")
    )
    return 0 if not counts["failed"] else 3


def report_switch(args: argparse.Namespace) -> int:
    if not args.source or not args.target:
        raise ConfigError("report switch needs --from MODEL and --to MODEL")
    settings = load_settings(args.config, data_dir=args.data_dir)
    report = asyncio.run(_switch(settings.data_dir, args.source, args.target, args.run))
    if args.format == "json":
        print(to_json(report))
    else:
        print(switch_table(report))
    return 0


async def _switch(data_dir: Path, source: str, target: str, run: str | None) -> dict[str, Any]:
    path = data_dir / LEDGER_FILE
    if not path.exists():  # no production traffic recorded yet: no volume to save on
        return await load_switch_report(data_dir, None, source, target, run)
    store = SQLiteLedgerStore(path, create=False)
    await store.open()
    try:
        return await load_switch_report(data_dir, store, source, target, run)
    finally:
        await store.close()


def _pct(share: dict[str, Any]) -> str:
    if share["share"] is None:
        return "-"
    return f"{share['count']} ({share['share']:.0%}, {share['low']:.0%}-{share['high']:.0%})"


def _money(value: Decimal | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def switch_table(report: dict[str, Any]) -> str:
    """The report as text: the call first, then outcomes, costs and the breakdowns."""
    lines = [
        f"Switch {report['from']} -> {report['to']}: {report['items']} items "
        f"(runs: {', '.join(report['runs']) or 'none'})",
        f"Verdict: {report['call']}",
        "",
        "Outcome for the candidate, count (share, 95% Wilson interval):",
        f"  win   {_pct(report['win'])}",
        f"  tie   {_pct(report['tie'])}",
        f"  loss  {_pct(report['loss'])}",
    ]
    tools = report["tool_agreement"]
    if tools:
        lines.append(f"  tool-call agreement  {_pct(tools)}")
    lat, cost = report["latency_ms"], report["cost_usd"]
    if lat["items"]:
        lines.append(
            f"Median latency: {lat['from_median']:.0f} ms -> {lat['to_median']:.0f} ms "
            f"({lat['difference']:+.0f} ms, over {lat['items']} items)"
        )
    ratio = cost["ratio"]
    lines.append(
        f"Cost of the replayed items: {_money(cost['from'])} -> {_money(cost['to'])}"
        + (f" (x{ratio:.3f}, over {cost['priced_items']} priced items)" if ratio else "")
        + f"; judge: {_money(report['judge_cost_usd'])}"
    )
    saving = report["saving_usd_per_30d"]
    lines.append(f"Saving at the last 30 days' production volume: {_money(saving)}")
    lines += ["", "By served name:"]
    served = [
        [
            r["served"],
            r["items"],
            r["win"],
            r["tie"],
            r["loss"],
            r["call"],
            _money(r["production_cost_30d"]),
            _money(r["saving"]),
        ]
        for r in report["by_served"]
    ]
    lines.append(
        table(["served", "items", "win", "tie", "loss", "call", "cost 30d", "saving"], served)
    )
    lines += ["", "By task (x-crossroads-task):"]
    tasks = [
        [r["task"], r["items"], r["win"], r["tie"], r["loss"], r["call"]] for r in report["by_task"]
    ]
    lines.append(table(["task", "items", "win", "tie", "loss", "call"], tasks))
    return "\n".join(lines)
