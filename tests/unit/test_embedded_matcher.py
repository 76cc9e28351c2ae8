"""Compiled queries against analysed documents, with Elasticsearch 7.17 percolator semantics."""

from typing import Any, Dict

import pytest

from beater.errors import UnsupportedQuery
from beater.percolator.embedded.fields import FieldModel, analyse_document
from beater.percolator.embedded.matcher import compile_query, resolve_minimum_should_match
from beater.percolator.embedded.phrases import positions_match
from beater.percolator.embedded.regexp import regexp_to_regex
from beater.query.ir import (
    ANY_FIELD, Bool, Exists, Fuzzy, Ids, Match, MatchAll, MatchNone, Node, Phrase, Prefix, Range, Regexp, Term, Terms, Wildcard,
)

SHAPE = {"title": "t", "user": "u", "n": 1, "f": 1.5, "d": "2020-01-01", "b": True, "o": {"city": "x"}}


def matches(node: Node, document: Dict[str, Any]) -> bool:
    model = FieldModel()
    model.grow([SHAPE, document])
    return compile_query(node)(analyse_document(document, model))


def test_match_on_text_is_analysed() -> None:
    assert matches(Match("title", "QUICK"), {"title": "The quick fox"})


def test_match_or_needs_one_token_and_needs_all() -> None:
    doc = {"title": "quick fox"}
    assert matches(Match("title", "quick dog"), doc) and not matches(Match("title", "quick dog", operator="and"), doc)


def test_match_with_no_tokens_matches_nothing() -> None:
    assert not matches(Match("title", "---"), {"title": "--- x"})


def test_match_on_keyword_is_exact_and_case_sensitive() -> None:
    assert matches(Match("user.keyword", "Mister X"), {"user": "Mister X"})
    assert not matches(Match("user.keyword", "mister x"), {"user": "Mister X"})


def test_any_field_includes_keyword_subfields() -> None:
    assert matches(Match(ANY_FIELD, "Mister X"), {"user": "Mister X"})


def test_any_field_and_needs_all_tokens_in_one_field() -> None:
    assert not matches(Match(ANY_FIELD, "quick dog", operator="and"), {"title": "quick", "user": "dog"})


def test_any_field_number_matches_numeric_field() -> None:
    assert matches(Match(ANY_FIELD, "14"), {"n": 14})


def test_match_on_long_parses_the_number() -> None:
    assert matches(Match("n", "14"), {"n": "14"}) and not matches(Match("n", "14.5"), {"n": 14})


def test_minimum_should_match_counts_tokens() -> None:
    assert not matches(Match("title", "a b c", minimum_should_match="-1"), {"title": "a x"})
    assert matches(Match("title", "a b c", minimum_should_match="-1"), {"title": "a c"})


def test_resolve_minimum_should_match_percent_and_negative() -> None:
    assert [resolve_minimum_should_match(s, 4) for s in ("75%", "-25%", "-1", "3<90%", "2")] == [3, 3, 3, 3, 2]


def test_phrase_needs_adjacent_tokens() -> None:
    assert matches(Phrase("title", "quick fox"), {"title": "the quick fox"})
    assert not matches(Phrase("title", "fox quick"), {"title": "the quick fox"})


def test_phrase_slop_allows_reordering() -> None:
    assert matches(Phrase("title", "fox quick", slop=2), {"title": "the quick fox"})
    assert not matches(Phrase("title", "fox quick", slop=1), {"title": "the quick fox"})


def test_sloppy_phrase_distance_is_spread_of_relative_positions() -> None:
    assert positions_match([[0], [1], [102], [103]], 100) and not positions_match([[0], [1], [102], [103]], 99)


def test_repeated_phrase_terms_need_distinct_positions() -> None:
    assert not matches(Phrase("title", "word word"), {"title": "word"})


def test_term_is_not_analysed() -> None:
    assert not matches(Term("title", "Edit"), {"title": "Edit"}) and matches(Term("title", "edit"), {"title": "Edit"})


def test_term_case_insensitive_on_keyword() -> None:
    assert matches(Term("user.keyword", "mister", case_insensitive=True), {"user": "MISTER"})


def test_terms_on_numbers() -> None:
    assert matches(Terms("n", (6, 14)), {"n": 14})


def test_prefix_on_text_tokens_and_keyword_values() -> None:
    assert matches(Prefix("title", "q4"), {"title": "Q42 x"})
    assert not matches(Prefix("user.keyword", "mister"), {"user": "MisterBot"})


def test_wildcard_is_lowercased_on_text_fields_only_for_any_field() -> None:
    assert matches(Wildcard(ANY_FIELD, "MISTER*"), {"user": "MisterBot"})
    assert matches(Wildcard("user.keyword", "*Bot"), {"user": "MisterBot"})
    assert not matches(Wildcard("user", "*Bot"), {"user": "MisterBot"})


def test_range_on_long_with_fractional_bounds() -> None:
    assert matches(Range("n", gt=3.5), {"n": 4}) and not matches(Range("n", lt=4.0), {"n": 4})


def test_range_on_float_compares_32_bit_values() -> None:
    assert matches(Range("f", gte=19.99), {"f": 19.99})


