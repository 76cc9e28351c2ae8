"""One entry point for every query a client can register: Lucene syntax or query DSL."""

from __future__ import annotations

import json
from typing import Any, Mapping

from beater.errors import InvalidQuery
from beater.query.dsl import parse_dsl
from beater.query.ir import Node
from beater.query.kinds import DYNAMIC, FieldKinds
from beater.query.lucene import parse_lucene


def parse(source: Any, default_operator: str = "or", fields: FieldKinds = DYNAMIC) -> Node:
    """Parse ``source`` into the query IR.

    A string whose first non-blank character is ``{`` is JSON query DSL; any other
    string is Lucene syntax (``query_string`` semantics, default field ``*``,
    ``default_operator`` applied); a mapping is query DSL, optionally wrapped as
    ``{"query": {...}}``.  ``fields`` are the index's field kinds (keyword or text).
    Raises InvalidQuery / UnsupportedQuery.
    """
    if isinstance(default_operator, str) and default_operator.lower() in ("or", "and"):
        default_operator = default_operator.lower()
    else:
        raise InvalidQuery("default_operator must be 'or' or 'and'", part=repr(default_operator))
    if isinstance(source, str):
        if source.lstrip().startswith("{"):
            try:
                obj = json.loads(source)
            except json.JSONDecodeError as e:
                raise InvalidQuery(f"query is not valid JSON: {e.msg}", part=source[max(0, e.pos - 10) : e.pos + 10], position=e.pos) from None
            return _parse_mapping(obj, fields)
        return parse_lucene(source, default_operator, fields=fields)
    if isinstance(source, Mapping):
        return _parse_mapping(source, fields)
    raise InvalidQuery("a query must be a Lucene query string or a query DSL object", part=repr(source)[:200])


def _parse_mapping(obj: Any, fields: FieldKinds) -> Node:
    if not isinstance(obj, Mapping):
        raise InvalidQuery("query DSL must be a JSON object", part=repr(obj)[:200])
    if set(obj) == {"query"}:
        obj = obj["query"]
    return parse_dsl(obj, fields)


__all__ = ["parse"]
