"""Compiled queries: a query tree becomes a predicate over an analysed document.

``compile_query(node)`` checks the whole tree once (what cannot be matched
faithfully raises UnsupportedQuery, so registration refuses it) and returns a
function ``AnalysedDoc -> bool``.  Field types are read from the document's field
model when the predicate runs, so a query registered before its field was first
seen matches as soon as a document shows the field, with the field's type.

The compiler is this module; what it builds predicates from has modules of its own:
per-field tests (:mod:`.field_tests`), fuzzy terms (:mod:`.fuzzy`), wildcards and
regular expressions (:mod:`.regexp`), query values on typed fields (:mod:`.values`,
:mod:`.dates`) and phrase positions (:mod:`.phrases`).

Semantics are Elasticsearch 7.17's, checked against a live node:

* text fields hold standard-analyzer tokens; ``match`` analyses its text and needs
  one token (``or``, or ``minimum_should_match``) or all (``and``); no token at all
  matches nothing.  ``term``/``prefix``/``wildcard``/``regexp``/``fuzzy`` compare
  the query's value with single tokens as it is (Elasticsearch lowercases only in
  ``query_string``, which the parser has done for named fields).
* keyword fields (``x.keyword``) hold the whole value, case-sensitive.
* long/float/date/boolean fields compare parsed values; a query value that does
  not parse matches nothing (``lenient``).  A date without all its parts covers
  the whole period it names (``2018-03-07`` is that day); float fields compare
  32-bit floats.
* ANY_FIELD (``*``) is every field of the document, ``.keyword`` included, each
  with its own type, as ``query_string`` with ``default_field: *`` and lenient;
  wildcard, prefix, fuzzy and range values are lowercased for text fields only
  (Elasticsearch normalises them with each field's analyzer).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from beater.errors import UnsupportedQuery
from beater.percolator.embedded.analysis import analyze_cached, lowercase
from beater.percolator.embedded.dates import date_formats, parse_query_date, query_date_span
from beater.percolator.embedded.field_tests import (
    FieldTest, Predicate, TermTest, dates_in, exact_value_test, field_predicate, keywords_any, numbers_in, tokens_any,
)
from beater.percolator.embedded.fields import BOOLEAN, DATE, FLOAT, KEYWORD, LONG, TEXT, AnalysedDoc, parse_number, text_of
from beater.percolator.embedded.fuzzy import check_fuzziness, fuzzy_edits, fuzzy_test
from beater.percolator.embedded.phrases import positions_match
from beater.percolator.embedded.regexp import compile_regex, regexp_to_regex, wildcard_test
from beater.percolator.embedded.values import query_boolean, query_float, query_long
from beater.query import ir


# --- options ----------------------------------------------------------------------------------------

def resolve_minimum_should_match(spec: Optional[str], optional: int) -> int:
    """Elasticsearch's ``minimum_should_match`` (``2``, ``-1``, ``75%``, ``-25%``, ``3<90%``) for ``optional`` clauses."""
    if spec is None:
        return 1 if optional else 0
    text = str(spec).strip()
    if "<" in text:
        result = optional
        for part in text.split():
            bound, _, rule = part.partition("<")
            if optional > int(bound):
                result = resolve_minimum_should_match(rule, optional)
        return result
    if text.endswith("%"):
        calc = optional * int(text[:-1]) / 100
        result = optional + int(calc) if calc < 0 else int(calc)
    else:
        calc_int = int(text)
        result = optional + calc_int if calc_int < 0 else calc_int
    return max(result, 0)


def _check_msm(spec: Optional[str]) -> None:
    if spec is None:
        return
    try:
        resolve_minimum_should_match(spec, 3)
    except ValueError:
        raise UnsupportedQuery(f"minimum_should_match {spec!r} is not understood", part=str(spec)) from None


# --- compiling ---------------------------------------------------------------------------------

def at_least(need: int, total: int, outcomes: Iterable[bool]) -> bool:
    """Whether at least ``need`` of ``total`` lazily evaluated ``outcomes`` are true, stopping as
    soon as the answer is known either way (minimum_should_match)."""
    hits = misses = 0
    for outcome in outcomes:
        if outcome:
            hits += 1
            if hits >= need:
                return True
        else:
            misses += 1
            if total - misses < need:
                return False
    return False


def compile_query(node: ir.Node) -> Predicate:
    """Check ``node`` and return its predicate; raise UnsupportedQuery for what cannot be matched faithfully."""
    compiler = _COMPILERS.get(type(node))
    if compiler is None:
        raise UnsupportedQuery(f"{type(node).__name__} queries are not supported by the embedded percolator", part=type(node).__name__)
    return compiler(node)


