"""Canonical forms and subscription ids: equal exactly for equivalent queries."""

import pytest

from beater.query import canonical_json, canonicalise, node_from_json, parse, subscription_id
from beater.query.identity import node_to_json
from beater.query.ir import ANY_FIELD, Bool, Match, MatchAll, MatchNone, Phrase, Range, Term, Terms
from beater.registration import make_registration

SAME_AS_FOO_AND_BAR = [
    "foo AND bar",
    "bar AND foo",
    "+foo +bar",
    "(foo AND (bar))",
    "foo  AND bar",
    "FOO AND Bar",
    "foo AND bar AND foo",
    "foo && bar",
    {"bool": {"must": [{"query_string": {"query": "foo"}}, {"query_string": {"query": "bar"}}]}},
    {"bool": {"filter": [{"multi_match": {"query": "bar"}}], "must": {"query_string": {"query": "FOO"}}}},
    {"query": {"bool": {"should": [{"multi_match": {"query": "foo"}}, {"multi_match": {"query": "bar"}}], "minimum_should_match": 2}}},
]


def reg_id(source, op="or", index="idx"):
    return make_registration(index, source, op).id


@pytest.mark.parametrize("source", SAME_AS_FOO_AND_BAR)
def test_equivalent_spellings_share_the_id(source):
    assert reg_id(source) == reg_id("foo AND bar")


@pytest.mark.parametrize("source", ["foo OR bar", "foo AND NOT bar", "title:foo AND bar", "foo", "foo bar"])
def test_different_queries_have_different_ids(source):
    assert reg_id(source) != reg_id("foo AND bar")


def test_index_is_part_of_the_id():
    assert reg_id("foo", index="a") != reg_id("foo", index="b")


def test_default_operator_matters_only_when_it_changes_meaning():
    assert reg_id("foo", "and") == reg_id("foo", "or")
    assert reg_id("foo bar", "and") != reg_id("foo bar", "or")


def test_keyword_field_text_keeps_case():
    assert reg_id("user.keyword:Alice") != reg_id("user.keyword:alice")


def test_boolean_literal_keeps_case():
    assert reg_id("bot:TRUE") != reg_id("bot:true")


def test_ored_phrase_of_one_word_is_a_term():
    assert reg_id('"foo"') == reg_id("foo")


def test_msm_equal_to_should_count_means_all_required():
    node = Bool(should=(Term("a", 1), Term("b", 2)), minimum_should_match=2)
    assert canonicalise(node) == Bool(must=(Term("a", 1), Term("b", 2)))


def test_msm_larger_than_should_count_matches_nothing():
    assert canonicalise(Bool(should=(Term("a", 1),), must=(Term("b", 1),), minimum_should_match=2)) == MatchNone()


def test_should_dropped_when_must_present_and_no_msm():
    assert canonicalise(Bool(must=(Term("a", 1),), should=(Term("b", 1),))) == Term("a", 1)


def test_match_all_in_must_does_not_make_should_required():
    assert canonicalise(Bool(must=(MatchAll(),), should=(Term("b", 1),))) == MatchAll()


def test_match_none_should_alone_matches_nothing():
    assert canonicalise(Bool(should=(MatchNone(),), must_not=(Term("a", 1),))) == MatchNone()


def test_empty_bool_matches_everything():
    assert canonicalise(Bool()) == MatchAll()


def test_pure_negative_is_kept():
    assert canonicalise(Bool(must_not=(Term("a", 1), Term("a", 1)))) == Bool(must_not=(Term("a", 1),))


def test_nested_disjunction_in_must_not_is_split():
    node = Bool(must=(Term("x", 1),), must_not=(Bool(should=(Term("a", 1), Term("b", 1))),))
    assert canonicalise(node) == Bool(must=(Term("x", 1),), must_not=(Term("a", 1), Term("b", 1)))


def test_nested_disjunctions_flatten():
    assert canonical_json(canonicalise(parse("a OR (b OR c)"))) == canonical_json(canonicalise(parse("c OR b OR a")))


def test_terms_deduplicated_and_sorted():
    assert canonicalise(Terms("t", ("b", "a", "b"))) == Terms("t", ("a", "b"))
    assert canonicalise(Terms("t", ("a",))) == Term("t", "a")


def test_multi_token_match_keeps_operator():
    assert canonicalise(Match(ANY_FIELD, "wi-fi", operator="and")).operator == "and"


def test_round_trip_is_exact():
    node = canonicalise(parse('title:"a b"~2 AND n:[1 TO 5} AND -user.keyword:X* AND bot:true'))
    again = node_from_json(node_to_json(node))
    assert again == node and canonical_json(again) == canonical_json(node)


def test_round_trip_keeps_value_types():
    node = Bool(must=(Term("a", True), Term("b", 1), Term("c", 1.5), Range("d", gte=1, lt="x")))
    assert canonical_json(node_from_json(node_to_json(node))) == canonical_json(node)


def test_subscription_id_is_hex_xxh64():
    value = subscription_id("idx", Phrase("t", "a b"))
    assert len(value) == 16 and int(value, 16) >= 0
