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

The optional native module ``_keys.c`` makes them when it is built (~300 keys per
recent-change event were ~110 us in Python, the largest cost of percolation);
:func:`python_document_keys` is the reference.
"""

from __future__ import annotations

from itertools import chain
from typing import AbstractSet, Any, Callable, Dict, FrozenSet, Optional, Set, Tuple

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


LONG_MARK, FLOAT_MARK, BOOL_MARK, DATE_MARK = "\x00l", "\x00f", "\x00b", "\x00d"  # typed terms start with these


def long_term(value: int) -> str:
    """The term of a long value."""
    return LONG_MARK + str(value)


def float_term(value: float) -> str:
    """The term of a float value."""
    return FLOAT_MARK + repr(value)


def bool_term(value: bool) -> str:
    """The term of a boolean value."""
    return BOOL_MARK + ("true" if value else "false")


def date_term(millis: int) -> str:
    """The term of a date (epoch milliseconds)."""
    return DATE_MARK + str(millis)


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


STAR = ir.ANY_FIELD + SEP
# Per ``wanted`` set: (path -> the path's key plan, the function making a missing one, the ``*``
# prefix strings); the native document_keys reads them (see _key_plans).
KeyPlan = Tuple[str, Optional[str], Optional[str], Optional[str]]
KeyPlans = Tuple[Dict[str, KeyPlan], Callable[[str], KeyPlan], Optional[str], Optional[str]]
_KEY_PLANS: Dict[Optional[KeyKinds], KeyPlans] = {}
_KEY_PLANS_KEPT = 32  # ``wanted`` changes as queries come and go; older plans are dropped past this many


def document_keys(doc: AnalysedDoc, any_field: bool = True, wanted: Optional[KeyKinds] = None) -> Set[str]:
    """Every key a query indexed under could need, for this document.

    Without ``any_field`` (no stored query reads ANY_FIELD) the ``*`` keys are left out.
    ``wanted``: the (kind, field) pairs of the text and keyword keys some query uses (kind
    TERM_KEYS, PREFIX_MARK or LONG_PREFIX_MARK; field ``*`` included, whose term keys are
    always made); None: every key.  The others are not made: most fields' keys go unused when
    ANY_FIELD queries make every field analysed, and they were near half of all keys.

    By the native module (``_keys.c``) when it is built, else :func:`python_document_keys`
    (the reference; tests/unit/test_native_keys.py holds the two equal).
    """
    if _native is None:
        return python_document_keys(doc, any_field, wanted)
    try:
        plans = _KEY_PLANS[wanted]
    except KeyError:
        if len(_KEY_PLANS) >= _KEY_PLANS_KEPT:
            _KEY_PLANS.clear()
        plans = _KEY_PLANS[wanted] = _key_plans(wanted)
    except TypeError:  # an unhashable set of pairs: planned for this call alone
        plans = _key_plans(wanted)
    by_path, make_plan, star_prefix, star_long = plans
    if any_field:
        return _native.document_keys(doc, STAR, star_prefix, star_long, by_path, make_plan)
    return _native.document_keys(doc, None, None, None, by_path, make_plan)


def _key_plans(wanted: Optional[KeyKinds]) -> KeyPlans:
    """What python_document_keys decides per path, for the native loops: a path's plan is ``path SEP``
    (the typed keys' start), then the strings its text/keyword keys start with, ``path SEP``, ``path
    SEP PREFIX_MARK`` and ``path SEP LONG_PREFIX_MARK``, None for those not made (each such key is one
    of them followed by a term or its start); made once per path and ``wanted``."""
    every = wanted is None

    def make_plan(path: str) -> KeyPlan:
        prefix = path + SEP
        return (
            prefix,
            prefix if every or (TERM_KEYS, path) in wanted else None,  # type: ignore[operator]
            prefix + PREFIX_MARK if every or (PREFIX_MARK, path) in wanted else None,  # type: ignore[operator]
            prefix + LONG_PREFIX_MARK if every or (LONG_PREFIX_MARK, path) in wanted else None,  # type: ignore[operator]
        )

    star_prefix = STAR + PREFIX_MARK if every or (PREFIX_MARK, ir.ANY_FIELD) in wanted else None  # type: ignore[operator]
    star_long = STAR + LONG_PREFIX_MARK if every or (LONG_PREFIX_MARK, ir.ANY_FIELD) in wanted else None  # type: ignore[operator]
    return {}, make_plan, star_prefix, star_long


def python_document_keys(doc: AnalysedDoc, any_field: bool = True, wanted: Optional[KeyKinds] = None) -> Set[str]:
    """:func:`document_keys` by the pure-Python loops (the reference of the native ones)."""
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
    """:func:`python_document_keys` without the ANY_FIELD keys.

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


try:
    from beater.percolator.embedded import _keys as _native  # type: ignore[attr-defined]  # a C extension without a stub
except ImportError:  # built without a C compiler: the pure-Python loops, same keys
    _native = None


def _configure(module: Any) -> None:
    """Give the native module the strings and lengths of the keys: they are defined here alone."""
    module.configure(
        sep=SEP, long_kind=LONG, long_mark=LONG_MARK, float_mark=FLOAT_MARK,
        true_term=bool_term(True), false_term=bool_term(False), date_mark=DATE_MARK,
        bucket_mark=BUCKET_MARK, date_bucket=DATE_BUCKET, prefix_length=PREFIX_LENGTH,
        long_prefix_length=LONG_PREFIX_LENGTH,
    )


if _native is not None:
    _configure(_native)

NATIVE = _native is not None
