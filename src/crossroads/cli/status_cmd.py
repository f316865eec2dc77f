"""`crossroads status`: asks a running gateway for its deployments' health and prints it."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from typing import Any

from crossroads.cli.tables import render, to_json
from crossroads.errors import ConfigError

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


def fetch(url: str, timeout: float = 10.0) -> dict[str, Any]:
    """GET {url}/admin/health. Raises ConfigError saying why the gateway could not be asked."""
    target = f"{url.rstrip('/')}/admin/health"
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data
    except urllib.error.HTTPError as exc:
        raise ConfigError(f"{target} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ConfigError(f"cannot reach the gateway at {url}: {exc}") from None


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
