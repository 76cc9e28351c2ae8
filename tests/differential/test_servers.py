"""Where Elasticsearch 7.17 and OpenSearch 2.19 differ under the backend's REST calls, pinned.

Run against both servers (the ``es`` fixture).  Found so far, and handled by the backend:

* OpenSearch forgets ``index.percolator.map_unmapped_fields_as_text`` when a mapping update
  rebuilds the percolator field (opensearch-project/OpenSearch#21072, fixed upstream after 2.19):
  a query on an unmapped field is then refused and a default-field query fails with "No field
  mapping can be found for the field with name [*]".  Closing and opening the index again brings
  the setting back; the backend does so after each mapping update on OpenSearch.  If a release
  fixes it, the first test below fails on OpenSearch: the reopen can then be dropped for it.

Checked alike on both (and so pinned here too): highlight keys per percolated document slot
(``<slot>_<field>`` with several documents, plain ``<field>`` with one), error shapes (``type``,
``reason``, ``caused_by``), 409 on ``_create`` of an existing id.
"""

from __future__ import annotations

import uuid
from typing import Any, Dict, Iterator, List

import pytest

from beater.percolator.elasticsearch import (
    ID_FIELD, OPENSEARCH_LOST_SETTING, POST_TAG, PRE_TAG, QUERY_FIELD, ElasticsearchError, index_body,
)
from tests.differential.es import Es, EsError


@pytest.fixture
def index(es: Es) -> Iterator[str]:
    """A fresh percolator index, made as the backend makes it, with one text field mapped."""
    name = "estrom-pin-" + uuid.uuid4().hex[:10]
    es.request("PUT", f"/{name}", index_body({"title": {"type": "text"}}))
    yield name
    es.request("DELETE", f"/{name}")


def store(es: Es, index: str, sub_id: str, query: Dict[str, Any]) -> None:
    es.request("PUT", f"/{index}/_create/{sub_id}?refresh=true", {QUERY_FIELD: query, ID_FIELD: sub_id})


def percolate(es: Es, index: str, documents: List[Dict[str, Any]], **extra: Any) -> List[Dict[str, Any]]:
    body = {"query": {"percolate": {"field": QUERY_FIELD, "documents": documents}}, "_source": False, **extra}
    return es.request("POST", f"/{index}/_search", body)["hits"]["hits"]


def test_a_mapping_update_keeps_unmapped_fields_as_text_on_elasticsearch_only_opensearch_needs_a_reopen(es: Es, index: str) -> None:
    """After a field is added: Elasticsearch still takes a query on an unmapped field; OpenSearch refuses it
    with OPENSEARCH_LOST_SETTING until the index is closed and opened again, then takes it and matches."""
    es.request("PUT", f"/{index}/_mapping", {"properties": {"added": {"type": "text"}}})
    query = {"query_string": {"query": "later:yes"}}
    if es.opensearch:
        with pytest.raises(EsError) as refused:
            store(es, index, "q1", query)
        assert refused.value.status == 400
        assert OPENSEARCH_LOST_SETTING in ElasticsearchError(400, refused.value.body).reason
        es.after_mapping_update(index)
    store(es, index, "q1", query)  # taken: "later" counts as text until a document maps it
    store(es, index, "q2", {"query_string": {"query": "anything"}})  # the default field: every mapped field
    hits = percolate(es, index, [{"title": "nothing"}, {"added": "anything goes"}])
    assert {hit["_id"]: hit["fields"]["_percolator_document_slot"] for hit in hits} == {"q2": [1]}


def test_highlights_are_keyed_by_document_slot_alike(es: Es, index: str) -> None:
    """``<slot>_<field>`` with several documents, ``<field>`` with one (what highlights_of reads)."""
    store(es, index, "q", {"query_string": {"query": "brown"}})
    highlight = {"fields": {"*": {}}, "number_of_fragments": 0, "pre_tags": [PRE_TAG], "post_tags": [POST_TAG]}
    [one] = percolate(es, index, [{"title": "the brown fox"}], highlight=highlight)
    assert one["highlight"] == {"title": [f"the {PRE_TAG}brown{POST_TAG} fox"]}
    [several] = percolate(es, index, [{"title": "none"}, {"title": "the brown fox"}], highlight=highlight)
    assert several["highlight"] == {"1_title": [f"the {PRE_TAG}brown{POST_TAG} fox"]}
    assert several["fields"]["_percolator_document_slot"] == [1]


def test_refusals_have_the_same_shape(es: Es, index: str) -> None:
    """Missing index, existing id, unknown query: the same status, type and innermost reason."""
    with pytest.raises(EsError) as missing:
        es.request("POST", f"/{index}-missing/_search", {})
    assert (missing.value.status, ElasticsearchError(404, missing.value.body).error_type) == (404, "index_not_found_exception")
    store(es, index, "q", {"match_all": {}})
    with pytest.raises(EsError) as again:
        store(es, index, "q", {"match_all": {}})
    assert again.value.status == 409
    with pytest.raises(EsError) as bogus:
        store(es, index, "bogus", {"bogus": {}})
    refusal = ElasticsearchError(400, bogus.value.body)
    assert (bogus.value.status, refusal.error_type) == (400, "mapper_parsing_exception")
    assert "unknown query [bogus]" in refusal.reason
