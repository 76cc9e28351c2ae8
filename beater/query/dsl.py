"""Elasticsearch 7.17 query DSL objects into the query IR.

Every construct accepted here keeps its Elasticsearch meaning (checked against a
7.17 percolator); a valid construct the embedded percolator cannot match
faithfully raises UnsupportedQuery naming it, a malformed one InvalidQuery.
"""

from __future__ import annotations

import math
import struct
from dataclasses import replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, cast

from beater.errors import InvalidQuery, UnsupportedQuery
from beater.query.ir import (
    ANY_FIELD,
    Bool,
    Exists,
    Fuzzy,
    Match,
    MatchAll,
    MatchNone,
    Node,
    Operator,
    Phrase,
    Prefix,
    Range,
    Regexp,
    Term,
    Terms,
    Wildcard,
)
from beater.query.kinds import DYNAMIC, FieldKinds
from beater.query.lucene import MAX_DEPTH, parse_lucene
from beater.query.simple import ALL, Fields as SimpleFields, parse_flags, parse_simple

_IGNORED = {"boost", "_name"}  # only affect scoring / naming, never which documents match


def _f32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


def _parse_int(text: str, spec: object) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise InvalidQuery(f"bad minimum_should_match {spec!r}", part=str(spec)) from None


def resolve_minimum_should_match(optional_clauses: int, spec: Any) -> int:
    """Elasticsearch's Queries.calculateMinShouldMatch: the clause count ``spec`` asks for."""
    if isinstance(spec, bool) or not isinstance(spec, (int, str)):
        raise InvalidQuery(f"bad minimum_should_match {spec!r}", part=repr(spec))
    text = str(spec).strip()
    result = optional_clauses
    if "<" in text:
        import re

        text = re.sub(r"\s*<\s*", "<", text)
        for part in text.split():
            pieces = part.split("<")
            if len(pieces) != 2:
                raise InvalidQuery(f"bad minimum_should_match {spec!r}", part=str(spec))
            if optional_clauses <= _parse_int(pieces[0], spec):
                return result
            result = resolve_minimum_should_match(optional_clauses, pieces[1])
        return result
    if "%" in text:
        percent = _parse_int(text[:-1], spec) if text.endswith("%") else _parse_int(text, spec)
        # Java float arithmetic, truncation towards zero, as Elasticsearch does
        calc = _f32(_f32(float(result * percent)) * _f32(1 / 100))
        result = result + int(calc) if calc < 0 else int(calc)
    else:
        calc_i = _parse_int(text, spec)
        result = result + calc_i if calc_i < 0 else calc_i
    return max(result, 0)


