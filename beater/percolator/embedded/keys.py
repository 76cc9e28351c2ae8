"""Presearch keys: what a document holds, in the terms queries are indexed under.

A key is ``field`` + ``\\x1f`` + ``term``.  A term is a text token or keyword value
as it is, or a typed term for the other kinds of field (numbers, booleans, dates,
each with a mark of its own so that ``1`` the token and ``1`` the long differ), the
bucket of a date, or the first PREFIX_LENGTH / LONG_PREFIX_LENGTH characters of a
token (for prefix and wildcard queries).

:func:`document_keys` makes a document's keys once per document: every text token
and keyword value under its field and under ``*`` (ANY_FIELD queries are indexed
under ``*``), plus the typed keys of its numbers, booleans and dates.  The other
half, which keys a *query* needs, is :mod:`.extraction`.
"""

from __future__ import annotations

from itertools import chain
from typing import AbstractSet, Callable, FrozenSet, Optional, Set, Tuple

from beater.percolator.embedded.fields import LONG, AnalysedDoc
from beater.query import ir

SEP = "\x1f"
ANY = None  # extraction result: no key set, always check
NEVER: FrozenSet[str] = frozenset()
Keys = Optional[FrozenSet[str]]
Weight = Callable[[str], float]


def prior_weight(k: str) -> float:
    """A document-frequency guess before any document was seen: longer terms are rarer (always < 1).

    (Presearcher.cost inlines it.)"""
    return 1.0 / (2 + len(k) - k.find(SEP))


def key(field: str, term: str) -> str:
    """The presearch key of ``term`` in ``field``."""
    return field + SEP + term


def long_term(value: int) -> str:
    return "\x00l" + str(value)


def float_term(value: float) -> str:
    return "\x00f" + repr(value)


def bool_term(value: bool) -> str:
    return "\x00b" + ("true" if value else "false")


def date_term(millis: int) -> str:
    return "\x00d" + str(millis)


DATE_BUCKET = 1 << 35  # milliseconds (~398 days): a date period is indexed under the buckets it spans
MAX_DATE_BUCKETS = 4  # a longer period is checked against every document
BUCKET_MARK = "\x00D"


