"""Query DSL objects into the IR, Elasticsearch 7.17 semantics."""

import pytest

from beater.errors import InvalidQuery, UnsupportedQuery
from beater.query import parse
from beater.query.dsl import parse_dsl, resolve_minimum_should_match
from beater.query.ir import ANY_FIELD, Bool, Exists, Fuzzy, Match, MatchAll, MatchNone, Phrase, Prefix, Range, Regexp, Term, Terms, Wildcard


def test_match_short_and_long_forms():
    assert parse_dsl({"match": {"title": "quick brown"}}) == Match("title", "quick brown")
    assert parse_dsl({"match": {"title": {"query": "quick", "operator": "AND", "fuzziness": 1}}}) == Match(
        "title", "quick", operator="and", fuzziness="1"
    )


def test_match_non_string_query_becomes_text():
    assert parse_dsl({"match": {"bot": True}}) == Match("bot", "true")
    assert parse_dsl({"match": {"namespace": 14}}) == Match("namespace", "14")


def test_match_phrase_slop():
    assert parse_dsl({"match_phrase": {"comment": {"query": "brown quick", "slop": 2}}}) == Phrase("comment", "brown quick", 2)


def test_multi_match_best_fields_is_should_per_field():
    assert parse_dsl({"multi_match": {"query": "adams", "fields": ["title^2", "comment"]}}) == Bool(
        should=(Match("title", "adams"), Match("comment", "adams"))
    )


def test_multi_match_without_fields_is_any_field():
    assert parse_dsl({"multi_match": {"query": "adams"}}) == Match(ANY_FIELD, "adams")


def test_term_level_queries():
    assert parse_dsl({"term": {"type": {"value": "Edit", "case_insensitive": True}}}) == Term("type", "Edit", True)
    assert parse_dsl({"terms": {"namespace": [6, 14]}}) == Terms("namespace", (6, 14))
    assert parse_dsl({"prefix": {"title": "Q42"}}) == Prefix("title", "Q42")  # not normalised, unlike query_string
    assert parse_dsl({"wildcard": {"f": {"wildcard": "a*"}}}) == Wildcard("f", "a*")
    assert parse_dsl({"regexp": {"title": "q4[0-9]+"}}) == Regexp("title", "q4[0-9]+")
    assert parse_dsl({"fuzzy": {"title": {"value": "fuzzy", "fuzziness": 1}}}) == Fuzzy("title", "fuzzy", "1")
    assert parse_dsl({"exists": {"field": "log_type"}}) == Exists("log_type")


def test_range_with_format_and_from_to():
    assert parse_dsl({"range": {"when": {"gte": "2020-01-01", "lt": "2021", "format": "yyyy-MM-dd||yyyy"}}}) == Range(
        "when", gte="2020-01-01", lt="2021", format="yyyy-MM-dd||yyyy"
    )
    assert parse_dsl({"range": {"n": {"from": 1, "to": 5, "include_upper": False}}}) == Range("n", gte=1, lt=5)


def test_range_with_now_is_unsupported():
    with pytest.raises(UnsupportedQuery):
        parse_dsl({"range": {"d": {"gte": "now-1d"}}})


def test_bool_with_all_clause_kinds():
    node = parse_dsl({"bool": {"must": {"match_all": {}}, "filter": [{"exists": {"field": "a"}}], "must_not": [{"match_none": {}}], "should": []}})
    assert node == Bool(must=(MatchAll(),), filter=(Exists("a"),), must_not=(MatchNone(),))


@pytest.mark.parametrize(
    "spec,count,expected",
    [(2, 3, 2), ("2", 3, 2), ("-1", 3, 2), ("50%", 3, 1), ("-25%", 4, 3), ("75%", 4, 3), ("2<-25% 9<3", 4, 3), ("2<-25%", 2, 2), ("0", 3, 0), ("-5", 3, 0)],
)
def test_minimum_should_match_resolution(spec, count, expected):
    assert resolve_minimum_should_match(count, spec) == expected


def test_bool_minimum_should_match_resolved_to_int():
    should = [{"match": {"t": w}} for w in ("a", "b", "c")]
    assert parse_dsl({"bool": {"should": should, "minimum_should_match": "-1"}}).minimum_should_match == 2
    assert parse_dsl({"bool": {"should": should, "minimum_should_match": "0%"}}).minimum_should_match is None


def test_constant_score_and_dis_max():
    assert parse_dsl({"constant_score": {"filter": {"term": {"a": 1}}}}) == Term("a", 1)
    assert parse_dsl({"dis_max": {"queries": [{"term": {"a": 1}}, {"term": {"b": 2}}]}}) == Bool(should=(Term("a", 1), Term("b", 2)))


def test_query_string_inside_dsl_uses_lucene_parser():
    assert parse_dsl({"query_string": {"query": "foo", "default_operator": "AND"}}) == Match(ANY_FIELD, "foo", operator="and")


def test_ids_is_unsupported_by_name():
    with pytest.raises(UnsupportedQuery, match="ids"):
        parse_dsl({"ids": {"values": ["1"]}})


@pytest.mark.parametrize("query", [{"script": {}}, {"geo_distance": {}}, {"nested": {}}])
def test_unknown_constructs_are_unsupported_by_name(query):
    with pytest.raises(UnsupportedQuery, match=next(iter(query))):
        parse_dsl(query)


def test_malformed_dsl_is_invalid():
    with pytest.raises(InvalidQuery):
        parse_dsl({"match": {}})
    with pytest.raises(InvalidQuery):
        parse_dsl({"bool": {}, "match": {}})


def test_parse_accepts_wrapped_mapping_and_json_string():
    assert parse({"query": {"match_all": {}}}) == MatchAll()
    assert parse('  {"match_all": {}}') == MatchAll()


def test_parse_json_error_has_position():
    with pytest.raises(InvalidQuery) as info:
        parse('{"match_all": ')
    assert info.value.position is not None


def test_parse_rejects_other_types():
    with pytest.raises(InvalidQuery):
        parse(42)
