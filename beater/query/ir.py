"""The query tree every front end (Lucene syntax, query DSL) is parsed into.

One tree serves three consumers: the canonicaliser (identity), the embedded
percolator (compiled matchers) and the Elasticsearch backend (DSL rendering).
Nodes are frozen dataclasses, so trees are hashable values that can be compared,
deduplicated and used as dictionary keys; transformations return new trees.

Semantics follow Elasticsearch.  ``field`` is a dotted path into the document
(``meta.domain``), a ``.keyword`` sub-field (``user.keyword``) or ``ANY_FIELD``
(``*``: every field, ``.keyword`` sub-fields included, lenient on type
mismatches, as ``query_string`` with ``default_field: *`` does).  Whether a
field is text, keyword, number, date or boolean is decided by the index's field
model at match time, never by the tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field as dc_field
from typing import Literal, Optional, Tuple, Union

ANY_FIELD = "*"

Operator = Literal["or", "and"]
RangeValue = Union[str, int, float]


@dataclass(frozen=True)
class Node:
    """Base class of every query node."""


@dataclass(frozen=True)
class MatchAll(Node):
    """Every document (``*:*``, ``match_all``, the empty query)."""


@dataclass(frozen=True)
class MatchNone(Node):
    """No document (``match_none``; also what an all-negative group can reduce to)."""


@dataclass(frozen=True)
class Match(Node):
    """Full-text match, as ES ``match`` and a bare ``query_string`` term.

    ``text`` is analysed with the field's search analyzer (standard analyzer on
    text fields, whole value on keyword fields, parsed value on numbers, dates and
    booleans).  When analysis yields several tokens they are combined with
    ``operator`` (honouring ``minimum_should_match`` if given); ``fuzziness``
    (``"AUTO"``, ``"0"``, ``"1"``, ``"2"``) applies per token.
    """

    field: str
    text: str
    operator: Operator = "or"
    minimum_should_match: Optional[str] = None
    fuzziness: Optional[str] = None


@dataclass(frozen=True)
class Phrase(Node):
    """Phrase match (``"big cat"~2``, ``match_phrase``): analysed tokens in order within ``slop``."""

    field: str
    text: str
    slop: int = 0


@dataclass(frozen=True)
class Term(Node):
    """Exact term, not analysed (ES ``term``): one token of a text field, or the whole keyword value."""

    field: str
    value: Union[str, int, float, bool]
    case_insensitive: bool = False


@dataclass(frozen=True)
class Terms(Node):
    """Any of several exact terms (ES ``terms``)."""

    field: str
    values: Tuple[Union[str, int, float, bool], ...]


@dataclass(frozen=True)
class Prefix(Node):
    """Terms starting with ``value`` (``fo*``, ES ``prefix``); on text fields a token, on keyword the value."""

    field: str
    value: str
    case_insensitive: bool = False


@dataclass(frozen=True)
class Wildcard(Node):
    """Lucene wildcard pattern with ``?`` and ``*`` against single terms."""

    field: str
    pattern: str
    case_insensitive: bool = False


@dataclass(frozen=True)
class Regexp(Node):
    """Lucene regular expression (anchored, Lucene RegExp syntax) against single terms."""

    field: str
    pattern: str
    case_insensitive: bool = False


@dataclass(frozen=True)
class Fuzzy(Node):
    """Terms within a Levenshtein (Damerau when ``transpositions``) distance of ``value``."""

    field: str
    value: str
    fuzziness: str = "AUTO"
    prefix_length: int = 0
    transpositions: bool = True


@dataclass(frozen=True)
class Range(Node):
    """Range over numbers, dates (with optional ``format``) or strings; absent bounds are open."""

    field: str
    gt: Optional[RangeValue] = None
    gte: Optional[RangeValue] = None
    lt: Optional[RangeValue] = None
    lte: Optional[RangeValue] = None
    format: Optional[str] = None


@dataclass(frozen=True)
class Exists(Node):
    """Documents with at least one indexed value in ``field`` (``_exists_:f``, ``f:*``, ES ``exists``)."""

    field: str


@dataclass(frozen=True)
class Ids(Node):
    """Documents whose ``_id`` is one of ``values``."""

    values: Tuple[str, ...]


@dataclass(frozen=True)
class Bool(Node):
    """Boolean combination with Elasticsearch's ``bool`` semantics.

    ``must`` and ``filter`` clauses are required, ``must_not`` forbidden.  When
    ``minimum_should_match`` is None, ``should`` clauses are optional if there is
    any ``must``/``filter`` clause and at least one is required otherwise (ES
    default); a given value is a resolved integer count.  A Bool with only
    ``must_not`` clauses matches every document that none of them matches.
    """

    must: Tuple[Node, ...] = ()
    should: Tuple[Node, ...] = ()
    must_not: Tuple[Node, ...] = ()
    filter: Tuple[Node, ...] = ()
    minimum_should_match: Optional[int] = dc_field(default=None)


__all__ = [
    "ANY_FIELD",
    "Bool",
    "Exists",
    "Fuzzy",
    "Ids",
    "Match",
    "MatchAll",
    "MatchNone",
    "Node",
    "Operator",
    "Phrase",
    "Prefix",
    "Range",
    "RangeValue",
    "Regexp",
    "Term",
    "Terms",
    "Wildcard",
]
