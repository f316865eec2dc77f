"""`crossroads models`: every model the catalog knows, one row per host offering."""

from __future__ import annotations

import argparse
from typing import Any

from crossroads.cli.tables import render
from crossroads.config import load_settings

HEADERS = [
    "model",
    "maker",
    "origin",
    "weights",
    "licence",
    "context",
    "host",
    "jurisdiction",
    "input",
    "cached",
    "output",
    "served",
]


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
        ]
        offerings = catalog.offerings_for_model(model.id)
        if not offerings:
            out.append([*common, None, None, None, None, None, False])
        for offering in offerings:
            host = catalog.host(offering.host)
            prices = offering.prices
            out.append(
                [
                    *common,
                    offering.host,
                    host.jurisdiction if host else None,
                    prices.input if prices else None,
                    prices.cached_input if prices else None,
                    prices.output if prices else None,
                    (model.id, offering.host) in served,
                ]
            )
    return out


def run(args: argparse.Namespace) -> int:
    print(render(args.format, HEADERS, rows(args)))
    if args.format == "table":
        print(
            "\nPrices are USD per million tokens (list prices; `crossroads models "
            "--format json` has dates and sources). `served` = usable now through this gateway."
        )
    return 0
