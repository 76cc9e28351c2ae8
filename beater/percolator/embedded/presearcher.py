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

With the optional native module (``_core.c``, built at install where a C compiler
is available) the postings are mirrored over integer key ids and each verified
query's form is compiled into a program there (:func:`native_program`): a
document's candidates are collected and verified natively
(:meth:`Presearcher.native_candidates`), calling back into Python only for the forms
without a native counterpart.  Both paths give the same answers.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from itertools import chain
from functools import lru_cache
from typing import AbstractSet, Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple, Union

import numpy

from beater.percolator.embedded.analysis import analyze_cached, lowercase
from beater.percolator.embedded.fields import (
    BOOLEAN, DATE, FLOAT, KEYWORD, LONG, LONG_MAX, LONG_MIN, OBJECT, TEXT, PREFIX_VIEW, AnalysedDoc, parse_number, text_of,
)
from beater.percolator.embedded.matcher import (
    Predicate, at_least, compile_query, positions_match, wildcard_test, query_boolean, query_date_span, query_float, query_long,
)
from beater.query import ir
from beater.query.kinds import KEYWORD_SUFFIX

try:
    from beater.percolator.embedded._core import Core
except ImportError:  # not built (no C compiler at install): the pure-Python loop does the same
    Core = None

NATIVE = Core is not None
"""Whether the native candidate loop is available."""

SEP = "\x1f"
ANY = None  # extraction result: no key set, always check
NEVER: FrozenSet[str] = frozenset()
Keys = Optional[FrozenSet[str]]
Weight = Callable[[str], float]


def prior_weight(k: str) -> float:
    """A document-frequency guess before any document was seen: longer terms are rarer (always < 1).

    (Presearcher.cost inlines it.)"""
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


TERM_KEYS = ""  # with PREFIX_MARK and LONG_PREFIX_MARK, the kinds of a field's text/keyword keys (see keyed_fields)
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
        if span[0] == span[1]:
            return frozenset((key(field, date_term(span[0])),))
        first, last = span[0] // DATE_BUCKET, span[1] // DATE_BUCKET
        if last - first >= MAX_DATE_BUCKETS:
            return ANY
        # a period (a day, a year): a date within it is within one of these buckets; verified
        return frozenset(key(field, BUCKET_MARK + str(bucket)) for bucket in range(first, last + 1))
    return NEVER


@lru_cache(maxsize=65536, typed=True)
def _any_field_value_keys(value: object) -> Keys:
    """Keys under ``*`` of an exact value on every non-text, non-keyword kind of field."""
    return _union(_value_keys(ir.ANY_FIELD, kind, value) for kind in (LONG, FLOAT, BOOLEAN, DATE))


class Extractor:
    """Computes a query's keys against the current field types; records the unmapped fields it met."""

    def __init__(self, types: Dict[str, str], weight: Weight = _static_weight) -> None:
        self.types = types
        self.weight = weight
        self.unmapped: Set[str] = set()
        self.seen: Set[str] = set()  # every key of every clause met (their frequencies are worth counting)
        self.chose = False  # whether the keys depend on the weights (a choice among clauses or words)
        # For a root Bool whose only choice is among its required clauses: their keys, in order (the
        # keys are the cheapest of them, so re-keying under new weights need not walk the query again).
        self.alternatives: Optional[List[FrozenSet[str]]] = None
        self._depth = 0

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
        self._depth += 1
        try:
            keys = ANY if method is None else method(node)
        finally:
            self._depth -= 1
        if keys:
            self.seen.update(keys)
        return keys

    def _MatchAll(self, node: ir.MatchAll) -> Keys:
        return ANY

    def _MatchNone(self, node: ir.MatchNone) -> Keys:
        return NEVER

    def _text_like(self, field: str, text: str, conjunctive: bool, fuzzy: bool) -> Keys:
        if field == ir.ANY_FIELD:
            if fuzzy:
                return ANY
            tokens = analyze_cached(text)
            if conjunctive:
                self.seen.update(key(field, t) for t in tokens)
                self.chose = self.chose or len(set(tokens)) > 1
            parts = [_tokens_keys(field, tokens, conjunctive, self.weight), frozenset((key(field, text),)), _any_field_value_keys(text)]
            return _union(parts)
        kind = self.kind(field)
        if kind is None or kind == OBJECT:
            return NEVER
        if fuzzy and kind in (TEXT, KEYWORD):
            return ANY
        if kind == TEXT:
            tokens = analyze_cached(text)
            if conjunctive:
                self.seen.update(key(field, t) for t in tokens)
                self.chose = self.chose or len(set(tokens)) > 1
            return _tokens_keys(field, tokens, conjunctive, self.weight)
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
        if field == ir.ANY_FIELD:  # (lowercase keeps the length: it maps code point by code point)
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
        root, chose_before = self._depth == 1, self.chose
        required = [self.extract(c) for c in tuple(node.must) + tuple(node.filter)]
        inner_choice = self.chose and not chose_before
        for c in node.must_not:
            self._note_fields(c)
        keyed = [r for r in required if r is not ANY]
        if keyed:
            if root and not inner_choice and len(keyed) > 1:
                self.alternatives = keyed
            self.chose = self.chose or len(set(keyed)) > 1
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


