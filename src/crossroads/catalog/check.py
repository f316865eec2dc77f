"""`catalog check`, the catalog half: which prices are older than a given age, and which
entries rest on unconfirmed (secondary or conflicting) sources. The ledger half (spend at
offerings with no price) is the CLI's, which can open the ledger."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from crossroads.catalog.loader import Catalog

__all__ = ["DEFAULT_MAX_AGE_DAYS", "Finding", "check_catalog"]

DEFAULT_MAX_AGE_DAYS = 90


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # "stale", "unverified", "undated"
    subject: str  # "deepseek/deepseek-v4-pro at deepseek", "host together", ...
    detail: str


def check_catalog(
    catalog: Catalog, today: dt.date, max_age_days: int = DEFAULT_MAX_AGE_DAYS
) -> list[Finding]:
    """Findings about every live offering's current price (older than `max_age_days`, read on
    no recorded date, or unverified), unverified model facts and unverified host terms.
    Retired models and offerings are left out: their prices only serve old ledger rows."""
    if max_age_days < 0:
        raise ValueError("max_age_days must not be negative")
    findings: list[Finding] = []
    oldest = today - dt.timedelta(days=max_age_days)
    for offering in catalog.offerings():
        model = catalog.model(offering.model)
        if (model is not None and model.retired_at(today)) or (
            offering.retired is not None and offering.retired <= today
        ):
            continue
        point = offering.current
        if point is None or offering.host == "local":
            continue
        subject = f"{offering.model} at {offering.host}"
        read = point.as_of or point.since
        if read is None:
            findings.append(Finding("undated", subject, "price has no date: when was it read?"))
        elif read < oldest:
            age = (today - read).days
            findings.append(
                Finding("stale", subject, f"price read {read} ({age} days ago): {point.source}")
            )
        if not point.verified:
            findings.append(
                Finding("unverified", subject, f"price unconfirmed: {point.source or 'no source'}")
            )
    for model in catalog.models():
        if not model.verified and not model.retired_at(today):
            findings.append(
                Finding("unverified", f"model {model.id}", f"facts unconfirmed: {model.source}")
            )
    for host in catalog.hosts():
        if host.policy_source is not None and not host.policy_verified:
            findings.append(
                Finding(
                    "unverified",
                    f"host {host.id}",
                    f"retention terms unconfirmed: {host.policy_source}",
                )
            )
    return findings
