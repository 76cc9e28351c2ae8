"""The canonical tree as a readable Lucene-style string (``beater/query/readable.py``).

Specification: wherever the renderer says ``exact``, the string parsed again by
estrom's Lucene parser (default operator ``or``) and canonicalised is the very
same tree, hence the same subscription id; every query written in Lucene syntax
gets an exact string; trees only the query DSL can build get a readable string
marked not exact.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from beater.query import canonicalise, parse, subscription_id
from beater.query import ir
from beater.query.kinds import DYNAMIC, FieldKinds
from beater.query.lucene import parse_lucene
from beater.query.readable import Readable, to_lucene
from beater.registration import Registration, make_registration
from estrom.settings import Settings
from tailor import http as tailor_http
from tailor.stream import FORMATS, query_header
from tailor.subscriptions import SubscriptionHub
from tests.unit.test_query_properties import queries
from tests.unit.test_web_channel import connected

MAPPED = FieldKinds(mapped=frozenset({"user", "title"}), keywords=frozenset({"user"}), dynamic=False, tag="m")


def canonical(source: Any, fields: FieldKinds = DYNAMIC) -> ir.Node:
    return canonicalise(parse(source, fields=fields), fields)


def reparsed(text: str, fields: FieldKinds = DYNAMIC) -> ir.Node:
    return canonicalise(parse_lucene(text, "or", fields=fields), fields)


# --- examples ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "query, expected",
    [
        ("foo AND bar", "+bar +foo"),
        ("foo bar", "foo bar"),
        ("foo OR bar", "bar OR foo"),
        ("title:(Foo Bar) -baz", "+title:(foo bar) -baz"),
        ("NOT a AND NOT b", "-a -b"),
        ('"big cat"~2', '"big cat"~2'),
        ("ab*", "ab*"),
        ("fo?o", "fo?o"),
        ("/ab.*/", "/ab.*/"),
        ("foo~1", "foo~1"),
        ("foo~", "foo~"),
        ("n:[1 TO 5}", "n:[1 TO 5}"),
        ("n:>=10", "n:>=10"),
        ("n:[* TO 10]", "n:<=10"),
        ("_exists_:user", "_exists_:user"),
        ("user:*", "_exists_:user"),
        ("*", "*:*"),
        ("", "-*:*"),
        ("a:x AND (b:y OR c:z)", "+a:x +(b:y OR c:z)"),
    ],
)
def test_a_lucene_query_reads_as_its_canonical_lucene_string(query: str, expected: str) -> None:
    assert to_lucene(canonical(query)) == Readable(expected, True)


def test_the_readable_string_of_a_query_registers_under_the_same_id() -> None:
    tree = canonical("title:(Quick Brown) AND NOT fox* AND (\"lazy dog\"~1 OR n:{1 TO 9])")
    assert subscription_id("i", reparsed(to_lucene(tree).text)) == subscription_id("i", tree)


@pytest.mark.parametrize(
    "text",
    ["a:b", "c++", "(x)", "AND", "OR", "NOT", "x y", "a\\b", 'say "hi"', "-1", "~", "^2", "{}", "[]", "/", "&&", "||", "!"],
)
def test_special_characters_and_operator_words_are_escaped_on_a_keyword_field(text: str) -> None:
    tree = canonical({"match": {"user.keyword": text}})
    readable = to_lucene(tree)
    assert readable.exact
    assert reparsed(readable.text) == tree


def test_words_separated_by_other_whitespace_stay_one_escaped_term() -> None:
    tree = ir.Match("user.keyword", "a  b\tc")
    assert to_lucene(tree) == Readable("user.keyword:a\\ \\ b\\\tc", True)


def test_a_filter_clause_is_shown_required_and_marked_not_exact() -> None:
    tree = ir.Bool(must=(ir.Match("a", "x"),), filter=(ir.Match("b", "y"),))
    assert to_lucene(tree) == Readable("+a:x +b:y", False)


@pytest.mark.parametrize(
    "dsl, text",
    [
        ({"term": {"user.keyword": "Bob"}}, "user.keyword:Bob"),
        ({"terms": {"tag": ["a", "b"]}}, "tag:(a OR b)"),
        ({"range": {"n": {"gte": 10}}}, "n:>=10"),
        ({"match": {"t": {"query": "a b", "operator": "and"}}}, "t:(a AND b)"),
        ({"prefix": {"t": {"value": "ab", "case_insensitive": True}}}, "t:ab*"),
        ({"fuzzy": {"t": {"value": "abc", "prefix_length": 1}}}, "t:abc~"),
        (
            {"bool": {"must": [{"match": {"a": "x"}}], "should": [{"match": {"b": "y"}}, {"match": {"c": "z"}}], "minimum_should_match": 1}},
            "+a:x +(b:y OR c:z)",
        ),
    ],
)
def test_a_dsl_only_query_reads_as_an_approximation_marked_not_exact(dsl: Any, text: str) -> None:
    assert to_lucene(canonical(dsl)) == Readable(text, False)


def test_a_prefix_the_parser_would_lowercase_is_not_exact_on_a_text_field() -> None:
    assert to_lucene(ir.Prefix("title", "Ab")).exact is False
    assert to_lucene(ir.Prefix("user.keyword", "Ab")).exact is True


def test_exactness_follows_the_field_kinds_of_the_index() -> None:
    tree = canonical({"prefix": {"user": "Ab"}}, MAPPED)
    assert to_lucene(tree, MAPPED).exact is True  # keyword under the mapping: kept as written
    assert to_lucene(tree).exact is False  # text under dynamic mapping: the parser lowercases


def test_a_text_that_would_read_as_a_range_is_not_exact() -> None:
    assert to_lucene(ir.Match("user.keyword", ">=5")).exact is False


def test_a_range_bound_with_date_math_is_not_exact() -> None:
    assert to_lucene(ir.Range("d", gte="now-1d")) == Readable("d:>=now\\-1d", False)


def test_verification_never_claims_exact_wrongly() -> None:
    tree = ir.Bool(should=(ir.Match("*", "a"), ir.Match("*", "b")), minimum_should_match=None)
    assert to_lucene(tree) == Readable("a OR b", True)
    assert to_lucene(ir.Bool(must=(ir.MatchAll(),))).exact is False


# --- properties ----------------------------------------------------------------------------------

SPECIAL = ' +-!():^[]"{}~*?\\/&|<>=.\t'
texts = st.one_of(
    st.text(alphabet=st.sampled_from(list("aBz09") + list(SPECIAL)), max_size=6),
    st.sampled_from(["foo", "Bar", "foo bar", "AND", "OR", "NOT", "TO", "now", "*", "1", "-5", "true", "é", "日本"]),
)
field_names = st.sampled_from(["*", "title", "user", "user.keyword", "n", "_exists_", "a:b", "ti*"])
field_kinds = st.sampled_from([DYNAMIC, MAPPED])
bounds = st.one_of(st.none(), texts, st.integers(-3, 3))

leaves = st.one_of(
    st.just(ir.MatchAll()),
    st.just(ir.MatchNone()),
    st.builds(ir.Match, field_names, texts, st.sampled_from(["or", "and"]),
              st.sampled_from([None, None, "2"]), st.sampled_from([None, None, "AUTO", "1"])),
    st.builds(ir.Phrase, field_names, texts, st.integers(0, 3)),
    st.builds(ir.Term, field_names, texts),
    st.builds(ir.Prefix, field_names, texts, st.booleans()),
    st.builds(ir.Wildcard, field_names, texts, st.booleans()),
    st.builds(ir.Regexp, field_names, texts, st.booleans()),
    st.builds(ir.Fuzzy, field_names, texts, st.sampled_from(["AUTO", "0", "1", "2", "AUTO:3,6"]),
              st.sampled_from([0, 0, 1]), st.sampled_from([True, True, False])),
    st.builds(ir.Range, field_names, bounds, bounds, bounds, bounds, st.sampled_from([None, None, "yyyy"])),
    st.builds(ir.Exists, field_names),
)


def bools(children: st.SearchStrategy[ir.Node]) -> st.SearchStrategy[ir.Node]:
    clauses = st.lists(children, max_size=3).map(tuple)
    filters = st.one_of(st.just(()), st.just(()), clauses.map(lambda c: c[:1]))  # mostly none: Lucene has no filter
    return st.builds(ir.Bool, clauses, clauses, clauses, filters, st.sampled_from([None, None, None, 1, 2]))


trees = st.recursive(leaves, bools, max_leaves=8)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(trees, field_kinds)
def test_a_string_marked_exact_parses_back_to_the_same_canonical_tree(tree: ir.Node, fields: FieldKinds) -> None:
    node = canonicalise(tree, fields)
    readable = to_lucene(node, fields, verify=False)  # the rendering rules alone, unchecked
    if readable.exact:
        assert reparsed(readable.text, fields) == node


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queries, field_kinds)
def test_every_query_written_in_lucene_syntax_reads_exactly(query: str, fields: FieldKinds) -> None:
    node = canonical(query, fields)
    readable = to_lucene(node, fields, verify=False)
    assert readable.exact, readable.text
    assert reparsed(readable.text, fields) == node


@settings(max_examples=300, deadline=None)
@given(trees)
def test_every_tree_gets_a_non_empty_string(tree: ir.Node) -> None:
    assert to_lucene(canonicalise(tree)).text


# --- where users see it: the registration answer and the tail header ---------------------------

def test_the_registration_answer_shows_the_readable_query_next_to_the_canonical_tree() -> None:
    answer = make_registration("docs", "foo AND bar").to_json()
    assert answer["readable"] == "+bar +foo"
    assert {"id", "topic", "index", "query", "default_operator", "canonical", "persist"} <= set(answer)
    assert Registration.from_json(answer).id == answer["id"]  # stored answers still load


def test_the_json_tail_header_is_unchanged_by_a_readable_query() -> None:
    assert FORMATS["json"].for_query("+bar +foo").header("abc") == b'{"subscription_id": "abc", "hits": [\n'


def test_the_ndjson_first_line_names_the_readable_query() -> None:
    assert FORMATS["ndjson"].for_query("+bar +foo").header("abc") == b'{"_estrom":{"subscription_id":"abc","readable":"+bar +foo"}}\n'


def test_the_sse_subscription_event_names_the_readable_query() -> None:
    data = FORMATS["sse"].header("abc", readable='title:"a b"').split(b"data: ", 1)[1].split(b"\n", 1)[0]
    assert json.loads(data) == {"_estrom": {"subscription_id": "abc", "readable": 'title:"a b"'}}


def test_a_format_bound_to_a_query_leaves_the_shared_format_alone() -> None:
    FORMATS["ndjson"].for_query("+bar +foo")
    assert FORMATS["ndjson"].header("abc") == b'{"_estrom":{"subscription_id":"abc"}}\n'


@pytest.mark.parametrize("readable, shown", [("+bar +foo", b"+bar +foo"), ("caf\u00e9", None), ("a\nb", None), ("", None), (None, None),
                                             ("x" * 5000, None)])
def test_the_query_header_carries_only_printable_ascii_of_reasonable_size(readable: Any, shown: Any) -> None:
    assert query_header(readable) == shown


class _Session:
    """A router session whose Beater answers registrations as ``make_registration`` does."""

    async def call(self, procedure: str, *args: Any, **kwargs: Any) -> Any:
        return make_registration("docs", "foo AND bar").to_json()


class _Hub(SubscriptionHub):
    async def acquire(self, subscription_id: str, listener: Any) -> None:
        """Subscribed at once (no router)."""


def test_a_tail_shows_the_readable_query_in_its_header_and_in_x_estrom_query() -> None:
    channel, transport = connected(tailor_http.Root(_Hub(), _Session, Clock(), Settings()))
    channel.dataReceived(b"GET /api/v0.1/docs?i=docs&q=bar+AND+foo&format=ndjson HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = transport.value().partition(b"\r\n\r\n")
    assert b"x-estrom-query: +bar +foo" in head.lower()
    first = body.split(b"\r\n")[1]  # the first chunk
    expected_id = make_registration("docs", "foo AND bar").id
    assert json.loads(first) == {"_estrom": {"subscription_id": expected_id, "readable": "+bar +foo"}}
    channel.connectionLost(Failure(ConnectionDone()))
