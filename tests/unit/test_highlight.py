"""Highlights: the terms per field a registered query matched in a document.

The embedded percolator's pure function over analysed documents (queries built by the
registration path, so the trees are the canonical ones the percolator holds), the embedded
backend's ``highlight``, the Beater's ``estrom.highlight`` operation, and the Elasticsearch
backend's reading of a highlight answer (the shapes are those of a live 7.17 node).
"""

from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from twisted.internet.defer import ensureDeferred

from beater.errors import EstromError, LimitExceeded, UnknownSubscription
from beater.percolator.elasticsearch import POST_TAG, PRE_TAG, field_terms, field_type, highlights_of
from beater.percolator.embedded import EmbeddedPercolator
from beater.percolator.embedded.fields import FieldModel, analyse_document
from beater.percolator.embedded.highlight import highlight, positive_leaves
from beater.percolator.mapping import mapping_for_documents
from beater.query import ir, parse
from beater.registration import make_registration
from beater.service import Beater
from router import contract
from tests.unit.deferreds import result

SHAPE = {"title": "t", "user": "u", "comment": "c", "n": 1, "f": 1.5, "d": "2020-01-01", "b": True, "o": {"city": "x"}}


def highlights(query: Any, document: Dict[str, Any]) -> Dict[str, List[str]]:
    """What ``query`` (Lucene syntax or DSL, parsed as the embedded backend parses it to highlight)
    highlights in ``document``."""
    model = FieldModel()
    model.grow([SHAPE, document])
    return highlight(parse(query), analyse_document(document, model))


def test_a_term_highlights_the_token_in_its_field() -> None:
    assert highlights("comment:claim", {"comment": "Created a Claim", "title": "claim"}) == {"comment": ["claim"]}


def test_a_match_lists_the_query_tokens_the_field_holds() -> None:
    doc = {"comment": "the quick brown fox"}
    assert highlights({"match": {"comment": "quick dog fox"}}, doc) == {"comment": ["fox", "quick"]}


def test_a_phrase_highlights_its_tokens() -> None:
    assert highlights('title:"big cat"', {"title": "A big cat, a big dog"}) == {"title": ["big", "cat"]}


def test_a_phrase_that_is_not_there_highlights_nothing() -> None:
    assert highlights('title:"cat big"', {"title": "A big cat"}) == {}


def test_a_prefix_lists_every_token_it_matches() -> None:
    doc = {"comment": "claims claimed, unclaimed clam"}
    assert highlights("comment:claim*", doc) == {"comment": ["claimed", "claims"]}


def test_a_wildcard_lists_the_tokens_it_matches() -> None:
    assert highlights("comment:c?a*s", {"comment": "claims chaos cats"}) == {"comment": ["chaos", "claims"]}


def test_a_fuzzy_term_lists_the_tokens_within_its_edits() -> None:
    doc = {"comment": "claim clam cl4im claimed"}
    assert highlights("comment:claim~1", doc) == {"comment": ["cl4im", "claim", "clam"]}


def test_a_fuzzy_match_lists_the_document_tokens_within_the_edits() -> None:
    doc = {"comment": "the qiuck brown fox"}
    assert highlights({"match": {"comment": {"query": "quick", "fuzziness": 1}}}, doc) == {"comment": ["qiuck"]}


def test_a_regexp_lists_the_tokens_it_matches() -> None:
    assert highlights("comment:/cl[a-z]+/", {"comment": "claim cl4im clam"}) == {"comment": ["claim", "clam"]}


def test_a_keyword_field_highlights_the_whole_value() -> None:
    assert highlights("user.keyword:MisterX", {"user": "MisterX"}) == {"user.keyword": ["MisterX"]}
    assert highlights({"prefix": {"user.keyword": "Mis"}}, {"user": ["MisterX", "Other", "Miss Y"]}) == {
        "user.keyword": ["Miss Y", "MisterX"]}


def test_a_range_on_a_number_lists_the_values_in_it() -> None:
    assert highlights("n:[10 TO 20]", {"n": [5, 15, 20, 21]}) == {"n": ["15", "20"]}


def test_numbers_dates_and_booleans_read_as_json_and_iso_text() -> None:
    doc = {"f": 0.1, "d": "2018-03-07T16:16:17+01:00", "b": False}
    assert highlights("f:[0 TO 1] AND d:2018-03-07 AND b:false", doc) == {
        "b": ["false"], "d": ["2018-03-07T15:16:17.000Z"], "f": ["0.1"]}


