"""Candidate selection in the manner of Lucene's Monitor: match a document only against queries it could match.

Each query is indexed under a set of *keys* (``field`` + ``\\x1f`` + ``term``) such
that any document it matches holds at least one of them: the tokens of one
required clause of a conjunction (the one with the fewest, longest keys), every
key of a disjunction.  Queries without such a set (pure negations, ranges,
exists, wildcards, fuzzy, date terms, match_all) go on the always-check list.

A document's keys are computed once per document: every text token and keyword
value under its field and under ``*`` (ANY_FIELD queries are indexed under
``*``), plus typed keys for numbers and booleans.  The candidates are the union of
the postings of the document's keys and the always-check list, so the cost per
document grows with the queries that share its terms, not with all queries.

The keys of a query on a named field depend on the field's type; a query that
names a field the index has not seen yet is indexed as "never" and re-extracted
when the field is first mapped (:class:`QueryIndex` watches those fields).
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple, Union

from beater.percolator.embedded.analysis import analyze_cached, lowercase
from beater.percolator.embedded.fields import BOOLEAN, DATE, FLOAT, KEYWORD, LONG, OBJECT, TEXT, AnalysedDoc, text_of
from beater.percolator.embedded.matcher import Predicate, compile_query, query_boolean, query_date_span, query_float, query_long
from beater.query import ir

SEP = "\x1f"
ANY = None  # extraction result: no key set, always check
NEVER: FrozenSet[str] = frozenset()
Keys = Optional[FrozenSet[str]]
Weight = Callable[[str], float]


def prior_weight(k: str) -> float:
    """A document-frequency guess before any document was seen: longer terms are rarer (always < 1)."""
    return 1.0 / (2 + len(k) - k.find(SEP))


def _static_weight(k: str) -> float:
    return prior_weight(k)


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


PREFIX_LENGTH = 3  # prefix and wildcard queries with a literal start this long are indexed under it
PREFIX_MARK = "\x00p"


def prefix_term(value: str) -> str:
    return PREFIX_MARK + value[:PREFIX_LENGTH]


def literal_prefix(pattern: str) -> str:
    """The literal start of a Lucene wildcard pattern (up to the first ``*``, ``?`` or escape)."""
    for i, c in enumerate(pattern):
        if c in "*?\\":
            return pattern[:i]
    return pattern


def document_keys(doc: AnalysedDoc) -> Set[str]:
    """Every key a query indexed under could need, for this document."""
    keys: Set[str] = set()
    add = keys.add
    star = ir.ANY_FIELD + SEP
    star_prefix = star + PREFIX_MARK
    for path, postings in doc.tokens.items():
        prefix = path + SEP
        field_prefix = prefix + PREFIX_MARK
        for token in postings:
            add(prefix + token)
            add(star + token)
            if len(token) >= PREFIX_LENGTH:
                start = token[:PREFIX_LENGTH]
                add(field_prefix + start)
                add(star_prefix + start)
    for path, values in doc.keywords.items():
        prefix = path + SEP
        field_prefix = prefix + PREFIX_MARK
        for value in values:
            add(prefix + value)
            add(star + value)
            if len(value) >= PREFIX_LENGTH:
                start = value[:PREFIX_LENGTH]
                add(field_prefix + start)
                add(star_prefix + start)
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
    return keys


# --- extraction ----------------------------------------------------------------------------------

def _union(parts: Iterable[Keys]) -> Keys:
    out: Set[str] = set()
    for part in parts:
        if part is ANY:
            return ANY
        out |= part
    return frozenset(out)


def _tokens_keys(field: str, tokens: Tuple[str, ...], conjunctive: bool, weight: Weight = _static_weight) -> Keys:
    if not tokens:
        return NEVER
    if conjunctive:
        return frozenset((min((key(field, t) for t in tokens), key=weight),))
    return frozenset(key(field, t) for t in tokens)


def _value_keys(field: str, kind: str, value: object) -> Keys:
    """Keys of an exact value on a long/float/boolean/date field (ANY for date periods)."""
    if kind == LONG:
        n = query_long(value)
        return NEVER if n is None else frozenset((key(field, long_term(n)),))
    if kind == FLOAT:
        f = query_float(value)
        return NEVER if f is None else frozenset((key(field, float_term(f)),))
    if kind == BOOLEAN:
        b = query_boolean(value)
        return NEVER if b is None else frozenset((key(field, bool_term(b)),))
    if kind == DATE:
        span = query_date_span(value)
        if span is None:
            return NEVER
        return frozenset((key(field, date_term(span[0])),)) if span[0] == span[1] else ANY
    return NEVER


def _any_field_value_keys(value: object) -> Keys:
    """Keys under ``*`` of an exact value on every non-text, non-keyword kind of field."""
    return _union(_value_keys(ir.ANY_FIELD, kind, value) for kind in (LONG, FLOAT, BOOLEAN, DATE))


class Extractor:
    """Computes a query's keys against the current field types; records the unmapped fields it met."""

    def __init__(self, types: Dict[str, str], weight: Weight = _static_weight) -> None:
        self.types = types
        self.weight = weight
        self.unmapped: Set[str] = set()

    def cost(self, keys: FrozenSet[str]) -> float:
        """Expected number of documents holding one of ``keys`` (disjunction: the sum)."""
        weight = self.weight
        return sum(weight(k) for k in keys)

    def kind(self, field: str) -> Optional[str]:
        kind = self.types.get(field)
        if kind is None:
            self.unmapped.add(field)
        return kind

    def extract(self, node: ir.Node) -> Keys:
        method = getattr(self, "_" + type(node).__name__, None)
        return ANY if method is None else method(node)

    def _MatchAll(self, node: ir.MatchAll) -> Keys:
        return ANY

    def _MatchNone(self, node: ir.MatchNone) -> Keys:
        return NEVER

    def _text_like(self, field: str, text: str, conjunctive: bool, fuzzy: bool) -> Keys:
        if field == ir.ANY_FIELD:
            if fuzzy:
                return ANY
            parts = [_tokens_keys(field, analyze_cached(text), conjunctive, self.weight), frozenset((key(field, text),)), _any_field_value_keys(text)]
            return _union(parts)
        kind = self.kind(field)
        if kind is None or kind == OBJECT:
            return NEVER
        if fuzzy and kind in (TEXT, KEYWORD):
            return ANY
        if kind == TEXT:
            return _tokens_keys(field, analyze_cached(text), conjunctive, self.weight)
        if kind == KEYWORD:
            return frozenset((key(field, text),))
        return _value_keys(field, kind, text)

    def _Match(self, node: ir.Match) -> Keys:
        text = node.text if isinstance(node.text, str) else text_of(node.text)
        return self._text_like(node.field, text, node.operator == "and", node.fuzziness is not None)

    def _Phrase(self, node: ir.Phrase) -> Keys:
        return self._text_like(node.field, node.text, True, False)

    def _values(self, field: str, values: Tuple[object, ...], case_insensitive: bool) -> Keys:
        if case_insensitive:
            return ANY
        if field == ir.ANY_FIELD:
            return _union([frozenset(key(field, text_of(v)) for v in values)] + [_any_field_value_keys(v) for v in values])
        kind = self.kind(field)
        if kind is None or kind == OBJECT:
            return NEVER
        if kind in (TEXT, KEYWORD):
            return frozenset(key(field, text_of(v)) for v in values)
        return _union(_value_keys(field, kind, v) for v in values)

    def _Term(self, node: ir.Term) -> Keys:
        return self._values(node.field, (node.value,), node.case_insensitive)

    def _Terms(self, node: ir.Terms) -> Keys:
        return self._values(node.field, tuple(node.values), False)

    def _prefix_keys(self, field: str, start: str, case_insensitive: bool) -> Keys:
        if case_insensitive or len(start) < PREFIX_LENGTH:
            return ANY
        if field == ir.ANY_FIELD:
            return frozenset({key(field, prefix_term(start)), key(field, prefix_term(lowercase(start)))})
        kind = self.kind(field)
        if kind in (TEXT, KEYWORD):
            return frozenset((key(field, prefix_term(start)),))
        return NEVER

    def _Prefix(self, node: ir.Prefix) -> Keys:
        return self._prefix_keys(node.field, node.value, node.case_insensitive)

    def _Wildcard(self, node: ir.Wildcard) -> Keys:
        return self._prefix_keys(node.field, literal_prefix(node.pattern), node.case_insensitive)

    def _Bool(self, node: ir.Bool) -> Keys:
        required = [self.extract(c) for c in tuple(node.must) + tuple(node.filter)]
        for c in node.must_not:
            self._note_fields(c)
        keyed = [r for r in required if r is not ANY]
        if keyed:
            return min(keyed, key=self.cost)
        msm = node.minimum_should_match
        shoulds_required = bool(node.should) and ((msm is None and not required) or (msm is not None and (msm >= 1 or not required)))
        should_keys = [self.extract(c) for c in node.should]
        if shoulds_required:
            return _union(should_keys)
        return ANY

    def _note_fields(self, node: ir.Node) -> None:
        """Visit a negated clause only to record the unmapped fields it names."""
        self.extract(node)