class _DslParser:
    def __init__(self, fields: FieldKinds) -> None:
        self.fields = fields
        self.depth = 0
        self.handlers: Dict[str, Callable[[Any], Node]] = {
            "bool": self.bool_,
            "match": self.match,
            "match_phrase": self.match_phrase,
            "multi_match": self.multi_match,
            "term": self.term,
            "terms": self.terms,
            "range": self.range_,
            "prefix": self.prefix,
            "wildcard": self.wildcard,
            "regexp": self.regexp,
            "fuzzy": self.fuzzy,
            "exists": self.exists,
            "match_all": self.match_all,
            "match_none": self.match_none,
            "query_string": self.query_string,
            "simple_query_string": self.simple_query_string,
            "constant_score": self.constant_score,
            "dis_max": self.dis_max,
        }

    # generic helpers ------------------------------------------------------------
    def node(self, obj: Any) -> Node:
        if not isinstance(obj, Mapping) or len(obj) != 1:
            raise InvalidQuery("a query must be an object with exactly one query type", part=_show(obj))
        (kind, body), = obj.items()
        if kind == "ids":
            # Checked on 7.17: the percolator gives every percolated document the id "_temp_id", so an
            # ids query there selects all documents or none; refusing says so instead of pretending.
            raise UnsupportedQuery("the ids query is not supported: Elasticsearch's percolator gives every "
                                   "percolated document the id _temp_id, so ids cannot select documents", part="ids")
        handler = self.handlers.get(kind)
        if handler is None:
            raise UnsupportedQuery(f"the {kind} query is not supported", part=str(kind))
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise InvalidQuery(f"query nests deeper than {MAX_DEPTH} levels", part=str(kind))
        try:
            return handler(body)
        finally:
            self.depth -= 1

    @staticmethod
    def field_body(kind: str, body: Any, value_key: str) -> Tuple[str, Dict[str, Any]]:
        """Split ``{field: value}`` or ``{field: {value_key: value, ...}}`` (plus ignored keys)."""
        if not isinstance(body, Mapping):
            raise InvalidQuery(f"{kind} needs an object", part=_show(body))
        fields = [k for k in body if k not in _IGNORED]
        if len(fields) != 1:
            raise InvalidQuery(f"{kind} needs exactly one field", part=_show(body))
        field = fields[0]
        _check_field(kind, field)
        params = body[field]
        if isinstance(params, Mapping):
            params = dict(params)
            if value_key not in params:
                raise InvalidQuery(f"{kind} on {field} needs {value_key!r}", part=_show(body))
        else:
            params = {value_key: params}
        return field, params

    @staticmethod
    def check_keys(kind: str, params: Mapping[str, Any], allowed: set) -> None:
        for key in params:
            if key not in allowed and key not in _IGNORED:
                raise UnsupportedQuery(f"{kind} parameter {key!r} is not supported", part=key)

    # compound ------------------------------------------------------------------
    def clause_list(self, value: Any) -> Tuple[Node, ...]:
        if value is None:
            return ()
        items = value if isinstance(value, list) else [value]
        return tuple(self.node(item) for item in items)

    def bool_(self, body: Any) -> Node:
        if not isinstance(body, Mapping):
            raise InvalidQuery("bool needs an object", part=_show(body))
        self.check_keys("bool", body, {"must", "should", "must_not", "filter", "minimum_should_match", "adjust_pure_negative"})
        if body.get("adjust_pure_negative", True) is not True:
            raise UnsupportedQuery("bool adjust_pure_negative false is not supported", part="adjust_pure_negative")
        must = self.clause_list(body.get("must"))
        should = self.clause_list(body.get("should"))
        must_not = self.clause_list(body.get("must_not"))
        filter_ = self.clause_list(body.get("filter"))
        msm: Optional[int] = None
        if body.get("minimum_should_match") is not None:
            resolved = resolve_minimum_should_match(len(should), body["minimum_should_match"])
            msm = resolved if resolved > 0 else None  # ES sets it only when positive
        return Bool(must=must, should=should, must_not=must_not, filter=filter_, minimum_should_match=msm)

    def constant_score(self, body: Any) -> Node:
        if not isinstance(body, Mapping) or "filter" not in body:
            raise InvalidQuery("constant_score needs a filter", part=_show(body))
        self.check_keys("constant_score", body, {"filter"})
        return self.node(body["filter"])

    def dis_max(self, body: Any) -> Node:
        if not isinstance(body, Mapping) or not isinstance(body.get("queries"), list):
            raise InvalidQuery("dis_max needs a list of queries", part=_show(body))
        self.check_keys("dis_max", body, {"queries", "tie_breaker"})
        queries = self.clause_list(body["queries"])
        if not queries:
            return MatchNone()
        return Bool(should=queries)

    def match_all(self, body: Any) -> Node:
        self.check_keys("match_all", body or {}, set())
        return MatchAll()

    def match_none(self, body: Any) -> Node:
        self.check_keys("match_none", body or {}, set())
        return MatchNone()

    # full text -----------------------------------------------------------------
    def match(self, body: Any) -> Node:
        field, params = self.field_body("match", body, "query")
        if field == ANY_FIELD:
            raise InvalidQuery("match needs a concrete field (use multi_match or query_string for all fields)", part="*")
        self.check_keys(
            "match", params,
            {"query", "operator", "minimum_should_match", "fuzziness", "analyzer", "zero_terms_query", "lenient",
             "prefix_length", "max_expansions", "fuzzy_transpositions", "auto_generate_synonyms_phrase_query", "fuzzy_rewrite"},
        )
        return self.match_node(field, params, "match")

    def match_node(self, field: str, params: Mapping[str, Any], kind: str) -> Match:
        _standard_only(kind, params)
        if params.get("zero_terms_query", "none") not in ("none", "NONE"):
            raise UnsupportedQuery(f"{kind} zero_terms_query all is not supported", part="zero_terms_query")
        if params.get("prefix_length", 0) not in (0, "0"):
            raise UnsupportedQuery(f"{kind} prefix_length is not supported", part="prefix_length")
        if params.get("fuzzy_transpositions", True) is not True:
            raise UnsupportedQuery(f"{kind} fuzzy_transpositions false is not supported", part="fuzzy_transpositions")
        msm = params.get("minimum_should_match")
        if msm is not None:
            if isinstance(msm, bool) or not isinstance(msm, (int, str)):
                raise InvalidQuery(f"bad minimum_should_match {msm!r}", part=repr(msm))
            resolve_minimum_should_match(2, msm)  # validates the syntax now
            msm = str(msm)
        return Match(
            field,
            _text(kind, params["query"]),
            operator=_operator(kind, params.get("operator", "or")),
            minimum_should_match=msm,
            fuzziness=_fuzziness(kind, params.get("fuzziness")),
        )

    def match_phrase(self, body: Any) -> Node:
        field, params = self.field_body("match_phrase", body, "query")
        if field == ANY_FIELD:
            raise InvalidQuery("match_phrase needs a concrete field", part="*")
        self.check_keys("match_phrase", params, {"query", "slop", "analyzer", "zero_terms_query"})
        _standard_only("match_phrase", params)
        if params.get("zero_terms_query", "none") not in ("none", "NONE"):
            raise UnsupportedQuery("match_phrase zero_terms_query all is not supported", part="zero_terms_query")
        return Phrase(field, _text("match_phrase", params["query"]), slop=_non_negative_int("slop", params.get("slop", 0)))

    def multi_match(self, body: Any) -> Node:
        if not isinstance(body, Mapping) or "query" not in body:
            raise InvalidQuery("multi_match needs a query", part=_show(body))
        self.check_keys(
            "multi_match", body,
            {"query", "fields", "type", "operator", "minimum_should_match", "fuzziness", "analyzer", "zero_terms_query",
             "lenient", "prefix_length", "max_expansions", "fuzzy_transpositions", "tie_breaker", "slop",
             "auto_generate_synonyms_phrase_query", "fuzzy_rewrite"},
        )
        kind = str(body.get("type", "best_fields")).lower()
        fields = body.get("fields")
        if fields is None:
            fields = [ANY_FIELD]
        if isinstance(fields, str):
            fields = [fields]
        names = _field_names("multi_match", fields)
        nodes: List[Node]
        if kind in ("best_fields", "most_fields"):
            # both match a document when one field matches with the per-field operator / msm
            nodes = [self.match_node(name, body, "multi_match") for name in dict.fromkeys(names)]
        elif kind == "phrase":
            if "slop" in body:
                _non_negative_int("slop", body["slop"])
            nodes = [Phrase(name, _text("multi_match", body["query"]), slop=_non_negative_int("slop", body.get("slop", 0)))
                     for name in dict.fromkeys(names)]
        else:
            raise UnsupportedQuery(f"multi_match type {kind} is not supported", part=kind)
        return nodes[0] if len(nodes) == 1 else Bool(should=tuple(nodes))

    def query_string(self, body: Any) -> Node:
        if not isinstance(body, Mapping) or not isinstance(body.get("query"), str):
            raise InvalidQuery("query_string needs a query string", part=_show(body))
        self.check_keys(
            "query_string", body,
            {"query", "default_field", "default_operator", "lenient", "allow_leading_wildcard", "analyze_wildcard",
             "auto_generate_synonyms_phrase_query", "escape", "max_determinized_states", "fuzzy_max_expansions",
             "fuzzy_transpositions", "fields", "analyzer", "type", "tie_breaker", "rewrite", "fuzzy_rewrite", "phrase_slop", "fuzziness", "fuzzy_prefix_length"},
        )
        if body.get("analyze_wildcard") is True:
            raise UnsupportedQuery("query_string analyze_wildcard is not supported", part="analyze_wildcard")
        if body.get("phrase_slop", 0) not in (0, "0"):
            raise UnsupportedQuery("query_string phrase_slop is not supported", part="phrase_slop")
        if str(body.get("fuzziness", "AUTO")).upper() != "AUTO":
            raise UnsupportedQuery("query_string fuzziness is not supported", part="fuzziness")
        if body.get("fuzzy_prefix_length", 0) not in (0, "0") or body.get("fuzzy_transpositions", True) is not True:
            raise UnsupportedQuery("query_string fuzzy_prefix_length / fuzzy_transpositions are not supported", part="fuzzy")
        if body.get("escape") is True:
            raise UnsupportedQuery("query_string escape is not supported", part="escape")
        if str(body.get("type", "best_fields")).lower() not in ("best_fields", "most_fields"):
            raise UnsupportedQuery(f"query_string type {body['type']} is not supported", part=str(body["type"]))
        _standard_only("query_string", body)
        field = body.get("default_field", ANY_FIELD)
        if "fields" in body:
            fields = body["fields"]
            if not (isinstance(fields, list) and len(fields) == 1 and isinstance(fields[0], str)) or "default_field" in body:
                raise UnsupportedQuery("query_string with several fields is not supported", part="fields")
            field = fields[0].split("^", 1)[0]
        if not isinstance(field, str) or not field:
            raise InvalidQuery("query_string default_field must be a field name", part=_show(field))
        if field != ANY_FIELD:
            _check_field("query_string", field)
            if body.get("lenient") is True:
                raise UnsupportedQuery("query_string lenient on a concrete field is not supported", part="lenient")
        elif body.get("lenient") is False:
            raise UnsupportedQuery("query_string lenient false on all fields is not supported", part="lenient")
        return parse_lucene(body["query"], _operator("query_string", body.get("default_operator", "or")), field, self.fields)

    def simple_query_string(self, body: Any) -> Node:
        if not isinstance(body, Mapping) or not isinstance(body.get("query"), str):
            raise InvalidQuery("simple_query_string needs a query string", part=_show(body))
        self.check_keys(
            "simple_query_string", body,
            {"query", "fields", "default_operator", "analyzer", "flags", "lenient", "minimum_should_match",
             "analyze_wildcard", "auto_generate_synonyms_phrase_query", "fuzzy_max_expansions",
             "fuzzy_prefix_length", "fuzzy_transpositions", "quote_field_suffix", "boost", "_name"},
        )
        _standard_only("simple_query_string", body)
        if body.get("analyze_wildcard") is True:
            raise UnsupportedQuery("simple_query_string analyze_wildcard is not supported", part="analyze_wildcard")
        if body.get("quote_field_suffix"):
            raise UnsupportedQuery("simple_query_string quote_field_suffix is not supported", part="quote_field_suffix")
        names = _field_names("simple_query_string", body.get("fields", [ANY_FIELD]))
        if names != (ANY_FIELD,) and body.get("lenient") is True:
            raise UnsupportedQuery("simple_query_string lenient on concrete fields is not supported", part="lenient")
        if names == (ANY_FIELD,) and body.get("lenient") is False:
            raise UnsupportedQuery("simple_query_string lenient false on all fields is not supported", part="lenient")
        flags = body.get("flags", "ALL")
        if isinstance(flags, int) and not isinstance(flags, bool) and flags == ALL:
            flags = "ALL"
        if not isinstance(flags, str):
            raise UnsupportedQuery("simple_query_string flags must be names such as 'OR|AND|PREFIX'", part=_show(flags))
        transpositions = body.get("fuzzy_transpositions", True)
        if not isinstance(transpositions, bool):
            raise InvalidQuery("fuzzy_transpositions must be a boolean", part=_show(transpositions))
        how = SimpleFields(
            names,
            default_operator=_operator("simple_query_string", body.get("default_operator", "or")),
            fuzzy_prefix_length=_non_negative_int("fuzzy_prefix_length", body.get("fuzzy_prefix_length", 0)),
            fuzzy_transpositions=transpositions,
            kinds=self.fields,
        )
        node, combined = parse_simple(body["query"], how, parse_flags(flags))
        msm = body.get("minimum_should_match")
        if msm is None:
            return node
        if isinstance(msm, bool) or not isinstance(msm, (int, str)):
            raise InvalidQuery(f"bad minimum_should_match {msm!r}", part=repr(msm))
        if not combined or not isinstance(node, Bool):
            raise UnsupportedQuery("simple_query_string minimum_should_match on a single clause is not supported",
                                   part=str(msm))
        count = resolve_minimum_should_match(len(node.should), msm)
        return replace(node, minimum_should_match=count) if count > 0 else node

    # term level ----------------------------------------------------------------
    def term(self, body: Any) -> Node:
        field, params = self.field_body("term", body, "value")
        self.check_keys("term", params, {"value", "case_insensitive"})
        value = params["value"]
        if not isinstance(value, (str, int, float, bool)) or (isinstance(value, float) and not math.isfinite(value)):
            raise InvalidQuery("term value must be a string, number or boolean", part=_show(value))
        return Term(field, value, case_insensitive=_flag("case_insensitive", params))

    def terms(self, body: Any) -> Node:
        if not isinstance(body, Mapping):
            raise InvalidQuery("terms needs an object", part=_show(body))
        fields = [k for k in body if k not in _IGNORED]
        if len(fields) != 1:
            raise InvalidQuery("terms needs exactly one field", part=_show(body))
        field = fields[0]
        _check_field("terms", field)
        values = body[field]
        if isinstance(values, Mapping):
            raise UnsupportedQuery("terms lookup is not supported", part=field)
        if not isinstance(values, list) or not all(isinstance(v, (str, int, float, bool)) for v in values):
            raise InvalidQuery("terms needs a list of strings, numbers or booleans", part=_show(values))
        if not values:
            return MatchNone()
        return Terms(field, tuple(values))

    def range_(self, body: Any) -> Node:
        if not isinstance(body, Mapping):
            raise InvalidQuery("range needs an object", part=_show(body))
        fields = [k for k in body if k not in _IGNORED]
        if len(fields) != 1 or not isinstance(body[fields[0]], Mapping):
            raise InvalidQuery("range needs exactly one field with bounds", part=_show(body))
        field = fields[0]
        _check_field("range", field)
        params = dict(body[field])
        self.check_keys("range", params, {"gt", "gte", "lt", "lte", "from", "to", "include_lower", "include_upper", "format", "relation"})
        if str(params.get("relation", "intersects")).lower() != "intersects":
            raise UnsupportedQuery("range relation is not supported", part="relation")
        bounds: Dict[str, Any] = {}
        include_lower = params.get("include_lower", True)
        include_upper = params.get("include_upper", True)
        if params.get("from") is not None:
            bounds["gte" if include_lower else "gt"] = params["from"]
        if params.get("to") is not None:
            bounds["lte" if include_upper else "lt"] = params["to"]
        for key in ("gt", "gte", "lt", "lte"):
            if params.get(key) is not None:
                # a later explicit bound replaces from/to on the same side, as ES's parser does
                side = ("gt", "gte") if key in ("gt", "gte") else ("lt", "lte")
                for other in side:
                    bounds.pop(other, None)
                bounds[key] = params[key]
        for key, value in bounds.items():
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise InvalidQuery(f"range bound {key} must be a string or a number", part=_show(value))
            if isinstance(value, float) and not math.isfinite(value):
                raise InvalidQuery(f"range bound {key} must be finite", part=str(value))
            if isinstance(value, str) and ("now" in value or "||" in value):
                raise UnsupportedQuery("date math ('now', '||') is not supported in ranges", part=value)
        fmt = params.get("format")
        if fmt is not None and not isinstance(fmt, str):
            raise InvalidQuery("range format must be a string", part=_show(fmt))
        return Range(field, format=fmt, **bounds)

    def prefix(self, body: Any) -> Node:
        field, params = self.field_body("prefix", body, "value")
        self.check_keys("prefix", params, {"value", "case_insensitive", "rewrite"})
        return Prefix(field, _string("prefix", params["value"]), case_insensitive=_flag("case_insensitive", params))

    def wildcard(self, body: Any) -> Node:
        if isinstance(body, Mapping):
            for value in body.values():
                if isinstance(value, Mapping) and "wildcard" in value and "value" not in value:
                    value = dict(value)
                    value["value"] = value.pop("wildcard")
                    body = {k: (value if isinstance(v, Mapping) else v) for k, v in body.items()}
                    break
        field, params = self.field_body("wildcard", body, "value")
        self.check_keys("wildcard", params, {"value", "case_insensitive", "rewrite"})
        return Wildcard(field, _string("wildcard", params["value"]), case_insensitive=_flag("case_insensitive", params))

    def regexp(self, body: Any) -> Node:
        field, params = self.field_body("regexp", body, "value")
        self.check_keys("regexp", params, {"value", "case_insensitive", "flags", "max_determinized_states", "rewrite", "flags_value"})
        flags = params.get("flags", "ALL")
        if str(flags).upper() not in ("ALL", ""):
            raise UnsupportedQuery("regexp flags other than ALL are not supported", part=str(flags))
        if "flags_value" in params and params["flags_value"] not in (-1, 65535):
            raise UnsupportedQuery("regexp flags_value is not supported", part=str(params["flags_value"]))
        return Regexp(field, _string("regexp", params["value"]), case_insensitive=_flag("case_insensitive", params))

    def fuzzy(self, body: Any) -> Node:
        field, params = self.field_body("fuzzy", body, "value")
        self.check_keys("fuzzy", params, {"value", "fuzziness", "prefix_length", "transpositions", "max_expansions", "rewrite"})
        value = params["value"]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise InvalidQuery("fuzzy value must be a string", part=_show(value))
        transpositions = params.get("transpositions", True)
        if not isinstance(transpositions, bool):
            raise InvalidQuery("fuzzy transpositions must be a boolean", part=_show(transpositions))
        return Fuzzy(
            field,
            str(value),
            fuzziness=_fuzziness("fuzzy", params.get("fuzziness", "AUTO")) or "AUTO",
            prefix_length=_non_negative_int("prefix_length", params.get("prefix_length", 0)),
            transpositions=transpositions,
        )

    def exists(self, body: Any) -> Node:
        if not isinstance(body, Mapping) or not isinstance(body.get("field"), str):
            raise InvalidQuery("exists needs a field", part=_show(body))
        self.check_keys("exists", body, {"field"})
        _check_field("exists", body["field"])
        return Exists(body["field"])


