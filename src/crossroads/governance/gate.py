"""The gate every request passes: authentication, policy, rate limits and budgets.

Keys and teams are held in memory (the key ring) and reloaded from the governance store every
`refresh_interval` seconds, so checking a key is one dict lookup and one constant-time hash
comparison: a flood of wrong keys costs no database or network round trip and cannot slow valid
requests. A key created, rotated or revoked through this replica's admin API takes effect here at
once, and on other replicas at their next reload."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from crossroads.errors import AuthenticationError, GatewayError
from crossroads.governance import keys as keylib
from crossroads.governance.budgets import (
    checks,
    denial_error,
    rate_checks,
    to_micros,
    worst_case_micros,
)
from crossroads.governance.counters import (
    Counters,
    CountersError,
    Denied,
    Reservation,
    Unseeded,
    WindowCheck,
)
from crossroads.governance.model import NO_LIMITS, ApiKey, Limits, Team
from crossroads.governance.policy import EMPTY, Policy, PolicyRules, first_violation
from crossroads.governance.principal import Principal
from crossroads.governance.seeding import Seeder, SpendLedger
from crossroads.governance.store import GovernanceStore
from crossroads.ledger.store import LedgerStoreError
from crossroads.routing.deployment import Deployment

log = logging.getLogger(__name__)

SEED_ATTEMPTS = 3
"""Admissions tried per request while budget keys keep disappearing (a Redis flushed again
between seeding and admitting); past that the request gets 503."""

AuthMode = Literal["open", "keys"]


class LimitsUnavailableError(GatewayError):
    status = 503
    kind = "limits_unavailable"


LIMITS_LOG_INTERVAL = 10.0
"""Seconds between log lines about an unreachable limits backend (one per request would flood
the log during an outage)."""


@dataclass(frozen=True, slots=True)
class Admission:
    """What was counted for one admitted request, to settle when it ends."""

    principal: Principal
    reservations: tuple[Reservation, ...]
    tpm: tuple[WindowCheck, ...]


class Gate:
    def __init__(
        self,
        *,
        mode: AuthMode,
        admin_key: str | None,
        global_policy: PolicyRules,
        store: GovernanceStore,
        counters: Counters,
        ledger: SpendLedger | None = None,
        refresh_interval: float = 5.0,
        limits_backend: str = "memory",
    ) -> None:
        """`limits_backend` names the counters' backend in the 503 a client gets when it
        fails; nothing more of the failure (host, port, user) is shown, only logged. With
        `ledger`, budget counters are seeded from what it says was spent (at `start`, and
        whenever the counters lack a budget key: `crossroads.governance.seeding`); without it a
        budget starts at zero in each new counter backend."""
        self.mode = mode
        self._limits_backend = limits_backend
        self._limits_logged_at = float("-inf")
        self._admin_hash = keylib.hash_key(admin_key) if admin_key else None
        self._global = Policy("global", global_policy)
        self.store = store
        self.counters = counters
        self._refresh_interval = refresh_interval
        self._keys: dict[str, ApiKey] = {}
        self._teams: dict[str, Team] = {}
        self._principals: dict[str, Principal] = {}
        # open mode answers loopback only and honours no key it does not know: one user, whose
        # reports there is nobody to protect, so its requests may be marked as eval traffic.
        self._anonymous = Principal(policies=self._policies(None, None), can_eval=True)
        self._refresher: asyncio.Task[None] | None = None
        self._settling: set[asyncio.Task[None]] = set()
        self._seeder = None if ledger is None else Seeder(counters, ledger, self._limit_holders)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Opens the store, loads the key ring, and seeds the counters of every known limit
        from the ledger. A seeding failure is logged, not raised: each budget is seeded again
        on its first request (and refused with 503 while that cannot be done)."""
        await self.store.open()
        await self.reload()
        if self._seeder is not None:
            try:
                await self._seeder.seed_all()
            except Exception as exc:  # noqa: BLE001 - retried per budget on first use
                log.error("could not seed limits from the ledger at start: %s", exc)
        self._refresher = asyncio.create_task(self._refresh_forever(), name="key-ring-refresh")

    async def aclose(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)
        await self.counters.close()
        await self.store.close()

    async def reload(self) -> None:
        """Replaces the in-memory key ring with the store's contents."""
        teams, keys = await self.store.load()
        self._teams = {t.id: t for t in teams}
        self._keys = {k.id: k for k in keys}
        self._principals = {}

    def _limit_holders(self) -> list[tuple[str, Limits]]:
        holders = [(f"key:{k.id}", k.limits) for k in self._keys.values() if not k.limits.empty]
        holders += [(f"team:{t.id}", t.limits) for t in self._teams.values() if not t.limits.empty]
        return holders

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_interval)
            try:
                await self.reload()
            except Exception as exc:  # noqa: BLE001 - keep serving from the last good ring
                log.warning("key ring reload failed (%s); serving from the last copy", exc)

    # -- authentication --------------------------------------------------------------------

    @staticmethod
    def presented_key(headers: Mapping[str, str]) -> str | None:
        auth = headers.get("authorization")
        if auth and auth[:7].lower() == "bearer ":
            return auth[7:].strip() or None
        return headers.get("x-api-key") or None

    def is_admin(self, presented: str | None) -> bool:
        if self._admin_hash is None:
            return self.mode == "open"  # first-run default: no keys, admin API on loopback
        return presented is not None and keylib.matches(presented, self._admin_hash)

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The principal for a request. In `open` mode anyone is anonymous (keys are still
        honoured when presented). Raises AuthenticationError (401) for a missing, malformed,
        unknown, revoked or expired key, with the same message for each so nothing leaks."""
        presented = self.presented_key(headers)
        if presented is None:
            if self.mode == "open":
                return self._anonymous
            raise AuthenticationError(
                "Missing API key: send it as 'Authorization: Bearer KEY' or 'x-api-key: KEY'.",
                code="missing_api_key",
            )
        if self._admin_hash is not None and keylib.matches(presented, self._admin_hash):
            return Principal(policies=(self._global,), admin=True, can_eval=True)
        key_id = keylib.key_id_of(presented)
        key = self._keys.get(key_id) if key_id else None
        if key is None or not keylib.matches(presented, key.secret_hash):
            if self.mode == "open" and key_id is None:
                return self._anonymous  # not one of our keys: e.g. a placeholder like "unused"
            raise _invalid_key()
        if not key.usable(datetime.now(UTC)):
            raise _invalid_key()
        principal = self._principals.get(key.id)
        if principal is None:
            principal = self._principal(key)
            self._principals[key.id] = principal
        return principal

    def _policies(self, team: Team | None, key: ApiKey | None) -> tuple[Policy, ...]:
        policies = [self._global] if self._global.rules != EMPTY else []
        if team is not None and team.policy != EMPTY:
            policies.append(Policy(f"team '{team.id}'", team.policy))
        if key is not None and key.policy != EMPTY:
            policies.append(Policy(f"key '{key.id}'", key.policy))
        return tuple(policies)

    def _principal(self, key: ApiKey) -> Principal:
        team = self._teams.get(key.team_id) if key.team_id else None
        scopes: list[tuple[str, Limits]] = []
        if not key.limits.empty:
            scopes.append((f"key:{key.id}", key.limits))
        if team is not None and not team.limits.empty:
            scopes.append((f"team:{team.id}", team.limits))
        return Principal(
            key_id=key.id,
            team_id=key.team_id,
            policies=self._policies(team, key),
            scopes=tuple(scopes),
            can_eval=key.can_eval,
        )

    # -- policy, limits, budgets -----------------------------------------------------------

    @staticmethod
    def policy_check(principal: Principal) -> Callable[[Deployment, str], str | None] | None:
        """The `policy` callable for Router.plan, or None when no policy applies."""
        if not principal.policies:
            return None
        return lambda dep, name: first_violation(dep, principal.policies, (name,))

    async def count_request(self, principal: Principal) -> None:
        """Counts the request against the principal's requests-per-minute limits, first thing
        after authentication: a request refused later (a bad body, an unknown model, a policy
        or a budget) still counts, so refusals cannot get round the limit. Raises
        RateLimitError (429 with Retry-After) or LimitsUnavailableError (503)."""
        windows = rate_checks(principal)
        if windows:
            await self._count(principal, windows, [])

    async def admit(
        self,
        principal: Principal,
        candidates: Sequence[Deployment],
        prompt_tokens: int,
        max_output: int | None,
    ) -> Admission | None:
        """Counts the request against every tokens-per-minute limit and reserves its
        worst-case cost against every budget, all or nothing (requests per minute were counted
        by `count_request`). Raises RateLimitError/BudgetError (429 with Retry-After, naming
        the limit) or LimitsUnavailableError (503) when the counter backend is down or the
        ledger cannot seed a budget (fail closed). None when no limit applies."""
        if not principal.scopes:
            return None
        reserve = worst_case_micros(candidates, prompt_tokens, max_output)
        windows, reservations = checks(principal, prompt_tokens, reserve)
        if not windows and not reservations:
            return None
        await self._count(
            principal, windows, reservations, reserve=reserve, output_capped=max_output is not None
        )
        return Admission(principal, tuple(reservations), tuple(windows))

    async def _count(
        self,
        principal: Principal,
        windows: list[WindowCheck],
        reservations: list[Reservation],
        *,
        reserve: int = 0,
        output_capped: bool = True,
    ) -> None:
        seeder = self._seeder
        result: Denied | Unseeded | None = None
        try:
            for _ in range(SEED_ATTEMPTS):
                result = await self.counters.admit(
                    windows, reservations, seeded_only=seeder is not None
                )
                if not isinstance(result, Unseeded):
                    break
                assert seeder is not None
                await seeder.seed_budgets(result.keys)
            else:
                raise CountersError("budget counters kept disappearing while being seeded")
        except CountersError as exc:
            now = asyncio.get_running_loop().time()
            if now - self._limits_logged_at >= LIMITS_LOG_INTERVAL:
                self._limits_logged_at = now
                log.warning("limits backend failed; refusing limited requests: %s", exc)
            raise LimitsUnavailableError(
                f"Limits cannot be checked right now: the limits backend "
                f"({self._limits_backend}) is unreachable; try again shortly."
            ) from None
        except LedgerStoreError as exc:
            log.error("could not seed budgets for %s from the ledger: %s", principal.label, exc)
            raise LimitsUnavailableError(
                "Budgets cannot be checked right now (the ledger is unavailable); try again "
                "shortly."
            ) from None
        if isinstance(result, Denied):
            raise denial_error(result, principal, reserve=reserve, output_capped=output_capped)

    def settle(self, admission: Admission | None, cost: Decimal | None, tokens: int) -> None:
        """Replaces reservations by the real cost and counts the tokens beyond the prompt
        estimate, in the background (never on the response path). Never raises."""
        if admission is None:
            return
        task = asyncio.get_running_loop().create_task(self._settle(admission, cost, tokens))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle(self, admission: Admission, cost: Decimal | None, tokens: int) -> None:
        try:
            for reservation in admission.reservations:
                await self.counters.settle(reservation, to_micros(cost))
            extra = [replace(w, amount=tokens - w.amount) for w in admission.tpm]
            if extra:
                await self.counters.add([w for w in extra if w.amount > 0])
        except CountersError as exc:
            log.error("could not settle limits for %s: %s", admission.principal.label, exc)

    def principal_for(self, key_id: str | None, team_id: str | None) -> Principal:
        """The principal a key (or, without one, a team's keys) would run as: for explain.
        Raises KeyError naming what is unknown."""
        if key_id is not None:
            key = self._keys.get(key_id)
            if key is None:
                raise KeyError(f"no key with id {key_id!r}")
            return self._principal(key)
        if team_id is not None:
            team = self._teams.get(team_id)
            if team is None:
                raise KeyError(f"no team with id {team_id!r}")
            scopes = () if team.limits.empty else ((f"team:{team.id}", team.limits),)
            return Principal(team_id=team.id, policies=self._policies(team, None), scopes=scopes)
        return self._anonymous

    # -- administration --------------------------------------------------------------------

    def list_teams(self) -> list[Team]:
        return sorted(self._teams.values(), key=lambda t: t.id)

    def list_keys(self) -> list[ApiKey]:
        return sorted(self._keys.values(), key=lambda k: k.created_at)

    def team(self, team_id: str) -> Team | None:
        return self._teams.get(team_id)

    def key(self, key_id: str) -> ApiKey | None:
        return self._keys.get(key_id)

    async def put_team(self, team: Team) -> None:
        await self.store.put_team(team)
        await self.reload()

    async def create_key(
        self,
        name: str,
        *,
        team_id: str | None = None,
        limits: Limits = NO_LIMITS,
        policy: PolicyRules = EMPTY,
        expires_at: datetime | None = None,
        can_eval: bool = False,
    ) -> tuple[ApiKey, str]:
        """A new key and its secret, which is returned this once and never stored. `can_eval`
        lets it mark requests as eval traffic (`x-crossroads-eval`)."""
        key_id, secret, secret_hash = keylib.new_key()
        key = ApiKey(
            id=key_id,
            secret_hash=secret_hash,
            name=name,
            created_at=datetime.now(UTC),
            team_id=team_id,
            limits=limits,
            policy=policy,
            expires_at=expires_at,
            can_eval=can_eval,
        )
        await self.store.insert_key(key)
        await self.reload()
        return key, secret

    async def revoke_key(self, key_id: str) -> bool:
        done = await self.store.revoke_key(key_id, datetime.now(UTC))
        await self.reload()
        return done

    async def rotate_key(self, key_id: str) -> tuple[ApiKey, str] | None:
        """Revokes `key_id` and issues a new key with the same name, team, limits, policy,
        expiry and eval permission. None if no such live key."""
        old = self._keys.get(key_id)
        if old is None or old.revoked_at is not None:
            return None
        new = await self.create_key(
            old.name,
            team_id=old.team_id,
            limits=old.limits,
            policy=old.policy,
            expires_at=old.expires_at,
            can_eval=old.can_eval,
        )
        await self.revoke_key(key_id)
        return new


def _invalid_key() -> AuthenticationError:
    return AuthenticationError(
        "Invalid API key: it is unknown, revoked or expired.", code="invalid_api_key"
    )