def _compile_match_all(node: ir.MatchAll) -> Predicate:
    return lambda doc: True


def _compile_match_none(node: ir.MatchNone) -> Predicate:
    return lambda doc: False


def _compile_ids(node: ir.Ids) -> Predicate:
    raise UnsupportedQuery("ids queries cannot match percolated documents (they have no _id)", part="ids")


def _text_terms_test(tokens: Sequence[str], operator: str, msm: Optional[str], fuzziness: Optional[str]) -> Optional[Callable[[AnalysedDoc, str], bool]]:
    """Analysed query tokens against one text field."""
    if not tokens:
        return None
    if fuzziness is None:
        if len(tokens) == 1:
            token = tokens[0]
            return lambda doc, path: token in doc.tokens.get(path, ())
        tests: List[Any] = list(tokens)
    else:
        tests = [fuzzy_test(t, fuzzy_edits(fuzziness, t)) for t in tokens]
    if operator == "and":
        need = len(tests)
    else:
        need = max(resolve_minimum_should_match(msm, len(tests)), 1)
    if need > len(tests):
        return None
    fuzzy = fuzziness is not None

    def check(doc: AnalysedDoc, path: str) -> bool:
        postings = doc.tokens.get(path)
        if not postings:
            return False
        hits = 0
        missing = 0
        allowed_missing = len(tests) - need
        for t in tests:
            if (any(t(p) for p in postings) if fuzzy else t in postings):
                hits += 1
                if hits >= need:
                    return True
            else:
                missing += 1
                if missing > allowed_missing:
                    return False
        return hits >= need
    return check


def _any_field_text_predicate(text: str, raw: Any, test: FieldTest, conjunctive: bool, plain: bool) -> Predicate:
    """ANY_FIELD match/phrase without fuzziness: only the fields holding a query token are tried.

    ``plain``: a text field matches a one-token query just by holding the token (no
    minimum_should_match), so any text field holding it answers without a per-field test.
    """
    tokens = analyze_cached(text)
    text_check = test.get(TEXT, True)
    single = tokens[0] if plain and len(tokens) == 1 and text_check is not None else None
    probe = (max(tokens, key=len),) if (conjunctive and tokens) else tuple(dict.fromkeys(tokens))
    n = query_long(raw)
    f = query_float(raw)
    b = query_boolean(raw)
    span = query_date_span(raw)

    def check(doc: AnalysedDoc) -> bool:
        token_paths, keywords, longs, floats, booleans, dates = doc.any_field_view()
        if text in keywords:
            return True
        if single is not None:
            if single in token_paths:
                return True
        elif text_check is not None:
            tried = set()
            for token in probe:
                for path in token_paths.get(token, ()):
                    if path not in tried:
                        tried.add(path)
                        if text_check(doc, path):
                            return True
        if n is not None and n in longs:
            return True
        if f is not None and f in floats:
            return True
        if b is not None and b in booleans:
            return True
        if span is not None and dates:
            return any(span[0] <= d <= span[1] for d in dates)
        return False
    return check


def _compile_match(node: ir.Match) -> Predicate:
    _check_msm(node.minimum_should_match)
    check_fuzziness(node.fuzziness)
    text = node.text if isinstance(node.text, str) else text_of(node.text)

    def build(kind: str, any_field: bool) -> Optional[Callable[[AnalysedDoc, str], bool]]:
        if kind == TEXT:
            return _text_terms_test(analyze_cached(text), node.operator, node.minimum_should_match, node.fuzziness)
        if kind == KEYWORD:
            if node.fuzziness is not None:
                return keywords_any(fuzzy_test(text, fuzzy_edits(node.fuzziness, text)))
            return keywords_any(lambda value: value == text)
        return exact_value_test(node.text, kind)
    if node.field == ir.ANY_FIELD and node.fuzziness is None:
        need_all = node.operator == "and" or len(analyze_cached(text)) == 1
        return _any_field_text_predicate(text, node.text, FieldTest(build), need_all, node.minimum_should_match is None)
    return field_predicate(node.field, FieldTest(build))


