"""`crossroads models`: every model the catalog knows, one row per host offering, each price
with its date, source and whether it was verified."""

from __future__ import annotations

import argparse
from typing import Any

from crossroads.catalog.model import PricePoint
from crossroads.cli.tables import render
from crossroads.config import load_settings

HEADERS = [
    "model",
    "maker",
    "origin",
    "weights",
    "licence",
    "context",
    "released",
    "retired",
    "host",
    "jurisdiction",
    "quant",
    "input",
    "cached",
    "output",
    "pricing",
    "price_date",
    "verified",
    "source",
    "served",
]


def _date(prices: PricePoint | None) -> str | None:
    """The date a price was read, else when it came into force."""
    if prices is None:
        return None
    day = prices.as_of or prices.since
    return day.isoformat() if day else None


def _pricing(prices: PricePoint | None) -> str | None:
    """Time-of-day windows and prompt-length tiers, in a few words."""
    if prices is None:
        return None
    # Windows with the same name, days and rates (DeepSeek's two peak spans) read as one.
    spans: dict[tuple[object, ...], list[str]] = {}
    for w in prices.windows:
        key = (w.name, w.days, w.input, w.output)
        spans.setdefault(key, []).append(f"{w.start}-{w.end}")
    parts = [
        f"{name} {_days(days)}{','.join(times)} UTC: {i}/{o}"
        for (name, days, i, o), times in spans.items()
    ]
    parts += [f">{t.above_prompt_tokens} tok: {t.input}/{t.output}" for t in prices.tiers]
    if prices.reasoning is not None:
        parts.append(f"reasoning {prices.reasoning}")
    if prices.cache_write is not None:
        parts.append(f"cache write {prices.cache_write}")
    return "; ".join(parts) or None


def _days(days: object) -> str:
    if days == ("mon", "tue", "wed", "thu", "fri"):
        return "mon-fri "
    return f"{','.join(days)} " if isinstance(days, tuple) and days else ""


def rows(args: argparse.Namespace) -> list[list[Any]]:
    settings = load_settings(args.config)
    catalog = settings.catalog
    served = {(d.catalog_id, d.host.id if d.host else None) for d in settings.deployments}
    out: list[list[Any]] = []
    for model in sorted(catalog.models(), key=lambda m: m.id):
        maker = catalog.maker(model.maker)
        common = [
            model.id,
            maker.name if maker else model.maker,
            maker.country if maker else None,
            "open" if model.open_weights else "closed",
            model.license,
            model.context_length,
            model.released.isoformat() if model.released else None,
        ]
        offerings = catalog.offerings_for_model(model.id)
        if not offerings:
            gone = model.retired.isoformat() if model.retired else None
            out.append([*common, gone, *([None] * (len(HEADERS) - len(common) - 2)), False])
        for offering in offerings:
            host = catalog.host(offering.host)
            prices = offering.current
            retired = offering.retired or model.retired
            out.append(
                [
                    *common,
                    retired.isoformat() if retired else None,
                    offering.host,
                    host.jurisdiction if host else None,
                    offering.quantization,
                    prices.input if prices else None,
                    prices.cached_input if prices else None,
                    prices.output if prices else None,
                    _pricing(prices),
                    _date(prices),
                    None if prices is None else prices.verified,
                    None if prices is None else prices.source,
                    (model.id, offering.host) in served,
                ]
            )
    return out


def run(args: argparse.Namespace) -> int:
    table = rows(args)
    if args.format != "table":
        print(render(args.format, HEADERS, table))
        return 0
    # The sources are long: the table numbers them and lists them below.
    sources: dict[str, int] = {}
    source_at = HEADERS.index("source")
    for row in table:
        if row[source_at] is not None:
            row[source_at] = f"[{sources.setdefault(row[source_at], len(sources) + 1)}]"
    print(render(args.format, HEADERS, table))
    print(
        "\nPrices are USD per million tokens: the latest list price of each offering (its "
        "history, windows and tiers: `crossroads models --format json`, `crossroads catalog "
        "check`). verified = no: from a secondary source, to confirm. `served` = usable now "
        "through this gateway.\n\nSources:"
    )
    for text, number in sources.items():
        print(f"  [{number}] {text}")
    return 0
