"""Hits are written by orjson, byte for byte what ``json.dumps`` wrote (``beater/hits.py``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beater.hits import encode_hit, json_encode_hit, make_hit

CORPUS = Path(__file__).resolve().parents[2] / "examples" / "data" / "recentchange.ndjson"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def same_as_json(value: object) -> bool:
    try:
        expected = json_encode_hit(value)
    except (UnicodeEncodeError, ValueError, TypeError) as e:
        with pytest.raises(type(e)):
            encode_hit(value)
        return True
    return encode_hit(value) == expected


def test_every_recent_change_hit_is_the_bytes_json_wrote() -> None:
    for n, line in enumerate(CORPUS.read_bytes().splitlines()):
        hit = make_hit("wiki", json.loads(line), n, "2026-12-01T10:00:00.000Z", beater="3f2a9c1d")
        assert encode_hit(hit) == json_encode_hit(hit)


@pytest.mark.parametrize("value", [1.5e-07, 1e-300, 1e+16, 1.23e22, -0.0, 5e-324, float("nan"), float("inf"),
                                   -float("inf"), 2 ** 64, -(2 ** 63) - 1, 2 ** 70, "3e5", "x\ud800", "\u2028\x7f\x00"])
def test_values_orjson_writes_differently_are_written_by_json(value: object) -> None:
    assert same_as_json({"_source": {"v": value, "list": [value]}})


def test_every_character_is_escaped_as_json_escapes_it() -> None:
    text = "".join(chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF) + "\U0001F600\U0010FFFF"
    assert encode_hit({"t": text}) == json_encode_hit({"t": text})


@settings(max_examples=500, deadline=None)
@given(json_values)
def test_any_json_value_is_the_bytes_json_writes(value: object) -> None:
    assert same_as_json({"_source": value})


def test_nan_is_still_found_deep_inside() -> None:
    hit = {"_source": {"a": [{"b": [None, math.nan]}]}}
    assert encode_hit(hit) == b'{"_source":{"a":[{"b":[null,NaN]}]}}'