def _compile_phrase(node: ir.Phrase) -> Predicate:
    text = node.text
    slop = max(int(node.slop), 0)

    def build(kind: str, any_field: bool) -> Optional[Callable[[AnalysedDoc, str], bool]]:
        if kind == TEXT:
            tokens = analyze_cached(text)
            if not tokens:
                return None
            if len(tokens) == 1:
                token = tokens[0]
                return lambda doc, path: token in doc.tokens.get(path, ())

            def check(doc: AnalysedDoc, path: str) -> bool:
                postings = doc.tokens.get(path)
                if not postings:
                    return False
                lists = []
                for t in tokens:
                    positions = postings.get(t)
                    if positions is None:
                        return False
                    lists.append(positions)
                return positions_match(lists, slop)
            return check
        if kind == KEYWORD:
            return keywords_any(lambda value: value == text)
        return exact_value_test(text, kind)
    if node.field == ir.ANY_FIELD:
        return _any_field_text_predicate(text, text, FieldTest(build), True, True)
    return field_predicate(node.field, FieldTest(build))


def _term_string_test(value: str, case_insensitive: bool) -> TermTest:
    if case_insensitive:
        folded = lowercase(value)
        return lambda term: lowercase(term) == folded
    return lambda term: term == value


def _compile_term(node: ir.Term) -> Predicate:
    return _compile_terms_values(node.field, (node.value,), node.case_insensitive)


def _compile_terms(node: ir.Terms) -> Predicate:
    return _compile_terms_values(node.field, tuple(node.values), False)


def _compile_terms_values(field: str, values: Tuple[Any, ...], case_insensitive: bool) -> Predicate:
    strings = [text_of(v) for v in values]

    def build(kind: str, any_field: bool) -> Optional[Callable[[AnalysedDoc, str], bool]]:
        if kind in (TEXT, KEYWORD):
            if case_insensitive:
                folded = {lowercase(s) for s in strings}
                test: TermTest = lambda term: lowercase(term) in folded
            else:
                wanted = frozenset(strings)
                if kind == TEXT:
                    return lambda doc, path: any(w in doc.tokens.get(path, ()) for w in wanted)
                test = wanted.__contains__
            return tokens_any(test) if kind == TEXT else keywords_any(test)
        tests = [t for t in (exact_value_test(v, kind) for v in values) if t is not None]
        if not tests:
            return None
        return lambda doc, path: any(t(doc, path) for t in tests)
    return field_predicate(field, FieldTest(build))


def _pattern_predicate(field: str, make: Callable[[str], TermTest], value: str) -> Predicate:
    """Prefix/wildcard/regexp/fuzzy: a term test on text tokens and keyword values (nothing else)."""
    def build(kind: str, any_field: bool) -> Optional[Callable[[AnalysedDoc, str], bool]]:
        if kind == TEXT:
            return tokens_any(make(lowercase(value) if any_field else value))
        if kind == KEYWORD:
            return keywords_any(make(value))
        return None
    make(value)  # refuse untranslatable patterns now
    return field_predicate(field, FieldTest(build))


def _compile_prefix(node: ir.Prefix) -> Predicate:
    ci = node.case_insensitive

    def make(value: str) -> TermTest:
        if ci:
            folded = lowercase(value)
            return lambda term: lowercase(term).startswith(folded)
        return lambda term: term.startswith(value)
    return _pattern_predicate(node.field, make, node.value)


def _compile_wildcard(node: ir.Wildcard) -> Predicate:
    return _pattern_predicate(node.field, lambda v: wildcard_test(v, node.case_insensitive), node.pattern)


def _compile_regexp(node: ir.Regexp) -> Predicate:
    expression = regexp_to_regex(node.pattern)
    compiled = compile_regex(expression, node.case_insensitive)

    def build(kind: str, any_field: bool) -> Optional[Callable[[AnalysedDoc, str], bool]]:
        if kind == TEXT:
            return tokens_any(compiled)
        if kind == KEYWORD:
            return keywords_any(compiled)
        return None
    return field_predicate(node.field, FieldTest(build))


def _compile_fuzzy(node: ir.Fuzzy) -> Predicate:
    check_fuzziness(node.fuzziness)

    def make(value: str) -> TermTest:
        return fuzzy_test(value, fuzzy_edits(node.fuzziness, value), node.prefix_length, node.transpositions)
    return _pattern_predicate(node.field, make, node.value)


