"""`Counters` in Redis, so that several gateway replicas enforce one budget and one rate limit
together: one Lua script makes each check-and-count atomic across replicas, on Redis's clock.

When Redis is down or fails, every method raises `CountersError` and the gateway answers 503:
governance fails closed. A request whose budget or rate limit cannot be checked is refused rather
than let through, because an unchecked request may spend money nobody approved. `add` and
`settle` run after the answer has gone out: when they fail, the caller logs it, and the counts
stay as the admission left them (tokens learnt late go uncounted; a hold stays as held)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Final
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from crossroads.governance.counters import (
    CountersError,
    Denied,
    Reservation,
    Unseeded,
    WindowCheck,
)

# A window's bucket outlives the window's end by this much, so a replica that reads it at the
# boundary still finds it; then it expires on its own (no clean-up job).
WINDOW_SLACK_S: Final = 5

# KEYS: the window keys (unbucketed), then the reservation keys.
# ARGV: check ("1": admit, all-or-nothing; "2": the same, but only over reservation keys that
# exist; "0": add, count without checking), the number of windows, the window slack, then three
# values per key: amount, limit, and the window length (windows) or the time to live
# (reservations), all in seconds.
# Returns false when everything was counted; {0, index, ...} (1-based indexes into KEYS) when
# mode "2" found reservation keys missing, counting nothing; else {index (1-based, windows
# first), used, microseconds until a retry may succeed}. Lua numbers are doubles: limits compare
# exactly up to 2**53 (9e15 micro-dollars), and amounts go to INCRBY as the caller's strings,
# since Redis would print a number from 1e17 up in exponent form, which INCRBY rejects.
# The bucket keys are derived here from TIME, so every replica uses Redis's clock; that also
# means keys the script touches are not all in KEYS, so this needs one Redis, not a Cluster.
_COUNT_SCRIPT: Final = """
local check = ARGV[1] ~= '0'
local windows = tonumber(ARGV[2])
local slack = tonumber(ARGV[3])
if ARGV[1] == '2' then
  local missing = {0}
  for i = windows + 1, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 0 then missing[#missing + 1] = i end
  end
  if #missing > 1 then return missing end
end
local time = redis.call('TIME')
local sec = tonumber(time[1])
local now_us = sec * 1000000 + tonumber(time[2])
local keys, ends, pending = {}, {}, {}
for i = 1, #KEYS do
  local base = 3 + (i - 1) * 3
  local amount = tonumber(ARGV[base + 1])
  local limit = tonumber(ARGV[base + 2])
  local period = tonumber(ARGV[base + 3])
  local key = KEYS[i]
  if i <= windows then
    local start = sec - (sec % period)
    key = key .. ':' .. string.format('%d', start)
    ends[i] = (start + period) * 1000000 - now_us
  end
  keys[i] = key
  if check then
    local used = tonumber(redis.call('GET', key) or '0') + (pending[key] or 0)
    if used + amount > limit then
      local retry_us = ends[i]
      if i > windows then
        local pttl = redis.call('PTTL', key)
        if pttl > 0 then retry_us = pttl * 1000 else retry_us = period * 1000000 end
      end
      return {i, used, retry_us}
    end
    pending[key] = (pending[key] or 0) + amount
  end
end
for i = 1, #KEYS do
  local base = 3 + (i - 1) * 3
  redis.call('INCRBY', keys[i], ARGV[base + 1])
  if i <= windows then
    redis.call('EXPIRE', keys[i], tonumber(ARGV[base + 3]) + slack)
  else
    redis.call('EXPIRE', keys[i], ARGV[base + 3])
  end
end
return false
"""


# KEYS[1]: a window key (unbucketed). ARGV: amount, window length, slack. Sets the current
# window (on Redis's clock, as _COUNT_SCRIPT buckets it) to amount unless it exists.
_SEED_WINDOW_SCRIPT: Final = """
local sec = tonumber(redis.call('TIME')[1])
local period = tonumber(ARGV[2])
local key = KEYS[1] .. ':' .. string.format('%d', sec - (sec % period))
redis.call('SET', key, ARGV[1], 'NX', 'EX', period + tonumber(ARGV[3]))
return false
"""

# KEYS[1]: a budget key. ARGV: the change (actual - held), the time to live.
_SETTLE_SCRIPT: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('INCRBY', KEYS[1], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return false
"""


def _query_options(query: str) -> list[tuple[str, str]]:
    """The query's options as written (no decoding: redis-py unquotes, but not `+`)."""
    return [(o.partition("=")[0], o.partition("=")[2]) for o in query.split("&") if o]


def _redact_url(url: str) -> str:
    """`url` with its password (in the user part or a `password=` query option) as `***`."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{host}"
    query = "&".join(
        f"{name}=***" if unquote(name).lower() == "password" else f"{name}={value}"
        for name, value in _query_options(parts.query)
    )
    # Built by hand: urlunsplit drops the "//" of unix:///path, whose host part is empty.
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def _secrets(url: str) -> list[str]:
    """Every spelling of the URL's passwords that could appear in an error message."""
    parts = urlsplit(url)
    found: list[str] = []
    userinfo = parts.netloc.rpartition("@")[0]
    if ":" in userinfo:
        found.append(userinfo.split(":", 1)[1])
    found += [v for k, v in _query_options(parts.query) if unquote(k).lower() == "password"]
    spelled = {s for raw in found for s in (raw, unquote(raw)) if s}
    return sorted(spelled, key=len, reverse=True)  # longest first: one may contain another


class RedisCounters:
    """The `Counters` protocol over one Redis server (a primary; not Redis Cluster), shared by
    every replica that uses the same `url` and `prefix`.

    One client and one bounded connection pool per instance; create one instance per process,
    at start, and `close()` it at shutdown. Nothing connects until the first call, so a Redis
    that is down at start shows as `CountersError` on the first request, not here.

    Commands are never retried: counting is not idempotent, and a retry after a lost reply
    would count twice. Timeouts are short because a request waits on them.

    Cancellation: a call cancelled after its command reached Redis may still take effect
    (Redis runs the script whole); an `admit` lost that way over-counts until the window or
    the reservation's key expires, which errs on the side of the limit.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "crossroads:",
        timeout: float = 2.0,
        connect_timeout: float = 1.0,
        max_connections: int = 50,
    ) -> None:
        """Raises `CountersError` (without the password) for a URL redis cannot parse.
        `timeout` bounds each command and the wait for a free pooled connection."""
        self._prefix = prefix
        self._where = _redact_url(url)
        self._secrets = _secrets(url)
        try:
            pool = BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=timeout,
                socket_timeout=timeout,
                socket_connect_timeout=connect_timeout,
                retry=Retry(NoBackoff(), 0),
            )
        except ValueError as exc:
            raise CountersError(f"invalid Redis URL {self._where}: {self._scrub(exc)}") from None
        self._redis = Redis.from_pool(pool)
        self._count = self._redis.register_script(_COUNT_SCRIPT)
        self._seed_window = self._redis.register_script(_SEED_WINDOW_SCRIPT)
        self._settle = self._redis.register_script(_SETTLE_SCRIPT)

    def _scrub(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}"
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turns any Redis failure into `CountersError`, with no password in its message."""
        try:
            yield
        except (RedisError, OSError) as exc:
            message = self._scrub(exc)
            # Chain the original only when it holds no secret: tracebacks get logged.
            cause = exc if message == f"{type(exc).__name__}: {exc}" else None
            raise CountersError(f"redis {what} at {self._where} failed: {message}") from cause

    async def _run_script(
        self, mode: str, windows: Sequence[WindowCheck], reservations: Sequence[Reservation]
    ) -> object:
        keys: list[str] = []
        args: list[str | int] = [mode, len(windows), WINDOW_SLACK_S]
        for w in windows:
            if w.window <= 0:
                raise ValueError(f"window for {w.key!r} must be positive, not {w.window}")
            keys.append(self._prefix + w.key)
            args += [str(w.amount), str(w.limit), w.window]
        for r in reservations:
            if r.ttl <= 0:
                raise ValueError(f"ttl for {r.key!r} must be positive, not {r.ttl}")
            keys.append(self._prefix + r.key)
            args += [str(r.amount), str(r.limit), r.ttl]
        with self._errors("add" if mode == "0" else "admit"):
            reply: object = await self._count(keys=keys, args=args)
        return reply

    async def admit(
        self,
        windows: Sequence[WindowCheck],
        reservations: Sequence[Reservation],
        *,
        seeded_only: bool = False,
    ) -> Denied | Unseeded | None:
        """Counts every window and holds every reservation in one atomic script if all fit;
        otherwise counts nothing and returns the first check that failed. A window's
        `retry_after` is the time left in its window; a reservation's is its key's time to
        live (its `ttl` when the key does not exist yet). Windows are fixed, aligned to Redis's
        clock. With `seeded_only`, reservation keys Redis does not hold are returned as
        `Unseeded` and nothing is counted. Raises `CountersError` when Redis fails,
        `ValueError` for a window or ttl <= 0."""
        if not windows and not reservations:
            return None
        reply = await self._run_script("2" if seeded_only else "1", windows, reservations)
        if reply is None:
            return None
        if (
            isinstance(reply, list)
            and len(reply) > 1
            and all(type(v) is int for v in reply)
            and reply[0] == 0
        ):
            return Unseeded(tuple(reservations[i - 1 - len(windows)].key for i in reply[1:]))
        if not (isinstance(reply, list) and len(reply) == 3 and all(type(v) is int for v in reply)):
            raise CountersError(f"redis admit at {self._where}: unexpected reply {reply!r}")
        index, used, retry_us = reply
        failed: WindowCheck | Reservation = (
            windows[index - 1] if index <= len(windows) else reservations[index - 1 - len(windows)]
        )
        return Denied(failed.key, used, failed.limit, retry_us / 1_000_000)

    async def add(self, windows: Sequence[WindowCheck]) -> None:
        """Adds to the current windows (Redis's clock) without checking their limits. Raises
        `CountersError` when Redis fails."""
        if windows:
            await self._run_script("0", windows, ())

    async def seed(self, key: str, amount: int, ttl: int) -> bool:
        """`SET key amount NX EX ttl`: only the first of several replicas seeding one key at
        once sets it. Raises `CountersError` when Redis fails, `ValueError` for ttl <= 0."""
        if ttl <= 0:
            raise ValueError(f"ttl for {key!r} must be positive, not {ttl}")
        with self._errors("seed"):
            done = await self._redis.set(self._prefix + key, str(amount), nx=True, ex=ttl)
        return bool(done)

    async def seed_window(self, check: WindowCheck) -> None:
        """Sets the current window (Redis's clock) unless it exists. Raises `CountersError`
        when Redis fails, `ValueError` for a window <= 0."""
        if check.window <= 0:
            raise ValueError(f"window for {check.key!r} must be positive, not {check.window}")
        with self._errors("seed"):
            await self._seed_window(
                keys=[self._prefix + check.key],
                args=[str(check.amount), check.window, WINDOW_SLACK_S],
            )

    async def settle(self, reservation: Reservation, actual: int) -> None:
        """Adds `actual - reservation.amount` to the budget key and renews its time to live,
        atomically, if the key exists. A key that is gone (Redis restarted empty since the
        admission) is left alone: it is seeded again from the ledger, which holds this
        request's cost once its record is written, instead of being recreated below zero. Not
        idempotent: after a `CountersError` it is unknown whether it applied, so do not retry
        it blindly; if it did not apply, the hold stays counted in place of the actual spend
        until the key expires. Raises `CountersError`."""
        key = self._prefix + reservation.key
        with self._errors("settle"):
            await self._settle(keys=[key], args=[str(actual - reservation.amount), reservation.ttl])

    async def spent(self, key: str) -> int:
        """The amount counted under a budget key (0 when absent). Raises `CountersError`."""
        with self._errors("spent"):
            value = await self._redis.get(self._prefix + key)
        return 0 if value is None else int(value)

    async def close(self) -> None:
        """Closes the client and every pooled connection. Raises `CountersError`."""
        with self._errors("close"):
            await self._redis.aclose()
