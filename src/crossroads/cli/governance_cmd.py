"""`crossroads keys|teams|route explain`: governance through a running gateway's admin API, so
every replica's key ring sees the change (`--url`, admin key from $CROSSROADS_ADMIN_KEY)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from crossroads.cli.admin_client import call
from crossroads.cli.tables import render, to_json
from crossroads.errors import ConfigError

KEY_HEADERS = [
    "id",
    "name",
    "team",
    "created",
    "expires",
    "revoked",
    "budget",
    "rpm",
    "tpm",
    "eval",
]


def _limits(args: argparse.Namespace) -> dict[str, Any]:
    limits: dict[str, Any] = {}
    if args.budget is not None:
        limits["budget_usd"] = args.budget
        limits["budget_period"] = args.period
    if args.rpm is not None:
        limits["rpm"] = args.rpm
    if args.tpm is not None:
        limits["tpm"] = args.tpm
    return limits


def _policy(args: argparse.Namespace) -> dict[str, Any]:
    if not args.policy:
        return {}
    try:
        policy: dict[str, Any] = json.loads(args.policy)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--policy is not valid JSON: {exc}") from None
    return policy


def _key_row(k: dict[str, Any]) -> list[Any]:
    limits = k["limits"]
    budget = (
        f"${limits['budget_usd']}/{limits.get('budget_period', 'month')}"
        if limits.get("budget_usd")
        else None
    )
    return [
        k["id"],
        k["name"],
        k["team_id"],
        k["created_at"][:19],
        (k["expires_at"] or "")[:19] or None,
        (k["revoked_at"] or "")[:19] or None,
        budget,
        limits.get("rpm"),
        limits.get("tpm"),
        "yes" if k.get("can_eval") else None,
    ]


def keys_create(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.name, "limits": _limits(args), "policy": _policy(args)}
    if args.team:
        body["team_id"] = args.team
    if args.expires_in_days is not None:
        body["expires_in_days"] = args.expires_in_days
    if args.can_eval:
        body["can_eval"] = True
    created = call(args.url, "POST", "/admin/keys", body)
    print(f"Created key {created['id']} ({created['name']}). The key, shown only this once:")
    print(created["key"])
    return 0


def keys_list(args: argparse.Namespace) -> int:
    data = call(args.url, "GET", "/admin/keys")["data"]
    if args.format == "json":
        print(to_json(data))
    else:
        print(render(args.format, KEY_HEADERS, [_key_row(k) for k in data]))
    return 0


def keys_revoke(args: argparse.Namespace) -> int:
    call(args.url, "POST", f"/admin/keys/{args.key_id}/revoke")
    print(f"Revoked key {args.key_id}.")
    return 0


def keys_rotate(args: argparse.Namespace) -> int:
    new = call(args.url, "POST", f"/admin/keys/{args.key_id}/rotate")
    print(f"Revoked {args.key_id}; its replacement is {new['id']}. The new key, shown once:")
    print(new["key"])
    return 0


def teams_put(args: argparse.Namespace) -> int:
    body = {"id": args.team_id, "limits": _limits(args), "policy": _policy(args)}
    if args.name:
        body["name"] = args.name
    team = call(args.url, "POST", "/admin/teams", body)
    print(to_json(team))
    return 0


def teams_list(args: argparse.Namespace) -> int:
    data = call(args.url, "GET", "/admin/teams")["data"]
    if args.format == "json":
        print(to_json(data))
        return 0
    rows = [[t["id"], t["name"], json.dumps(t["limits"]), json.dumps(t["policy"])] for t in data]
    print(render(args.format, ["id", "name", "limits", "policy"], rows))
    return 0


def _price_label(candidate: dict[str, Any]) -> str | None:
    """ "read DATE", flagged when the price is unconfirmed."""
    if not candidate.get("price_as_of"):
        return None
    flag = "" if candidate.get("price_verified") else " (unverified)"
    return f"read {candidate['price_as_of']}{flag}"


def route_explain(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"model": args.model, "prompt_tokens": args.prompt_tokens}
    if args.key_id:
        body["key_id"] = args.key_id
    if args.team:
        body["team_id"] = args.team
    if args.max_tokens:
        body["max_tokens"] = args.max_tokens
    if args.tools:
        body["tools"] = True
    if args.images:
        body["images"] = True
    result = call(args.url, "POST", "/v1/route/explain", body)
    if args.format == "json":
        print(to_json(result))
        return 0
    print(
        f"{result['model']} for {result['principal']} (policies: "
        f"{', '.join(result['policies']) or 'none'}; strategy: {result['strategy']}; "
        f"{result['token_mix']['prompt']} prompt + {result['token_mix']['completion']} "
        "completion tokens)"
    )
    headers = [
        "order",
        "deployment",
        "origin",
        "jurisdiction",
        "circuit",
        "est_cost_usd",
        "price",
        "quant",
        "removed_by",
    ]
    rows = [
        [
            c["try_order"],
            c["deployment"],
            c["origin_country"],
            c["host_jurisdiction"],
            c["circuit"],
            c["estimated_cost_usd"],
            _price_label(c),
            c.get("quantization"),
            c["removed_by"],
        ]
        for c in result["candidates"]
    ]
    print(render("table", headers, rows))
    sources = sorted({c["price_source"] for c in result["candidates"] if c.get("price_source")})
    if sources:
        print("\nPrice sources (est_cost_usd: list price in force now, in its time-of-day window):")
        for text in sources:
            print(f"  {text}")
    if result["denied"]:
        print(f"\nDenied: {result['denied']}")
    return 0


def add_parsers(sub: Any) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", default="http://127.0.0.1:8080", help="the gateway")

    def limits(p: argparse.ArgumentParser) -> None:
        p.add_argument("--budget", help="budget in USD per --period")
        p.add_argument("--period", default="month", choices=["day", "week", "month", "total"])
        p.add_argument("--rpm", type=int, help="requests per minute")
        p.add_argument("--tpm", type=int, help="tokens per minute")
        p.add_argument("--policy", help='policy as JSON, e.g. \'{"denied_origins": ["CN"]}\'')

    keys = sub.add_parser("keys", help="virtual API keys (admin)")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    create = ksub.add_parser("create", help="create a key; it is shown once")
    create.add_argument("--name", required=True)
    create.add_argument("--team")
    create.add_argument("--expires-in-days", type=float)
    create.add_argument(
        "--can-eval",
        action="store_true",
        help="may mark its traffic as evaluation (x-crossroads-eval), kept out of the "
        "production reports: for `crossroads eval replay`",
    )
    limits(create)
    common(create)
    create.set_defaults(func=keys_create)
    lst = ksub.add_parser("list", help="list keys (never their secrets)")
    lst.add_argument("--format", choices=["table", "json", "csv"], default="table")
    common(lst)
    lst.set_defaults(func=keys_list)
    for name, func, text in (
        ("revoke", keys_revoke, "revoke a key"),
        ("rotate", keys_rotate, "replace a key with a new secret"),
    ):
        p = ksub.add_parser(name, help=text)
        p.add_argument("key_id")
        common(p)
        p.set_defaults(func=func)

    teams = sub.add_parser("teams", help="teams with budgets, limits and policies (admin)")
    tsub = teams.add_subparsers(dest="teams_command", required=True)
    put = tsub.add_parser("put", help="create or replace a team")
    put.add_argument("team_id")
    put.add_argument("--name")
    limits(put)
    common(put)
    put.set_defaults(func=teams_put)
    tl = tsub.add_parser("list", help="list teams")
    tl.add_argument("--format", choices=["table", "json", "csv"], default="table")
    common(tl)
    tl.set_defaults(func=teams_list)

    route = sub.add_parser("route", help="routing tools (admin)")
    rsub = route.add_subparsers(dest="route_command", required=True)
    ex = rsub.add_parser("explain", help="show candidates, policy removals, order and cost")
    ex.add_argument("--model", required=True)
    ex.add_argument("--key-id", help="explain for this key's team and policies")
    ex.add_argument("--team", help="explain for this team")
    ex.add_argument("--prompt-tokens", type=int, default=1000)
    ex.add_argument("--max-tokens", type=int)
    ex.add_argument("--tools", action="store_true", help="the request offers tools to call")
    ex.add_argument("--images", action="store_true", help="the request carries images")
    ex.add_argument("--format", choices=["table", "json"], default="table")
    common(ex)
    ex.set_defaults(func=route_explain)
