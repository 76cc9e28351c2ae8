"""The embedded percolator held to Elasticsearch's answers, document by document.

The same queries are registered in a fresh Elasticsearch percolator index (built
exactly as the Elasticsearch backend builds it) and in the embedded percolator's
synchronous core; the same documents (examples/recentchange.ndjson followed by
edge_docs.ndjson) are percolated by both; the (document, subscription) match
sets must be equal.  A second embedded index holds only the queries that name
their fields, so that it analyses only those fields (no default-field query
makes it read everything): its answers must be Elasticsearch's too.  Queries the embedded side refuses at registration
(UnsupportedQuery) are not compared but counted; so are queries Elasticsearch
itself refuses.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import pytest

from beater.errors import InvalidQuery, UnsupportedQuery
from beater.mappings import IndexMapping, check_mapping, field_kinds
from beater.registration import Registration, make_registration
from tests.differential.es import Es, PercolatorIndex
from tests.differential.queries import MAPPED, QUERIES

INDEX = "diff"
BATCH = 250
SHOW = 40


@dataclass
class Mismatch:
    """One (document, query) pair the two percolators disagree on."""

    registration: Registration
    doc_number: int
    document: Mapping[str, Any]
    matched_by: str  # "elasticsearch", "embedded" or "embedded (scoped)"

    def describe(self) -> str:
        query = self.registration.source if isinstance(self.registration.source, str) else json.dumps(self.registration.source)
        excerpt = json.dumps(self.document, ensure_ascii=False)
        if len(excerpt) > 300:
            excerpt = excerpt[:300] + "..."
        operator = "" if self.registration.default_operator == "or" else f" [default_operator={self.registration.default_operator}]"
        return f"only {self.matched_by:17} matched  query {query!s}{operator}\n    doc #{self.doc_number}: {excerpt}"


@dataclass
class Report:
    """What was compared and where the two sides disagree."""

    compared: List[Registration] = field(default_factory=list)
    scoped: int = 0  # queries also compared from an index of fielded queries only
    unsupported: Dict[str, str] = field(default_factory=dict)
    invalid: Dict[str, str] = field(default_factory=dict)
    es_refused: Dict[str, str] = field(default_factory=dict)
    documents: int = 0
    matches: int = 0
    mismatches: List[Mismatch] = field(default_factory=list)

    def summary(self) -> str:
        pairs = len(self.compared) * self.documents
        per_query = Counter(m.registration.id for m in self.mismatches)
        by_id = {r.id: r for r in self.compared}
        lines = [
            f"differential: {len(self.compared)} queries x {self.documents} documents = {pairs} pairs compared, "
            f"{self.matches} matching pairs (per Elasticsearch), {len(self.mismatches)} mismatches "
            f"in {len(per_query)} queries ({self.scoped} fielded queries also compared from an index of their own)",
            f"  skipped: {len(self.unsupported)} refused by embedded as unsupported, "
            f"{len(self.invalid)} refused by the parser as invalid, {len(self.es_refused)} refused by Elasticsearch",
        ]
        for source, reason in list(self.unsupported.items()):
            lines.append(f"    unsupported: {source}  ({reason})")
        for source, reason in list(self.invalid.items()):
            lines.append(f"    invalid: {source}  ({reason})")
        for source, reason in list(self.es_refused.items()):
            lines.append(f"    refused by Elasticsearch: {source}  ({reason})")
        if per_query:
            lines.append("  mismatching queries (count):")
            for sub_id, count in per_query.most_common():
                source = by_id[sub_id].source
                lines.append(f"    {count:5}  {source if isinstance(source, str) else json.dumps(source)}")
            lines.append(f"  first {min(SHOW, len(self.mismatches))} mismatches:")
            lines.extend("  " + m.describe() for m in self.mismatches[:SHOW])
        return "\n".join(lines)


def source_text(source: Any) -> str:
    return source if isinstance(source, str) else json.dumps(source)


def compare(
    es: Es, documents: Sequence[Mapping[str, Any]], queries: Sequence[Tuple[Any, str]] = QUERIES, configured: Optional[IndexMapping] = None,
) -> Report:
    """Register ``queries`` on both sides, percolate ``documents`` on both, collect the differences.

    With ``configured``, both sides start from that explicit mapping of the index.
    """
    from beater.percolator.embedded import QueryIndex
    from beater.query.reads import fields_read

    mappings = {INDEX: configured} if configured is not None else {}
    kinds = field_kinds(mappings, INDEX)
    report = Report(documents=len(documents))
    registrations: Dict[str, Registration] = {}
    for source, operator in queries:
        try:
            registration = make_registration(INDEX, source, operator, kinds)
        except UnsupportedQuery as e:
            report.unsupported[source_text(source)] = e.message
            continue
        except InvalidQuery as e:
            report.invalid[source_text(source)] = e.message
            continue
        registrations.setdefault(registration.id, registration)

    oracle = PercolatorIndex(es, documents, configured=configured)
    try:
        refused = oracle.register(registrations.values())
        for sub_id, reason in refused.items():
            report.es_refused[source_text(registrations.pop(sub_id).source)] = reason
        embedded = QueryIndex(mappings=mappings)
        for sub_id, registration in list(registrations.items()):
            try:
                embedded.add(registration)
            except UnsupportedQuery as e:
                report.unsupported[source_text(registration.source)] = e.message
                del registrations[sub_id]
        report.compared = list(registrations.values())
        scoped = QueryIndex(mappings=mappings)
        fielded = {sub_id for sub_id, r in registrations.items() if fields_read(r.canonical) is not None}
        for sub_id in fielded:
            scoped.add(registrations[sub_id])
        report.scoped = len(fielded)

        for start in range(0, len(documents), BATCH):
            batch = documents[start : start + BATCH]
            es_matches = oracle.percolate(batch)
            embedded_matches = embedded.match_batch(INDEX, [copy.deepcopy(doc) for doc in batch])
            scoped_matches = scoped.match_batch(INDEX, [copy.deepcopy(doc) for doc in batch])
            assert len(embedded_matches) == len(batch)
            for offset, (doc, es_ids, emb_ids, scoped_ids) in enumerate(zip(batch, es_matches, embedded_matches, scoped_matches)):
                es_set = {i for i in es_ids if i in registrations}
                emb_set = {i for i in emb_ids if i in registrations}
                report.matches += len(es_set)
                for sub_id in sorted(es_set - emb_set):
                    report.mismatches.append(Mismatch(registrations[sub_id], start + offset, doc, "elasticsearch"))
                for sub_id in sorted(emb_set - es_set):
                    report.mismatches.append(Mismatch(registrations[sub_id], start + offset, doc, "embedded"))
                es_fielded = es_set & fielded
                for sub_id in sorted(es_fielded - set(scoped_ids)):
                    report.mismatches.append(Mismatch(registrations[sub_id], start + offset, doc, "elasticsearch"))
                for sub_id in sorted(set(scoped_ids) - es_fielded):
                    report.mismatches.append(Mismatch(registrations[sub_id], start + offset, doc, "embedded (scoped)"))
    finally:
        oracle.delete()
    return report


def test_embedded_agrees_with_elasticsearch(es: Es, corpus: List[Dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    """Every (document, query) pair: matched by both percolators or by neither."""
    report = compare(es, corpus)
    with capsys.disabled():
        print("\n" + report.summary())
    assert report.compared, "no query was compared"
    assert report.matches, "Elasticsearch matched nothing: the comparison proves nothing"
    assert not report.mismatches, report.summary()


# The corpus's fields as an operator would map them: standalone keyword fields (no text twin),
# ignore_above cutting some values, typed numbers, dates and booleans, nested objects.
EXPLICIT_PROPERTIES: Dict[str, Any] = {
    "user": {"type": "keyword"},
    "title": {"type": "text"},
    "type": {"type": "keyword", "ignore_above": 4},
    "wiki": {"type": "keyword"},
    "comment": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 40}}},
    "server_name": {"type": "keyword", "ignore_above": 16},
    "namespace": {"type": "long"},
    "bot": {"type": "boolean"},
    "timestamp": {"type": "date"},
    "length": {"properties": {"new": {"type": "float"}, "old": {"type": "long"}}},
    "meta": {"properties": {"dt": {"type": "date"}, "domain": {"type": "keyword"}, "uri": {"type": "text"}}},
}


@pytest.mark.parametrize("dynamic", [True, False], ids=["dynamic", "strict-fields"])
def test_embedded_agrees_with_elasticsearch_under_an_explicit_mapping(
    es: Es, corpus: List[Dict[str, Any]], dynamic: bool, capsys: pytest.CaptureFixture[str],
) -> None:
    """With a configured mapping (other fields mapped dynamically, or not at all) both percolators agree."""
    configured = check_mapping(INDEX, {"dynamic": dynamic, "properties": EXPLICIT_PROPERTIES})
    report = compare(es, corpus, (QUERIES + MAPPED) if dynamic else MAPPED, configured)
    with capsys.disabled():
        print(f"\n[explicit mapping, dynamic {str(dynamic).lower()}] " + report.summary())
    assert report.compared, "no query was compared"
    assert report.matches, "Elasticsearch matched nothing: the comparison proves nothing"
    assert not report.mismatches, report.summary()
