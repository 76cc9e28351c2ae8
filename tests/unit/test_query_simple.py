"""simple_query_string: Lucene's SimpleQueryParser rules, as Elasticsearch 7.17 applies them.

Each expectation was checked with Elasticsearch's ``_validate/query?explain=true``;
the differential tests hold the matching itself to a real node.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beater.errors import InvalidQuery, UnsupportedQuery
from beater.query import parse
from beater.query.ir import ANY_FIELD, Bool, Fuzzy, Match, MatchAll, MatchNone, Phrase, Prefix
from beater.query.simple import ALL, ESCAPE, Fields, _Group, _Parser
from beater.registration import make_registration


def sqs(query: str, **params: object) -> object:
    return parse({"simple_query_string": dict(params, query=query)})


def word(text: str, field: str = "title", operator: str = "or") -> Match:
    return Match(field, text, operator=operator)


def test_whitespace_joins_with_the_default_operator():
    assert sqs("a b", fields=["title"]) == Bool(should=(word("a"), word("b")))
    assert sqs("a b", fields=["title"], default_operator="and") == Bool(
        must=(word("a", operator="and"), word("b", operator="and")))


def test_a_change_of_operator_groups_everything_before_it():
    assert sqs("a b +c", fields=["title"]) == Bool(must=(Bool(should=(word("a"), word("b"))), word("c")))


def test_minus_is_everything_but_the_clause_so_or_keeps_documents_without_it():
    assert sqs("a -b", fields=["title"]) == Bool(should=(word("a"), Bool(must_not=(word("b"),), should=(MatchAll(),))))


def test_two_minuses_cancel():
    assert sqs("--a", fields=["title"]) == word("a")


def test_an_operator_before_the_first_clause_or_after_another_operator_is_ignored():
    assert sqs("+a | +b", fields=["title"]) == Bool(should=(word("a"), word("b")))


def test_phrase_with_slop_and_a_lone_tilde_meaning_two():
    assert sqs('"big cat"~3', fields=["title"]) == Phrase("title", "big cat", 3)
    assert sqs('"big cat"~ dog', fields=["title"]) == Bool(should=(Phrase("title", "big cat", 2), word("dog")))


def test_the_character_ending_a_phrase_slop_is_skipped_even_an_operator():
    assert sqs('"big cat"~2+dog', fields=["title"]) == Bool(should=(Phrase("title", "big cat", 2), word("dog")))


def test_prefix_is_normalised_per_field():
    assert sqs("Fo*", fields=["title", "user.keyword"]) == Bool(
        should=(Prefix("title", "fo"), Prefix("user.keyword", "Fo")))


def test_fuzzy_edits_default_to_two_and_zero_means_the_plain_word():
    assert sqs("fox~", fields=["title"]) == Fuzzy("title", "fox", fuzziness="2")
    assert sqs("fox~1", fields=["title"]) == Fuzzy("title", "fox", fuzziness="1")
    assert sqs("fox~0", fields=["title"]) == word("fox")
    assert sqs("fox~x", fields=["title"]) == word("fox")


def test_unclosed_quote_or_parenthesis_is_ignored():
    assert sqs('"big cat', fields=["title"]) == Bool(should=(word("big"), word("cat")))
    assert sqs("(a | b", fields=["title"]) == Bool(should=(word("a"), word("b")))


def test_lone_star_is_every_document_and_nothing_is_no_document():
    assert sqs(" * ") == MatchAll()
    assert sqs("") == MatchNone()
    assert sqs("- +") == MatchNone()


def test_default_field_is_every_field():
    assert sqs("adams") == Match(ANY_FIELD, "adams")


def test_a_word_with_no_token_is_dropped_on_a_text_field():
    assert sqs("a !!!", fields=["title"]) == word("a")


def test_flags_turn_operators_into_ordinary_characters():
    assert sqs("a +b", fields=["title"], flags="NONE") == word("a +b")
    assert sqs("fo* -b", fields=["title"], flags="PREFIX|WHITESPACE") == Bool(should=(Prefix("title", "fo"), word("-b")))


def test_minimum_should_match_applies_to_the_top_group():
    assert sqs("a b c", fields=["title"], minimum_should_match="2") == Bool(
        should=(word("a"), word("b"), word("c")), minimum_should_match=2)


def test_minimum_should_match_on_a_single_clause_is_refused():
    with pytest.raises(UnsupportedQuery):
        sqs("a-b", fields=["title"], minimum_should_match="2")


def test_settings_that_change_matching_and_are_not_built_are_refused_by_name():
    for params in ({"analyze_wildcard": True}, {"quote_field_suffix": ".exact"}, {"analyzer": "whitespace"},
                   {"flags": "AND|BOGUS"}, {"fields": ["tit*"]}):
        with pytest.raises(UnsupportedQuery):
            sqs("a", **params)


def test_malformed_bodies_are_invalid():
    with pytest.raises(InvalidQuery):
        parse({"simple_query_string": {"fields": ["title"]}})
    with pytest.raises(InvalidQuery):
        sqs("a", fields="title")


def test_shares_its_id_with_the_same_query_in_lucene_syntax():
    assert make_registration("i", {"simple_query_string": {"query": "foo +bar"}}).id == make_registration("i", "foo AND bar").id
    assert make_registration("i", {"simple_query_string": {"query": "foo | bar"}}).id == make_registration("i", "foo OR bar").id


def test_more_than_1024_clauses_in_one_group_is_refused_as_elasticsearch_does():
    assert isinstance(sqs(" ".join(f"w{i}" for i in range(1024)), fields=["title"]), Bool)
    with pytest.raises(InvalidQuery):
        sqs(" ".join(f"w{i}" for i in range(1025)), fields=["title"])


class _ScanningParser(_Parser):
    """Lucene's own way to find a group's end: scan forward from each "(" (the reference)."""

    def consume_group(self, group: _Group, i: int, end: int) -> int:
        start = i = i + 1
        depth, escaped = 1, False
        while i < end:
            if not escaped:
                c = self.data[i]
                if c == "\\" and self.on(ESCAPE):
                    escaped = True
                    i += 1
                    continue
                depth += {"(": 1, ")": -1}.get(c, 0)
                if depth == 0:
                    break
            escaped = False
            i += 1
        if i == end:
            return start
        if i == start:
            group.current = None
            return i + 1
        self.add(group, self.parse_group(start, i).top)
        return i + 1


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet='()\\ab +|-"', max_size=30))
def test_groups_matched_in_one_pass_are_lucenes_groups(text: str) -> None:
    fields = Fields(("title",))
    try:
        expected = _ScanningParser(text, fields, ALL).parse_group(0, len(text)).top
    except UnsupportedQuery:
        return  # nested deeper than we follow: both refuse
    assert _Parser(text, fields, ALL).parse_group(0, len(text)).top == expected


def test_many_unclosed_parentheses_parse_at_once():
    assert sqs("(" * 20000 + "a", fields=["title"]) == word("a")
