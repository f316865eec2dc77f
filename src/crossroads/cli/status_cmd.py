"""`crossroads status`: asks a running gateway for its deployments' health and prints it."""

from __future__ import annotations

import argparse
from typing import Any

from crossroads.cli.admin_client import call
from crossroads.cli.tables import render, to_json

HEADERS = [
    "deployment",
    "provider",
    "circuit",
    "failures",
    "successes",
    "fail_rate",
    "retry_in_s",
    "ttft_ms",
    "latency_ms",
    "tok/s",
    "last_error",
]


def fetch(url: str) -> dict[str, Any]:
    """GET {url}/admin/health. Raises ConfigError saying why the gateway could not be asked."""
    data: dict[str, Any] = call(url, "GET", "/admin/health")
    return data


def run(args: argparse.Namespace) -> int:
    data = fetch(args.url)
    rows = [
        [
            d["deployment"],
            d["provider"],
            d["circuit"],
            d["failures"],
            d["successes"],
            d["recent_failure_rate"],
            d["retry_in_s"],
            d["ttft_ms_ewma"],
            d["latency_ms_ewma"],
            d["tokens_per_s_ewma"],
            (d["last_error"] or "")[:60] or None,
        ]
        for d in data["deployments"]
    ]
    if args.format == "json":
        print(to_json(data))
        return 0
    print(render(args.format, HEADERS, rows))
    if args.format == "table":
        print(
            f"\nstrategy: {data['strategy']}, retries: {data['retries']}, circuit opens after "
            f"{data['circuit']['failures']} consecutive failures or a "
            f"{data['circuit']['failure_rate']:.0%} failure rate, cool-down "
            f"{data['circuit']['cooldown_s']}s"
        )
    return 0
