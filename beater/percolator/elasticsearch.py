"""The Elasticsearch backend: registered queries live in a percolator index on a real cluster.

One percolator index per estrom index (``estrom-queries-<index>``), one document
per registration (document id = subscription id).  A micro-batch is percolated
in one ``percolate`` request with ``documents: [...]``; each hit's
``_percolator_document_slot`` says which documents it matched.

The client is plain REST over treq on the Twisted reactor, never a blocking
call.  The official clients pin the server's major version (8.x sends
``compatible-with=8`` headers that 7.17 refuses; 8.x/9.x refuse OpenSearch),
while the percolate REST API is the same on Elasticsearch 7.17, 8.x, 9.x and
OpenSearch 2.x, so plain JSON over HTTP serves them all.

Mappings.  The percolator index has ``dynamic: false``; before a batch is
percolated, the fields it shows for the first time are added with the same
dynamic-mapping rules the embedded percolator uses (:mod:`beater.percolator.mapping`),
so both backends see the same field types and the first value of a field fixes
its type.  Documents are then conformed to the mapping (:func:`conform`): values
Elasticsearch would refuse (an object where a value was mapped, a value where an
object was mapped, a non-boolean in a boolean field, dotted keys) are left out,
malformed numbers and dates are ignored by ``index.mapping.ignore_malformed``, so
one odd document never sinks its batch.

An index with a configured mapping (:mod:`beater.mappings`) gets its percolator
index created with those fields; with ``dynamic: false`` nothing else is ever
added.  If the percolator index already exists, the configured fields are added
to it at start, and a conflict with what it holds stops the start with the
reason.

A query on a field no document has shown yet is accepted
(``index.percolator.map_unmapped_fields_as_text``) and matches nothing until a
document shows the field.  Elasticsearch extracts a stored query's candidate
terms when the query is indexed, against the mapping of that moment; a query
stored before its field (or, for the default field ``*``, any field) was
mapped would never be selected as a candidate afterwards.  So whenever a batch
adds fields, every stored query of the index is re-indexed (one ``_bulk``)
before the batch is percolated: the batch that shows a field first already
matches the queries waiting for it, as with the embedded percolator.  A stored
query that no longer parses against the grown mapping (``match`` of ``"abc"``
on what became a ``long``) is replaced by ``match_none`` (it can match nothing)
and logged; its registration stays.

Failures (:mod:`beater.percolator.elasticsearch_client`): connection errors, timeouts, 429 and 5xx
are retried with back-off, over every node URL given (``--es-url http://a:9200,http://b:9200``);
after the last retry the call fails with BackendUnavailable (HTTP ingest answers 503, nothing is
acknowledged that was not percolated) and :attr:`ElasticsearchPercolator.healthy` is False until a
request succeeds.  A query Elasticsearch refuses at registration is InvalidQuery with its reason.
New percolator indexes get ``--es-shards`` primaries with ``--es-replicas`` replicas each.

OpenSearch 2.x answers the same REST calls alike but for one bug: a mapping
update makes it forget ``index.percolator.map_unmapped_fields_as_text`` (see
OPENSEARCH_LOST_SETTING), so on OpenSearch the percolator index is closed and
opened again after each mapping update (tests/differential/test_servers.py pins it).
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, AsyncIterator, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger

from beater.errors import DocumentRefused, EstromError, InvalidQuery
from beater.mappings import IndexMapping, MappingError, field_kinds
from beater.percolator.elasticsearch_client import ElasticsearchClient, ElasticsearchError
from beater.percolator.embedded.analysis import standard_tokens
from beater.percolator.mapping import mapping_for_documents, merge_properties
from beater.registration import Registration, make_registration

log = Logger()

INDEX_PREFIX = "estrom-queries-"
# Internal fields share the mapping with document fields: '@estrom_' names keep them apart
# (documents' fields with this prefix are left out before percolation).
INTERNAL_PREFIX = "@estrom_"
QUERY_FIELD = "@estrom_query"
ID_FIELD = "@estrom_id"
REGISTRATION_FIELD = "@estrom_registration"
DISABLED_FIELD = "@estrom_disabled"
MAPPING_FIELD = "@estrom_mapping"  # tag of the configured mapping a query was registered under
PAGE = 10_000
BOOLEAN_STRINGS = frozenset({"true", "false", ""})


def percolator_index(index: str) -> str:
    """Name of the percolator index that holds the queries registered on ``index``."""
    return INDEX_PREFIX + index


def stored_query(registration: Registration) -> Dict[str, Any]:
    """The query DSL stored for a registration: what the user wrote, as Elasticsearch reads it."""
    source = registration.source
    if isinstance(source, str):
        if source.lstrip().startswith("{"):
            source = json.loads(source)  # a DSL object sent as a JSON string (parse() reads it so)
        else:
            query: Dict[str, Any] = {"query": source, "default_operator": registration.default_operator.upper()}
            return {"query_string": query}
    if set(source) == {"query"}:
        return dict(source["query"])
    return dict(source)


def index_body(configured: Optional[Mapping[str, Any]] = None, shards: int = 1, replicas: int = 0) -> Dict[str, Any]:
    """Settings and base mapping of a new percolator index, with the ``configured`` properties if any,
    ``shards`` primaries and ``replicas`` copies of each (``--es-shards`` / ``--es-replicas``)."""
    return {
        "settings": {
            "number_of_shards": shards,
            "number_of_replicas": replicas,
            "index.percolator.map_unmapped_fields_as_text": True,
            "index.mapping.ignore_malformed": True,
            "index.mapping.total_fields.limit": 10_000,
        },
        "mappings": {
            "dynamic": False,
            "properties": {
                QUERY_FIELD: {"type": "percolator"},
                ID_FIELD: {"type": "keyword"},
                MAPPING_FIELD: {"type": "keyword"},
                REGISTRATION_FIELD: {"type": "object", "enabled": False},
                **(configured or {}),
            },
        },
    }


def conform(document: Mapping[str, Any], properties: Mapping[str, Any]) -> Dict[str, Any]:
    """``document`` with only the values Elasticsearch can parse with these mapped ``properties``.

    Unmapped fields, dotted keys, internal ``@estrom_`` names, objects where a value
    is mapped, values where an object is mapped and non-booleans in boolean fields
    are left out (Elasticsearch would refuse the whole batch for them).
    """
    out: Dict[str, Any] = {}
    for key, value in document.items():
        if not isinstance(key, str) or not key or "." in key or key.startswith(INTERNAL_PREFIX):
            continue
        mapping = properties.get(key)
        if mapping is None:
            continue
        kept = _conform_value(value, mapping)
        if kept is not None:
            out[key] = kept
    return out


def _conform_value(value: Any, mapping: Mapping[str, Any]) -> Any:
    if isinstance(value, list):
        items = [kept for kept in (_conform_value(item, mapping) for item in value) if kept is not None]
        return items or None
    if value is None:
        return None
    kind = mapping.get("type", "object")
    if kind in ("object", "nested") or "properties" in mapping:
        if not isinstance(value, dict):
            return None
        sub = conform(value, mapping.get("properties", {}))
        return sub or None
    if isinstance(value, dict):
        return None
    if kind == "boolean":
        if isinstance(value, bool) or (isinstance(value, str) and value in BOOLEAN_STRINGS):
            return value
        return None
    if isinstance(value, bool) and kind not in ("text", "keyword"):
        return None
    return value


# Highlight tags: private-use characters no analyzer keeps in a token (control characters are not safe:
# Elasticsearch 7.17 mangles a \u0002 post tag).
PRE_TAG, POST_TAG = "\ue000", "\ue001"
_SLOT_KEY = re.compile(r"(\d+)_(.+)", re.DOTALL)
_TAGGED = re.compile(re.escape(PRE_TAG) + "(.*?)" + re.escape(POST_TAG), re.DOTALL)


def field_type(properties: Mapping[str, Any], path: str) -> Optional[str]:
    """The mapped type of a dotted ``path`` (``user.keyword`` through the multi-field), None if unmapped."""
    mapping: Optional[Mapping[str, Any]] = None
    scope: Mapping[str, Any] = properties
    for part in path.split("."):
        if part in scope:
            mapping = scope[part]
        elif mapping is not None and part in mapping.get("fields", {}):
            mapping = mapping["fields"][part]
        else:
            return None
        scope = mapping.get("properties", {})
    return None if mapping is None else str(mapping.get("type", "object"))


def field_terms(kind: Optional[str], fragments: Sequence[str]) -> List[str]:
    """The highlighted terms of one field's fragments: standard-analyzer tokens of each tagged span of a
    text field, the whole (untagged) value of a keyword field; sorted, distinct."""
    terms: Set[str] = set()
    for fragment in fragments:
        if kind == "keyword":
            terms.add(fragment.replace(PRE_TAG, "").replace(POST_TAG, ""))
        else:
            for span in _TAGGED.findall(fragment):
                terms.update(standard_tokens(span))
    return sorted(terms)


def highlights_of(hit: Mapping[str, Any], count: int, properties: Mapping[str, Any]) -> List[Dict[str, List[str]]]:
    """One stored query's percolate hit as ``count`` per-document highlights (``{}`` where it did not match).

    Elasticsearch 7.17 names a field's highlight ``<slot>_<field>`` when several documents were
    percolated and plain ``<field>`` when only one was (checked on a live node)."""
    out: List[Dict[str, List[str]]] = [{} for _ in range(count)]
    matched = set((hit.get("fields") or {}).get("_percolator_document_slot", [0]))
    for key, fragments in (hit.get("highlight") or {}).items():
        slot, path = 0, key
        if count > 1:
            m = _SLOT_KEY.fullmatch(key)
            if m is None:
                continue
            slot, path = int(m.group(1)), m.group(2)
        terms = field_terms(field_type(properties, path), fragments)
        if terms and slot in matched and 0 <= slot < count:
            out[slot][path] = terms
    return [dict(sorted(h.items())) for h in out]


# OpenSearch (2.19 at least) forgets index.percolator.map_unmapped_fields_as_text when a mapping update
# rebuilds the percolator field (opensearch-project/OpenSearch#21072): queries on unmapped fields are then
# refused with this reason, default-field queries fail or silently match nothing.  Closing and reopening
# the index reads the setting again.
OPENSEARCH_LOST_SETTING = "No field mapping can be found for the field with name"


class ElasticsearchPercolator:
    """Percolator backend on an Elasticsearch (7.17, 8.x, 9.x) or OpenSearch 2.x cluster."""

    name = "elasticsearch"
    incremental = False

    def __init__(
        self,
        url: str,
        reactor: Any = None,
        retries: int = 5,
        backoff: float = 0.2,
        timeout: float = 20.0,
        deadline: float = 30.0,
        mappings: Optional[Mapping[str, IndexMapping]] = None,
        shards: int = 1,
        replicas: int = 0,
    ) -> None:
        """``url``: one node's URL or several, comma-separated (nodes of one cluster: a request that
        cannot reach one goes on to the next at once).  ``retries`` with exponential ``backoff``
        (capped at 5 s) once every node failed, each request ``timeout`` seconds, no new attempt once
        ``deadline`` seconds have passed since the first one; ``mappings`` are the configured mappings
        of the indexes that have one; ``shards`` and ``replicas`` of the percolator indexes it creates."""
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.client = ElasticsearchClient(url, reactor, retries, backoff, timeout, deadline)
        self.shards = shards
        self.replicas = replicas
        self.opensearch: Optional[bool] = None  # known after the first GET /: OpenSearch needs the repair after mapping updates
        self.reactor = reactor
        self.mappings: Mapping[str, IndexMapping] = mappings or {}
        self._mapped: Dict[str, Dict[str, Any]] = {}
        self._ready_indexes: Set[str] = set()
        self._refused: Dict[str, Set[str]] = {}
        self.remapped: Dict[str, str] = {}  # old id -> new id of queries registered under another mapping

    @property
    def healthy(self) -> bool:
        """Whether the last request to the cluster succeeded (False before the first)."""
        return self.client.healthy

    # --- Percolator protocol ---------------------------------------------------------------------

    def start(self) -> "Deferred[None]":
        """Check the cluster answers (registrations are already there)."""
        return ensureDeferred(self._start())

    async def _start(self) -> None:
        info = await self.client.request("GET", "/")
        version = (info or {}).get("version", {})
        self.opensearch = version.get("distribution") == "opensearch"
        log.info(
            "Elasticsearch percolator at {url}: {dist} {number}",
            url=self.client.url, dist=version.get("distribution", "elasticsearch"), number=version.get("number"),
        )
        for index in self.mappings:  # a conflict with an existing percolator index stops the start, clearly
            await self._ensure_index(index)

    async def _ensure_index(self, index: str) -> None:
        if index in self._ready_indexes:
            return
        if self.opensearch is None:  # not started (a test, a tool): which product decides the mapping updates
            info = await self.client.request("GET", "/")
            self.opensearch = ((info or {}).get("version") or {}).get("distribution") == "opensearch"
        name = percolator_index(index)
        configured = self.mappings.get(index)
        properties = dict(configured.properties) if configured is not None else {}
        existing = await self.client.request("GET", f"/{name}/_mapping", ok_missing=True)
        if existing is None:
            try:
                await self.client.request("PUT", f"/{name}", index_body(properties, self.shards, self.replicas))
            except ElasticsearchError as e:
                if "resource_already_exists_exception" not in json.dumps(e.body):
                    raise
        else:
            wanted = {MAPPING_FIELD: {"type": "keyword"}, **properties}
            held = next(iter(existing.values()))["mappings"].get("properties", {})
            lacking = any(held.get(key) != value for key, value in wanted.items())
            try:  # an index made before the mapping was configured (or changed): add what it lacks
                if lacking:
                    await self.client.request("PUT", f"/{name}/_mapping", {"properties": wanted})
            except ElasticsearchError as e:
                raise MappingError(
                    f"the percolator index {name} exists with a mapping that conflicts with the configured mapping "
                    f"of index {index!r} ({e.reason}); delete it to store the queries again under the new mapping"
                ) from None
            if lacking:
                await self._after_mapping_update(name)
        existing = await self.client.request("GET", f"/{name}/_mapping")
        properties = next(iter(existing.values()))["mappings"].get("properties", {})
        self._mapped[index] = dict(properties)
        self._ready_indexes.add(index)
        await self._move_to_current_mapping(index)

    async def _move_to_current_mapping(self, index: str) -> None:
        """Make again, under their new ids, the stored queries of ``index`` registered under another mapping.

        Under another mapping the same query can match other documents, so it gets
        another id (as in the embedded backend); the query itself is kept.  The new
        document is stored before the old one is deleted.
        """
        name = percolator_index(index)
        kinds = field_kinds(self.mappings, index)
        if kinds.tag:
            stale: Dict[str, Any] = {"bool": {"must_not": [{"term": {MAPPING_FIELD: kinds.tag}}]}}
        else:
            stale = {"exists": {"field": MAPPING_FIELD}}
        async for hits in self._stored_pages(name, stale):
            for hit in hits:
                old = Registration.from_json(hit["_source"][REGISTRATION_FIELD])
                try:
                    new = make_registration(old.index, old.source, old.default_operator, kinds)
                    new = dataclasses.replace(new, persist=old.persist, created_at=old.created_at)
                    await self._register(new)
                except EstromError as e:
                    log.warn("stored query {id} of {index} cannot be made under the new mapping, left as it was: {why}", id=old.id, index=index, why=e.message)
                    continue
                await self.client.request("DELETE", f"/{name}/_doc/{old.id}?refresh=true", ok_missing=True)
                self.remapped[old.id] = new.id
                log.warn("registration {old} of index {index} was made under another mapping: it is now {new}", old=old.id, index=index, new=new.id)

    async def _stored_pages(self, name: str, query: Mapping[str, Any], size: int = 1000) -> AsyncIterator[List[Any]]:
        """The stored queries of percolator index ``name`` matching ``query``, a page of hits at a time
        (``search_after`` on the id, so pages stay right while hits are rewritten or deleted)."""
        search_after: Optional[List[Any]] = None
        while True:
            body: Dict[str, Any] = {"query": query, "size": size, "sort": [{ID_FIELD: "asc"}], "track_total_hits": False}
            if search_after is not None:
                body["search_after"] = search_after
            hits = (await self.client.request("POST", f"/{name}/_search", body))["hits"]["hits"]
            if hits:
                yield hits
            if len(hits) < size:
                return
            search_after = hits[-1]["sort"]

    def register(self, registration: Registration) -> "Deferred[bool]":
        """Store the registration's query; Elasticsearch's refusal becomes InvalidQuery with its reason."""
        return ensureDeferred(self._register(registration))

    async def _register(self, registration: Registration, again: bool = True) -> bool:
        await self._ensure_index(registration.index)
        name = percolator_index(registration.index)
        doc = {
            QUERY_FIELD: stored_query(registration),
            ID_FIELD: registration.id,
            REGISTRATION_FIELD: registration.to_json(),
        }
        if registration.mapping:
            doc[MAPPING_FIELD] = registration.mapping
        try:
            await self.client.request("PUT", f"/{name}/_create/{registration.id}?refresh=true", doc)
        except ElasticsearchError as e:
            if e.status == 409:
                return False  # same id = same canonical query on the same index: already stored
            if e.status == 404 and e.error_type == "index_not_found_exception" and again:
                self._ready_indexes.discard(registration.index)  # deleted behind our back
                return await self._register(registration, again=False)
            if self.opensearch and OPENSEARCH_LOST_SETTING in e.reason and again:
                await self._reopen(name)  # a mapping update (of another Beater?) made it forget unmapped fields
                await self._reextract(registration.index)
                return await self._register(registration, again=False)
            raise InvalidQuery(f"Elasticsearch refused the query: {e.reason}", part=json.dumps(doc[QUERY_FIELD])) from None
        return True

    def lookup(self, subscription_id: str) -> "Deferred[Optional[Registration]]":
        """Find a registration by id in any percolator index of this cluster."""
        return ensureDeferred(self._lookup(subscription_id))

    async def _lookup(self, subscription_id: str) -> Optional[Registration]:
        body = {"query": {"ids": {"values": [subscription_id]}}, "_source": [REGISTRATION_FIELD], "size": 1}
        answer = await self.client.request("POST", f"/{INDEX_PREFIX}*/_search?ignore_unavailable=true&allow_no_indices=true", body)
        hits = answer["hits"]["hits"]
        if not hits:
            return None
        return Registration.from_json(hits[0]["_source"][REGISTRATION_FIELD])

    async def _stored_index(self, subscription_id: str) -> Optional[str]:
        """The percolator index that holds this id, or None."""
        body = {"query": {"ids": {"values": [subscription_id]}}, "_source": False, "size": 1}
        answer = await self.client.request("POST", f"/{INDEX_PREFIX}*/_search?ignore_unavailable=true&allow_no_indices=true", body)
        hits = answer["hits"]["hits"]
        return str(hits[0]["_index"]) if hits else None

    def unregister(self, subscription_id: str) -> "Deferred[bool]":
        """Delete the stored query with this id (refreshed: the next percolation no longer matches it);
        True if there was one.  Idempotent: several Beaters may delete the same id."""
        return ensureDeferred(self._unregister(subscription_id))

    async def _unregister(self, subscription_id: str) -> bool:
        name = await self._stored_index(subscription_id)
        if name is None:
            return False
        answer = await self.client.request("DELETE", f"/{name}/_doc/{subscription_id}?refresh=true", ok_missing=True)
        return answer is not None and answer.get("result") == "deleted"

    def update(self, registration: Registration) -> "Deferred[bool]":
        """Rewrite the stored registration's metadata (``persist``), not its query; False if absent."""
        return ensureDeferred(self._update(registration))

    async def _update(self, registration: Registration) -> bool:
        name = await self._stored_index(registration.id)
        if name is None:
            return False
        body = {"doc": {REGISTRATION_FIELD: registration.to_json()}}
        return await self.client.request("POST", f"/{name}/_update/{registration.id}?refresh=true", body, ok_missing=True) is not None

    def registrations(self) -> "Deferred[List[Dict[str, Any]]]":
        """The stored JSON of every registration in this cluster's percolator indexes (of any Beater)."""
        return ensureDeferred(self._registrations())

    async def _registrations(self) -> List[Dict[str, Any]]:
        out: List[Dict[str, Any]] = []
        async for hits in self._stored_pages(f"{INDEX_PREFIX}*", {"match_all": {}}):
            out.extend(hit["_source"][REGISTRATION_FIELD] for hit in hits if REGISTRATION_FIELD in hit.get("_source", {}))
        return out

    def counts(self, index: str) -> "Deferred[Tuple[int, int]]":
        """(stored queries of ``index``, stored queries of every index of this cluster), in one request."""
        return ensureDeferred(self._counts(index))

    async def _counts(self, index: str) -> Tuple[int, int]:
        body = {"size": 0, "track_total_hits": True, "aggs": {"index": {"filter": {"term": {"_index": percolator_index(index)}}}}}
        answer = await self.client.request("POST", f"/{INDEX_PREFIX}*/_search?ignore_unavailable=true&allow_no_indices=true", body)
        total = answer["hits"]["total"]
        total = total["value"] if isinstance(total, dict) else int(total)
        per_index = (answer.get("aggregations") or {}).get("index", {}).get("doc_count", 0)
        return int(per_index), int(total)

    def percolate(self, index: str, documents: Sequence[Mapping[str, Any]]) -> "Deferred[List[List[str]]]":
        """One percolate request for the batch; matches mapped back through the document slots."""
        return ensureDeferred(self._percolate(index, documents))

    async def _percolate(self, index: str, documents: Sequence[Mapping[str, Any]]) -> List[List[str]]:
        if not documents:
            return []
        conformed = await self._conformed(index, documents)
        try:
            try:
                return await self._percolate_request(index, conformed)
            except ElasticsearchError as e:
                if not (self.opensearch and OPENSEARCH_LOST_SETTING in e.reason):
                    raise
                await self._reopen(percolator_index(index))  # another Beater's mapping update: repair, once more
                await self._reextract(index)
                return await self._percolate_request(index, conformed)
        except ElasticsearchError as e:
            if e.error_type == "index_not_found_exception":
                self._ready_indexes.discard(index)
                return [[] for _ in documents]  # no percolator index: no registrations
            # Refused, not unavailable (that was retried, then is BackendUnavailable): the pipeline halves the
            # batch until the document at fault is alone and answers it as that document's error.
            raise DocumentRefused(f"Elasticsearch refused the document: {e.reason}") from None

    async def _conformed(self, index: str, documents: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
        """``documents`` as they are percolated: the fields they show first mapped, then conformed to the mapping."""
        await self._ensure_index(index)
        await self._update_mapping(index, documents)
        properties = self._mapped[index]
        return [conform(document, properties) for document in documents]

    def highlight(self, registration: Registration, documents: Sequence[Mapping[str, Any]]) -> "Deferred[List[Dict[str, List[str]]]]":
        """Per document, the terms Elasticsearch's highlighter marks for the registration's stored query.

        One ``_search`` on the percolator index: the stored query (by id) percolating the documents, with
        whole-value highlighting (``number_of_fragments: 0``) of every field.  Elasticsearch highlights
        text and keyword fields only: numbers, dates and booleans a query matched are not listed."""
        return ensureDeferred(self._highlight(registration, documents))

    async def _highlight(self, registration: Registration, documents: Sequence[Mapping[str, Any]]) -> List[Dict[str, List[str]]]:
        if not documents:
            return []
        index = registration.index
        conformed = await self._conformed(index, documents)
        body = {
            "query": {"bool": {"filter": [{"ids": {"values": [registration.id]}}],
                               "must": [{"percolate": {"field": QUERY_FIELD, "documents": conformed}}]}},
            "_source": False,
            "size": 1,
            "track_total_hits": False,
            "highlight": {"fields": {"*": {}}, "number_of_fragments": 0, "pre_tags": [PRE_TAG], "post_tags": [POST_TAG]},
        }
        try:
            answer = await self.client.request("POST", f"/{percolator_index(index)}/_search", body)
        except ElasticsearchError as e:
            if e.error_type == "index_not_found_exception":
                self._ready_indexes.discard(index)
                return [{} for _ in documents]
            raise DocumentRefused(f"Elasticsearch cannot highlight the documents: {e.reason}") from None
        hits = answer["hits"]["hits"]
        if not hits:
            return [{} for _ in documents]
        return highlights_of(hits[0], len(documents), self._mapped[index])

    async def _percolate_request(self, index: str, documents: List[Dict[str, Any]]) -> List[List[str]]:
        matches: List[List[str]] = [[] for _ in documents]
        name = percolator_index(index)
        search_after: Optional[List[Any]] = None
        while True:
            body: Dict[str, Any] = {
                "query": {"percolate": {"field": QUERY_FIELD, "documents": documents}},
                "_source": False,
                "docvalue_fields": [ID_FIELD],
                "size": PAGE,
                "sort": [{ID_FIELD: "asc"}],
                "track_total_hits": False,
            }
            if search_after is not None:
                body["search_after"] = search_after
            answer = await self.client.request("POST", f"/{name}/_search", body)
            hits = answer["hits"]["hits"]
            for hit in hits:
                sub_id = hit["fields"][ID_FIELD][0]
                for slot in hit["fields"].get("_percolator_document_slot", [0]):
                    matches[slot].append(sub_id)
            if len(hits) < PAGE:
                return matches
            search_after = hits[-1]["sort"]

    async def _update_mapping(self, index: str, documents: Sequence[Mapping[str, Any]]) -> None:
        """Map the fields these documents show for the first time, then re-extract the stored queries."""
        configured = self.mappings.get(index)
        if configured is not None and not configured.dynamic:
            return  # dynamic: false: fields the configuration does not name stay unmapped
        visible = [{k: v for k, v in doc.items() if not (isinstance(k, str) and k.startswith(INTERNAL_PREFIX))} for doc in documents]
        refused = self._refused.setdefault(index, set())
        new = {k: v for k, v in mapping_for_documents(visible, self._mapped[index]).items() if k not in refused}
        if not new:
            return
        try:
            await self.client.request("PUT", f"/{percolator_index(index)}/_mapping", {"properties": new})
        except ElasticsearchError:
            # Map field by field: a conflicting type (another Beater mapped it first) or a limit
            # refuses only its own field, which is then left unmapped for good (and not retried).
            for key, mapping in new.items():
                try:
                    await self.client.request("PUT", f"/{percolator_index(index)}/_mapping", {"properties": {key: mapping}})
                except ElasticsearchError as e:
                    log.warn("mapping field {key} of {index} refused, left unmapped: {reason}", key=key, index=index, reason=e.reason)
                    refused.add(key)
            self._ready_indexes.discard(index)
            await self._ensure_index(index)
        else:
            self._mapped[index] = merge_properties(self._mapped[index], new)
        await self._after_mapping_update(percolator_index(index))
        await self._reextract(index)

    async def _after_mapping_update(self, name: str) -> None:
        """On OpenSearch, reopen the percolator index ``name`` after its mapping grew (see OPENSEARCH_LOST_SETTING)."""
        if self.opensearch:
            await self._reopen(name)

    async def _reopen(self, name: str) -> None:
        """Close and open ``name`` again (OpenSearch then reads its percolator settings anew); the requests
        that meet it closed meanwhile are retried (elasticsearch_client.RETRYABLE_ERRORS)."""
        log.info("reopening {name}: OpenSearch forgets map_unmapped_fields_as_text at mapping updates", name=name)
        await self.client.request("POST", f"/{name}/_close")
        await self.client.request("POST", f"/{name}/_open?wait_for_active_shards=1")

    async def _reextract(self, index: str) -> None:
        """Re-index every stored query of ``index`` so its candidate terms follow the current mapping."""
        name = percolator_index(index)
        reindexed = 0
        async for hits in self._stored_pages(name, {"match_all": {}}):
            sources = {hit["_id"]: hit["_source"] for hit in hits}
            lines = []
            for sub_id, source in sources.items():
                lines.append(json.dumps({"index": {"_id": sub_id}}))
                lines.append(json.dumps(source))
            result = await self.client.request("POST", f"/{name}/_bulk", ndjson=("\n".join(lines) + "\n").encode())
            if result.get("errors"):
                await self._disable_failed(name, result, sources)
            reindexed += len(hits)
        await self.client.request("POST", f"/{name}/_refresh")
        log.debug("re-extracted {n} stored queries of {index}", n=reindexed, index=index)

    async def _disable_failed(self, name: str, result: Mapping[str, Any], sources: Mapping[str, Any]) -> None:
        """Stored queries that no longer parse against the mapping can match nothing: store match_none."""
        for item in result.get("items", []):
            outcome = item.get("index", {})
            if "error" not in outcome:
                continue
            sub_id = outcome["_id"]
            reason = ElasticsearchError(outcome.get("status", 400), {"error": outcome["error"]}).reason
            log.warn("stored query {id} of {name} no longer fits the mapping and can match nothing: {reason}", id=sub_id, name=name, reason=reason)
            source = dict(sources[sub_id])
            source[QUERY_FIELD] = {"match_none": {}}
            source[DISABLED_FIELD] = reason
            await self.client.request("PUT", f"/{name}/_doc/{sub_id}", source)

    def stop(self) -> "Deferred[None]":
        """Close the kept-alive connections; nothing to flush (every write was acknowledged)."""
        return self.client.close()