def test_exists_lists_number_values_but_no_text() -> None:
    assert highlights("_exists_:n AND _exists_:comment", {"n": 3, "comment": "words"}) == {"n": ["3"]}


def test_must_not_clauses_highlight_nothing() -> None:
    doc = {"title": "big cat", "user": "robot"}
    assert highlights("title:big -title:cat", {"title": "big dog", "user": "cat"}) == {"title": ["big"]}
    assert highlights({"bool": {"must": [{"match": {"title": "big"}}], "must_not": [{"match": {"user": "cat"}}]}}, doc) == {
        "title": ["big"]}


def test_any_field_highlights_every_field_that_matches() -> None:
    doc = {"title": "claim", "comment": "a Claim here", "user": "nobody", "n": 4}
    assert highlights("claim", doc) == {"comment": ["claim"], "title": ["claim"], "title.keyword": ["claim"]}


def test_a_mixed_case_term_highlights_the_keyword_value_written_so() -> None:
    assert highlights("MisterX", {"user": "MisterX", "title": "misterx"}) == {
        "title": ["misterx"], "user": ["misterx"], "user.keyword": ["MisterX"]}


def test_any_field_patterns_are_lowercased_for_text_fields_only() -> None:
    doc = {"title": "Claims", "user": "Clara"}
    assert highlights("Cla*", doc) == {"title": ["claims"], "title.keyword": ["Claims"], "user": ["clara"],
                                       "user.keyword": ["Clara"]}


def test_any_field_numbers_highlight_the_numeric_field() -> None:
    assert highlights("4", {"n": 4, "title": "4 cats"}) == {"n": ["4"], "title": ["4"]}


def test_a_query_string_with_a_phrase_and_a_negated_prefix() -> None:
    doc = {"title": "The big cat sat", "user": "human", "comment": "big"}
    assert highlights('title:"big cat" -user:bot*', doc) == {"title": ["big", "cat"]}


def test_should_clauses_highlight_where_they_match() -> None:
    doc = {"title": "cats and dogs", "comment": "dogs"}
    assert highlights("title:cats OR comment:dogs OR comment:birds", doc) == {"comment": ["dogs"], "title": ["cats"]}


def test_and_operator_needs_every_token_in_the_same_field() -> None:
    doc = {"title": "quick", "comment": "quick fox"}
    assert highlights({"match": {"comment": {"query": "quick fox", "operator": "and"}}}, doc) == {
        "comment": ["fox", "quick"]}
    assert highlights({"match": {"title": {"query": "quick fox", "operator": "and"}}}, doc) == {}


def test_match_all_and_match_none_have_no_leaves() -> None:
    assert list(positive_leaves(ir.Bool(must=(ir.MatchAll(),), should=(ir.MatchNone(), ir.Ids(("x",)))))) == []
    assert highlights("*:*", {"title": "anything"}) == {}


def test_terms_are_sorted_and_distinct_across_leaves() -> None:
    doc = {"comment": "zeta alpha zeta beta"}
    assert highlights("comment:zeta OR comment:alpha OR comment:zet*", doc) == {"comment": ["alpha", "zeta"]}


# --- the embedded backend and the Beater ----------------------------------------------------------


class _NoPipeline:
    """The Beater's highlight never touches the pipeline."""


@pytest.fixture
def percolator(tmp_path: Path) -> Iterator[EmbeddedPercolator]:
    p = EmbeddedPercolator(tmp_path / "registrations.sqlite3")
    result(p.start())
    yield p
    result(p.stop())


def test_the_embedded_backend_gives_nothing_for_documents_the_query_does_not_match(percolator: EmbeddedPercolator) -> None:
    registration = make_registration("rc", "title:cat AND user:alice")
    result(percolator.register(registration))
    documents = [{"title": "a cat", "user": "alice"}, {"title": "a cat", "user": "bob"}]
    result(percolator.percolate("rc", documents))  # the fields are mapped as the hits were matched
    assert result(percolator.highlight(registration, documents)) == [{"title": ["cat"], "user": ["alice"]}, {}]


