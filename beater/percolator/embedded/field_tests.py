"""Per-field tests: how a leaf query tests one field of the analysed document, by the field's type.

A leaf's test of a field depends on the field's type, known only when a document
shows the field: :class:`FieldTest` builds it per (type, ANY_FIELD or not) when it
is first needed and caches it.  :func:`field_predicate` applies it to the leaf's
field, or to every field of the document for ANY_FIELD.  The tests of single
terms they are built from are :mod:`.fuzzy` and :mod:`.regexp`.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

from beater.percolator.embedded.dates import query_date_span
from beater.percolator.embedded.fields import BOOLEAN, DATE, FLOAT, LONG, LONG_MAX, LONG_MIN, AnalysedDoc
from beater.percolator.embedded.values import query_boolean, query_float, query_long
from beater.query import ir

Predicate = Callable[[AnalysedDoc], bool]
TermTest = Callable[[str], bool]


class FieldTest:
    """How one leaf query tests one field of a given type; built lazily per type and cached."""

    __slots__ = ("build", "cache")

    def __init__(self, build: Callable[[str, bool], Optional[Callable[[AnalysedDoc, str], bool]]]) -> None:
        self.build = build
        self.cache: Dict[Tuple[str, bool], Optional[Callable[[AnalysedDoc, str], bool]]] = {}

    def get(self, kind: str, any_field: bool) -> Optional[Callable[[AnalysedDoc, str], bool]]:
        """The test of a field of type ``kind`` (None: such a field cannot match)."""
        key = (kind, any_field)
        try:
            return self.cache[key]
        except KeyError:
            test = self.cache[key] = self.build(kind, any_field)
            return test


def field_predicate(field: str, test: FieldTest) -> Predicate:
    """Apply ``test`` to ``field``, or to every field of the document for ANY_FIELD."""
    if field == ir.ANY_FIELD:
        def any_field(doc: AnalysedDoc) -> bool:
            for path, kind in doc.fields_of_type():
                check = test.get(kind, True)
                if check is not None and check(doc, path):
                    return True
            return False
        return any_field

    def one_field(doc: AnalysedDoc) -> bool:
        kind = doc.types.get(field)
        if kind is None or field not in doc.present:
            return False
        check = test.get(kind, False)
        return check is not None and check(doc, field)
    return one_field


def tokens_any(test: TermTest) -> Callable[[AnalysedDoc, str], bool]:
    """Whether one of the field's text tokens passes ``test``."""
    def check(doc: AnalysedDoc, path: str) -> bool:
        postings = doc.tokens.get(path)
        return postings is not None and any(test(token) for token in postings)
    return check


def keywords_any(test: TermTest) -> Callable[[AnalysedDoc, str], bool]:
    """Whether one of the field's keyword values passes ``test``."""
    def check(doc: AnalysedDoc, path: str) -> bool:
        return any(test(value) for value in doc.keywords.get(path, ()))
    return check


def numbers_in(low: float, high: float, low_inclusive: bool = True, high_inclusive: bool = True) -> Callable[[AnalysedDoc, str], bool]:
    """Whether one of the field's numbers is within the bounds."""
    def check(doc: AnalysedDoc, path: str) -> bool:
        for v in doc.numbers.get(path, ()):
            if (v > low or (low_inclusive and v == low)) and (v < high or (high_inclusive and v == high)):
                return True
        return False
    return check


def dates_in(low: int, high: int) -> Callable[[AnalysedDoc, str], bool]:
    """Whether one of the field's dates (epoch millis) is within the inclusive bounds."""
    def check(doc: AnalysedDoc, path: str) -> bool:
        return any(low <= v <= high for v in doc.dates.get(path, ()))
    return check


def boolean_is(flag: bool) -> Callable[[AnalysedDoc, str], bool]:
    """Whether the field holds ``flag``."""
    def check(doc: AnalysedDoc, path: str) -> bool:
        return flag in doc.booleans.get(path, ())
    return check


def exact_value_test(value: Any, kind: str) -> Optional[Callable[[AnalysedDoc, str], bool]]:
    """A term-level test of ``value`` on a long/float/date/boolean field."""
    if kind == LONG:
        number = query_long(value)
        if number is None or not (LONG_MIN <= number <= LONG_MAX):
            return None
        return numbers_in(number, number)
    if kind == FLOAT:
        f = query_float(value)
        return None if f is None else numbers_in(f, f)
    if kind == DATE:
        span = query_date_span(value)
        return None if span is None else dates_in(*span)
    if kind == BOOLEAN:
        flag = query_boolean(value)
        return None if flag is None else boolean_is(flag)
    return None
