"""A small synchronous Elasticsearch client for the differential tests (pytest is not on the reactor).

It reuses the pure parts of the Elasticsearch backend (index body, stored query,
conform, mapping rules) so the oracle sees exactly what the backend would send.
"""

from __future__ import annotations

import http.client
import json
import os
import uuid
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit

import pytest

from beater.mappings import IndexMapping
from beater.percolator.elasticsearch import ID_FIELD, QUERY_FIELD, ElasticsearchError, conform, index_body, stored_query
from beater.percolator.mapping import mapping_for_documents
from beater.registration import Registration


class EsError(Exception):
    """Elasticsearch answered an error status."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {json.dumps(body)[:800]}")
        self.status = status
        self.body = body


class Es:
    """Blocking JSON-over-HTTP client on one keep-alive connection.

    ``retries`` re-sends a request once the kept-alive connection was found closed; a benchmark
    that must not send a slow request twice passes 0 (and a long ``timeout``).
    """

    def __init__(self, url: str, timeout: float = 120.0, retries: int = 1) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 9200
        self.timeout = timeout
        self.retries = retries
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, body: Any = None, ndjson: Optional[str] = None) -> Any:
        data = ndjson.encode() if ndjson is not None else (None if body is None else json.dumps(body).encode())
        headers = {"content-type": "application/x-ndjson" if ndjson is not None else "application/json"}
        for attempt in range(self.retries + 1):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                payload = response.read()
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                if attempt == self.retries:
                    raise
        answer = json.loads(payload) if payload else None
        if response.status >= 400:
            raise EsError(response.status, answer)
        return answer

    def close(self) -> None:
        self.conn.close()

    @property
    def opensearch(self) -> bool:
        """Whether the cluster is OpenSearch (asked once)."""
        if not hasattr(self, "_opensearch"):
            self._opensearch = self.request("GET", "/").get("version", {}).get("distribution") == "opensearch"
        return self._opensearch

    def after_mapping_update(self, name: str) -> None:
        """What the backend does after a mapping update: on OpenSearch, close and open the index again, for
        OpenSearch forgets index.percolator.map_unmapped_fields_as_text at mapping updates
        (beater.percolator.elasticsearch.OPENSEARCH_LOST_SETTING)."""
        if self.opensearch:
            self.request("POST", f"/{name}/_close")
            self.request("POST", f"/{name}/_open?wait_for_active_shards=1")


# The servers the differential tests hold the embedded percolator to: (name, variable, how to start one).
SERVERS = {
    "elasticsearch": ("ESTROM_ES_URL", "scripts/services start elasticsearch"),
    "opensearch": ("ESTROM_OPENSEARCH_URL", "scripts/services start opensearch"),
}


def es_url(server: str = "elasticsearch") -> str:
    """The URL of ``server`` (ESTROM_ES_URL, ESTROM_OPENSEARCH_URL), checked to answer as that product;
    the test fails (never skips) otherwise."""
    variable, start = SERVERS[server]
    url = os.environ.get(variable)
    if not url:
        pytest.fail(f"{variable} is not set: run scripts/test, or {start} and export it")
    try:
        info = Es(url).request("GET", "/")
    except (OSError, EsError, ValueError) as e:
        pytest.fail(f"{server} at {variable}={url} is unreachable: {e}")
    assert "version" in info
    distribution = info["version"].get("distribution", "elasticsearch")
    assert distribution == server, f"{variable}={url} is {distribution} {info['version'].get('number')}, not {server}"
    return url


class PercolatorIndex:
    """A fresh percolator index built as the backend builds it: mapping first, then queries."""

    def __init__(
        self, es: Es, documents: Sequence[Mapping[str, Any]], prefix: str = "estrom-diff-", configured: Optional[IndexMapping] = None,
    ) -> None:
        self.es = es
        self.name = prefix + uuid.uuid4().hex[:10]
        given = dict(configured.properties) if configured is not None else {}
        es.request("PUT", f"/{self.name}", index_body(given))
        self.properties: Dict[str, Any] = {}
        new = mapping_for_documents(documents, given) if configured is None or configured.dynamic else {}
        if new:
            es.request("PUT", f"/{self.name}/_mapping", {"properties": new})
            es.after_mapping_update(self.name)
        mapping = es.request("GET", f"/{self.name}/_mapping")
        self.properties = next(iter(mapping.values()))["mappings"]["properties"]

    def register(self, registrations: Iterable[Registration], chunk: int = 5000) -> Dict[str, str]:
        """Store the queries (``_bulk`` of ``chunk`` at a time, one refresh at the end);
        return {id: reason} for those Elasticsearch refused."""
        refused: Dict[str, str] = {}
        pending = list(registrations)
        for start in range(0, len(pending), chunk):
            lines: List[str] = []
            for registration in pending[start : start + chunk]:
                lines.append(json.dumps({"index": {"_id": registration.id}}))
                lines.append(json.dumps({QUERY_FIELD: stored_query(registration), ID_FIELD: registration.id}))
            answer = self.es.request("POST", f"/{self.name}/_bulk", ndjson="\n".join(lines) + "\n")
            for item in answer["items"] if answer.get("errors") else []:
                outcome = item["index"]
                if "error" in outcome:
                    refused[outcome["_id"]] = ElasticsearchError(outcome.get("status", 400), {"error": outcome["error"]}).reason
        self.es.request("POST", f"/{self.name}/_refresh")
        return refused

    def percolate(self, documents: Sequence[Mapping[str, Any]]) -> List[List[str]]:
        """Per document, the ids of the stored queries it matches (one request per batch)."""
        conformed = [conform(doc, self.properties) for doc in documents]
        matches: List[List[str]] = [[] for _ in documents]
        search_after = None
        while True:
            body: Dict[str, Any] = {
                "query": {"percolate": {"field": QUERY_FIELD, "documents": conformed}},
                "_source": False, "docvalue_fields": [ID_FIELD], "size": 10_000,
                "sort": [{ID_FIELD: "asc"}], "track_total_hits": False,
            }
            if search_after is not None:
                body["search_after"] = search_after
            hits = self.es.request("POST", f"/{self.name}/_search", body)["hits"]["hits"]
            for hit in hits:
                for slot in hit["fields"].get("_percolator_document_slot", [0]):
                    matches[slot].append(hit["fields"][ID_FIELD][0])
            if len(hits) < 10_000:
                return matches
            search_after = hits[-1]["sort"]

    def delete(self) -> None:
        self.es.request("DELETE", f"/{self.name}")


def analyze(es: Es, text: str) -> List[Tuple[str, int]]:
    """The standard analyzer's tokens of ``text`` with their positions."""
    answer = es.request("POST", "/_analyze", {"analyzer": "standard", "text": text})
    return [(t["token"], t["position"]) for t in answer["tokens"]]