def test_the_embedded_backend_highlights_the_query_as_written(percolator: EmbeddedPercolator) -> None:
    """The canonical form lowercases ``MisterX`` (the same documents match), the highlight keeps it: the
    ``.keyword`` value equal to what was written is highlighted, as Elasticsearch highlights it."""
    registration = make_registration("rc", "MisterX")
    assert registration.canonical == ir.Match(ir.ANY_FIELD, "misterx")
    result(percolator.register(registration))
    documents = [{"user": "MisterX"}, {"user": "misterx"}]
    result(percolator.percolate("rc", documents))
    assert result(percolator.highlight(registration, documents)) == [
        {"user": ["misterx"], "user.keyword": ["MisterX"]}, {"user": ["misterx"]}]


def test_the_embedded_backend_does_not_grow_the_field_model(percolator: EmbeddedPercolator) -> None:
    registration = make_registration("rc", "fresh:word")
    result(percolator.register(registration))
    version = percolator.index.model("rc").version
    assert result(percolator.highlight(registration, [{"fresh": "word"}])) == [{}]  # never mapped: not indexed
    assert percolator.index.model("rc").version == version


def test_the_beater_answers_highlights_per_source_in_order(percolator: EmbeddedPercolator) -> None:
    beater = Beater(percolator, _NoPipeline())  # type: ignore[arg-type]
    registration = make_registration("rc", "comment:claim*")
    result(percolator.register(registration))
    result(percolator.percolate("rc", [{"comment": "x"}]))
    answer = result(ensureDeferred(beater.highlight(registration.id, [{"comment": "claimed"}, "not an object", {"comment": "no"}, None])))
    assert answer == {"highlights": [{"comment": ["claimed"]}, {}, {}, {}]}
    assert result(ensureDeferred(beater.highlight(registration.id, []))) == {"highlights": []}


def test_the_beater_refuses_unknown_ids_and_bad_source_lists(percolator: EmbeddedPercolator) -> None:
    beater = Beater(percolator, _NoPipeline())  # type: ignore[arg-type]
    registration = make_registration("rc", "comment:claim")
    result(percolator.register(registration))
    with pytest.raises(UnknownSubscription):
        result(ensureDeferred(beater.highlight("0123456789abcdef", [{}])))
    with pytest.raises(EstromError) as bad:
        result(ensureDeferred(beater.highlight(registration.id, {"comment": "claim"})))
    assert bad.value.uri == contract.ERROR_INVALID_ARGUMENT
    with pytest.raises(LimitExceeded) as many:
        result(ensureDeferred(beater.highlight(registration.id, [{}] * (contract.MAX_HIGHLIGHT_SOURCES + 1))))
    assert many.value.to_json()["limit"] == "max_highlight_sources"
    assert many.value.to_json()["value"] == contract.MAX_HIGHLIGHT_SOURCES


# --- reading Elasticsearch's answer ---------------------------------------------------------------

PROPERTIES = mapping_for_documents([{"comment": "c", "meta": {"domain": "d"}, "n": 1}], {})


def tagged(text: str) -> str:
    return text.replace("<", PRE_TAG).replace(">", POST_TAG)


def test_field_types_follow_objects_and_multi_fields() -> None:
    assert [field_type(PROPERTIES, p) for p in ("comment", "comment.keyword", "meta.domain", "meta", "n", "nope")] == [
        "text", "keyword", "text", "object", "long", None]


def test_text_spans_become_standard_tokens_and_keyword_values_stay_whole() -> None:
    assert field_terms("text", [tagged("Created <Claims> and <Property:P31>"), tagged("<CLAIMS>")]) == [
        "claims", "property:p31"]
    assert field_terms("keyword", [tagged("<Mister X>")]) == ["Mister X"]


def test_slot_prefixed_keys_go_back_to_their_documents() -> None:
    hit = {"fields": {"_percolator_document_slot": [0, 2]},
           "highlight": {"0_comment": [tagged("a <claim>")], "2_meta.domain": [tagged("<www>.x")],
                         "2_comment.keyword": [tagged("<claimed>")]}}
    assert highlights_of(hit, 3, PROPERTIES) == [
        {"comment": ["claim"]}, {}, {"comment.keyword": ["claimed"], "meta.domain": ["www"]}]


def test_one_percolated_document_has_plain_keys() -> None:
    hit = {"fields": {"_percolator_document_slot": [0]}, "highlight": {"0_comment": [tagged("<x>")]}}
    assert highlights_of(hit, 1, {"0_comment": {"type": "text"}}) == [{"0_comment": ["x"]}]