def keywords_are_text_twins(types: Dict[str, str]) -> bool:
    """Whether every keyword field is the ``.keyword`` sub-field of a text field (as dynamic mapping makes
    them), so that a keyword value is also in its parent's tokens."""
    return all(
        kind != KEYWORD or (path.endswith(KEYWORD_SUFFIX) and types.get(path[: -len(KEYWORD_SUFFIX)]) == TEXT)
        for path, kind in types.items()
    )


def is_exact(node: ir.Node, types: Dict[str, str]) -> bool:
    """Whether holding one of the node's keys is the whole condition (no verification needed)."""
    if isinstance(node, (ir.Match, ir.Phrase)):
        if isinstance(node, ir.Match) and (node.fuzziness is not None or node.minimum_should_match is not None):
            return False
        text = node.text if isinstance(node.text, str) else text_of(node.text)
        if node.field == ir.ANY_FIELD:
            tokens = analyze_cached(text)
            if tokens != (text,):
                # Several tokens, any one enough: a token's key is held by a text field holding it or
                # by a keyword value equal to it, whose text twin then holds it; the whole text's key
                # by a keyword value equal to the text.  Literals of typed fields are verified.
                return (
                    isinstance(node, ir.Match) and node.operator == "or" and bool(tokens)
                    and _any_field_value_keys(text) == NEVER and keywords_are_text_twins(types)
                )
            # one token that is the whole text: held as a token or keyword value; a value that parses
            # as a long/float/boolean/single-millisecond date is held under its typed key too (a
            # date period's bucket keys only narrow the candidates)
            typed = _any_field_value_keys(text)
            if typed is ANY or any(BUCKET_MARK in k for k in typed):
                return typed == NEVER
            return typed == NEVER or isinstance(node.text, str)
        kind = types.get(node.field)
        if kind == TEXT:
            return len(analyze_cached(text)) == 1
        return kind in (KEYWORD, LONG, FLOAT, BOOLEAN)
    if isinstance(node, (ir.Term, ir.Terms)):
        if isinstance(node, ir.Term) and node.case_insensitive:
            return False
        return types.get(node.field) in (TEXT, KEYWORD, LONG, FLOAT, BOOLEAN)
    if isinstance(node, ir.Prefix) and not node.case_insensitive and node.field != ir.ANY_FIELD:
        # the key of a start as long as the prefix: held exactly when a term of the field has it
        return len(node.value) in (PREFIX_LENGTH, LONG_PREFIX_LENGTH) and types.get(node.field) in (TEXT, KEYWORD)
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


# --- compact verification -----------------------------------------------------------------------
#
# Most queries are conjunctions/negations/disjunctions of leaves whose keys decide them exactly
# (single-token matches, terms, keyword and number values).  Such a leaf is verified by looking
# its keys up in the document's key set; only the other leaves are compiled into predicates.
# A form is: True/False, a key (str: the document holds it), a frozenset of keys (holds one),
# a pair (keys all held, keys none held), a BoolForm, a PatternForm or a compiled predicate.

Form = Any


