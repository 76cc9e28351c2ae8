"""The Elasticsearch percolator backend against a real Elasticsearch (scripts/services start elasticsearch).

First the backend alone, on the reactor (trial test case: percolate slots,
mapping growth, refusals, outages), then ``estrom up --percolator elasticsearch``
end to end.  The cluster's URL comes from ``ESTROM_ES_URL`` (scripts/test
exports it).  These tests fail, never skip, when it is unset or unreachable.
Estrom talks to the cluster through a small TCP relay owned by the test, so that
a test can cut the connection ("Elasticsearch down") and restore it without
touching the node.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple

import pytest
from twisted.internet.defer import ensureDeferred
from twisted.trial import unittest

from beater.errors import BackendUnavailable, InvalidQuery
from beater.mappings import MappingError, check_mapping
from beater.percolator.elasticsearch import ElasticsearchPercolator
from beater.registration import Registration, make_registration
from tests.integration.conftest import Estrom, free_port, http_get_json

HEADER = b'"hits": ['
INDEX = "es-it-" + uuid.uuid4().hex[:8]


def es_url() -> str:
    """ESTROM_ES_URL, checked to answer as Elasticsearch; the test fails otherwise."""
    url = os.environ.get("ESTROM_ES_URL")
    if not url:
        raise AssertionError("ESTROM_ES_URL is not set: run scripts/test, or scripts/services start elasticsearch and export it")
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/", timeout=10) as response:
            info = json.loads(response.read())
    except (OSError, ValueError) as e:
        raise AssertionError(f"Elasticsearch at ESTROM_ES_URL={url} is unreachable: {e}") from None
    assert "version" in info, info
    return url.rstrip("/")


def es_delete_index(name: str) -> None:
    """Delete a test's percolator index (missing is fine)."""
    request = urllib.request.Request(es_url() + "/" + name, method="DELETE")
    try:
        urllib.request.urlopen(request, timeout=30).close()
    except urllib.error.HTTPError:
        pass


