"""IR back to Elasticsearch DSL."""

from beater.query import canonicalise, parse, to_dsl
from beater.query.ir import ANY_FIELD, Bool, Exists, Fuzzy, Match, Phrase, Prefix, Range, Regexp, Term, Wildcard
from beater.query.render import escape


def test_any_field_match_is_lenient_multi_match_on_all_fields():
    assert to_dsl(Match(ANY_FIELD, "a b", operator="and")) == {
        "multi_match": {"query": "a b", "operator": "and", "fields": ["*"], "type": "best_fields", "lenient": True}
    }


def test_field_match_and_phrase():
    assert to_dsl(Match("title", "x", minimum_should_match="2")) == {"match": {"title": {"query": "x", "operator": "or", "minimum_should_match": "2"}}}
    assert to_dsl(Phrase("title", "a b", 2)) == {"match_phrase": {"title": {"query": "a b", "slop": 2}}}


def test_any_field_term_level_nodes_use_query_string():
    assert to_dsl(Prefix(ANY_FIELD, "Q4:")) == {"query_string": {"query": "Q4\\:*", "default_field": "*", "lenient": True}}
    assert to_dsl(Regexp(ANY_FIELD, "a.*")) == {"query_string": {"query": "/a.*/", "default_field": "*", "lenient": True}}
    assert to_dsl(Fuzzy(ANY_FIELD, "abc"))["query_string"]["query"] == "abc~"


def test_any_field_range_uses_quoted_bounds():
    assert to_dsl(Range(ANY_FIELD, gt="a", lte="b"))["query_string"]["query"] == '{"a" TO "b"]'
    assert to_dsl(Range(ANY_FIELD, gte="a"))["query_string"]["query"] == '["a" TO *]'


def test_field_term_level_nodes():
    assert to_dsl(Term("t", "X", case_insensitive=True)) == {"term": {"t": {"value": "X", "case_insensitive": True}}}
    assert to_dsl(Wildcard("t", "a?c")) == {"wildcard": {"t": {"value": "a?c"}}}
    assert to_dsl(Range("n", gte=1, lt=5, format="yyyy")) == {"range": {"n": {"gte": 1, "lt": 5, "format": "yyyy"}}}
    assert to_dsl(Exists("f")) == {"exists": {"field": "f"}}


def test_bool_renders_clauses_and_msm():
    node = Bool(must=(Term("a", 1),), should=(Term("b", 1), Term("c", 1)), minimum_should_match=1)
    assert to_dsl(node) == {"bool": {"must": [{"term": {"a": {"value": 1}}}], "should": [{"term": {"b": {"value": 1}}}, {"term": {"c": {"value": 1}}}], "minimum_should_match": 1}}


def test_escape_makes_operators_literal():
    assert escape("a AND b") == "a\\ AND\\ b"
    assert escape("c++") == "c\\+\\+"


def test_canonical_lucene_query_renders():
    assert to_dsl(canonicalise(parse("type:edit AND -bot:true")))["bool"]["must_not"] == [
        {"match": {"bot": {"query": "true", "operator": "or"}}}
    ]
