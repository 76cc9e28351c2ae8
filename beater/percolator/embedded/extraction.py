"""Key extraction: the keys a stored query is indexed under (the query's half of presearching).

A query is indexed under a set of keys (:mod:`.keys`) such that any document it
matches holds at least one of them: the tokens of one required clause of a
conjunction (the one with the fewest, longest keys, or the rarest once documents
were counted), every key of a disjunction.  Queries without such a set (pure
negations, ranges, exists, regexps, fuzzy, prefixes and wildcards with a literal start
shorter than PREFIX_LENGTH, long date periods, match_all) are ANY: checked against
every document, unless a required range indexes them (:mod:`.ranges`).

The keys of a query on a named field depend on the field's type; a query that
names a field the index has not seen yet is indexed as "never" and re-extracted
when the field is first mapped (:class:`QueryIndex` watches those fields, from
:func:`unmapped_fields`).  :func:`is_exact` tells when holding a key is the whole
condition, so that the query needs no verification.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

from beater.percolator.embedded.analysis import analyze_cached, lowercase
from beater.percolator.embedded.dates import query_date_span
from beater.percolator.embedded.fields import BOOLEAN, DATE, FLOAT, KEYWORD, LONG, OBJECT, TEXT, text_of
from beater.percolator.embedded.keys import (
    ANY, BUCKET_MARK, DATE_BUCKET, LONG_PREFIX_LENGTH, MAX_DATE_BUCKETS, NEVER, PREFIX_LENGTH, Keys, Weight, bool_term, date_term,
    float_term, key, literal_prefix, long_term, prefix_term, prior_weight,
)
from beater.percolator.embedded.values import query_boolean, query_float, query_long
from beater.query import ir
from beater.query.kinds import KEYWORD_SUFFIX


def _static_weight(k: str) -> float:
    return prior_weight(k)


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
def any_field_value_keys(value: object) -> Keys:
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
            parts = [_tokens_keys(field, tokens, conjunctive, self.weight), frozenset((key(field, text),)), any_field_value_keys(text)]
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
            return _union([frozenset(key(field, text_of(v)) for v in values)] + [any_field_value_keys(v) for v in values])
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
                    and any_field_value_keys(text) == NEVER and keywords_are_text_twins(types)
                )
            # one token that is the whole text: held as a token or keyword value; a value that parses
            # as a long/float/boolean/single-millisecond date is held under its typed key too (a
            # date period's bucket keys only narrow the candidates)
            typed = any_field_value_keys(text)
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
