"""Lucene syntax parsed as Elasticsearch 7.17 query_string parses it (facts checked with _validate/query)."""

import pytest

from beater.errors import InvalidQuery, UnsupportedQuery
from beater.query.ir import ANY_FIELD, Bool, Exists, Fuzzy, Match, MatchAll, MatchNone, Phrase, Prefix, Range, Regexp, Wildcard
from beater.query.lucene import parse_lucene


def m(text, field=ANY_FIELD, op="or"):
    return Match(field, text, operator=op)


def test_bare_word_is_match_on_any_field():
    assert parse_lucene("foo") == m("foo")


def test_run_of_words_is_one_analysed_piece():
    assert parse_lucene("quick  brown") == Bool(should=(m("quick brown"),))


def test_run_of_words_under_and_operator_is_required():
    assert parse_lucene("quick brown", "and") == Bool(must=(m("quick brown", op="and"),))


def test_word_before_and_is_not_part_of_the_run():
    # ES: `a b AND c` -> a +b +c
    assert parse_lucene("a b AND c") == Bool(must=(m("b"), m("c")), should=(m("a"),))


def test_no_and_over_or_precedence():
    # ES: `a OR b AND c` -> a +b +c ; `a AND b OR c` -> +a +b c
    assert parse_lucene("a OR b AND c") == Bool(must=(m("b"), m("c")), should=(m("a"),))
    assert parse_lucene("a AND b OR c") == Bool(must=(m("a"), m("b")), should=(m("c"),))


def test_or_demotes_previous_clause_under_and_operator():
    # ES (default_operator AND): `a b OR c` -> +a b c
    assert parse_lucene("a b OR c", "and") == Bool(must=(m("a", op="and"),), should=(m("b", op="and"), m("c", op="and")))


def test_symbolic_operators():
    assert parse_lucene("a && b || c") == parse_lucene("a AND b OR c")
    assert parse_lucene("!a") == Bool(must_not=(m("a"),))


def test_plus_minus_not_modifiers():
    assert parse_lucene("+a -b") == Bool(must=(m("a"),), must_not=(m("b"),))
    assert parse_lucene("a NOT b") == Bool(should=(m("a"),), must_not=(m("b"),))
    assert parse_lucene("NOT a") == Bool(must_not=(m("a"),))


def test_field_group_sets_default_field():
    assert parse_lucene("title:(a b)") == Bool(should=(m("a b", "title"),))


def test_field_applies_to_one_term_only():
    assert parse_lucene("title:quick brown") == Bool(should=(m("quick", "title"), m("brown")))


def test_phrase_with_slop_and_boost_dropped():
    assert parse_lucene('title:"Big Cat"~2^3') == Phrase("title", "Big Cat", slop=2)
    assert parse_lucene('"a b"~1.7') == Phrase(ANY_FIELD, "a b", slop=1)


def test_ranges_inclusive_exclusive_and_open():
    assert parse_lucene("n:[1 TO 10}") == Range("n", gte="1", lt="10")
    assert parse_lucene("n:{* TO 5]") == Range("n", lte="5")
    assert parse_lucene("n:>=10") == Range("n", gte="10")
    assert parse_lucene("n:<5") == Range("n", lt="5")
    assert parse_lucene("n:>=-5") == Range("n", gte="-5")


def test_range_bounds_lowercased_on_text_not_keyword():
    assert parse_lucene("title:[A TO M]") == Range("title", gte="a", lte="m")
    assert parse_lucene("title.keyword:[A TO M]") == Range("title.keyword", gte="A", lte="M")


def test_now_in_range_is_unsupported():
    with pytest.raises(UnsupportedQuery):
        parse_lucene("d:[2020 TO now]")


def test_exists_forms():
    assert parse_lucene("_exists_:title") == Exists("title")
    assert parse_lucene("title:*") == Exists("title")
    assert parse_lucene("*") == MatchAll()
    assert parse_lucene("*:*") == MatchAll()


def test_wildcard_prefix_normalised_on_text_fields_only():
    assert parse_lucene("title:Q42*") == Prefix("title", "q42")
    assert parse_lucene("user.keyword:Mister*") == Prefix("user.keyword", "Mister")
    assert parse_lucene("title:Wi?Fi") == Wildcard("title", "wi?fi")
    assert parse_lucene("Q4*2") == Wildcard(ANY_FIELD, "Q4*2")


def test_regexp_not_normalised():
    assert parse_lucene("title:/Q4[0-9]+/") == Regexp("title", "Q4[0-9]+")


def test_fuzzy_distances():
    assert parse_lucene("title:FuZZy~") == Fuzzy("title", "fuzzy", fuzziness="AUTO")
    assert parse_lucene("title:a~3") == Fuzzy("title", "a", fuzziness="2")
    assert parse_lucene("title:abc~0.5") == Fuzzy("title", "abc", fuzziness="0")


def test_escapes_are_removed():
    assert parse_lucene(r"title:Wi\-Fi") == Match("title", "Wi-Fi")
    assert parse_lucene(r"\u0041") == m("A")


def test_empty_query_matches_nothing():
    assert parse_lucene("") == MatchNone()
    assert parse_lucene("   ") == MatchNone()


def test_clause_without_tokens_on_text_field_is_dropped():
    # ES: `a AND title:.` -> a
    assert parse_lucene("a AND title:.") == m("a")


def test_pure_negative_group_is_kept():
    assert parse_lucene("b AND (-a)") == Bool(must=(m("b"), Bool(must_not=(m("a"),))))


@pytest.mark.parametrize("bad", ["a AND", "AND a", "a OR OR b", "(a", "a)", '"a b', "title:", "a:b:c", "NOT NOT a", "+-a", "a\\"])
def test_syntax_errors_are_invalid_query_with_position(bad):
    with pytest.raises(InvalidQuery) as info:
        parse_lucene(bad)
    assert info.value.position is not None


def test_field_patterns_are_unsupported():
    with pytest.raises(UnsupportedQuery):
        parse_lucene(r"title\*:x")
    with pytest.raises(UnsupportedQuery):
        parse_lucene("*:x")


def test_clause_limit():
    with pytest.raises(InvalidQuery):
        parse_lucene(" OR ".join(["a"] * 1025))


def test_depth_limit():
    with pytest.raises(InvalidQuery):
        parse_lucene("(" * 70 + "a" + ")" * 70)