def _compile_range(node: ir.Range) -> Predicate:
    for bound in (node.gt, node.gte, node.lt, node.lte):
        if isinstance(bound, str) and ("||" in bound or bound.strip().lower().startswith("now")):
            raise UnsupportedQuery(f"date math {bound!r} in ranges is not supported", part=bound)
    if node.format is not None:
        date_formats(node.format)
    lower = node.gt if node.gt is not None else node.gte
    lower_inclusive = node.gt is None
    upper = node.lt if node.lt is not None else node.lte
    upper_inclusive = node.lt is None

    def build(kind: str, any_field: bool) -> Optional[Callable[[AnalysedDoc, str], bool]]:
        if kind in (TEXT, KEYWORD):
            lo = None if lower is None else text_of(lower)
            hi = None if upper is None else text_of(upper)
            if any_field and kind == TEXT:
                lo = None if lo is None else lowercase(lo)
                hi = None if hi is None else lowercase(hi)

            def test(term: str) -> bool:
                if lo is not None and (term < lo or (term == lo and not lower_inclusive)):
                    return False
                if hi is not None and (term > hi or (term == hi and not upper_inclusive)):
                    return False
                return True
            return tokens_any(test) if kind == TEXT else keywords_any(test)
        if kind == LONG:
            lo_n, hi_n = -math.inf, math.inf
            if lower is not None:
                n = parse_number(lower)
                if n is None:
                    return None
                lo_n = math.ceil(n) if lower_inclusive else math.floor(n) + 1
            if upper is not None:
                n = parse_number(upper)
                if n is None:
                    return None
                hi_n = math.floor(n) if upper_inclusive else math.ceil(n) - 1
            return numbers_in(lo_n, hi_n)
        if kind == FLOAT:
            lo_f, hi_f = -math.inf, math.inf
            if lower is not None:
                f = query_float(lower)
                if f is None:
                    return None
                lo_f = f
            if upper is not None:
                f = query_float(upper)
                if f is None:
                    return None
                hi_f = f
            return numbers_in(lo_f, hi_f, lower_inclusive, upper_inclusive)
        if kind == DATE:
            lo_d, hi_d = -(2**63), 2**63 - 1
            if lower is not None:
                # gte rounds down, gt rounds up and excludes (Elasticsearch's date range rounding)
                d = parse_query_date(lower, node.format, round_up=not lower_inclusive)
                if d is None:
                    return None
                lo_d = d if lower_inclusive else d + 1
            if upper is not None:
                d = parse_query_date(upper, node.format, round_up=upper_inclusive)
                if d is None:
                    return None
                hi_d = d if upper_inclusive else d - 1
            return dates_in(lo_d, hi_d)
        if kind == BOOLEAN:
            lo_b = 0 if lower is None else query_boolean(lower)
            hi_b = 1 if upper is None else query_boolean(upper)
            if lo_b is None or hi_b is None:
                return None
            lo_i = int(lo_b) + (0 if lower_inclusive or lower is None else 1)
            hi_i = int(hi_b) - (0 if upper_inclusive or upper is None else 1)
            return lambda doc, path: any(lo_i <= int(v) <= hi_i for v in doc.booleans.get(path, ()))
        return None
    return field_predicate(node.field, FieldTest(build))


def _compile_exists(node: ir.Exists) -> Predicate:
    field = node.field
    if field == ir.ANY_FIELD:
        return lambda doc: bool(doc.present)
    if "*" in field:
        raise UnsupportedQuery(f"exists on a field pattern {field!r} is not supported", part=field)
    return lambda doc: field in doc.present


def _compile_bool(node: ir.Bool) -> Predicate:
    required = [compile_query(c) for c in tuple(node.must) + tuple(node.filter)]
    forbidden = [compile_query(c) for c in node.must_not]
    optional = [compile_query(c) for c in node.should]
    if node.minimum_should_match is not None:
        need = int(node.minimum_should_match)
        if not required and optional:
            need = max(need, 1)  # a pure disjunction needs one clause (Lucene)
    else:
        need = 0 if required else (1 if optional else 0)
    if need > len(optional):
        return lambda doc: False
    total_optional = len(optional)

    def check(doc: AnalysedDoc) -> bool:
        for p in required:
            if not p(doc):
                return False
        for p in forbidden:
            if p(doc):
                return False
        if need:
            return at_least(need, total_optional, (p(doc) for p in optional))
        return True
    return check


_COMPILERS: Dict[type, Callable[[Any], Predicate]] = {
    ir.MatchAll: _compile_match_all,
    ir.MatchNone: _compile_match_none,
    ir.Ids: _compile_ids,
    ir.Match: _compile_match,
    ir.Phrase: _compile_phrase,
    ir.Term: _compile_term,
    ir.Terms: _compile_terms,
    ir.Prefix: _compile_prefix,
    ir.Wildcard: _compile_wildcard,
    ir.Regexp: _compile_regexp,
    ir.Fuzzy: _compile_fuzzy,
    ir.Range: _compile_range,
    ir.Exists: _compile_exists,
    ir.Bool: _compile_bool,
}