def is_exact(node: ir.Node, types: Dict[str, str]) -> bool:
    """Whether holding one of the node's keys is the whole condition (no verification needed)."""
    if isinstance(node, (ir.Match, ir.Phrase)):
        if isinstance(node, ir.Match) and (node.fuzziness is not None or node.minimum_should_match is not None):
            return False
        text = node.text if isinstance(node.text, str) else text_of(node.text)
        if node.field == ir.ANY_FIELD:
            return analyze_cached(text) == (text,) and _any_field_value_keys(text) == NEVER
        kind = types.get(node.field)
        if kind == TEXT:
            return len(analyze_cached(text)) == 1
        return kind in (KEYWORD, LONG, FLOAT, BOOLEAN)
    if isinstance(node, (ir.Term, ir.Terms)):
        if isinstance(node, ir.Term) and node.case_insensitive:
            return False
        return types.get(node.field) in (TEXT, KEYWORD, LONG, FLOAT, BOOLEAN)
    return False


def extract_keys(node: ir.Node, types: Dict[str, str], weight: Weight = _static_weight) -> Tuple[Keys, Set[str]]:
    """(keys or None for always-check, named fields that are not mapped yet); ``weight`` estimates a key's frequency."""
    extractor = Extractor(types, weight)
    keys = extractor.extract(node)
    return keys, extractor.unmapped


