"""Field kinds in parsing, canonical forms and ids: keyword fields see whole, case-sensitive values."""

from __future__ import annotations

from typing import Any

import pytest

from beater.errors import InvalidQuery
from beater.mappings import check_mapping
from beater.query import canonicalise, parse, subscription_id
from beater.query.ir import ANY_FIELD, Fuzzy, Match, MatchNone, Node, Prefix, Range, Wildcard
from beater.query.kinds import DYNAMIC, FieldKinds
from beater.registration import Registration, make_registration

TEXT_AND_KEYWORD = {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
# ``user`` is a standalone keyword field, ``title`` a text field without sub-field
CONFIGURED = check_mapping("logs", {"properties": {"user": {"type": "keyword"}, "title": {"type": "text"}}}).kinds()
# only text fields with their .keyword twins: the shape dynamic mapping makes
TWINNED = check_mapping("logs", {"properties": {"title": TEXT_AND_KEYWORD}}).kinds()


def reg(source: Any, fields: FieldKinds = CONFIGURED, index: str = "logs", op: str = "or") -> Registration:
    return make_registration(index, source, op, fields)


def canonical(source: Any, fields: FieldKinds = CONFIGURED) -> Node:
    return canonicalise(parse(source, fields=fields), fields)


# --- concrete keyword fields ----------------------------------------------------------------------

def test_case_matters_on_a_configured_keyword_field() -> None:
    assert reg("user:Foo").id != reg("user:foo").id


def test_canonical_text_keeps_the_case_written_on_a_keyword_field() -> None:
    assert canonical("user:Foo") == Match("user", "Foo")
    assert '"Foo"' in reg("user:Foo").canonical_text


def test_case_does_not_matter_on_the_same_field_under_dynamic_mapping() -> None:
    assert reg("user:Foo", DYNAMIC).id == reg("user:foo", DYNAMIC).id
    assert canonical("user:Foo", DYNAMIC) == Match("user", "foo")


def test_case_does_not_matter_on_a_configured_text_field() -> None:
    assert reg("title:Foo").id == reg("title:foo").id


def test_grouped_words_on_a_keyword_field_are_one_value_like_the_phrase() -> None:
    assert reg("user:(Foo Bar)").id == reg('user:"Foo Bar"').id
    assert canonical("user:(Foo Bar)") == Match("user", "Foo Bar")


def test_grouped_words_and_phrase_differ_on_a_text_field() -> None:
    assert reg("title:(Foo Bar)").id != reg('title:"Foo Bar"').id


def test_whitespace_inside_a_keyword_value_is_kept() -> None:
    assert reg('user:"Foo  Bar"').id != reg('user:"Foo Bar"').id


def test_prefix_keeps_case_on_a_keyword_field_and_is_lowercased_on_text() -> None:
    assert canonical("user:Fo*") == Prefix("user", "Fo")
    assert canonical("title:Fo*") == Prefix("title", "fo")
    assert reg("user:Fo*").id != reg("user:fo*").id
    assert reg("title:Fo*").id == reg("title:fo*").id


def test_wildcard_keeps_case_on_a_keyword_field_and_is_lowercased_on_text() -> None:
    assert canonical("user:F?o*") == Wildcard("user", "F?o*")
    assert canonical("title:F?o*") == Wildcard("title", "f?o*")


def test_fuzzy_term_keeps_case_on_a_keyword_field_and_is_lowercased_on_text() -> None:
    assert canonical("user:Foo~1") == Fuzzy("user", "Foo", fuzziness="1")
    assert canonical("title:Foo~1") == Fuzzy("title", "foo", fuzziness="1")


def test_range_bounds_keep_case_on_a_keyword_field_and_are_lowercased_on_text() -> None:
    assert canonical("user:[A TO C]") == Range("user", gte="A", lte="C")
    assert canonical("title:[A TO C]") == Range("title", gte="a", lte="c")


@pytest.mark.parametrize("word", ['"-"', "\\-"])
def test_a_word_without_tokens_is_a_term_on_a_keyword_field(word: str) -> None:
    assert canonical("user:" + word) == Match("user", "-")


@pytest.mark.parametrize("word", ['"-"', "\\-"])
def test_a_word_without_tokens_is_dropped_on_a_text_field(word: str) -> None:
    assert canonical("title:" + word) == MatchNone()
    assert canonical("foo title:" + word) == Match(ANY_FIELD, "foo")


def test_a_word_without_tokens_is_dropped_on_a_dynamic_field_of_the_same_name() -> None:
    assert canonical('user:"-"', DYNAMIC) == MatchNone()


def test_a_bare_minus_after_a_field_is_a_syntax_error_whatever_the_field() -> None:
    # ``-`` is the NOT operator: ``user:-`` has nothing to negate (quote or escape it)
    for fields in (CONFIGURED, DYNAMIC):
        with pytest.raises(InvalidQuery):
            parse("user:-", fields=fields)


def test_keyword_sub_field_of_a_configured_text_field_keeps_case() -> None:
    assert reg("title.keyword:Foo", TWINNED).id != reg("title.keyword:foo", TWINNED).id


def test_keyword_sub_field_a_configured_keyword_field_does_not_have_is_read_as_text() -> None:
    # ``user`` is mapped without sub-fields, so ``user.keyword`` is unmapped: percolated as text
    assert reg("user.keyword:Foo").id == reg("user.keyword:foo").id


# --- the default field * --------------------------------------------------------------------------

def test_case_does_not_matter_on_any_field_under_dynamic_mapping() -> None:
    assert reg("Foo", DYNAMIC).id == reg("foo", DYNAMIC).id


def test_case_does_not_matter_on_any_field_when_every_keyword_is_a_text_twin() -> None:
    assert reg("Foo", TWINNED).id == reg("foo", TWINNED).id


def test_case_matters_on_any_field_when_a_standalone_keyword_field_is_configured() -> None:
    assert reg("Foo").id != reg("foo").id
    assert canonical("Foo") == Match(ANY_FIELD, "Foo")


# --- ids ------------------------------------------------------------------------------------------

def test_configured_mapping_is_part_of_the_id() -> None:
    assert reg("title:foo").id != reg("title:foo", DYNAMIC).id


def test_two_configured_mappings_give_two_ids() -> None:
    assert reg("title:foo", TWINNED).id != reg("title:foo", CONFIGURED).id


def test_registration_records_the_mapping_tag() -> None:
    assert reg("user:Foo").mapping == CONFIGURED.tag
    assert reg("user:Foo", DYNAMIC).mapping == ""


def test_registration_round_trips_its_mapping_tag_through_json() -> None:
    registration = reg("user:Foo")
    assert Registration.from_json(registration.to_json()) == registration
    assert "mapping" not in reg("user:Foo", DYNAMIC).to_json()


def test_the_id_is_the_subscription_id_under_the_mapping_tag() -> None:
    registration = reg("user:Foo")
    assert registration.id == subscription_id("logs", registration.canonical, CONFIGURED.tag)
    assert registration.id != subscription_id("logs", registration.canonical)


@pytest.mark.parametrize("index, source", [("wiki", 'title:"big cat"'), ("wiki", "Foo"), ("logs", "user:Foo")])
def test_dynamic_mapping_ids_are_the_default_ones(index: str, source: str) -> None:
    assert make_registration(index, source).id == make_registration(index, source, "or", DYNAMIC).id


@pytest.mark.parametrize("index, source, expected", [
    # computed with the code of dc9c947, before configured mappings existed
    ("wiki", 'title:"big cat"', "7738d7baedebe533"),
    ("wiki", "Foo", "79dae1ff36925f2c"),
    ("logs", "user:Foo", "1dc1a568103c1589"),
    ("logs", "user.keyword:Foo", "947435acc2a37ff6"),
])
def test_dynamic_mapping_ids_did_not_change(index: str, source: str, expected: str) -> None:
    assert make_registration(index, source).id == expected


# --- query DSL ------------------------------------------------------------------------------------

def test_simple_query_string_on_a_keyword_field_keeps_case() -> None:
    source = {"simple_query_string": {"query": "Foo", "fields": ["user"]}}
    assert canonical(source) == Match("user", "Foo")
    assert reg(source).id == reg("user:Foo").id


def test_simple_query_string_prefix_on_a_keyword_field_keeps_case() -> None:
    assert canonical({"simple_query_string": {"query": "Fo*", "fields": ["user"]}}) == Prefix("user", "Fo")


def test_simple_query_string_keeps_a_word_without_tokens_only_on_a_keyword_field() -> None:
    assert canonical({"simple_query_string": {"query": '"-"', "fields": ["user"]}}) == Match("user", "-")
    assert canonical({"simple_query_string": {"query": '"-"', "fields": ["title"]}}) == MatchNone()


def test_simple_query_string_over_keyword_and_text_fields_normalises_each_by_its_kind() -> None:
    node = canonical({"simple_query_string": {"query": "Foo", "fields": ["user", "title"]}})
    assert set(node.should) == {Match("user", "Foo"), Match("title", "foo")}


def test_simple_query_string_on_the_same_field_under_dynamic_mapping_lowercases() -> None:
    assert canonical({"simple_query_string": {"query": "Foo", "fields": ["user"]}}, DYNAMIC) == Match("user", "foo")


@pytest.mark.parametrize("where", [{"default_field": "user"}, {"fields": ["user"]}])
def test_query_string_with_a_keyword_default_field_keeps_case(where: dict) -> None:
    source = {"query_string": {"query": "Foo", **where}}
    assert canonical(source) == Match("user", "Foo")
    assert reg(source).id == reg("user:Foo").id


def test_query_string_prefix_on_a_keyword_default_field_keeps_case() -> None:
    assert canonical({"query_string": {"query": "Fo*", "default_field": "user"}}) == Prefix("user", "Fo")


def test_query_string_wrapped_in_query_and_given_as_json_text_keeps_case() -> None:
    assert reg('{"query": {"query_string": {"query": "Foo", "default_field": "user"}}}').id == reg("user:Foo").id
