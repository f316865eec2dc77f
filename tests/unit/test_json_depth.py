"""`DepthGauge`: decoded JSON deeper than the limit is refused, exactly at the limit, for any
limit a config may set; the gauge is reusable and keeps no reference to what it measured."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import orjson
import pytest

from crossroads.ingress.body import ORJSON_MAX_DEPTH, DepthGauge


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


@pytest.mark.parametrize("limit", [1, 2, 8, 64, ORJSON_MAX_DEPTH - 1])
def test_the_limit_is_exact(limit: int) -> None:
    gauge = DepthGauge(limit)
    assert gauge.within(nested(limit))
    assert not gauge.within(nested(limit + 1))
    assert gauge.within(nested(limit))  # reusable after a refusal
    wide = {"a": [nested(limit - 2)] * 3, "b": "x" * 1000, "c": [1, 2.5, None, True]}
    assert gauge.within(wide) == (limit >= 2)


def test_scalars_and_empty_containers() -> None:
    gauge = DepthGauge(1)
    assert gauge.within(1) and gauge.within("s") and gauge.within(None)
    assert gauge.within({}) and gauge.within([])
    assert not gauge.within([[]])


def test_far_deeper_than_orjson_encodes() -> None:
    deep = orjson.loads(b"[" * 1024 + b"]" * 1024)  # the most orjson.loads accepts
    assert not DepthGauge(64).within(deep)


def test_any_decoded_integer_is_measured_not_refused() -> None:
    gauge = DepthGauge(4)
    for text in (b"18446744073709551615", b"-9223372036854775808", b"1e308"):
        assert gauge.within({"n": orjson.loads(text)})


@pytest.mark.parametrize("limit", [0, -1, ORJSON_MAX_DEPTH, 1000])
def test_limits_orjson_cannot_measure_are_refused(limit: int) -> None:
    with pytest.raises(ValueError):
        DepthGauge(limit)


def test_the_gauge_keeps_nothing_it_measured() -> None:
    class Probe(dict[str, Any]):
        pass

    gauge = DepthGauge(8)
    probe = Probe(a=1)
    ref = weakref.ref(probe)
    assert gauge.within(probe)
    del probe
    gc.collect()
    assert ref() is None
