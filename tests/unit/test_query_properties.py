"""Properties of identity, checked on generated queries and documents (hypothesis).

* Equivalent rewrites keep the id: reordering the clauses of an AND, changing
  the case of words, repeating a clause, adding parentheses.
* The canonical form means what the query means: on generated documents the
  embedded percolator matches exactly the same documents with the parsed tree
  and with its canonical form (Lucene syntax and simple_query_string).
* simple_query_string accepts any text, and its required words share the id of
  the same words joined by AND in Lucene syntax.
"""

from __future__ import annotations

from typing import Any, Dict, List

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beater.percolator.embedded import QueryIndex
from beater.query import canonicalise, parse, subscription_id

WORDS = ["foo", "bar", "baz", "qux", "Foo", "BAR"]
FIELDS = ["title", "body"]

words = st.sampled_from(WORDS)
atoms = st.one_of(
    words,
    st.builds(lambda f, w: f"{f}:{w}", st.sampled_from(FIELDS), words),
    st.builds(lambda a, b: f'"{a} {b}"', words, words),
    st.builds(lambda w: w[:2] + "*", words),
    st.builds(lambda f, a, b: f"{f}:({a} {b})", st.sampled_from(FIELDS), words, words),
)


def combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda a, b: f"{a} AND {b}", children, children),
        st.builds(lambda a, b: f"{a} OR {b}", children, children),
        st.builds(lambda a, b: f"{a} {b}", children, children),
        st.builds(lambda a: f"NOT ({a})", children),
        st.builds(lambda a, b: f"+({a}) -({b})", children, children),
        st.builds(lambda a: f"({a})", children),
    )


queries = st.recursive(atoms, combine, max_leaves=5)
documents = st.lists(
    st.fixed_dictionaries({f: st.lists(words, max_size=4).map(" ".join) for f in FIELDS}), min_size=1, max_size=8
)
conjunctions = st.lists(atoms, min_size=2, max_size=4)


def match(node: Any, docs: List[Dict[str, Any]], index: QueryIndex, name: str) -> List[bool]:
    index.add(name, "props", node)
    return [name in ids for ids in index.match_batch("props", docs)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conjunctions, st.randoms(use_true_random=False))
def test_reordering_the_clauses_of_an_and_keeps_the_id(clauses: List[str], random: Any) -> None:
    shuffled = list(clauses)
    random.shuffle(shuffled)
    a = canonicalise(parse(" AND ".join(f"({c})" for c in clauses)))
    b = canonicalise(parse(" AND ".join(f"({c})" for c in shuffled)))
    assert subscription_id("i", a) == subscription_id("i", b)


@settings(max_examples=300, deadline=None)
@given(conjunctions)
def test_repeating_a_clause_or_adding_parentheses_keeps_the_id(clauses: List[str]) -> None:
    plain = " AND ".join(f"({c})" for c in clauses)
    repeated = plain + f" AND ({clauses[0]})"
    wrapped = f"(({plain}))"
    ids = {subscription_id("i", canonicalise(parse(q))) for q in (plain, repeated, wrapped)}
    assert len(ids) == 1


@settings(max_examples=300, deadline=None)
@given(st.lists(words, min_size=1, max_size=4))
def test_the_case_of_words_on_the_default_field_does_not_change_the_id(terms: List[str]) -> None:
    lower = " AND ".join(t.lower() for t in terms)
    upper = " AND ".join(t.upper() for t in terms)
    assert subscription_id("i", canonicalise(parse(lower))) == subscription_id("i", canonicalise(parse(upper)))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queries, documents, st.sampled_from(["or", "and"]))
def test_the_canonical_form_matches_exactly_what_the_query_matches(query: str, docs: List[Dict[str, Any]], operator: str) -> None:
    tree = parse(query, default_operator=operator)
    index = QueryIndex()
    assert match(tree, docs, index, "parsed") == match(canonicalise(tree), docs, index, "canonical")


# --- simple_query_string ---------------------------------------------------------------------------

simple_pieces = st.sampled_from(WORDS + ["+", "|", "-", "(", ")", '"', "*", "~", "~1", "\\"])
simple_texts = st.lists(st.tuples(simple_pieces, st.sampled_from(["", " "])), max_size=10).map(
    lambda parts: "".join(piece + gap for piece, gap in parts)
)


def simple(text: str, **params: Any) -> Dict[str, Any]:
    return {"simple_query_string": dict(params, query=text)}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_simple_query_string_never_refuses_a_text(text: str) -> None:
    parse(simple(text))  # like Elasticsearch: any text is a query, bad syntax included


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(simple_texts, documents, st.sampled_from(["or", "and"]))
def test_the_canonical_form_of_a_simple_query_matches_what_it_matches(text: str, docs: List[Dict[str, Any]], operator: str) -> None:
    tree = parse(simple(text, fields=FIELDS, default_operator=operator))
    index = QueryIndex()
    assert match(tree, docs, index, "parsed") == match(canonicalise(tree), docs, index, "canonical")


@settings(max_examples=200, deadline=None)
@given(st.lists(words, min_size=1, max_size=4), st.randoms(use_true_random=False))
def test_a_simple_query_of_required_words_shares_the_id_of_their_and(terms: List[str], random: Any) -> None:
    shuffled = list(terms)
    random.shuffle(shuffled)
    required = canonicalise(parse(simple(" +".join(terms))))
    anded = canonicalise(parse(" AND ".join(shuffled)))
    assert subscription_id("i", required) == subscription_id("i", anded)