class BoolForm:
    """A Bool query over forms; leaves that are keys are checked with set operations."""

    __slots__ = ("req_keys", "forb_keys", "req_any", "req", "forb", "opt", "need")

    def __init__(self, required: List[Form], forbidden: List[Form], optional: List[Form], need: int) -> None:
        self.req_keys = tuple(f for f in required if type(f) is str)
        self.req_any = tuple(f for f in required if type(f) is frozenset)
        forb_keys = [f for f in forbidden if type(f) is str]
        for f in forbidden:
            if type(f) is frozenset:
                forb_keys.extend(f)  # none of the keys of a forbidden "any of" may be held
        self.forb_keys = tuple(forb_keys)
        self.req = tuple(f for f in required if type(f) not in (str, frozenset) and f is not True)
        self.forb = tuple(f for f in forbidden if type(f) not in (str, frozenset) and f is not False)
        self.opt = tuple(optional)
        self.need = need

    def check(self, dk: Set[str], doc: Any) -> bool:
        if not dk.issuperset(self.req_keys) or not dk.isdisjoint(self.forb_keys):
            return False
        for f in self.req_any:
            if f.isdisjoint(dk):
                return False
        for f in self.req:
            if not verify(f, dk, doc):
                return False
        for f in self.forb:
            if verify(f, dk, doc):
                return False
        need = self.need
        if need:
            return at_least(need, len(self.opt), (verify(f, dk, doc) for f in self.opt))
        return True


def check_keys(form: Tuple[Tuple[str, ...], Tuple[str, ...], Tuple[FrozenSet[str], ...]], dk: Set[str]) -> bool:
    """A keys-only conjunction: (keys all held, keys none held, sets of which one key each is held)."""
    if not dk.issuperset(form[0]) or not dk.isdisjoint(form[1]):
        return False
    for f in form[2]:
        if f.isdisjoint(dk):
            return False
    return True


class RangeForm:
    """A range on a long field: one of the field's values within inclusive integer bounds."""

    __slots__ = ("field", "low", "high")

    def __init__(self, field: str, low: int, high: int) -> None:
        self.field, self.low, self.high = field, low, high

    def __call__(self, doc: AnalysedDoc) -> bool:
        values = doc.numbers.get(self.field)
        if values:
            low, high = self.low, self.high
            for v in values:
                if low <= v <= high:
                    return True
        return False


class PhraseForm:
    """A phrase of two or more tokens on a text field."""

    __slots__ = ("field", "tokens", "slop")

    def __init__(self, field: str, tokens: Tuple[str, ...], slop: int) -> None:
        self.field, self.tokens, self.slop = field, tokens, slop

    def __call__(self, doc: AnalysedDoc) -> bool:
        postings = doc.tokens.get(self.field)
        if not postings:
            return False
        lists = []
        for token in self.tokens:
            positions = postings.get(token)
            if positions is None:
                return False
            lists.append(positions)
        return positions_match(lists, self.slop)


def _text_form(node: ir.Node, types: Dict[str, str]) -> Form:
    """Forms of phrases and plain matches on a named text field (None for others)."""
    if not isinstance(node, (ir.Phrase, ir.Match)) or node.field == ir.ANY_FIELD or types.get(node.field) != TEXT:
        return None
    if isinstance(node, ir.Phrase):
        tokens = analyze_cached(node.text)
        if len(tokens) < 2:
            return None
        return PhraseForm(node.field, tokens, max(int(node.slop), 0))
    if node.fuzziness is not None or node.minimum_should_match is not None:
        return None
    text = node.text if isinstance(node.text, str) else text_of(node.text)
    tokens = analyze_cached(text)
    if not tokens:
        return False
    keys = tuple(dict.fromkeys(sys.intern(key(node.field, t)) for t in tokens))
    if node.operator == "and":
        return (keys, (), ())
    return frozenset(keys)


class GuardForm:
    """A compiled ANY_FIELD match or phrase, tried only if the document holds the keys it needs:
    its whole text as a keyword value (``escape``), else all (``need_all``) or one of its tokens."""

    __slots__ = ("escape", "need_all", "need_any", "inner", "phrase")

    def __init__(
        self, escape: str, tokens: Tuple[str, ...], conjunctive: bool, inner: Predicate, phrase: Optional[Tuple[str, ...]] = None,
    ) -> None:
        """``phrase``: the tokens, if ``inner`` is an exact phrase of two or more (for the native core)."""
        keys = tuple(dict.fromkeys(sys.intern(key(ir.ANY_FIELD, t)) for t in tokens))
        self.phrase = phrase
        self.escape = sys.intern(escape)
        self.need_all = keys if conjunctive else ()
        self.need_any = () if conjunctive else frozenset(keys)
        self.inner = inner

    def check(self, dk: Set[str], doc: AnalysedDoc) -> bool:
        if self.escape not in dk:
            if not dk.issuperset(self.need_all):
                return False
            if self.need_any and dk.isdisjoint(self.need_any):
                return False
        return self.inner(doc)


