"""Loads the catalog shipped in `catalog/data/*.yaml`, merges the config's catalog section into it,
validates the result, and serves it as a frozen `Catalog` of dicts keyed by id."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from importlib import resources
from importlib.resources.abc import Traversable
from types import MappingProxyType
from typing import Any, Generic, TypeVar

import msgspec
import msgspec.yaml

from crossroads.catalog.model import (
    QUANTIZATIONS,
    WEEKDAYS,
    Host,
    Maker,
    Model,
    Offering,
    PricePoint,
    Prices,
    PriceTier,
)
from crossroads.errors import ConfigError

CONFIG_SOURCE = "config catalog section"
"""How errors name the config's `catalog:` section, the default source for `Catalog.merged`."""

LOCAL_HOST_ID = "local"
LOCAL_JURISDICTION = "local"
"""The one jurisdiction that is not a country code: the embedded in-process host `local` serves
from wherever the gateway itself runs. Only the host with id `local` may use it."""

# ISO 3166-1 alpha-2: all 249 officially assigned codes (as in tzdata's iso3166.tab).
_ISO_3166_TEXT = (
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ "
    "BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM "
    "DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS "
    "GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN "
    "KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ "
    "MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM "
    "PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV "
    "SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI "
    "VN VU WF WS YE YT ZA ZM ZW"
)
ISO_3166_ALPHA2: frozenset[str] = frozenset(_ISO_3166_TEXT.split())

_SECTIONS = ("makers", "models", "hosts", "offerings")
_SLUG = re.compile(r"[a-z0-9][a-z0-9._-]*")
_PRICE_FIELDS = ("input", "output", "cached_input", "cache_write", "reasoning")
_CLOCK = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")

T = TypeVar("T", bound=Maker | Model | Host | Offering)


@dataclass(frozen=True, slots=True)
class _At(Generic[T]):
    """A decoded entry and where it came from, so a later check can name the file and path."""

    entry: T
    source: str  # "crossroads/catalog/data/models.yaml" or "config catalog section"
    path: str  # "$[3]" in a data file, "$.models[3]" in the config section

    def error(self, field: str, problem: str) -> ConfigError:
        where = f"{self.path}.{field}" if field else self.path
        return ConfigError(f"{self.source}: {where} ({_label(self.entry)}): {problem}")


@dataclass(frozen=True, slots=True)
class _Entries:
    makers: tuple[_At[Maker], ...] = ()
    models: tuple[_At[Model], ...] = ()
    hosts: tuple[_At[Host], ...] = ()
    offerings: tuple[_At[Offering], ...] = ()


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Catalog:
    """Makers, models, hosts and offerings, validated and indexed; immutable.

    Get one from `load_builtin()`, `Catalog.from_data()` or `Catalog.merged()`; the constructor is
    internal. Lookups are dict reads; those returning one entry return None for an unknown id."""

    _entries: _Entries
    _makers: Mapping[str, Maker]
    _models: Mapping[str, Model]
    _hosts: Mapping[str, Host]
    _offerings: Mapping[tuple[str, str], Offering]
    _by_model: Mapping[str, tuple[Offering, ...]]
    _by_host: Mapping[str, tuple[Offering, ...]]
    _by_upstream: Mapping[tuple[str, str], Offering]

    def __repr__(self) -> str:
        return (
            f"<Catalog: {len(self._makers)} makers, {len(self._models)} models, "
            f"{len(self._hosts)} hosts, {len(self._offerings)} offerings>"
        )

    @classmethod
    def from_data(cls, data: Mapping[str, Any], *, source: str = CONFIG_SOURCE) -> Catalog:
        """Build a catalog from `data` alone (same shape as `merged` takes), with nothing built in.

        Raises ConfigError as `merged` does."""
        return _build(_Entries()).merged(data, source=source)

    def merged(self, overrides: Mapping[str, Any], *, source: str = CONFIG_SOURCE) -> Catalog:
        """Return a new catalog with `overrides` applied; this one is unchanged.

        `overrides` may hold the keys `makers`, `models`, `hosts` and `offerings`, each a list of
        dicts shaped like the data files. An entry whose id (for offerings: `(model, host)`)
        already exists replaces the old entry whole; any other entry is added. Raises ConfigError,
        naming `source` and the path (e.g. `$.offerings[2].host`), for an unknown key or field, a
        bad value, an id repeated within `overrides`, or a result that fails validation."""
        extra = _decode_overrides(overrides, source)
        return _build(
            _Entries(
                makers=_replace(self._entries.makers, extra.makers, "maker id"),
                models=_replace(self._entries.models, extra.models, "model id"),
                hosts=_replace(self._entries.hosts, extra.hosts, "host id"),
                offerings=_replace(self._entries.offerings, extra.offerings, "offering"),
            )
        )

    def maker(self, maker_id: str) -> Maker | None:
        """The maker with this id, or None."""
        return self._makers.get(maker_id)

    def model(self, model_id: str) -> Model | None:
        """The model with this id ("maker/slug"), or None."""
        return self._models.get(model_id)

    def host(self, host_id: str) -> Host | None:
        """The host with this id, or None."""
        return self._hosts.get(host_id)

    def offering(self, model_id: str, host_id: str) -> Offering | None:
        """The offering of this model at this host, or None."""
        return self._offerings.get((model_id, host_id))

    def offerings_for_model(self, model_id: str) -> tuple[Offering, ...]:
        """Every host's offering of this model, in data order; empty for an unknown model."""
        return self._by_model.get(model_id, ())

    def offerings_for_host(self, host_id: str) -> tuple[Offering, ...]:
        """Every offering at this host, in data order; empty for an unknown host."""
        return self._by_host.get(host_id, ())

    def find_offering_by_upstream(self, host_id: str, upstream_model: str) -> Offering | None:
        """The offering at this host whose `upstream_model` is exactly this, or None. Validation
        guarantees at most one per host."""
        return self._by_upstream.get((host_id, upstream_model))

    def makers(self) -> tuple[Maker, ...]:
        """All makers, in data order (built-in first, then added ones)."""
        return tuple(self._makers.values())

    def models(self) -> tuple[Model, ...]:
        """All models, in data order (built-in first, then added ones)."""
        return tuple(self._models.values())

    def hosts(self) -> tuple[Host, ...]:
        """All hosts, in data order (built-in first, then added ones)."""
        return tuple(self._hosts.values())

    def offerings(self) -> tuple[Offering, ...]:
        """All offerings, in data order (built-in first, then added ones)."""
        return tuple(self._offerings.values())