def es_get(path: str) -> Tuple[int, Any]:
    """GET ``path`` on the cluster directly (not through the relay)."""
    try:
        with urllib.request.urlopen(es_url() + path, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class BackendTests(unittest.TestCase):
    """ElasticsearchPercolator on the reactor against the real cluster, no estrom process."""

    def setUp(self) -> None:
        self.url = es_url()
        self.index = "es-unit-" + uuid.uuid4().hex[:8]
        self.addCleanup(es_delete_index, "estrom-queries-" + self.index)
        self.percolator = self.make()

    def make(self, url: Optional[str] = None, **kwargs: Any) -> ElasticsearchPercolator:
        percolator = ElasticsearchPercolator(url or self.url, **kwargs)
        self.addCleanup(percolator.stop)
        return percolator

    def registrations(self, *sources: Any) -> List[Registration]:
        return [make_registration(self.index, source) for source in sources]

    def names(self, matches: List[List[str]], regs: List[Registration], labels: List[str]) -> List[List[str]]:
        label = {r.id: name for r, name in zip(regs, labels)}
        return [sorted(label.get(i, i) for i in ids) for ids in matches]

    def test_batch_matches_map_back_to_their_documents(self) -> "Any":
        """One request per batch; each document gets exactly the ids whose queries it matches."""

        async def go() -> None:
            await self.percolator.start()
            labels = ["star", "title", "dsl", "range", "flag", "nested"]
            regs = self.registrations(
                "foo", "title:bar", {"match": {"title": "baz"}}, "count:>3", {"term": {"flag": True}}, "user.name:alice"
            )
            for reg in regs:
                self.assertTrue(await self.percolator.register(reg))
            self.assertFalse(await self.percolator.register(regs[0]))  # idempotent
            docs = [
                {"title": "foo bar", "count": 5, "user": {"name": "Alice"}, "flag": True},
                {"title": "baz", "count": 1, "user": "Bob"},  # user was mapped as an object: left out
                {"other": "FOO", "flag": "maybe", "count": "many"},  # malformed boolean and number: left out
                {},
            ]
            got = self.names(await self.percolator.percolate(self.index, docs), regs, labels)
            self.assertEqual(got, [["flag", "nested", "range", "star", "title"], ["dsl"], ["star"], []])

        return ensureDeferred(go())

    def test_query_on_a_field_not_yet_shown_matches_the_first_document_showing_it(self) -> "Any":
        """Registered before any document has the field (or any field at all): the first one showing it matches."""

        async def go() -> None:
            regs = self.registrations("later:yes", "anything", {"range": {"size": {"gte": 10}}})
            for reg in regs:
                await self.percolator.register(reg)
            got = self.names(
                await self.percolator.percolate(self.index, [{"later": "yes"}, {"words": "anything goes"}, {"size": 12}]),
                regs, ["later", "bare", "range"],
            )
            self.assertEqual(got, [["later"], ["bare"], ["range"]])

        return ensureDeferred(go())

    def test_a_new_instance_finds_the_registrations_in_the_cluster(self) -> "Any":
        """Lookup and percolation work from a fresh backend object (a restarted Beater)."""

        async def go() -> None:
            [reg] = self.registrations("survives")
            await self.percolator.register(reg)
            second = self.make()
            await second.start()
            found = await second.lookup(reg.id)
            self.assertEqual(found, reg)
            self.assertIsNone(await second.lookup("0000000000000000"))
            self.assertEqual(await second.percolate(self.index, [{"m": "it survives"}]), [[reg.id]])

        return ensureDeferred(go())

    def test_query_elasticsearch_refuses_is_invalid_query_with_its_reason(self) -> "Any":
        """`match` of a word on a long field is refused by Elasticsearch: InvalidQuery naming why."""

        async def go() -> None:
            await self.percolator.percolate(self.index, [{"count": 5}])
            [reg] = self.registrations({"match": {"count": "abc"}})
            try:
                await self.percolator.register(reg)
            except InvalidQuery as e:
                self.assertIn("abc", e.message)
            else:
                self.fail("Elasticsearch accepted a word for a long field")

        return ensureDeferred(go())

    def test_stored_query_that_no_longer_fits_the_mapping_matches_nothing(self) -> "Any":
        """Stored while its field was unmapped, then the field becomes a long: no match, the batch still works."""

        async def go() -> None:
            regs = self.registrations({"match": {"num": "abc"}}, "hello")
            for reg in regs:
                await self.percolator.register(reg)
            got = await self.percolator.percolate(self.index, [{"num": 7, "text": "hello"}, {"text": "abc"}])
            self.assertEqual(got, [[regs[1].id], []])

        return ensureDeferred(go())

    def test_a_configured_mapping_makes_the_percolator_index_and_is_matched_as_configured(self) -> "Any":
        """The index is created with the configured fields; a keyword is case-sensitive; dynamic false maps nothing else."""

        async def go() -> None:
            configured = check_mapping(self.index, {"dynamic": False, "properties": {"user": {"type": "keyword", "ignore_above": 8}}})
            percolator = self.make(mappings={self.index: configured})
            await percolator.start()
            _, mapping = es_get(f"/estrom-queries-{self.index}/_mapping")
            properties = mapping[f"estrom-queries-{self.index}"]["mappings"]["properties"]
            self.assertEqual(properties["user"], {"type": "keyword", "ignore_above": 8})
            regs = [make_registration(self.index, q, "or", configured.kinds()) for q in ("user:Foo", "other:x", "user:Foo*")]
            for reg in regs:
                await percolator.register(reg)
            docs = [{"user": "Foo", "other": "x"}, {"user": "foo"}, {"user": "Foolishness"}]
            got = self.names(await percolator.percolate(self.index, docs), regs, ["exact", "other", "prefix"])
            self.assertEqual(got, [["exact", "prefix"], [], []])  # "Foolishness" is longer than ignore_above
            _, mapping = es_get(f"/estrom-queries-{self.index}/_mapping")
            self.assertNotIn("other", mapping[f"estrom-queries-{self.index}"]["mappings"]["properties"])

        return ensureDeferred(go())

    def test_a_configured_mapping_conflicting_with_the_existing_index_stops_the_start(self) -> "Any":
        """A field already mapped as text cannot become a keyword: the start fails naming the index and why."""

        async def go() -> None:
            await self.percolator.percolate(self.index, [{"user": "Foo"}])  # dynamic: user is text
            configured = check_mapping(self.index, {"properties": {"user": {"type": "keyword"}}})
            percolator = self.make(mappings={self.index: configured})
            try:
                await percolator.start()
            except MappingError as e:
                self.assertIn(f"estrom-queries-{self.index}", str(e))
                self.assertIn("user", str(e))
            else:
                self.fail("a conflicting configured mapping was accepted")

        return ensureDeferred(go())

    def test_queries_registered_under_another_mapping_move_to_their_new_ids_at_start(self) -> "Any":
        """A field added to the configured mapping changes the tag: the stored query is made again under its new id."""

        async def go() -> None:
            before = check_mapping(self.index, {"properties": {"user": {"type": "keyword"}}})
            first = self.make(mappings={self.index: before})
            await first.start()
            old = make_registration(self.index, "user:Foo", "or", before.kinds())
            await first.register(old)
            after = check_mapping(self.index, {"properties": {"user": {"type": "keyword"}, "message": {"type": "text"}}})
            second = self.make(mappings={self.index: after})
            await second.start()
            new = make_registration(self.index, "user:Foo", "or", after.kinds())
            self.assertEqual(second.remapped, {old.id: new.id})
            self.assertIsNone(await second.lookup(old.id))
            self.assertEqual(await second.lookup(new.id), new)
            self.assertEqual(await second.percolate(self.index, [{"user": "Foo"}, {"user": "foo"}]), [[new.id], []])
            third = self.make(mappings={self.index: after})
            await third.start()
            self.assertEqual(third.remapped, {})

        return ensureDeferred(go())

    def test_unreachable_cluster_is_backend_unavailable(self) -> "Any":
        """Retries with back-off, then BackendUnavailable (HTTP 503); the health flag drops."""

        async def go() -> None:
            down = self.make(f"http://127.0.0.1:{free_port()}", retries=2, backoff=0.01)
            try:
                await down.percolate(self.index, [{"m": 1}])
            except BackendUnavailable as e:
                self.assertEqual(e.http_status, 503)
            else:
                self.fail("no error from an unreachable cluster")
            self.assertFalse(down.healthy)

        return ensureDeferred(go())


class Relay:
    """A TCP relay 127.0.0.1:<port> -> Elasticsearch that can be cut and restored."""

    def __init__(self, target: str) -> None:
        host_port = target.split("://", 1)[-1].split("/", 1)[0]
        host, _, port = host_port.rpartition(":")
        self.target = (host or "127.0.0.1", int(port or 9200))
        self.port = free_port()
        self.server: Optional[socket.socket] = None
        self.connections: List[socket.socket] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        """Accept and relay connections."""
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self.server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def down(self) -> None:
        """Stop listening and cut every open connection: Elasticsearch is gone."""
        if self.server is not None:
            try:
                # close() alone does not wake the thread blocked in accept(): the socket would
                # keep listening.  shutdown() does.
                self.server.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.server.close()
            self.server = None
        with self.lock:
            for conn in self.connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self.connections.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture(scope="module")
def relay() -> Iterator[Relay]:
    """A relay to the cluster named by ESTROM_ES_URL."""
    instance = Relay(es_url())
    instance.up()
    yield instance
    instance.down()


def start_estrom(data_dir: Path, relay: Relay) -> Estrom:
    instance = Estrom(data_dir, extra_args=["--percolator", "elasticsearch", "--es-url", relay.url])
    instance.start()
    return instance


@pytest.fixture(scope="module")
def estrom_es(tmp_path_factory: pytest.TempPathFactory, relay: Relay) -> Iterator[Estrom]:
    """``estrom up`` with the Elasticsearch percolator, shared by this module's tests."""
    instance = start_estrom(tmp_path_factory.mktemp("estrom-es"), relay)
    yield instance
    instance.stop()
    es_delete_index("estrom-queries-" + INDEX)


def close_prefix(received: bytes) -> Any:
    """Parse a tail's bytes as JSON by closing the open array."""
    text = received.decode().rstrip()
    if text.endswith("]}"):
        return json.loads(text)
    return json.loads(text.rstrip(",") + "]}")


def test_health_names_the_elasticsearch_percolator(estrom_es: Estrom) -> None:
    """The Beater runs with the Elasticsearch backend."""
    status, body = http_get_json(f"http://127.0.0.1:{estrom_es.beater_port}/api/v0.1/health")
    assert status == 200
    assert body["percolator"] == "elasticsearch"


def test_registered_query_receives_matching_document(estrom_es: Estrom) -> None:
    """Register (tail) -> post -> the tail receives the document, percolated by Elasticsearch."""
    tail = estrom_es.tail(i=INDEX, q="foo AND bar", limit=1)
    tail.read_until(HEADER)
    status, answer = estrom_es.post(INDEX, {"message": "bar and foo"})
    assert status == 200, answer
    assert answer["accepted"] == 1 and answer["deliveries"] >= 1
    body = json.loads(tail.read_all())
    assert [h["_source"] for h in body["hits"]] == [{"message": "bar and foo"}]


def test_registration_is_stored_in_the_percolator_index(estrom_es: Estrom) -> None:
    """Document id = subscription id; the stored query is what the user wrote (query_string)."""
    tail = estrom_es.tail(i=INDEX, q="stored AND visible")
    sub_id = close_prefix(tail.read_until(HEADER))["subscription_id"]
    tail.close()
    status, doc = es_get(f"/estrom-queries-{INDEX}/_doc/{sub_id}")
    assert status == 200, doc
    query = doc["_source"]["@estrom_query"]
    assert query == {"query_string": {"query": "stored AND visible", "default_operator": "OR"}}
    assert doc["_source"]["@estrom_registration"]["id"] == sub_id


def test_non_matching_documents_are_not_delivered(estrom_es: Estrom) -> None:
    """Of a batch, only the matching document reaches the tail."""
    tail = estrom_es.tail(i=INDEX, q="alpha AND beta", limit=1)
    tail.read_until(HEADER)
    status, answer = estrom_es.post(INDEX, [{"message": "alpha only"}, {"message": "beta only"}, {"message": "alpha and beta"}])
    assert status == 200 and answer["accepted"] == 3, answer
    body = json.loads(tail.read_all())
    assert [h["_source"]["message"] for h in body["hits"]] == ["alpha and beta"]


def test_query_on_a_field_no_document_has_shown_yet(estrom_es: Estrom) -> None:
    """Accepted at registration; the first document that shows the field already matches."""
    field = "fresh_" + uuid.uuid4().hex[:6]
    tail = estrom_es.tail(i=INDEX, q=f"{field}:hello", limit=1)
    tail.read_until(HEADER)
    status, answer = estrom_es.post(INDEX, [{field: "goodbye"}, {field: "hello world", "n": 1}])
    assert status == 200, answer
    body = json.loads(tail.read_all())
    assert [h["_source"] for h in body["hits"]] == [{field: "hello world", "n": 1}]


def test_default_field_query_sees_fields_mapped_after_registration(estrom_es: Estrom) -> None:
    """A bare-term query (default field *) matches a field first shown after it was registered."""
    field = "late_" + uuid.uuid4().hex[:6]
    tail = estrom_es.tail(i=INDEX, q="latecomer", limit=1)
    tail.read_until(HEADER)
    estrom_es.post(INDEX, {field: "the latecomer arrives"})
    body = json.loads(tail.read_all())
    assert [h["_source"] for h in body["hits"]] == [{field: "the latecomer arrives"}]


def test_unparsable_query_is_a_400(estrom_es: Estrom) -> None:
    """A query estrom cannot parse never reaches Elasticsearch: 400 invalid_query."""
    tail = estrom_es.tail(i=INDEX, q='title:"unclosed')
    body = json.loads(tail.read_all())
    assert tail.status == 400
    assert body["error"] == "estrom.error.invalid_query"


def test_query_elasticsearch_refuses_is_a_400_with_its_reason(estrom_es: Estrom) -> None:
    """`match` of a word on a field mapped as long: Elasticsearch refuses it, the caller gets its reason."""
    status, answer = estrom_es.post(INDEX, {"counter": 5})
    assert status == 200, answer
    tail = estrom_es.tail(i=INDEX, q=json.dumps({"match": {"counter": "abc"}}))
    body = json.loads(tail.read_all())
    assert tail.status == 400, body
    assert body["error"] == "estrom.error.invalid_query"
    assert "abc" in body["message"]


def test_elasticsearch_down_is_a_503_and_nothing_is_lost_when_it_returns(estrom_es: Estrom, relay: Relay) -> None:
    """While the cluster is unreachable, ingest answers 503 after retries; afterwards delivery resumes."""
    tail = estrom_es.tail(i=INDEX, q="outage", limit=1)
    tail.read_until(HEADER)
    relay.down()
    try:
        status, answer = estrom_es.post(INDEX, {"message": "outage one"})
    finally:
        relay.up()
    assert status == 503, answer
    assert answer["error"] == "estrom.error.unavailable"
    status, answer = estrom_es.post(INDEX, {"message": "outage two"})
    assert status == 200, answer
    body = json.loads(tail.read_all())
    assert [h["_source"]["message"] for h in body["hits"]] == ["outage two"]


def test_restarted_beater_finds_registrations_in_the_cluster(tmp_path: Path, estrom_es: Estrom, relay: Relay) -> None:
    """A new `estrom up` with an empty data directory still knows a subscription registered before."""
    [answer] = estrom_es.wamp("call", "estrom.register", json.dumps([INDEX, "survives AND restart"]))
    sub_id = answer["result"]["id"]
    estrom_es.stop()
    try:
        second = start_estrom(tmp_path / "fresh-data", relay)
    finally:
        estrom_es.start()  # the module's instance is back for any test that follows
    try:
        tail = second.tail(s=sub_id, limit=1)
        tail.read_until(HEADER)
        assert tail.status == 200
        second.post(INDEX, {"message": "it survives a restart"})
        body = json.loads(tail.read_all())
        assert [h["_source"]["message"] for h in body["hits"]] == ["it survives a restart"]
    finally:
        second.stop()