def test_date_range_lte_includes_the_whole_unit() -> None:
    assert matches(Range("d", lte="2021-12-31"), {"d": "2021-12-31T23:00:00Z"})
    assert not matches(Range("d", lt="2021-12-31"), {"d": "2021-12-31T00:00:00Z"})


def test_string_range_on_keyword_is_code_point_order() -> None:
    assert matches(Range("user.keyword", gte="A", lte="M"), {"user": "Bob"})
    assert not matches(Range("user.keyword", gte="A", lte="M"), {"user": "aaron"})


def test_exists_on_object_means_a_subfield_has_a_value() -> None:
    assert matches(Exists("o"), {"o": {"city": "Paris"}}) and not matches(Exists("o"), {"o": {}})


def test_exists_is_false_for_null_and_empty_array() -> None:
    assert not matches(Exists("title"), {"title": None}) and not matches(Exists("title"), {"title": []})


def test_exists_is_true_for_empty_string() -> None:
    assert matches(Exists("title"), {"title": ""})


def test_bool_with_only_must_not_matches_everything_else() -> None:
    node = Bool(must_not=(Term("b", True),))
    assert matches(node, {"title": "x"}) and not matches(node, {"b": True})


def test_bool_minimum_should_match() -> None:
    node = Bool(should=(Match("title", "a"), Match("title", "b"), Match("title", "c")), minimum_should_match=2)
    assert matches(node, {"title": "a c"}) and not matches(node, {"title": "a"})


def test_bool_should_optional_with_must() -> None:
    assert matches(Bool(must=(Match("title", "a"),), should=(Match("title", "z"),)), {"title": "a"})


def test_fuzzy_auto_edits_depend_on_length() -> None:
    assert not matches(Fuzzy("title", "ab"), {"title": "ac"})
    assert matches(Fuzzy("title", "abc"), {"title": "abd"})
    assert matches(Fuzzy("title", "abcdef"), {"title": "abcdfe"})


def test_match_fuzziness_applies_per_token() -> None:
    assert matches(Match("title", "quikc brwn", fuzziness="AUTO", operator="and"), {"title": "quick brown"})


def test_regexp_backslash_d_is_a_literal_d() -> None:
    assert not matches(Regexp("title", "q\\d+"), {"title": "q42"}) and matches(Regexp("title", "q[0-9]+"), {"title": "q42"})


def test_regexp_translation_of_lucene_syntax() -> None:
    assert regexp_to_regex('a"b.c"@') == "a(?:b\\.c).*"


@pytest.mark.parametrize("pattern", ["a&b", "~a", "a<1-5>", "#"])
def test_untranslatable_regexp_is_unsupported(pattern: str) -> None:
    with pytest.raises(UnsupportedQuery):
        compile_query(Regexp("title", pattern))


def test_ids_are_unsupported() -> None:
    with pytest.raises(UnsupportedQuery):
        compile_query(Ids(("1",)))


def test_date_math_is_unsupported() -> None:
    with pytest.raises(UnsupportedQuery):
        compile_query(Range("d", gte="now-1d"))


def test_match_all_and_match_none() -> None:
    assert matches(MatchAll(), {}) and not matches(MatchNone(), {"title": "x"})


def test_query_on_unseen_field_matches_nothing() -> None:
    assert not matches(Match("nowhere", "x"), {"title": "x"})



def test_catastrophic_patterns_on_long_tokens_still_answer() -> None:
    """(a|aa)+b and *a*a*a*a*a*a*b against 200 a's: exponential for a backtracking engine (this
    test would not finish), linear on RE2, as Lucene's automata are."""
    from beater.percolator.embedded import QueryIndex
    from beater.registration import make_registration

    index = QueryIndex()
    regexp = make_registration("x", "title:/(a|aa)+b/")
    wildcard = make_registration("x", "title:*a*a*a*a*a*a*b")
    index.add(regexp)
    index.add(wildcard)
    answers = index.match_batch("x", [{"title": "a" * 200 + "c"}, {"title": "aab"}, {"title": "aaaaaab"}])
    assert answers == [[], [regexp.id], [regexp.id, wildcard.id]]


def test_wildcards_with_one_star_answer_as_re2_does() -> None:
    """Patterns with at most one '*' run on Python's re (faster per term); the answers are RE2's."""
    from beater.percolator.embedded.regexp import compile_regex as _compile_regex, wildcard_test, wildcard_to_regex

    cases = [
        ("wor?d*", ["world", "wordsmith", "word", "wörld"]),
        ("ca\\*t", ["ca*t", "cat", "caat"]),  # an escaped star is a literal one
        ("ß?中*", ["ßx中", "ßx中zz", "ß中"]),  # '?' is one code point
        ("a*b", ["a\nb", "ab", "a" * 255 + "c"]),  # '*' spans newlines in keyword values
        ("a\\**", ["a*", "a*xyz", "ab"]),
    ]
    for pattern, terms in cases:
        fast, reference = wildcard_test(pattern, False), _compile_regex(wildcard_to_regex(pattern), False)
        for term in terms:
            assert fast(term) == reference(term), (pattern, term)