def load_builtin() -> Catalog:
    """Read and validate the catalog shipped inside the package (`crossroads/catalog/data`).

    Reads four small files on every call: call it once at start and keep the result. Raises
    ConfigError naming the file and entry if the shipped data is invalid."""
    return _load_dir(resources.files("crossroads.catalog") / "data", "crossroads/catalog/data")


def _load_dir(directory: Traversable, label: str) -> Catalog:
    """Load `makers.yaml`, `models.yaml`, `hosts.yaml` and `offerings.yaml` from `directory`;
    errors name each file as `<label>/<name>.yaml`."""

    def read(name: str) -> tuple[bytes, str]:
        return (directory / f"{name}.yaml").read_bytes(), f"{label}/{name}.yaml"

    return _build(
        _Entries(
            makers=_decode_file(*read("makers"), list[Maker]),
            models=_decode_file(*read("models"), list[Model]),
            hosts=_decode_file(*read("hosts"), list[Host]),
            offerings=_decode_file(*read("offerings"), list[Offering]),
        )
    )


def _decode_file(data: bytes, source: str, type_: type[list[T]]) -> tuple[_At[T], ...]:
    try:
        items = msgspec.yaml.decode(data, type=type_)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError; both carry `$` paths
        raise ConfigError(f"{source}: {exc}") from exc
    return tuple(_At(_normal(item), source, f"$[{i}]") for i, item in enumerate(items))


def _decode_overrides(overrides: Mapping[str, Any], source: str) -> _Entries:
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"{source}: expected a mapping with keys {', '.join(_SECTIONS)}")
    unknown = sorted(str(key) for key in overrides if key not in _SECTIONS)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"expected some of {', '.join(_SECTIONS)}"
        )

    def convert(section: str, type_: type[list[T]]) -> tuple[_At[T], ...]:
        value = overrides.get(section) or []
        try:
            items = msgspec.convert(value, type=type_)
        except msgspec.ValidationError as exc:
            message, sep, path = str(exc).rpartition(" - at `$")
            text = f"{message} - at `$.{section}{path}" if sep else f"{exc} - at `$.{section}`"
            raise ConfigError(f"{source}: {text}") from exc
        return tuple(
            _At(_normal(item), source, f"$.{section}[{i}]") for i, item in enumerate(items)
        )

    return _Entries(
        makers=convert("makers", list[Maker]),
        models=convert("models", list[Model]),
        hosts=convert("hosts", list[Host]),
        offerings=convert("offerings", list[Offering]),
    )


def _normal(entry: T) -> T:
    """An offering in the older single-price form (`prices: {...}` with `as_of` and `source`
    beside it) as a one-entry history; every other entry unchanged."""
    if not isinstance(entry, Offering) or not isinstance(entry.prices, PricePoint):
        return entry
    point = entry.prices
    if entry.as_of is not None or entry.source is not None:
        point = msgspec.structs.replace(
            point, as_of=point.as_of or entry.as_of, source=point.source or entry.source
        )
    normal: T = msgspec.structs.replace(entry, prices=(point,), as_of=None, source=None)
    return normal