def _show(obj: Any) -> str:
    import json

    try:
        text = json.dumps(obj, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(obj)
    return text if len(text) <= 200 else text[:197] + "..."


def _check_field(kind: str, field: Any) -> None:
    if not isinstance(field, str) or not field:
        raise InvalidQuery(f"{kind} needs a field name", part=_show(field))
    if "*" in field or "?" in field:
        raise UnsupportedQuery(f"field patterns are not supported in {kind}: {field!r}", part=field)


def _field_names(kind: str, fields: Any) -> Tuple[str, ...]:
    """The distinct field names of a ``fields`` list, per-field boosts (which only score) dropped."""
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
        raise InvalidQuery(f"{kind} fields must be a list of field names", part=_show(fields))
    names = tuple(dict.fromkeys(f.split("^", 1)[0] for f in fields))
    for name in names:
        if name != ANY_FIELD:
            _check_field(kind, name)
    return names


def _standard_only(kind: str, params: Mapping[str, Any]) -> None:
    analyzer = params.get("analyzer")
    if analyzer is not None and analyzer != "standard":
        raise UnsupportedQuery(f"{kind} analyzer {analyzer!r} is not supported", part=str(analyzer))


def _text(kind: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)) and not (isinstance(value, float) and not math.isfinite(value)):
        return str(value)
    if isinstance(value, str):
        return value
    raise InvalidQuery(f"{kind} query must be a string, number or boolean", part=_show(value))


