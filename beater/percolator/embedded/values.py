"""Query values on typed fields: a term's value read as a long, float or boolean field reads it.

A value that does not parse as the field's type matches nothing (Elasticsearch's
``lenient``), so each reader answers None for it.  Dates are :mod:`.dates`.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import regex

from beater.percolator.embedded.fields import parse_number, to_float32


def query_long(value: Any) -> Optional[int]:
    """A query value on a long field; None (no match) for non-numbers and numbers with decimals."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    number = parse_number(value)
    if number is None or not math.isfinite(number) or number != math.floor(number):
        return None
    if isinstance(value, str) and regex.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    return int(number)


def query_float(value: Any) -> Optional[float]:
    """A query value on a float field (32-bit)."""
    number = parse_number(value)
    return None if number is None else to_float32(number)


def query_boolean(value: Any) -> Optional[bool]:
    """A query value on a boolean field: true/false only."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    return None