def _key(entry: Maker | Model | Host | Offering) -> str | tuple[str, str]:
    """An entry's identity: its id, or `(model, host)` for an offering."""
    return (entry.model, entry.host) if isinstance(entry, Offering) else entry.id


def _label(entry: Maker | Model | Host | Offering) -> str:
    if isinstance(entry, Offering):
        return f"offering {entry.model!r} at {entry.host!r}"
    return f"{type(entry).__name__.lower()} {entry.id!r}"


def _index(
    items: Sequence[_At[T]], what: str, key: Callable[[T], Hashable] = _key, field: str = "id"
) -> dict[Any, _At[T]]:
    """Index entries by key; raise ConfigError at the second entry with a key already seen."""
    seen: dict[Any, _At[T]] = {}
    for at in items:
        k = key(at.entry)
        if k in seen:
            first = seen[k]
            raise at.error(field, f"duplicate {what} {k!r} (first at {first.source}: {first.path})")
        seen[k] = at
    return seen


def _replace(base: tuple[_At[T], ...], extra: tuple[_At[T], ...], what: str) -> tuple[_At[T], ...]:
    """Entries of `base` with those of `extra` swapped in by key (in place), then the new ones."""
    replacements = _index(extra, what, field="" if what == "offering" else "id")
    kept = [replacements.pop(_key(at.entry), at) for at in base]
    return (*kept, *replacements.values())