def _leaf_fields(node: ir.Node) -> Iterable[str]:
    if isinstance(node, ir.Bool):
        for child in tuple(node.must) + tuple(node.filter) + tuple(node.should) + tuple(node.must_not):
            yield from _leaf_fields(child)
    else:
        field = getattr(node, "field", None)
        if isinstance(field, str) and field != ir.ANY_FIELD:
            yield field


def unmapped_fields(node: ir.Node, types: Dict[str, str]) -> Set[str]:
    """Every named field of ``node`` the field model does not know yet."""
    return {f for f in _leaf_fields(node) if f not in types}


class Presearcher:
    """Postings from keys to query numbers, and the always-check list."""

    def __init__(self) -> None:
        self.postings: Dict[str, List[int]] = {}
        self.always: Set[int] = set()
        self.indexed: Dict[int, Keys] = {}

    def add(self, number: int, keys: Keys) -> None:
        """Index query ``number`` under ``keys`` (None: always check; empty: never)."""
        self.remove(number)
        self.indexed[number] = keys
        if keys is ANY:
            self.always.add(number)
            return
        for k in keys:
            self.postings.setdefault(k, []).append(number)

    def remove(self, number: int) -> None:
        """Forget query ``number``."""
        if number not in self.indexed:
            return
        keys = self.indexed.pop(number)
        if keys is ANY:
            self.always.discard(number)
            return
        for k in keys:
            posting = self.postings.get(k)
            if posting is not None:
                posting.remove(number)
                if not posting:
                    del self.postings[k]

    def candidates(self, doc_keys: Iterable[str]) -> Set[int]:
        """Query numbers a document with these keys could match."""
        found: Set[int] = set(self.always)
        postings = self.postings
        for k in doc_keys:
            posting = postings.get(k)
            if posting is not None:
                found.update(posting)
        return found
