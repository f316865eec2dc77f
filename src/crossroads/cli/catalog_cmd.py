"""`crossroads catalog sync` and `crossroads catalog check`: keep the catalog's prices current.

`sync` reads public price lists (OpenRouter's models API, the LiteLLM JSON price map), from the
network only when asked (`--source`, with a timeout and a size cap) or from files (`--from`),
shows the diff and writes an override file the config applies with `catalog: {files: [...]}`.
Nothing is fetched at request time and nothing changes until the config names the file."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from crossroads import __version__
from crossroads.catalog.check import DEFAULT_MAX_AGE_DAYS, Finding, check_catalog
from crossroads.catalog.sync import Quote, SyncError, next_page, parse_document, plan
from crossroads.cli.tables import render
from crossroads.config import load_settings
from crossroads.config.loader import admin_key_from_env
from crossroads.errors import ConfigError
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.ledger.store import LedgerStoreError
from crossroads.server.runtime import LEDGER_FILE

__all__ = ["add_parsers"]

SOURCES = {
    "openrouter": "https://openrouter.ai/api/v1/models",
    "litellm": (
        "https://raw.githubusercontent.com/BerriAI/litellm/main/"
        "model_prices_and_context_window.json"
    ),
}
MAX_PAGES = 20  # OpenRouter's models list pages; a loop past this is the server's fault


def _fetch(url: str, timeout: float, max_bytes: int, token: str | None = None) -> bytes:
    """GET `url` within `timeout` seconds in all; raises ConfigError on any failure, a non-200
    answer, or more than `max_bytes` of body (read no further than that). `token` is sent only
    to openrouter.ai, and never along a redirect."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{url}: only http and https URLs are fetched")
    headers = {"User-Agent": f"crossroads/{__version__} catalog-sync", "Accept": "application/json"}
    request = urllib.request.Request(url, headers=headers)
    if token and parts.scheme == "https" and parts.hostname == "openrouter.ai":
        request.add_unredirected_header("Authorization", f"Bearer {token}")
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            while size <= max_bytes:
                if time.monotonic() > deadline:
                    raise ConfigError(f"{url}: not read within --timeout {timeout:g} s")
                chunk: bytes = response.read(min(65536, max_bytes + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
    except urllib.error.HTTPError as exc:
        raise ConfigError(f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConfigError(f"{url}: cannot fetch ({reason})") from None
    if size > max_bytes:
        raise ConfigError(f"{url}: answer larger than --max-bytes {max_bytes}; not read")
    return b"".join(chunks)


def _read_online(args: argparse.Namespace, catalog_ids: list[str]) -> list[tuple[str, bytes]]:
    """Documents fetched for `--source`: every page of the models list, and with
    `--endpoints` each catalog model's OpenRouter endpoints (for quantisation per host)."""
    url = args.url or SOURCES[args.source]
    docs: list[tuple[str, bytes]] = []
    token = admin_key_from_env("OPENROUTER_API_KEY") if args.source == "openrouter" else None
    for _ in range(MAX_PAGES):
        body = _fetch(url, args.timeout, args.max_bytes, token)
        docs.append((url, body))
        following = next_page(body) if args.source == "openrouter" else None
        if following is None:
            break
        url = urllib.parse.urljoin(url, following)
    if args.source == "openrouter" and args.endpoints:
        base = (args.url or SOURCES["openrouter"]).rstrip("/")
        for model_id in catalog_ids:
            endpoint_url = f"{base}/{urllib.parse.quote(model_id)}/endpoints"
            try:
                docs.append(
                    (endpoint_url, _fetch(endpoint_url, args.timeout, args.max_bytes, token))
                )
            except ConfigError as exc:
                print(f"crossroads: skipped: {exc.message}", file=sys.stderr)
    return docs


def sync(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    catalog = settings.catalog
    if bool(args.source) == bool(args.from_files):
        raise ConfigError("give either --source openrouter|litellm or --from FILE (one or more)")
    if args.timeout <= 0 or args.max_bytes <= 0:
        raise ConfigError("--timeout and --max-bytes must be positive")
    today = dt.date.fromisoformat(args.date) if args.date else dt.datetime.now(dt.UTC).date()
    if args.source:
        ids = [o.upstream_model for o in catalog.offerings_for_host("openrouter")]
        docs = _read_online(args, ids)
    else:
        docs = []
        for name in args.from_files:
            try:
                docs.append((name, Path(name).read_bytes()))
            except OSError as exc:
                raise ConfigError(f"--from {name}: {exc.strerror or exc}") from None
    quotes: list[Quote] = []
    for name, body in docs:
        try:
            quotes += parse_document(body, _label(name, today))
        except SyncError as exc:
            raise ConfigError(str(exc)) from None
    result = plan(catalog, quotes, today)
    print(result.diff())
    if args.dry_run or not result.changes:
        print("Nothing written." if not result.changes else "Dry run: nothing written.")
        return 0
    out = Path(args.out)
    document = result.override_document([name for name, _ in docs], today)
    text = (
        "# Written by `crossroads catalog sync`: proposed catalog updates, to review.\n"
        "# Apply with `catalog: {files: [" + out.name + "]}` in the config; delete to undo.\n"
    ) + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    out.write_text(text, encoding="utf-8")
    print(
        f"Wrote {len(result.changes)} offerings to {out}. Review it, then add it to the config:\n"
        f"  catalog:\n    files: [{out}]"
    )
    return 0


def _label(name: str, today: dt.date) -> str:
    """How a price read from `name` names its source in the catalog."""
    if name.startswith(("http://", "https://")):
        return f"{name} (synced {today})"
    return f"{Path(name).name} (file, synced {today})"


async def _unpriced_spend(data_dir: Path) -> list[Finding]:
    """Ledger groups (served model, provider) with tokens but not one priced request."""
    path = data_dir / LEDGER_FILE
    if not path.exists():
        return []
    store = SQLiteLedgerStore(path, create=False)
    await store.open()
    try:
        rows = await store.rollup(None, None, None, ("served_model", "provider"))
    finally:
        await store.close()
    findings = []
    for row in rows:
        tokens = row["prompt_tokens"] + row["completion_tokens"]
        if tokens and not row["priced_requests"] and row["served_model"] is not None:
            findings.append(
                Finding(
                    "unpriced",
                    f"{row['served_model']} via {row['provider']}",
                    f"{row['requests']} requests, {tokens} tokens in the ledger with no price: "
                    "add one (catalog override) so spend and savings count them",
                )
            )
    return findings


def check(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, data_dir=args.data_dir)
    today = dt.datetime.now(dt.UTC).date()
    if args.max_age < 0:
        raise ConfigError("--max-age must not be negative")
    findings = check_catalog(settings.catalog, today, args.max_age)
    try:
        findings += asyncio.run(_unpriced_spend(settings.data_dir))
    except LedgerStoreError as exc:
        print(f"crossroads: ledger not checked: {exc.message}", file=sys.stderr)
    rows: list[list[Any]] = [[f.kind, f.subject, f.detail] for f in findings]
    print(render(args.format, ["warning", "subject", "detail"], rows))
    if args.format == "table":
        counts = {kind: sum(1 for f in findings if f.kind == kind) for kind in _KINDS}
        print(
            f"\n{len(findings)} warnings: "
            + ", ".join(f"{n} {kind}" for kind, n in counts.items())
            + f" (prices older than {args.max_age} days are stale)."
        )
    return 1 if findings and args.strict else 0


_KINDS = ("stale", "undated", "unverified", "unpriced")


def add_parsers(sub: Any) -> None:
    catalog = sub.add_parser("catalog", help="keep the catalog's prices current")
    csub = catalog.add_subparsers(dest="catalog_command", required=True)

    s = csub.add_parser(
        "sync", help="propose price updates from OpenRouter or a LiteLLM price map, as a diff"
    )
    s.add_argument("--config", help="YAML config file whose catalog overrides apply")
    s.add_argument("--source", choices=sorted(SOURCES), help="fetch this public price list")
    s.add_argument(
        "--from",
        dest="from_files",
        action="append",
        default=[],
        metavar="FILE",
        help="read a saved OpenRouter models/endpoints answer or LiteLLM price map instead",
    )
    s.add_argument("--url", help="fetch from this URL instead of the source's public one")
    s.add_argument(
        "--endpoints",
        action="store_true",
        help="also fetch OpenRouter's endpoints of each catalog model (quantisation per host)",
    )
    s.add_argument("--timeout", type=float, default=30.0, help="seconds per fetch (default 30)")
    s.add_argument(
        "--max-bytes", type=int, default=32 * 1024 * 1024, help="largest answer read (32 MiB)"
    )
    s.add_argument("--out", default="catalog-sync.yaml", help="override file to write")
    s.add_argument("--date", help="date the new prices take effect (default: today, UTC)")
    s.add_argument("--dry-run", action="store_true", help="show the diff, write nothing")
    s.set_defaults(func=sync)

    c = csub.add_parser(
        "check", help="warn about stale or unconfirmed prices and spend with no price"
    )
    c.add_argument("--config", help="YAML config file (catalog overrides, data_dir)")
    c.add_argument("--data-dir", help="where the ledger lives")
    c.add_argument(
        "--max-age",
        type=int,
        default=DEFAULT_MAX_AGE_DAYS,
        help=f"days after which a price is stale (default {DEFAULT_MAX_AGE_DAYS})",
    )
    c.add_argument("--strict", action="store_true", help="exit 1 when there is any warning")
    c.add_argument("--format", choices=["table", "json", "csv"], default="table")
    c.set_defaults(func=check)
