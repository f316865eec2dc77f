"""The running gateway: providers, router, ledger, built from Settings once at start.

Start-up order: ledger store, the records of any recovery file (`crossroads.ledger.recovery`)
written to it, ledger writer, providers (the embedded model loads here, off the event loop).
Shutdown runs after the server has stopped taking requests and ended the ones in flight
(`crossroads.server.graceful`): providers close, then the ledger writer flushes every pending
record, for up to `ledger_drain_timeout` seconds; what the store did not take by then is
spilled to a recovery file beside the ledger; then the store closes.
While it runs, every log record is scrubbed of the configured secrets (`crossroads.scrub`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from starlette.applications import Starlette

from crossroads import __version__
from crossroads.config import Settings
from crossroads.governance.counters import Counters, MemoryCounters
from crossroads.governance.gate import Gate
from crossroads.governance.seeding import CombinedSpend
from crossroads.governance.sqlite_store import SQLiteGovernanceStore
from crossroads.governance.store import GovernanceStore
from crossroads.ingress.body import DepthGauge
from crossroads.ingress.openai import models_body
from crossroads.ingress.responses.store import (
    Backend,
    PostgresResponses,
    ResponseStore,
    SQLiteResponses,
)
from crossroads.ingress.services import Services
from crossroads.ledger import recovery
from crossroads.ledger.sqlite import SQLiteLedgerStore
from crossroads.ledger.store import LedgerStore, LedgerStoreError
from crossroads.ledger.writer import LedgerWriter
from crossroads.providers.base import Provider
from crossroads.providers.registry import load_factory
from crossroads.quality.capture import CaptureWriter
from crossroads.quality.shadow import Shadower
from crossroads.quality.store import EVAL_LEDGER_FILE, QUALITY_FILE
from crossroads.routing.prober import run_prober
from crossroads.routing.router import Router
from crossroads.routing.table import RoutingTable
from crossroads.scrub import Scrubber, scrubbing_logs
from crossroads.telemetry import GatewayMetrics

if TYPE_CHECKING:
    from pathlib import Path

    from crossroads.telemetry.tracing import Tracing

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


def _tracing(settings: Settings, scrub: Scrubber) -> Tracing | None:
    """OpenTelemetry spans and metrics exported over OTLP, when configured; else None, and the
    SDK is never imported."""
    if settings.otlp is None:
        return None
    from crossroads.telemetry.otlp import Exporters
    from crossroads.telemetry.tracing import Tracing

    return Tracing(
        Exporters(settings.otlp, __version__),
        {spec.id: spec.base_url for spec in settings.providers},
        scrub,
        __version__,
    )


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
        self.ledger = LedgerWriter(self.store, max_pending=settings.ledger_backlog_limit)
        # Eval traffic (x-crossroads-eval) has a ledger of its own, so no production report
        # counts it: SQLite in the data directory whatever the production store is.
        self.eval_store = SQLiteLedgerStore(settings.data_dir / EVAL_LEDGER_FILE)
        self.eval_ledger = LedgerWriter(self.eval_store)
        self.gate = Gate(
            mode=settings.auth_mode,
            admin_key=settings.admin_key,
            global_policy=settings.global_policy,
            store=governance_store(settings),
            counters=counters(settings),
            ledger=CombinedSpend(self.store, self.eval_store),
            refresh_interval=settings.key_refresh_interval,
            limits_backend=settings.limits_backend,
        )
        self.tracing = _tracing(settings, self.scrub)
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
            responses=ResponseStore(
                _response_backend(settings),
                retention_days=settings.responses.retention_days,
                max_bytes=settings.responses.max_stored_bytes,
            ),
            tracing=self.tracing,
            capture=CaptureWriter(
                settings.data_dir / QUALITY_FILE, settings.quality.capture, self.scrub
            ),
            eval_ledger=self.eval_ledger,
            shadow=Shadower(settings.quality.shadow, settings.data_dir / QUALITY_FILE),
        )
        self.ready = False
        self.unsaved_records = 0
        """Ledger records this run lost at shutdown: neither in the store nor in a recovery
        file (the disk refused both). The server exits non-zero when it is not 0."""

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
        await self.services.responses.open()
        await self.eval_store.open()
        await self._replay_recovery_files(
            self.eval_store, self.settings.data_dir / EVAL_RECOVERY_DIR, "eval ledger"
        )
        await self.eval_ledger.start()
        await self.services.capture.start()
        await self._replay_recovery_files(self.store, self.settings.data_dir, "ledger")
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
            await self.services.shadow.aclose()  # before the providers it calls close
            if prober is not None:
                prober.cancel()
            await asyncio.gather(
                *(p.aclose() for p in self.providers.values()), return_exceptions=True
            )
            await self.gate.aclose()
            await self.services.responses.aclose()
            await self.services.capture.aclose()
            await self._drain_ledger()
            if self.tracing is not None and self.settings.otlp is not None:
                await self.tracing.aclose(within=self.settings.otlp.timeout)
            await self._drain_eval_ledger()

    async def _drain_ledger(self) -> None:
        await self._drain(self.ledger, self.store, self.settings.data_dir, "ledger")
        log.info("ledger flushed; %d records written this run", self.ledger.flushed)

    async def _drain_eval_ledger(self) -> None:
        """Eval records are spilled and replayed like production ones, in a folder of their
        own (`EVAL_RECOVERY_DIR`): eval spend counts against budgets too."""
        directory = self.settings.data_dir / EVAL_RECOVERY_DIR
        await self._drain(self.eval_ledger, self.eval_store, directory, "eval ledger")

    async def _drain(
        self, writer: LedgerWriter, store: LedgerStore, directory: Path, what: str
    ) -> None:
        """Flushes `writer` for up to `ledger_drain_timeout` seconds, spills what `store` did
        not take to a recovery file in `directory`, then closes the store (also bounded: a
        store that hangs must not keep the process alive)."""
        timeout = self.settings.ledger_drain_timeout
        unwritten = await writer.aclose(within=timeout)
        if unwritten:
            try:
                path = recovery.spill(directory, unwritten)
            except OSError as exc:
                self.unsaved_records += len(unwritten)
                log.critical(
                    "%s RECORDS LOST: %d records could not be written to the store nor saved "
                    "to a recovery file in %s (%s); any complete lines of a partial file there "
                    "are replayed at the next start",
                    what.upper(),
                    len(unwritten),
                    directory,
                    exc,
                )
            else:
                log.error(
                    "the %s store did not take %d records within %gs; saved to %s, written "
                    "to the store at the next start",
                    what,
                    len(unwritten),
                    timeout,
                    path,
                )
        try:
            async with asyncio.timeout(timeout):
                await store.close()
        except TimeoutError:
            log.error("the %s store did not close within %gs; leaving it", what, timeout)

    async def _replay_recovery_files(self, store: LedgerStore, directory: Path, what: str) -> None:
        """Writes what an earlier run spilled to `directory`. A store that refuses leaves the
        files for the next start; the gateway starts anyway (its readiness shows the store's
        state)."""
        try:
            replayed = await recovery.replay(store, directory)
        except (LedgerStoreError, OSError) as exc:
            log.error("%s recovery files not replayed (kept for the next start): %s", what, exc)
            return
        if replayed:
            log.warning("%d %s records from an earlier run written to the store", replayed, what)


EVAL_RECOVERY_DIR = "eval-recovery"
"""Where eval ledger records a shutdown could not write wait for the next start."""


def _response_backend(settings: Settings) -> Backend | None:
    """Where stored responses live: beside the ledger (its PostgreSQL database, so every
    replica sees them, or a SQLite file in the data directory); None when storage is off."""
    if not settings.responses.store:
        return None
    if settings.storage_backend == "postgres":
        assert settings.postgres_url is not None
        return PostgresResponses(settings.postgres_url)
    return SQLiteResponses(settings.data_dir / "responses.sqlite3")
