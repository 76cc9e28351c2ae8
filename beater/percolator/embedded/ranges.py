"""Ranges on long fields: their integer bounds, and an index from a value to the ranges holding it.

A query with no key set but a required range on a long field (``namespace:[0 TO 3]``)
is indexed under that range rather than checked against every document; so is one
whose keys turned out to be held by a quarter of the documents or more
(:meth:`Presearcher.too_common`).  The native core keeps the same ranges.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, Optional, Set, Tuple

import numpy

from beater.percolator.embedded.fields import LONG, LONG_MAX, LONG_MIN, parse_number
from beater.query import ir


NO_RANGE = (1, 0)  # bounds no value is within


def long_range_bounds(node: ir.Range) -> Optional[Tuple[int, int]]:
    """Inclusive integer bounds of a range on a long field, as the compiled predicate computes them
    (NO_RANGE if a bound does not parse); None if they are not plain finite numbers."""
    if node.format is not None:
        return None
    lower = node.gt if node.gt is not None else node.gte
    upper = node.lt if node.lt is not None else node.lte
    lo: float = LONG_MIN
    hi: float = LONG_MAX
    if lower is not None:
        n = parse_number(lower)
        if n is None:
            return NO_RANGE
        if not math.isfinite(n):
            return None
        lo = max(math.ceil(n) if node.gt is None else math.floor(n) + 1, LONG_MIN)
    if upper is not None:
        n = parse_number(upper)
        if n is None:
            return NO_RANGE
        if not math.isfinite(n):
            return None
        hi = min(math.floor(n) if node.lt is None else math.ceil(n) - 1, LONG_MAX)
    if lo > hi:
        return NO_RANGE
    return int(lo), int(hi)


def range_clause(node: ir.Node, types: Dict[str, str]) -> Optional[Tuple[str, int, int, bool]]:
    """(field, low, high, exact) of a range on a long field that ``node`` needs (``exact``: the range is
    the whole query), None if there is none."""
    if isinstance(node, ir.Range):
        if node.field != ir.ANY_FIELD and types.get(node.field) == LONG:
            bounds = long_range_bounds(node)
            if bounds is not None:
                return node.field, bounds[0], bounds[1], True
        return None
    if isinstance(node, ir.Bool):
        for clause in tuple(node.must) + tuple(node.filter):
            found = range_clause(clause, types)
            if found is not None:
                return found[0], found[1], found[2], False
    return None


class RangeIndex:
    """Ranges of queries on one long field; a value finds the ranges holding it (vectorised)."""

    def __init__(self) -> None:
        self.entries: Dict[int, Tuple[int, int, bool]] = {}
        self.arrays: Optional[Tuple[Any, Any, Any, Any]] = None

    def add(self, number: int, low: int, high: int, exact: bool) -> None:
        self.entries[number] = (low, high, exact)
        self.arrays = None

    def remove(self, number: int) -> None:
        if self.entries.pop(number, None) is not None:
            self.arrays = None

    def find(self, values: Iterable[float], exact: Set[int], found: Set[int]) -> None:
        """Add the queries whose range holds one of ``values`` to ``exact`` or ``found``."""
        arrays = self.arrays
        if arrays is None:
            items = [(n, lo, hi, ex) for n, (lo, hi, ex) in self.entries.items() if lo <= hi]
            arrays = self.arrays = (
                numpy.array([lo for _, lo, _, _ in items], dtype=numpy.int64),
                numpy.array([hi for _, _, hi, _ in items], dtype=numpy.int64),
                numpy.array([n for n, _, _, _ in items], dtype=numpy.int64),
                numpy.array([ex for _, _, _, ex in items], dtype=bool),
            )
        lows, highs, numbers, exacts = arrays
        if not len(numbers):
            return
        for v in values:
            mask = (lows <= v) & (highs >= v)
            if mask.any():
                hit_numbers = numbers[mask]
                hit_exact = exacts[mask]
                exact.update(hit_numbers[hit_exact].tolist())
                found.update(hit_numbers[~hit_exact].tolist())
