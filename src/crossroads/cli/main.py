"""`crossroads` command: serve, models, usage, report, whatif, catalog, config check,
mock-upstream.

Each command is a small function taking parsed arguments and returning an exit code; errors the
user can fix (bad config, bad flag value) print one line on stderr and exit 2."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from crossroads import __version__
from crossroads.analytics import REPORT_KINDS
from crossroads.cli import (
    catalog_cmd,
    eval_cmd,
    governance_cmd,
    models_cmd,
    report_cmd,
    status_cmd,
    usage_cmd,
    whatif_cmd,
)
from crossroads.cli.terminal import printable_output
from crossroads.config import load_settings
from crossroads.errors import ConfigError


def _serve(args: argparse.Namespace) -> int:
    from crossroads.server.serve import serve

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = load_settings(args.config, host=args.host, port=args.port, data_dir=args.data_dir)
    serve(settings, log_level=args.log_level, workers=args.workers)
    return 0


def _config_check(args: argparse.Namespace) -> int:
    settings = load_settings(args.file)
    names = sorted({d.name for d in settings.deployments} | set(settings.aliases))
    print(f"{args.file}: OK")
    print(f"  providers:   {', '.join(p.id for p in settings.providers) or 'none'}")
    print(f"  deployments: {len(settings.deployments)}")
    print(f"  served:      {', '.join(names) or 'none'}")
    return 0


def _mock_upstream(args: argparse.Namespace) -> int:
    from crossroads.mockupstream import main as mock_main

    return mock_main(args.rest)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="crossroads",
        description="A gateway for open-weight language models: one OpenAI-compatible API, "
        "routing, and a usage ledger.",
    )
    p.add_argument("--version", action="version", version=f"crossroads {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="YAML config file (default: embedded model only)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8080; 0 picks a free one)")
    serve.add_argument(
        "--data-dir", help="where the ledger lives (default $CROSSROADS_DATA_DIR or ./data)"
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing the port (default 1; use the Redis limits backend for "
        "exact limits across workers)",
    )
    serve.set_defaults(func=_serve)

    models = sub.add_parser("models", help="list every model the catalog knows")
    models.add_argument("--config", help="YAML config file whose catalog overrides apply")
    models.add_argument("--format", choices=["table", "json", "csv"], default="table")
    models.set_defaults(func=models_cmd.run)

    usage = sub.add_parser("usage", help="recent requests and spend from the ledger")
    usage.add_argument("--config", help="YAML config file (for its data_dir)")
    usage.add_argument("--data-dir", help="where the ledger lives")
    usage.add_argument("--since", help="e.g. 24h, 7d, 30m, or an ISO date (default: all)")
    usage.add_argument("--limit", type=int, default=20, help="recent requests to show")
    usage.add_argument(
        "--by",
        metavar="COL[,COL]",
        help="group the totals by ledger columns (default served_model,provider), e.g. "
        "usage_source: how much rests on estimated usage",
    )
    usage.add_argument("--format", choices=["table", "json", "csv"], default="table")
    usage.set_defaults(func=usage_cmd.run)

    status = sub.add_parser("status", help="deployment health of a running gateway")
    status.add_argument(
        "--url", default="http://127.0.0.1:8080", help="the gateway (default %(default)s)"
    )
    status.add_argument("--format", choices=["table", "json", "csv"], default="table")
    status.set_defaults(func=status_cmd.run)

    report = sub.add_parser(
        "report", help="spend, savings, adoption, latency and error reports from the ledger"
    )
    report.add_argument("kind", nargs="?", choices=[*REPORT_KINDS, "switch"], help="the report")
    report.add_argument("--from", dest="source", metavar="MODEL", help="switch: served name now")
    report.add_argument("--to", dest="target", metavar="MODEL", help="switch: the candidate")
    report.add_argument("--run", help="switch: only this replay or shadow run")
    report.add_argument(
        "--eval", action="store_true", help="read the eval ledger (replay, shadow, judge traffic)"
    )
    report.add_argument("--config", help="YAML config file (for its data_dir)")
    report.add_argument("--data-dir", help="where the ledger lives")
    report.add_argument("--since", help="e.g. 24h, 7d, 30m, or an ISO date (default: all)")
    report.add_argument("--until", help="same forms as --since (default: all)")
    report.add_argument(
        "--by",
        metavar="DIM[,DIM]",
        help="group by: key, team, model, deployment, maker, origin, open_weights, provider "
        "(host), jurisdiction, status",
    )
    report.add_argument("--interval", choices=["hour", "day", "week"], help="one row per period")
    report.add_argument("--format", choices=["table", "json", "csv"], default="table")
    report.add_argument(
        "--baseline",
        action="append",
        metavar="MODEL",
        help="savings: also compare against this priced catalog model (maker/model[@host]); "
        "repeat for several",
    )
    report.add_argument(
        "--rebuild-rollups", action="store_true", help="recompute the rollups from the ledger"
    )
    report.set_defaults(func=report_cmd.run)

    whatif = sub.add_parser("whatif", help="price a usage export at other models")
    whatif.add_argument("--usage", required=True, metavar="FILE", help="the usage export")
    whatif.add_argument(
        "--to", action="append", required=True, metavar="MODEL", help="maker/model[@host]"
    )
    whatif.add_argument(
        "--input-format",
        choices=["auto", "openrouter", "litellm", "generic", "crossroads"],
        default="auto",
    )
    whatif.add_argument(
        "--column", action="append", default=[], metavar="FIELD=HEADER", help="map a column"
    )
    whatif.add_argument(
        "--model-map", action="append", default=[], metavar="NAME=MODEL", help="map a model name"
    )
    whatif.add_argument("--config", help="YAML config file whose catalog overrides apply")
    whatif.add_argument(
        "--prices-at",
        metavar="DATE",
        help="price at the list prices in force on this date (default: today's, the latest)",
    )
    whatif.add_argument("--format", choices=["table", "json", "csv"], default="table")
    whatif.set_defaults(func=whatif_cmd.run)

    governance_cmd.add_parsers(sub)
    catalog_cmd.add_parsers(sub)
    eval_cmd.add_parsers(sub)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a config file and summarise it")
    check.add_argument("file")
    check.set_defaults(func=_config_check)

    mock = sub.add_parser(
        "mock-upstream", help="run the fault-injection mock upstream (for tests and demos)"
    )
    mock.add_argument("rest", nargs=argparse.REMAINDER)
    mock.set_defaults(func=_mock_upstream)
    return p


# Long-running servers log rather than print values; their output streams stay as they are.
_SERVERS = frozenset({"serve", "mock-upstream"})


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["mock-upstream"]:
        # Its options are the mock's own: argparse's REMAINDER would refuse a leading `--port`.
        from crossroads.mockupstream import main as mock_main

        return mock_main(given[1:])
    args = parser().parse_args(given)
    if args.command in _SERVERS:
        return _run(args)
    with printable_output():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"crossroads: configuration error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


__all__ = ["main", "parser"]