def _guard_form(node: ir.Node) -> Form:
    """A GuardForm for an ANY_FIELD match or phrase whose text is no number, boolean or date; else None."""
    if not isinstance(node, (ir.Phrase, ir.Match)) or node.field != ir.ANY_FIELD or not isinstance(node.text, str):
        return None
    if isinstance(node, ir.Match) and node.fuzziness is not None:
        return None
    text = node.text
    tokens = analyze_cached(text)
    if not tokens or _any_field_value_keys(text) != NEVER:
        return None
    conjunctive = isinstance(node, ir.Phrase) or node.operator == "and"
    exact_phrase = tokens if isinstance(node, ir.Phrase) and int(node.slop) <= 0 and len(tokens) >= 2 else None
    return GuardForm(key(ir.ANY_FIELD, text), tokens, conjunctive, compile_query(node), exact_phrase)


def _held_or_checked(node: ir.Node, types: Dict[str, str]) -> Form:
    """For an ANY_FIELD match of one word that is its own only token (a number, say, which may also
    match numeric and date fields, so that its keys do not decide it): a form that holding its
    ``*`` key satisfies, that holding none of its keys fails, and that otherwise tests the
    document's numbers, booleans and dates (:func:`_any_value_check`); None for other nodes.

    A document holds the ``*`` key only through a text token or keyword value equal to the word,
    and either matches.  Such words are often negated clauses of conjunctions, tested for every
    candidate: the keys settle nearly all of them.
    """
    if not isinstance(node, ir.Match) or node.field != ir.ANY_FIELD or not isinstance(node.text, str):
        return None
    if node.fuzziness is not None or node.minimum_should_match is not None or analyze_cached(node.text) != (node.text,):
        return None
    word = sys.intern(key(ir.ANY_FIELD, node.text))
    check: Form = _any_value_check(node.text)
    keys = Extractor(types).extract(node)
    if keys:  # a match holds one of them (what the presearcher relies on): holding none settles it too
        gate = GuardForm(word, (), False, check)
        gate.need_any = frozenset(sys.intern(k) for k in keys)
        check = gate
    return BoolForm([], [], [word, check], 1)


def _any_value_check(raw: str) -> Predicate:
    """Whether some numeric, boolean or date field of a document holds ``raw`` (a query word on
    ``*``), as the compiled ANY_FIELD match tests it, without its text and keyword part: for
    _held_or_checked, where the keys have already settled that part (and building the
    document's any-field view for it cost more than the rest of the check)."""
    n, f, b, span = query_long(raw), query_float(raw), query_boolean(raw), query_date_span(raw)

    def check(doc: AnalysedDoc) -> bool:
        if n is not None or f is not None:
            types = doc.types
            for path, values in doc.numbers.items():
                wanted = n if types.get(path) == LONG else f
                if wanted is not None and wanted in values:
                    return True
        if b is not None:
            for flags in doc.booleans.values():
                if b in flags:
                    return True
        if span is not None:
            low, high = span
            for dates in doc.dates.values():
                for d in dates:
                    if low <= d <= high:
                        return True
        return False
    return check


_KINDS: Dict[FrozenSet[Tuple[str, str]], FrozenSet[Tuple[str, str]]] = {}


def shared_kinds(kinds: FrozenSet[Tuple[str, str]]) -> FrozenSet[Tuple[str, str]]:
    """One shared copy of each set of (kind, field) pairs: there are few distinct ones, and a copy
    per stored query was ~60 MB at 100k queries."""
    return _KINDS.setdefault(kinds, kinds)


