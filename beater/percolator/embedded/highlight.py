"""Highlights: which terms of which fields of a document a query matched, as the embedded percolator sees them.

Every *positive* leaf of the query (not under a ``must_not``; ``match_all``,
``match_none`` and ``ids`` have no terms) is tried on each field of the analysed
document it can read: its own field, or every field for ANY_FIELD (``*``).  Where
it matches, the field's terms that made it match are listed:

* text fields: analysed tokens.  For ``match`` and phrases the query's tokens
  the field holds (with fuzziness, the field's tokens within the edits of one);
  for term-level leaves (term, prefix, wildcard, regexp, fuzzy, range) the
  tokens the leaf matches on their own;
* keyword fields: the whole value;
* long, float, date and boolean fields: the matching values as text (``15``,
  ``1.5``, ``true``; dates as ISO 8601 in UTC, ``2018-03-07T16:16:17.000Z``).

``exists`` lists the values of number, date and boolean fields only: on a text or
keyword field every value would be highlighted, which tells nothing (Elasticsearch
highlights nothing for it either).  The caller checks that the whole query matches
the document; this module only says where its leaves do.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterator, List, Set, Union

from beater.percolator.embedded.analysis import analyze_cached
from beater.percolator.embedded.fields import (
    BOOLEAN, DATE, FLOAT, KEYWORD, LONG, TEXT, AnalysedDoc, text_of, to_float32,
)
from beater.percolator.embedded.field_tests import Predicate
from beater.percolator.embedded.fuzzy import fuzzy_edits, fuzzy_test
from beater.percolator.embedded.matcher import compile_query
from beater.query import ir

Highlights = Dict[str, List[str]]
_NO_TERMS = (ir.MatchAll, ir.MatchNone, ir.Ids)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def highlight(node: ir.Node, doc: AnalysedDoc) -> Highlights:
    """``{field: [term, ...]}`` for the positive leaves of ``node`` that match in ``doc``; terms sorted, distinct."""
    found: Dict[str, Set[str]] = {}
    for leaf in positive_leaves(node):
        test = compile_query(leaf)
        field = getattr(leaf, "field")  # noqa: B009 - every leaf has one, the Node base class does not declare it
        for path, kind in list(doc.fields_of_type()):
            if field not in (ir.ANY_FIELD, path):
                continue
            # The leaf is tried on a document holding this one field only: for ANY_FIELD that keeps the
            # matcher's any-field rules (patterns lowercased for text fields, lenient types), which
            # dataclasses.replace(leaf, field=path) would lose.
            if not test(_only(doc, path, kind, _values(doc, path, kind))):
                continue
            terms = _matched_terms(leaf, test, doc, path, kind)
            if terms:
                found.setdefault(path, set()).update(terms)
    return {path: sorted(terms) for path, terms in sorted(found.items())}


def positive_leaves(node: ir.Node) -> Iterator[ir.Node]:
    """The leaves of ``node`` that can make it match: not under ``must_not``, not match_all/none or ids."""
    if isinstance(node, ir.Bool):
        for child in node.must + node.filter + node.should:
            yield from positive_leaves(child)
    elif not isinstance(node, _NO_TERMS):
        yield node


def _matched_terms(leaf: ir.Node, test: Predicate, doc: AnalysedDoc, path: str, kind: str) -> List[str]:
    """The terms of field ``path`` (where ``leaf`` matches) that it matched."""
    if kind == TEXT and isinstance(leaf, (ir.Match, ir.Phrase)):
        postings = doc.tokens[path]
        text = leaf.text if isinstance(leaf.text, str) else text_of(leaf.text)
        fuzziness = leaf.fuzziness if isinstance(leaf, ir.Match) else None
        tokens = analyze_cached(text)
        if fuzziness is None:
            return [t for t in tokens if t in postings]
        tests = [fuzzy_test(t, fuzzy_edits(fuzziness, t)) for t in tokens]
        return [p for p in postings if any(t(p) for t in tests)]
    if isinstance(leaf, ir.Exists) and kind in (TEXT, KEYWORD):
        return []
    # A term-level leaf (or any leaf on a keyword, number, date or boolean field): each value on its own.
    return [_shown(kind, v) for v in dict.fromkeys(_values(doc, path, kind)) if test(_only(doc, path, kind, [v]))]


def _values(doc: AnalysedDoc, path: str, kind: str) -> List[Any]:
    """The indexed values of ``path``: tokens of a text field, else the values as analysed."""
    if kind == TEXT:
        return list(doc.tokens.get(path, {}))
    if kind == KEYWORD:
        return doc.keywords.get(path, [])
    if kind == DATE:
        return doc.dates.get(path, [])
    if kind == BOOLEAN:
        return doc.booleans.get(path, [])
    return doc.numbers.get(path, [])


def _only(doc: AnalysedDoc, path: str, kind: str, values: List[Any]) -> AnalysedDoc:
    """A document holding ``values`` in field ``path`` and nothing else (token positions kept, for phrases)."""
    part = AnalysedDoc(types=doc.types)
    if kind == TEXT:
        postings = doc.tokens.get(path, {})
        part.tokens[path] = {token: postings[token] for token in values}
    elif kind == KEYWORD:
        part.keywords[path] = list(values)
    elif kind == DATE:
        part.dates[path] = list(values)
    elif kind == BOOLEAN:
        part.booleans[path] = list(values)
    else:
        part.numbers[path] = list(values)
    parts = path.split(".")
    part.present = {".".join(parts[: i + 1]) for i in range(len(parts))}
    return part


def _shown(kind: str, value: Union[str, float, int, bool]) -> str:
    """A value as highlight text: strings as they are, numbers and booleans as JSON, dates as ISO 8601 UTC."""
    if kind in (TEXT, KEYWORD):
        return str(value)
    if kind == BOOLEAN:
        return json.dumps(bool(value))
    if kind == DATE:
        try:
            moment = _EPOCH + timedelta(milliseconds=int(value))
        except OverflowError:  # beyond datetime's years 1-9999: the epoch milliseconds themselves
            return str(value)
        return f"{moment:%Y-%m-%dT%H:%M:%S}.{int(value) % 1000:03d}Z"
    if kind == LONG:
        return str(int(value))
    return _float_text(float(value)) if kind == FLOAT else json.dumps(value)


def _float_text(value: float) -> str:
    """The shortest decimal that reads back as the same 32-bit float (what a ``float`` field holds)."""
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        if to_float32(float(text)) == value:
            return text
    return repr(value)


__all__ = ["Highlights", "highlight", "positive_leaves"]