def _string(kind: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidQuery(f"{kind} value must be a string", part=_show(value))
    return str(value)


def _operator(kind: str, value: Any) -> Operator:
    if not isinstance(value, str) or value.lower() not in ("or", "and"):
        raise InvalidQuery(f"{kind} operator must be 'or' or 'and'", part=_show(value))
    return cast(Operator, value.lower())  # checked just above to be "or" or "and"


def _flag(name: str, params: Mapping[str, Any]) -> bool:
    value = params.get(name, False)
    if not isinstance(value, bool):
        raise InvalidQuery(f"{name} must be a boolean", part=_show(value))
    return value


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidQuery(f"{name} must be a non-negative integer", part=_show(value))
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidQuery(f"{name} must be a non-negative integer", part=_show(value)) from None
    if number < 0 or (isinstance(value, float) and value != number):
        raise InvalidQuery(f"{name} must be a non-negative integer", part=_show(value))
    return number


def _fuzziness(kind: str, value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidQuery(f"{kind} fuzziness must be AUTO, 0, 1 or 2", part=_show(value))
    text = str(value).strip()
    if text.upper() == "AUTO":
        return "AUTO"
    try:
        number = float(text)
    except ValueError:
        raise UnsupportedQuery(f"{kind} fuzziness {text!r} is not supported (use AUTO, 0, 1 or 2)", part=text) from None
    if number < 0 or number != int(number):
        raise UnsupportedQuery(f"{kind} fuzziness {text!r} is not supported (use AUTO, 0, 1 or 2)", part=text)
    return str(min(int(number), 2))


def parse_dsl(obj: Any, fields: FieldKinds = DYNAMIC) -> Node:
    """Parse one Elasticsearch query DSL object (``{"match": {...}}``, not wrapped in ``query``).

    ``fields`` tells keyword fields from text fields (``query_string`` and
    ``simple_query_string`` normalise and drop words by field kind).
    """
    return _DslParser(fields).node(obj)


__all__ = ["parse_dsl", "resolve_minimum_should_match"]