def keyed_fields(keys: Keys, form: Form) -> FrozenSet[Tuple[str, str]]:
    """The (kind, field) pairs of the text/keyword keys (see document_keys) a query is indexed
    under (``keys``) or checks (``form``): documents must make those keys (a shared set)."""
    found: Set[Tuple[str, str]] = set()

    def note(k: str) -> None:
        field, sep, term = k.partition(SEP)
        if not sep:
            return
        if term.startswith(PREFIX_MARK):
            found.add((PREFIX_MARK, field))
        elif term.startswith(LONG_PREFIX_MARK):
            found.add((LONG_PREFIX_MARK, field))
        else:
            found.add((TERM_KEYS, field))

    for k in keys or ():
        note(k)
    stack: List[Any] = [form]
    while stack:
        f = stack.pop()
        t = type(f)
        if t is str:
            note(f)
        elif t is frozenset:
            stack.extend(f)
        elif t is tuple:
            stack.extend(f[0])
            stack.extend(f[1])
            stack.extend(f[2])
        elif t is BoolForm:
            stack.extend(f.req_keys)
            stack.extend(f.forb_keys)
            stack.extend(f.req_any)
            stack.extend(f.req)
            stack.extend(f.forb)
            stack.extend(f.opt)
        elif t is GuardForm:
            note(f.escape)
            stack.extend(f.need_all)
            stack.extend(f.need_any)
    return shared_kinds(frozenset(found))


def verify(form: Form, dk: Set[str], doc: Any) -> bool:
    """Whether a document (its keys ``dk``, its analysis ``doc``) satisfies ``form``."""
    t = type(form)
    if t is str:
        return form in dk
    if t is tuple:
        return check_keys(form, dk)
    if t is BoolForm:
        return form.check(dk, doc)
    if t is frozenset:
        return not form.isdisjoint(dk)
    if t is bool:
        return form
    if t is GuardForm:
        return form.check(dk, doc)
    return form(doc)


# Tags of the native core's verification programs (_core.c, "verification programs").
P_CONST, P_KEY, P_ANY, P_KEYS, P_BOOL, P_RANGE, P_PHRASE, P_PATTERN, P_GUARD, P_CALL, P_ANY_PHRASE = range(11)
PATTERN_PREFIX, PATTERN_GLOB = 0, 1


def native_program(form: Form, key_id: Callable[[str], int]) -> Any:
    """``form`` as the native core's program: nested tagged tuples, keys as ``key_id`` numbers.

    Each tag is evaluated there as :func:`verify` evaluates the form; what has no tag of its own
    (sloppy phrases, escaped wildcards, compiled predicates) is called back as ``form(doc)``.
    """
    t = type(form)
    ids = lambda keys: [key_id(k) for k in keys]  # noqa: E731
    if t is bool:
        return (P_CONST, form)
    if t is str:
        return (P_KEY, key_id(form))
    if t is frozenset:
        return (P_ANY, ids(form))
    if t is tuple:
        return (P_KEYS, ids(form[0]), ids(form[1]), [ids(group) for group in form[2]])
    if t is BoolForm:
        return (
            P_BOOL, ids(form.req_keys), ids(form.forb_keys), [ids(group) for group in form.req_any],
            [native_program(f, key_id) for f in form.req], [native_program(f, key_id) for f in form.forb],
            [native_program(f, key_id) for f in form.opt], form.need,
        )
    if t is GuardForm:
        if form.phrase is not None:  # a phrase on every field: the text fields' positions there
            inner = (P_ANY_PHRASE, key_id(form.escape), form.phrase, form.inner)
        else:
            inner = (P_CALL, form.inner)
        return (P_GUARD, key_id(form.escape), ids(form.need_all), ids(form.need_any), inner)
    if t is RangeForm:
        return (P_RANGE, form.field, form.low, form.high)
    if t is PhraseForm and form.slop == 0:
        return (P_PHRASE, form.field, tuple(form.tokens))
    if t is PatternForm and form.native_mode is not None:
        where = ("", "") if form.kind is None else (form.field, form.start)
        return (P_PATTERN, form.native_mode, form.kind is None, where, form.start, form.lower_start, form.value, form.lower_value)
    return (P_CALL, form)


