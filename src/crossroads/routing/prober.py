"""Active health checks: every `interval` seconds, probe each provider that can be probed
(`HealthProbe`) and report the result for each of its deployments to the health board, so a
circuit can close before live traffic risks it, and a dead host is noticed while idle."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from crossroads.errors import UpstreamError
from crossroads.providers.base import HealthProbe, Provider
from crossroads.routing.deployment import Deployment
from crossroads.routing.health import Circuit, HealthBoard
from crossroads.scrub import Scrubber

log = logging.getLogger(__name__)


async def probe_once(
    providers: Mapping[str, Provider],
    deployments: Sequence[Deployment],
    board: HealthBoard,
    scrub: Scrubber | None = None,
) -> None:
    """One round of probes, concurrently. A provider without the capability is skipped. A
    failure's text is scrubbed (`scrub`) before the board keeps it."""
    scrub = scrub or Scrubber()
    by_provider: dict[str, list[Deployment]] = {}
    for dep in deployments:
        by_provider.setdefault(dep.provider, []).append(dep)

    async def one(provider_id: str, deps: list[Deployment]) -> None:
        provider = providers[provider_id]
        if not isinstance(provider, HealthProbe):
            return
        try:
            await provider.probe()
        except UpstreamError as exc:
            scrub.upstream(exc)
            for dep in deps:
                board.failure(dep.id, f"health probe: {exc.message}")
            return
        for dep in deps:
            if board.get(dep.id).state is not Circuit.CLOSED:
                board.success(dep.id)

    await asyncio.gather(*(one(p, deps) for p, deps in by_provider.items()))


async def run_prober(
    providers: Mapping[str, Provider],
    deployments: Sequence[Deployment],
    board: HealthBoard,
    interval: float,
    scrub: Scrubber | None = None,
) -> None:
    """Probes forever, every `interval` seconds, until cancelled."""
    while True:
        await asyncio.sleep(interval)
        try:
            await probe_once(providers, deployments, board, scrub)
        except RuntimeError as exc:  # a provider closed under us during shutdown
            log.debug("health probe skipped: %s", exc)