def date_bucket_term(millis: int) -> str:
    return BUCKET_MARK + str(millis // DATE_BUCKET)


PREFIX_LENGTH = 3  # prefix and wildcard queries with a literal start this long are indexed under it
PREFIX_MARK = "\x00p"
LONG_PREFIX_LENGTH = 5  # ... and under this longer start when they have one (far fewer terms share it)
LONG_PREFIX_MARK = "\x00q"


def prefix_term(value: str) -> str:
    """The key term of a start of PREFIX_LENGTH characters, or LONG_PREFIX_LENGTH when ``value`` has it."""
    if len(value) >= LONG_PREFIX_LENGTH:
        return LONG_PREFIX_MARK + value[:LONG_PREFIX_LENGTH]
    return PREFIX_MARK + value[:PREFIX_LENGTH]


def literal_prefix(pattern: str) -> str:
    """The literal start of a Lucene wildcard pattern (up to the first ``*``, ``?`` or escape)."""
    for i, c in enumerate(pattern):
        if c in "*?\\":
            return pattern[:i]
    return pattern


TERM_KEYS = ""  # with PREFIX_MARK and LONG_PREFIX_MARK, the kinds of a field's text/keyword keys (see verification.keyed_fields)
KeyKinds = AbstractSet[Tuple[str, str]]


def document_keys(doc: AnalysedDoc, any_field: bool = True, wanted: Optional[KeyKinds] = None) -> Set[str]:
    """Every key a query indexed under could need, for this document.

    Without ``any_field`` (no stored query reads ANY_FIELD) the ``*`` keys are left out.
    ``wanted``: the (kind, field) pairs of the text and keyword keys some query uses (kind
    TERM_KEYS, PREFIX_MARK or LONG_PREFIX_MARK; field ``*`` included, whose term keys are
    always made); None: every key.  The others are not made: most fields' keys go unused when
    ANY_FIELD queries make every field analysed, and they were near half of all keys.
    """
    if not any_field:
        return _field_keys(doc, wanted)
    keys: Set[str] = set()
    add = keys.add
    star = ir.ANY_FIELD + SEP
    every = wanted is None
    star_prefix = star + PREFIX_MARK if every or (PREFIX_MARK, ir.ANY_FIELD) in wanted else None  # type: ignore[operator]
    star_long = star + LONG_PREFIX_MARK if every or (LONG_PREFIX_MARK, ir.ANY_FIELD) in wanted else None  # type: ignore[operator]
    # Text tokens (the keys of a field's postings) and keyword values make the same keys.
    for path, terms in chain(doc.tokens.items(), doc.keywords.items()):
        prefix = path + SEP
        field_term = prefix if every or (TERM_KEYS, path) in wanted else None  # type: ignore[operator]
        field_prefix = prefix + PREFIX_MARK if every or (PREFIX_MARK, path) in wanted else None  # type: ignore[operator]
        field_long = prefix + LONG_PREFIX_MARK if every or (LONG_PREFIX_MARK, path) in wanted else None  # type: ignore[operator]
        starts = field_prefix or star_prefix
        long_starts = field_long or star_long
        for term in terms:
            if field_term:
                add(field_term + term)
            add(star + term)
            if starts and len(term) >= PREFIX_LENGTH:
                start = term[:PREFIX_LENGTH]
                if field_prefix:
                    add(field_prefix + start)
                if star_prefix:
                    add(star_prefix + start)
            if long_starts and len(term) >= LONG_PREFIX_LENGTH:
                start = term[:LONG_PREFIX_LENGTH]
                if field_long:
                    add(field_long + start)
                if star_long:
                    add(star_long + start)
    for path, numbers in doc.numbers.items():
        kind = doc.types.get(path)
        for number in numbers:
            term = long_term(int(number)) if kind == LONG else float_term(number)
            add(key(path, term))
            add(star + term)
    for path, flags in doc.booleans.items():
        for flag in flags:
            add(key(path, bool_term(flag)))
            add(star + bool_term(flag))
    for path, dates in doc.dates.items():
        for millis in dates:
            add(key(path, date_term(millis)))
            add(star + date_term(millis))
            add(key(path, date_bucket_term(millis)))
            add(star + date_bucket_term(millis))
    return keys


def _field_keys(doc: AnalysedDoc, wanted: Optional[KeyKinds]) -> Set[str]:
    """:func:`document_keys` without the ANY_FIELD keys.

    The same loops without the ``*`` twin of each key: deriving the twins from these keys
    afterwards, or branching per term, made document_keys half again as slow, and it runs
    for every document.
    """
    keys: Set[str] = set()
    add = keys.add
    every = wanted is None
    for path, terms in chain(doc.tokens.items(), doc.keywords.items()):
        prefix = path + SEP
        field_term = prefix if every or (TERM_KEYS, path) in wanted else None  # type: ignore[operator]
        field_prefix = prefix + PREFIX_MARK if every or (PREFIX_MARK, path) in wanted else None  # type: ignore[operator]
        field_long = prefix + LONG_PREFIX_MARK if every or (LONG_PREFIX_MARK, path) in wanted else None  # type: ignore[operator]
        if not (field_term or field_prefix or field_long):
            continue
        for term in terms:
            if field_term:
                add(field_term + term)
            if field_prefix and len(term) >= PREFIX_LENGTH:
                add(field_prefix + term[:PREFIX_LENGTH])
            if field_long and len(term) >= LONG_PREFIX_LENGTH:
                add(field_long + term[:LONG_PREFIX_LENGTH])
    for path, numbers in doc.numbers.items():
        kind = doc.types.get(path)
        for number in numbers:
            add(key(path, long_term(int(number)) if kind == LONG else float_term(number)))
    for path, flags in doc.booleans.items():
        for flag in flags:
            add(key(path, bool_term(flag)))
    for path, dates in doc.dates.items():
        for millis in dates:
            add(key(path, date_term(millis)))
            add(key(path, date_bucket_term(millis)))
    return keys