class PatternForm:
    """A prefix or wildcard query with a literal start of at least PREFIX_VIEW characters: only the
    document's terms with that start are tested (AnalysedDoc.prefix_view)."""

    __slots__ = ("field", "kind", "start", "test", "lower_start", "lower_test", "value", "lower_value", "native_mode")

    def __init__(self, node: Union[ir.Prefix, ir.Wildcard], kind: Optional[str]) -> None:
        if isinstance(node, ir.Prefix):
            value = node.value
            literal = value
            make: Callable[[str], Callable[[str], bool]] = lambda v: (lambda term: term.startswith(v))
            self.native_mode: Optional[int] = PATTERN_PREFIX
        else:
            value = node.pattern
            literal = literal_prefix(value)
            make = lambda v: wildcard_test(v, False)
            # The native glob knows "*", "?" and literal characters; escapes stay with the regex.
            self.native_mode = None if "\\" in value else PATTERN_GLOB
        self.field = node.field
        self.kind = kind
        self.start = literal[:PREFIX_VIEW]
        self.test = make(value)
        self.value = value
        if node.field == ir.ANY_FIELD:
            self.lower_start = lowercase(literal)[:PREFIX_VIEW]
            self.lower_value = lowercase(value)
            self.lower_test = make(self.lower_value)
        else:
            self.lower_start = self.start
            self.lower_value = value
            self.lower_test = self.test

    def __call__(self, doc: AnalysedDoc) -> bool:
        by_field, text, keyword = doc.prefix_view()
        if self.kind is None:  # ANY_FIELD: text fields take the lowercased pattern, keyword fields the pattern
            terms = text.get(self.lower_start)
            if terms is not None:
                test = self.lower_test
                for term in terms:
                    if test(term):
                        return True
            terms = keyword.get(self.start)
        else:
            terms = by_field.get((self.field, self.start))
        if terms is not None:
            test = self.test
            for term in terms:
                if test(term):
                    return True
        return False


def _pattern_form(node: ir.Node, types: Dict[str, str]) -> Form:
    """A PatternForm for a prefix/wildcard query it can answer, else None."""
    if not isinstance(node, (ir.Prefix, ir.Wildcard)) or node.case_insensitive:
        return None
    literal = node.value if isinstance(node, ir.Prefix) else literal_prefix(node.pattern)
    if len(literal) < PREFIX_VIEW:
        return None
    if node.field == ir.ANY_FIELD:
        return PatternForm(node, None)
    kind = types.get(node.field)
    if kind in (TEXT, KEYWORD):
        return PatternForm(node, kind)
    if kind is None or kind == OBJECT:
        return None
    return False  # other kinds hold no terms


def compact_form(node: ir.Node, types: Dict[str, str]) -> Form:
    """The verification form of ``node`` against the current field types (same answers as compile_query)."""
    if isinstance(node, ir.Bool):
        required = [compact_form(c, types) for c in tuple(node.must) + tuple(node.filter)]
        forbidden = [compact_form(c, types) for c in node.must_not]
        optional = [compact_form(c, types) for c in node.should]
        if node.minimum_should_match is not None:
            need = int(node.minimum_should_match)
            if not required and optional:
                need = max(need, 1)
        else:
            need = 0 if required else (1 if optional else 0)
        if need > len(optional) or any(f is False for f in required) or any(f is True for f in forbidden):
            return False
        if need == 0:
            optional = []
        if not required and not forbidden and need == 1 and all(type(f) in (str, frozenset) for f in optional):
            keys = set()
            for f in optional:
                if type(f) is str:
                    keys.add(f)
                else:
                    keys |= f
            return frozenset(keys)  # one of the clauses: one of their keys
        form = BoolForm(required, forbidden, optional, need)
        if not form.req and not form.forb and not need:
            return (form.req_keys, form.forb_keys, form.req_any)  # keys only: set operations
        return form
    if isinstance(node, ir.MatchAll):
        return True
    if isinstance(node, ir.MatchNone):
        return False
    if is_exact(node, types):
        keys = Extractor(types).extract(node)
        if keys is not ANY:
            if not keys:
                return False
            if len(keys) == 1:
                return sys.intern(next(iter(keys)))
            return frozenset(sys.intern(k) for k in keys)
    if isinstance(node, ir.Range) and node.field != ir.ANY_FIELD and types.get(node.field) == LONG:
        bounds = long_range_bounds(node)
        if bounds is not None:
            return RangeForm(node.field, bounds[0], bounds[1]) if bounds[0] <= bounds[1] else False
    text_form = _text_form(node, types)
    if text_form is not None:
        return text_form
    guard = _guard_form(node)
    if guard is not None:
        return guard
    held = _held_or_checked(node, types)
    if held is not None:
        return held
    pattern = _pattern_form(node, types)
    if pattern is not None:
        return pattern
    return compile_query(node)


