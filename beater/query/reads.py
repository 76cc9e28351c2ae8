"""Which document fields a query reads: what a percolator must index for it, and no more.

A document field no stored query reads cannot change any answer, so the
embedded percolator leaves it unanalysed (on a log or change stream the long
free-text fields are most of the analysis time).  ANY_FIELD reads every field.
"""

from __future__ import annotations

from typing import FrozenSet, Iterable, Optional, Set

from beater.query import ir
from beater.query.kinds import KEYWORD_SUFFIX


def fields_read(node: ir.Node) -> Optional[FrozenSet[str]]:
    """The field paths ``node`` reads (``.keyword`` sub-fields as written), or None if it reads every field."""
    out: Set[str] = set()
    return frozenset(out) if _collect(node, out) else None


def _collect(node: ir.Node, out: Set[str]) -> bool:
    """Add the fields ``node`` reads to ``out``; False as soon as it reads every field."""
    if isinstance(node, ir.Bool):
        return all(_collect(child, out) for child in (*node.must, *node.should, *node.must_not, *node.filter))
    if isinstance(node, (ir.MatchAll, ir.MatchNone, ir.Ids)):
        return True  # no document field
    field = getattr(node, "field", None)
    if field is None or field == ir.ANY_FIELD:
        return False  # every field (and, to be safe, any node kind this module does not know)
    out.add(field)
    return True


def source_paths(fields: Iterable[str]) -> FrozenSet[str]:
    """The paths of the source values that fill ``fields`` (``title.keyword`` is filled from ``title``)."""
    out: Set[str] = set()
    for field in fields:
        out.add(field)
        if field.endswith(KEYWORD_SUFFIX):
            out.add(field[: -len(KEYWORD_SUFFIX)])
    return frozenset(out)
