"""The embedded provider's options (`ProviderSpec.options`), checked once when the provider is
created so a typo fails at start-up, not on the first request."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crossroads.errors import ConfigError

DEFAULT_SERVED_MODEL = "local/smollm2-135m"

_KNOWN = frozenset(
    {"model_path", "served_model", "n_ctx", "parallel", "threads", "log_verbosity", "tools"}
)


@dataclass(frozen=True, slots=True)
class Settings:
    """`n_ctx` is the whole KV cache, shared evenly by the `parallel` slots (llama.cpp gives each
    slot n_ctx / parallel tokens). `threads` defaults to the usable CPUs less one.
    `log_verbosity` is llama.cpp's threshold (0 output, 1 errors, 2 warnings, 3 info, 4 debug); it
    is process-wide in llama.cpp, so the last provider started sets it for all. `tools` says
    whether the model's chat template handles tool calling."""

    model_path: str | None = None
    served_model: str = DEFAULT_SERVED_MODEL
    n_ctx: int = 4096
    parallel: int = 4
    threads: int = 1
    log_verbosity: int = 1
    tools: bool = False

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Settings:
        """Reads and checks the options. Raises ConfigError naming the bad or unknown option."""
        unknown = sorted(set(options) - _KNOWN)
        if unknown:
            raise ConfigError(
                f"unknown option(s) for the embedded provider: {', '.join(unknown)}; "
                f"known: {', '.join(sorted(_KNOWN))}"
            )
        return cls(
            model_path=_optional_str(options, "model_path"),
            served_model=_optional_str(options, "served_model") or DEFAULT_SERVED_MODEL,
            n_ctx=_int(options, "n_ctx", 4096, minimum=256),
            parallel=_int(options, "parallel", 4, minimum=1),
            threads=_int(options, "threads", _default_threads(), minimum=1),
            log_verbosity=_int(options, "log_verbosity", 1, minimum=0),
            tools=_bool(options, "tools", False),
        )


def _default_threads() -> int:
    # One CPU fewer than this process may use, kept for the event loop and the HTTP stack:
    # llama.cpp's threads spin-wait on each other, so when they hold every CPU, any other busy
    # thread stalls the whole batch. Measured on 2 CPUs: 2 threads gave 52 tokens/s with stalls
    # up to 2.6 s between tokens; 1 thread gave 121 tokens/s, never more than 15 ms apart.
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (usable or 1) - 1)


def _optional_str(options: Mapping[str, Any], key: str) -> str | None:
    value = options.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"the embedded provider's {key} option must be a non-empty string")
    return value


def _int(options: Mapping[str, Any], key: str, default: int, *, minimum: int) -> int:
    value = options.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"the embedded provider's {key} option must be an integer >= {minimum}")
    return value


def _bool(options: Mapping[str, Any], key: str, default: bool) -> bool:
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"the embedded provider's {key} option must be true or false")
    return value