# --- ranges on long fields ------------------------------------------------------------------------

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


# --- the index -------------------------------------------------------------------------------------

REWEIGHT_MIN_DOCS = 50  # document frequencies are trusted from this many documents on
COMMON = 0.02  # a key held by more than this fraction of the documents is common
RANGE_RATHER = 0.25  # a query indexed under keys held this often is indexed under a required range instead
DECAY_DOCS = 1_000_000  # past this many documents, counts are halved and the rarest forgotten


class Presearcher:
    """Postings from keys to query numbers, and the always-check list.

    Queries that need no verification (``exact``) have postings of their own, so that a
    document's exact matches are a union of lists.  The presearcher counts in how many
    percolated documents each key occurs (``observe``) so that a conjunction can be indexed
    under its rarest clause; :meth:`to_reweight` names the queries indexed under keys that
    turned out common.
    """

    def __init__(self, native: bool = NATIVE) -> None:
        """``native``: also keep postings, ranges and verification programs in the native core (if built)."""
        self.core = Core() if native and Core is not None else None
        self.key_ids: Dict[str, int] = {}  # key -> its integer id in the native core
        self.postings: Dict[str, List[int]] = {}
        self.exact_postings: Dict[str, List[int]] = {}
        self.always: Set[int] = set()
        self.indexed: Dict[int, Keys] = {}
        self.exact: Set[int] = set()
        self.ranges: Dict[str, RangeIndex] = {}
        self.ranged: Dict[int, str] = {}
        self.df: Counter = Counter()
        self.counted: Set[str] = set()  # the keys whose frequencies are counted: those of registered queries
        self.docs = 0
        self.next_reweight = REWEIGHT_MIN_DOCS
        self.common: Set[str] = set()  # keys found common at the last reweighting

    def weight(self, k: str) -> float:
        """Estimated number of documents (so far) holding key ``k``."""
        if self.docs < REWEIGHT_MIN_DOCS:
            return prior_weight(k)
        return self.df.get(k, 0) + prior_weight(k)

    def add(self, number: int, keys: Keys, exact: bool = False) -> None:
        """Index query ``number`` under ``keys`` (None: always check; empty: never); ``exact``: holding a key is a match."""
        self.remove(number)
        self.indexed[number] = keys
        if keys is ANY:
            self.always.add(number)
            return
        if exact:
            self.exact.add(number)
            postings = self.exact_postings
        else:
            postings = self.postings
        for k in keys:
            posting = postings.get(k)
            if posting is None:
                postings[sys.intern(k)] = [number]
            else:
                posting.append(number)
        if self.core is not None:
            for k in keys:
                self.core.add_posting(self._key_id(k), number, exact)

    def _key_id(self, k: str) -> int:
        key_id = self.key_ids.get(k)
        if key_id is None:
            key_id = self.key_ids[sys.intern(k)] = len(self.key_ids)
        return key_id

    def set_form(self, number: int, form: Any) -> None:
        """Tell the native core how query ``number`` is verified (``None``: it is not)."""
        if self.core is not None:
            self.core.set_program(number, None if form is None else native_program(form, self._key_id))

    def add_range(self, number: int, field: str, low: int, high: int, exact: bool) -> None:
        """Index query ``number`` under a range of long field ``field`` (``exact``: a value in it is a match)."""
        self.remove(number)
        self.ranged[number] = field
        ranges = self.ranges.get(field)
        if ranges is None:
            ranges = self.ranges[field] = RangeIndex()
        ranges.add(number, low, high, exact)
        if self.core is not None:
            self.core.add_range(field, number, low, high, exact)

    def remove(self, number: int) -> None:
        """Forget query ``number``."""
        field = self.ranged.pop(number, None)
        if field is not None:
            self.ranges[field].remove(number)
            if self.core is not None:
                self.core.remove_range(field, number)
            return
        if number not in self.indexed:
            return
        keys = self.indexed.pop(number)
        if keys is ANY:
            self.always.discard(number)
            return
        if number in self.exact:
            self.exact.discard(number)
            postings = self.exact_postings
        else:
            postings = self.postings
        for k in keys:
            posting = postings.get(k)
            if posting is not None:
                posting.remove(number)
                if not posting:
                    del postings[k]
            if self.core is not None:
                self.core.remove_posting(self.key_ids[k], number, postings is self.exact_postings)

    def count_keys(self, keys: Iterable[str]) -> None:
        """Count from now on how many documents hold each of ``keys``."""
        self.counted.update(keys)

    def observe(self, doc_keys: Set[str]) -> None:
        """Count the keys of one percolated document (those queries use)."""
        self.df.update(doc_keys & self.counted)
        self.docs += 1
        if self.docs >= DECAY_DOCS:  # halve the counts now and then: frequencies follow the recent documents
            self.df = Counter({k: c // 2 for k, c in self.df.items() if c >= 2})
            self.docs //= 2
            self.next_reweight = min(self.next_reweight, self.docs * 4)

    def cost(self, keys: Iterable[str]) -> float:
        """Expected number of documents holding one of ``keys`` (as Extractor.cost with these weights)."""
        if self.docs < REWEIGHT_MIN_DOCS:
            return sum(prior_weight(k) for k in keys)
        get = self.df.get  # self.weight inlined: re-keying calls this for every clause of ~30,000 queries
        return sum(get(k, 0) + 1.0 / (2 + len(k) - k.find(SEP)) for k in keys)

    def too_common(self, keys: FrozenSet[str]) -> bool:
        """Whether documents hold one of ``keys`` so often that a range would select better."""
        return self.docs >= REWEIGHT_MIN_DOCS and sum(self.df.get(k, 0) for k in keys) > self.docs * RANGE_RATHER

    def to_reweight(self) -> List[int]:
        """At growing intervals: the verified queries indexed under keys that have become common.

        Keys already common at the previous interval are left out: their queries were
        reconsidered then, and every query indexed since was keyed with the observed
        frequencies.  (Reconsidering them again re-extracted ~25,000 queries at 100k
        stored ones to move ~6,000.)
        """
        if self.docs < self.next_reweight:
            return []
        self.next_reweight = self.docs * 4
        limit = self.docs * COMMON
        df = self.df
        common = {k for k in self.postings if df.get(k, 0) > limit}
        numbers: Set[int] = set()
        for k in common - self.common:
            numbers.update(self.postings[k])
        self.common = common
        return sorted(numbers)

    def candidates(self, doc_keys: Iterable[str], doc: Optional[AnalysedDoc] = None) -> Set[int]:
        """Query numbers a document with these keys could match (verified or not)."""
        exact, found = self.split_candidates(doc_keys, doc)
        return exact | found

    def native_candidates(self, doc_keys: Iterable[str], doc: AnalysedDoc) -> List[int]:
        """With the native core: start a document and return the candidates Python must verify.

        The core selects the candidates (postings, ranges, the always-check list), verifies
        them and keeps the matches for :meth:`native_answer`; only queries without a native
        program come back here (none, normally).
        """
        core = self.core
        assert core is not None
        to_verify = core.candidates(doc_keys, self.key_ids, doc)
        if self.always:
            to_verify.extend(core.check(self.always, doc))
        return to_verify

    def _range_candidates(self, doc: AnalysedDoc, exact: Set[int], found: Set[int]) -> None:
        """Add the queries indexed under a range holding one of the document's values."""
        numbers = doc.numbers
        for field, ranges in self.ranges.items():
            values = numbers.get(field)
            if values:
                ranges.find(values, exact, found)

    def native_answer(self, verified: List[int], ids: List[Optional[str]]) -> List[str]:
        """After :meth:`native_candidates`: the ids of every match of the document, in registration order."""
        assert self.core is not None
        return self.core.answer(verified, ids)

    def split_candidates(self, doc_keys: Iterable[str], doc: Optional[AnalysedDoc] = None) -> Tuple[Set[int], Set[int]]:
        """(queries the document matches, queries to verify)."""
        exact: Set[int] = set()
        found: Set[int] = set(self.always)
        postings = self.postings
        exact_postings = self.exact_postings
        for k in doc_keys:
            posting = postings.get(k)
            if posting is not None:
                found.update(posting)
            posting = exact_postings.get(k)
            if posting is not None:
                exact.update(posting)
        if doc is not None and self.ranges:
            self._range_candidates(doc, exact, found)
        return exact, found
