"""Verification forms: how a candidate document is checked against a stored query.

:func:`compact_form` turns a query into its *form* against the current field types,
and :func:`verify` checks a document (its keys, its analysis) against it, with the
same answers as the query's compiled predicate (:func:`.matcher.compile_query`).

Most queries are conjunctions/negations/disjunctions of leaves whose keys decide them
exactly (single-token matches, terms, keyword and number values).  Such a leaf is
verified by looking its keys up in the document's key set; only the other leaves are
compiled into predicates.  A form is: True/False, a key (str: the document holds it),
a frozenset of keys (holds one), a triple (keys all held, keys none held, sets of which
one key each is held), a BoolForm, a RangeForm, a PhraseForm, a GuardForm, a
PatternForm or a compiled predicate.  The native core runs the same forms as programs
(:mod:`.programs`).
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Set, Tuple, Union

from beater.percolator.embedded.analysis import analyze_cached, lowercase
from beater.percolator.embedded.dates import query_date_span
from beater.percolator.embedded.extraction import Extractor, any_field_value_keys, is_exact
from beater.percolator.embedded.field_tests import Predicate
from beater.percolator.embedded.fields import KEYWORD, LONG, OBJECT, PREFIX_VIEW, TEXT, AnalysedDoc, any_with_start, text_of
from beater.percolator.embedded.keys import (
    ANY, LONG_PREFIX_MARK, NEVER, PREFIX_MARK, SEP, TERM_KEYS, Keys, key, literal_prefix,
)
from beater.percolator.embedded.matcher import at_least, compile_query
from beater.percolator.embedded.phrases import positions_match
from beater.percolator.embedded.ranges import long_range_bounds
from beater.percolator.embedded.regexp import wildcard_test
from beater.percolator.embedded.values import query_boolean, query_float, query_long
from beater.query import ir

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
    if not tokens or any_field_value_keys(text) != NEVER:
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


_KEY_KINDS: Dict[str, Optional[Tuple[str, str]]] = {}
_KEY_KINDS_KEPT = 1 << 20  # keys of queries long gone are dropped past this many
_UNKNOWN = object()


def _key_kind(k: str) -> Optional[Tuple[str, str]]:
    """The (kind, field) of a text/keyword key (None for typed keys), remembered: re-keying asks
    for the same keys again and again, ~30,000 times in the first pass at 100,000 queries."""
    field, sep, term = k.partition(SEP)
    kind: Optional[Tuple[str, str]] = None
    if sep:
        if term.startswith(PREFIX_MARK):
            kind = (PREFIX_MARK, field)
        elif term.startswith(LONG_PREFIX_MARK):
            kind = (LONG_PREFIX_MARK, field)
        else:
            kind = (TERM_KEYS, field)
    if len(_KEY_KINDS) >= _KEY_KINDS_KEPT:
        _KEY_KINDS.clear()
    _KEY_KINDS[k] = kind
    return kind


def keyed_fields(keys: Keys, form: Form) -> FrozenSet[Tuple[str, str]]:
    """The (kind, field) pairs of the text/keyword keys (see document_keys) a query is indexed
    under (``keys``) or checks (``form``): documents must make those keys (a shared set)."""
    found: Set[Tuple[str, str]] = set()

    def note(k: str) -> None:
        kind = _KEY_KINDS.get(k, _UNKNOWN)
        if kind is _UNKNOWN:
            kind = _key_kind(k)
        if kind is not None:
            found.add(kind)  # type: ignore[arg-type]

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


PATTERN_PREFIX, PATTERN_GLOB = 0, 1  # PatternForm.native_mode: the native core's tests of a pattern (P_PATTERN)


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
            if any_with_start(text, self.lower_start, self.lower_test):
                return True
            return any_with_start(keyword, self.start, self.test)
        terms = by_field.get(self.field)
        return terms is not None and any_with_start(terms, self.start, self.test)


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
        extracted = Extractor(types).extract(node)
        if extracted is not ANY:
            if not extracted:
                return False
            if len(extracted) == 1:
                return sys.intern(next(iter(extracted)))
            return frozenset(sys.intern(k) for k in extracted)
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