def _unknown(kind: str, value: str, known: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(value, list(known), n=3)
    hint = f"did you mean {' or '.join(map(repr, close))}?" if close else f"define it under {kind}s"
    return f"unknown {kind} {value!r} ({hint})"


def _country_problem(value: str, what: str) -> str | None:
    if value in ISO_3166_ALPHA2:
        return None
    hint = f"; did you mean {value.upper()!r}?" if value.upper() in ISO_3166_ALPHA2 else ""
    return f"{what} {value!r} is not an ISO 3166-1 alpha-2 code such as 'CN', 'US' or 'FR'{hint}"


def _check_slug(at: _At[Any], field: str, value: str) -> None:
    if not _SLUG.fullmatch(value):
        raise at.error(field, f"{value!r} must be lowercase letters, digits, '.', '_' or '-'")


def _check_offering(
    at: _At[Offering], models: Mapping[str, object], hosts: Mapping[str, object]
) -> None:
    offering = at.entry
    if offering.model not in models:
        raise at.error("model", _unknown("model", offering.model, models))
    if offering.host not in hosts:
        raise at.error("host", _unknown("host", offering.host, hosts))
    if not offering.upstream_model:
        raise at.error("upstream_model", "must name the model id the host's API expects")
    if offering.quantization is not None and offering.quantization not in QUANTIZATIONS:
        raise at.error(
            "quantization",
            f"{offering.quantization!r} is not one of {', '.join(QUANTIZATIONS)}",
        )
    previous: PricePoint | None = None
    for i, point in enumerate(offering.history):
        _check_prices(at, f"prices[{i}]", point)
        if point.since_time is not None and (
            point.since is None or not _CLOCK.fullmatch(point.since_time)
        ):
            raise at.error(f"prices[{i}].since_time", "must be 'HH:MM' (UTC) beside a `since` date")
        if previous is not None and (
            point.since is None
            or (previous.since is not None and _start(point) <= _start(previous))
        ):
            raise at.error(
                f"prices[{i}].since",
                "the price history must be in order of `since`, oldest first, with one entry "
                "per date (only the first may leave `since` out)",
            )
        previous = point


def _start(point: PricePoint) -> tuple[date, str]:
    assert point.since is not None
    return point.since, point.since_time or "00:00"


def _check_prices(at: _At[Offering], path: str, prices: Prices, window: bool = False) -> None:
    levels: list[tuple[str, Prices | PriceTier]] = [(path, prices)]
    levels += [(f"{path}.tiers[{i}]", tier) for i, tier in enumerate(prices.tiers)]
    for where, level in levels:
        for name in _PRICE_FIELDS:
            value: Decimal | None = getattr(level, name)
            if value is not None and (not value.is_finite() or value < 0):
                raise at.error(f"{where}.{name}", f"price {value} must be a finite number >= 0")
    floor = 0
    for i, tier in enumerate(prices.tiers):
        if tier.above_prompt_tokens <= floor:
            raise at.error(
                f"{path}.tiers[{i}].above_prompt_tokens",
                f"must be greater than {floor} (tiers ascend by prompt length)",
            )
        floor = tier.above_prompt_tokens
    if window and prices.windows:
        raise at.error(f"{path}.windows", "a time-of-day window cannot hold windows of its own")
    for i, win in enumerate(prices.windows):
        where = f"{path}.windows[{i}]"
        for name in ("start", "end"):
            if not _CLOCK.fullmatch(getattr(win, name)):
                raise at.error(f"{where}.{name}", "must be a UTC time of day as 'HH:MM'")
        if win.start == win.end:
            raise at.error(f"{where}.end", "a window must not start and end at the same time")
        bad = [d for d in win.days if d not in WEEKDAYS]
        if bad:
            raise at.error(f"{where}.days", f"{bad[0]!r} is not one of {', '.join(WEEKDAYS)}")
        _check_prices(at, where, win, window=True)


def _check_makers(entries: _Entries) -> dict[str, _At[Maker]]:
    makers = _index(entries.makers, "maker id")
    for at in entries.makers:
        _check_slug(at, "id", at.entry.id)
        if problem := _country_problem(at.entry.country, "country"):
            raise at.error("country", problem)
    return makers


def _check_models(entries: _Entries, makers: Mapping[str, object]) -> dict[str, _At[Model]]:
    models = _index(entries.models, "model id")
    for at in entries.models:
        model = at.entry
        maker_part, sep, slug = model.id.partition("/")
        if not sep or not _SLUG.fullmatch(slug) or not _SLUG.fullmatch(maker_part):
            raise at.error("id", f"{model.id!r} must be '<maker>/<slug>' in lowercase")
        if model.maker not in makers:
            raise at.error("maker", _unknown("maker", model.maker, makers))
        if maker_part != model.maker:
            raise at.error("id", f"{model.id!r} must start with its maker {model.maker + '/'!r}")
        if model.open_weights and not model.license:
            raise at.error("license", "an open-weights model needs its licence (SPDX id or name)")
        if model.context_length <= 0:
            raise at.error("context_length", "must be a positive number of tokens")
    for at in entries.models:
        successor = at.entry.successor
        if successor is not None and successor not in models:
            raise at.error("successor", _unknown("model", successor, models))
    return models


def _check_hosts(entries: _Entries) -> dict[str, _At[Host]]:
    hosts = _index(entries.hosts, "host id")
    for at in entries.hosts:
        host = at.entry
        _check_slug(at, "id", host.id)
        if host.jurisdiction == LOCAL_JURISDICTION:
            if host.id != LOCAL_HOST_ID:
                raise at.error(
                    "jurisdiction",
                    f"{LOCAL_JURISDICTION!r} is reserved for the embedded host {LOCAL_HOST_ID!r};"
                    " give the ISO 3166-1 alpha-2 code of the country this host serves from",
                )
        elif problem := _country_problem(host.jurisdiction, "jurisdiction"):
            raise at.error("jurisdiction", problem)
    return hosts


def _retired(offering: Offering, models: Mapping[str, _At[Model]]) -> bool:
    model = models.get(offering.model)
    return offering.retired is not None or (model is not None and model.entry.retired is not None)


def _build(entries: _Entries) -> Catalog:
    """Validate every entry and cross-reference; raise ConfigError at the first problem."""
    makers = _check_makers(entries)
    models = _check_models(entries, makers)
    hosts = _check_hosts(entries)
    offerings = _index(entries.offerings, "offering", field="")
    for at in entries.offerings:
        _check_offering(at, models, hosts)
    # A retired offering may share its upstream id with a live one (DeepSeek's legacy names):
    # the live one is what the id serves now.
    upstream = _index(
        [at for at in entries.offerings if not _retired(at.entry, models)],
        "(host, upstream_model)",
        lambda o: (o.host, o.upstream_model),
        "upstream_model",
    )
    for at in entries.offerings:
        key = (at.entry.host, at.entry.upstream_model)
        if _retired(at.entry, models) and key not in upstream:
            upstream[key] = at

    by_model: dict[str, list[Offering]] = {}
    by_host: dict[str, list[Offering]] = {}
    for at in entries.offerings:
        by_model.setdefault(at.entry.model, []).append(at.entry)
        by_host.setdefault(at.entry.host, []).append(at.entry)
    return Catalog(
        _entries=entries,
        _makers=MappingProxyType({k: v.entry for k, v in makers.items()}),
        _models=MappingProxyType({k: v.entry for k, v in models.items()}),
        _hosts=MappingProxyType({k: v.entry for k, v in hosts.items()}),
        _offerings=MappingProxyType({k: v.entry for k, v in offerings.items()}),
        _by_model=MappingProxyType({k: tuple(v) for k, v in by_model.items()}),
        _by_host=MappingProxyType({k: tuple(v) for k, v in by_host.items()}),
        _by_upstream=MappingProxyType({k: v.entry for k, v in upstream.items()}),
    )
