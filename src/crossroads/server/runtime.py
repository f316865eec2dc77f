"""The running gateway: providers, router, ledger, built from Settings once at start.

Start-up order: ledger store, ledger writer, providers (the embedded model loads here, off the
event loop). Shutdown runs after the server has stopped taking requests and finished the ones in
flight: providers close, then the ledger writer flushes every pending record, then the store.
While it runs, every log record is scrubbed of the configured secrets (`crossroads.scrub`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from crossroads.config import Settings
from crossroads.governance.counters import Counters, MemoryCounters
from crossroads.governance.gate import Gate
from crossroads.governance.sqlite_store import SQLiteGovernanceStore
from crossroads.governance.store import GovernanceStore
from crossroads.ingress.body import DepthGauge
from crossroads.ingress.openai import models_body
from crossroads.ingress.services import Services
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.ledger.store import LedgerStore
from crossroads.ledger.writer import LedgerWriter
from crossroads.providers.base import Provider
from crossroads.providers.registry import load_factory
from crossroads.routing.prober import run_prober
from crossroads.routing.router import Router
from crossroads.routing.table import RoutingTable
from crossroads.scrub import scrubbing_logs
from crossroads.telemetry import GatewayMetrics

log = logging.getLogger(__name__)

LEDGER_FILE = "ledger.sqlite3"
GOVERNANCE_FILE = "governance.sqlite3"


def governance_store(settings: Settings) -> GovernanceStore:
    if settings.storage_backend == "postgres":
        from crossroads.governance.postgres_store import PostgresGovernanceStore

        assert settings.postgres_url is not None
        return PostgresGovernanceStore(settings.postgres_url)
    return SQLiteGovernanceStore(settings.data_dir / GOVERNANCE_FILE)


def ledger_store(settings: Settings) -> LedgerStore:
    if settings.storage_backend == "postgres":
        from crossroads.ledger.postgres import PostgresLedgerStore

        assert settings.postgres_url is not None
        return PostgresLedgerStore(settings.postgres_url)
    return SQLiteLedgerStore(settings.data_dir / LEDGER_FILE)


def counters(settings: Settings) -> Counters:
    if settings.limits_backend == "redis":
        from crossroads.governance.redis_counters import RedisCounters

        assert settings.redis_url is not None
        return RedisCounters(settings.redis_url)
    return MemoryCounters()


class Gateway:
    def __init__(self, settings: Settings, store: LedgerStore | None = None) -> None:
        """Builds everything that needs no I/O. Raises ConfigError for an unknown provider
        type."""
        self.settings = settings
        self.scrub = settings.scrubber()
        self.providers: dict[str, Provider] = {
            spec.id: load_factory(spec.type)(spec) for spec in settings.providers
        }
        self.table = RoutingTable(settings.deployments, settings.aliases)
        self.router = Router(self.table, self.providers, settings.routing, scrub=self.scrub)
        self.store = store or ledger_store(settings)
        self.ledger = LedgerWriter(self.store)
        self.gate = Gate(
            mode=settings.auth_mode,
            admin_key=settings.admin_key,
            global_policy=settings.global_policy,
            store=governance_store(settings),
            counters=counters(settings),
            ledger=self.store,
            refresh_interval=settings.key_refresh_interval,
            limits_backend=settings.limits_backend,
        )
        self.services = Services(
            gate=self.gate,
            router=self.router,
            ledger=self.ledger,
            max_body_bytes=settings.max_body_bytes,
            request_timeout=settings.request_timeout,
            models_body=models_body(self.table),
            baselines=settings.baselines,
            metrics=GatewayMetrics(self.ledger, self.router.health),
            scrub=self.scrub,
            json_depth=DepthGauge(settings.max_json_depth),
            max_model_name_chars=settings.max_model_name_chars,
        )
        self.ready = False

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        with scrubbing_logs(self.scrub):
            async with self._running(app):
                yield

    @asynccontextmanager
    async def _running(self, app: Starlette) -> AsyncIterator[None]:
        app.state.services = self.services
        app.state.gateway = self
        await self.store.open()
        await self.ledger.start()
        await self.gate.start()
        prober: asyncio.Task[None] | None = None
        try:
            await asyncio.gather(*(p.start() for p in self.providers.values()))
            interval = self.settings.routing.health_check_interval
            if interval > 0:
                prober = asyncio.create_task(
                    run_prober(
                        self.providers,
                        self.settings.deployments,
                        self.router.health,
                        interval,
                        self.scrub,
                    ),
                    name="health-prober",
                )
            self.ready = True
            yield
        finally:
            self.ready = False
            if prober is not None:
                prober.cancel()
            await asyncio.gather(
                *(p.aclose() for p in self.providers.values()), return_exceptions=True
            )
            await self.gate.aclose()
            await self.ledger.aclose()
            await self.store.close()
            log.info("ledger flushed; %d records written this run", self.ledger.flushed)
