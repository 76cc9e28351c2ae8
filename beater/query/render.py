"""The query IR rendered back to Elasticsearch 7.17 query DSL with the same meaning.

Nodes on ANY_FIELD come from ``query_string`` (the only front end that can
produce them besides ``multi_match``), so they are rendered as ``multi_match``
over ``*`` with ``lenient`` (full text) or as a one-clause ``query_string``
(term-level: Elasticsearch then normalises the term per field exactly as the
original query did).
"""

from __future__ import annotations

import re
from typing import Any, Dict, Optional

from beater.query.ir import (
    ANY_FIELD,
    Bool,
    Exists,
    Fuzzy,
    Ids,
    Match,
    MatchAll,
    MatchNone,
    Node,
    Phrase,
    Prefix,
    Range,
    Regexp,
    Term,
    Terms,
    Wildcard,
)

_SPECIAL = re.compile(r'([+\-!():^\[\]"{}~*?\\/&|<>=\s])')


def escape(text: str) -> str:
    """Escape ``text`` so Lucene's query parser reads it as one literal term."""
    return _SPECIAL.sub(r"\\\1", text)


def _any_field_query_string(query: str) -> Dict[str, Any]:
    return {"query_string": {"query": query, "default_field": "*", "lenient": True}}


def _quoted_bound(value: Optional[Any]) -> str:
    if value is None:
        return "*"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dsl(node: Node) -> Dict[str, Any]:
    """Elasticsearch query DSL that percolates with the same meaning as ``node``."""
    if isinstance(node, MatchAll):
        return {"match_all": {}}
    if isinstance(node, MatchNone):
        return {"match_none": {}}
    if isinstance(node, Match):
        params: Dict[str, Any] = {"query": node.text, "operator": node.operator}
        if node.minimum_should_match is not None:
            params["minimum_should_match"] = node.minimum_should_match
        if node.fuzziness is not None:
            params["fuzziness"] = node.fuzziness
        if node.field == ANY_FIELD:
            return {"multi_match": dict(params, fields=["*"], type="best_fields", lenient=True)}
        return {"match": {node.field: params}}
    if isinstance(node, Phrase):
        if node.field == ANY_FIELD:
            return {"multi_match": {"query": node.text, "fields": ["*"], "type": "phrase", "slop": node.slop, "lenient": True}}
        return {"match_phrase": {node.field: {"query": node.text, "slop": node.slop}}}
    if isinstance(node, Term):
        params = {"value": node.value}
        if node.case_insensitive:
            params["case_insensitive"] = True
        return {"term": {node.field: params}}
    if isinstance(node, Terms):
        return {"terms": {node.field: list(node.values)}}
    if isinstance(node, Prefix):
        if node.field == ANY_FIELD:
            return _any_field_query_string(escape(node.value) + "*")
        params = {"value": node.value}
        if node.case_insensitive:
            params["case_insensitive"] = True
        return {"prefix": {node.field: params}}
    if isinstance(node, Wildcard):
        if node.field == ANY_FIELD:
            return _any_field_query_string(node.pattern)
        params = {"value": node.pattern}
        if node.case_insensitive:
            params["case_insensitive"] = True
        return {"wildcard": {node.field: params}}
    if isinstance(node, Regexp):
        if node.field == ANY_FIELD:
            return _any_field_query_string("/" + node.pattern + "/")
        params = {"value": node.pattern, "flags": "ALL"}
        if node.case_insensitive:
            params["case_insensitive"] = True
        return {"regexp": {node.field: params}}
    if isinstance(node, Fuzzy):
        if node.field == ANY_FIELD and node.prefix_length == 0 and node.transpositions:
            slop = "~" if node.fuzziness == "AUTO" else "~" + node.fuzziness
            return _any_field_query_string(escape(node.value) + slop)
        return {
            "fuzzy": {
                node.field: {
                    "value": node.value,
                    "fuzziness": node.fuzziness,
                    "prefix_length": node.prefix_length,
                    "transpositions": node.transpositions,
                }
            }
        }
    if isinstance(node, Range):
        if node.field == ANY_FIELD:
            low = node.gte if node.gte is not None else node.gt
            high = node.lte if node.lte is not None else node.lt
            query = (
                ("[" if node.gte is not None or low is None else "{")
                + _quoted_bound(low)
                + " TO "
                + _quoted_bound(high)
                + ("]" if node.lte is not None or high is None else "}")
            )
            return _any_field_query_string(query)
        params = {k: getattr(node, k) for k in ("gt", "gte", "lt", "lte") if getattr(node, k) is not None}
        if node.format is not None:
            params["format"] = node.format
        return {"range": {node.field: params}}
    if isinstance(node, Exists):
        return {"exists": {"field": node.field}}
    if isinstance(node, Ids):
        return {"ids": {"values": list(node.values)}}
    if isinstance(node, Bool):
        body: Dict[str, Any] = {}
        for key in ("must", "should", "must_not", "filter"):
            clauses = getattr(node, key)
            if clauses:
                body[key] = [to_dsl(c) for c in clauses]
        if node.minimum_should_match is not None:
            body["minimum_should_match"] = node.minimum_should_match
        return {"bool": body}
    raise TypeError(f"cannot render {type(node).__name__}")


__all__ = ["escape", "to_dsl"]
