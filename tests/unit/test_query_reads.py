"""Which fields a query reads: what the embedded percolator must analyse for it."""

from beater.query.ir import ANY_FIELD, Bool, Exists, Ids, Match, MatchAll, Range, Term
from beater.query.parse import parse as parse_query
from beater.query.reads import fields_read, source_paths


def test_a_fielded_query_reads_its_fields() -> None:
    assert fields_read(parse_query("title:foo AND -user:bot* AND n:[1 TO 5]")) == {"title", "user", "n"}


def test_a_bare_term_reads_every_field() -> None:
    assert fields_read(parse_query("title:foo OR wikidata")) is None


def test_any_field_anywhere_in_a_boolean_reads_every_field() -> None:
    assert fields_read(Bool(must=(Term("a", "x"),), must_not=(Match(ANY_FIELD, "y"),))) is None


def test_match_all_and_ids_read_no_field() -> None:
    assert fields_read(MatchAll()) == frozenset() and fields_read(Ids(("1",))) == frozenset()


def test_exists_and_range_read_their_field() -> None:
    assert fields_read(Bool(filter=(Exists("meta"), Range("n", gte=1)))) == {"meta", "n"}


def test_keyword_sub_fields_are_filled_from_their_parent() -> None:
    assert source_paths({"user.keyword", "n"}) == {"user.keyword", "user", "n"}
