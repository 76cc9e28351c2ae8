"""The Elasticsearch backend's requests over several node URLs, against small real HTTP servers on loopback.

A node that refuses connections is skipped at once for the next one; a search that some shards did not
answer is asked again rather than taken with fewer hits; a closed index is waited for; the settings
``--es-url a,b``, ``--es-shards`` and ``--es-replicas`` reach the backend.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any, List, Tuple

import pytest
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.trial import unittest
from twisted.web import resource, server

from beater.errors import BackendUnavailable
from beater.percolator.elasticsearch import ElasticsearchPercolator, index_body
from beater.percolator.elasticsearch_client import failed_shards, node_urls
from estrom.settings import resolve

Answer = Tuple[int, Any]


class Scripted(resource.Resource):
    """Answers each request with the next of ``answers`` (the last one again once they run out)."""

    isLeaf = True

    def __init__(self, answers: List[Answer]) -> None:
        super().__init__()
        self.answers = answers
        self.requests: List[Tuple[str, str]] = []

    def render(self, request: Any) -> bytes:
        self.requests.append((request.method.decode(), request.uri.decode()))
        status, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(body).encode()


def refusing_url() -> str:
    """A loopback URL nothing listens on (connection refused, as from a killed node)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


SEARCH_OK = {"_shards": {"total": 2, "successful": 2, "failed": 0}, "hits": {"hits": []}}
SEARCH_PARTIAL = {
    "_shards": {"total": 2, "successful": 1, "failed": 1,
                "failures": [{"shard": 1, "reason": {"type": "node_disconnected_exception", "reason": "node-2 disconnected"}}]},
    "hits": {"hits": []},
}


class FailoverTests(unittest.TestCase):
    """ElasticsearchClient.request, as the percolator makes it, over real sockets."""

    def serve(self, answers: List[Answer]) -> Tuple[str, Scripted]:
        node = Scripted(answers)
        port = reactor.listenTCP(0, server.Site(node), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return f"http://127.0.0.1:{port.getHost().port}", node

    def make(self, url: str, **kwargs: Any) -> ElasticsearchPercolator:
        percolator = ElasticsearchPercolator(url, **kwargs)
        self.addCleanup(percolator.stop)
        return percolator

    def run_request(self, percolator: ElasticsearchPercolator, *args: Any) -> "Any":
        return ensureDeferred(percolator.client.request(*args))

    def test_a_refused_node_is_skipped_at_once_for_the_next(self) -> "Any":
        live, node = self.serve([(200, {"version": {"number": "7.17.29"}})])
        percolator = self.make(f"{refusing_url()},{live}", backoff=5.0)  # a back-off would outlast the test
        started = reactor.seconds()

        def check(answer: Any) -> None:
            self.assertEqual(answer, {"version": {"number": "7.17.29"}})
            self.assertEqual(percolator.client.url, live)  # and it stays there
            self.assertTrue(percolator.healthy)
            self.assertLess(reactor.seconds() - started, 2.0)
            self.assertEqual(node.requests, [("GET", "/")])

        return self.run_request(percolator, "GET", "/").addCallback(check)

    def test_a_search_some_shards_did_not_answer_is_asked_again(self) -> "Any":
        live, node = self.serve([(200, SEARCH_PARTIAL), (200, SEARCH_OK)])
        percolator = self.make(live, backoff=0.01)

        def check(answer: Any) -> None:
            self.assertEqual(answer, SEARCH_OK)
            self.assertEqual(len(node.requests), 2)

        return self.run_request(percolator, "POST", "/estrom-queries-x/_search", {}).addCallback(check)

    def test_a_closed_index_is_waited_for_not_refused(self) -> "Any":
        closed = {"error": {"type": "index_closed_exception", "reason": "closed"}, "status": 400}
        live, node = self.serve([(400, closed), (200, {"acknowledged": True})])
        percolator = self.make(live, backoff=0.01)
        return self.run_request(percolator, "PUT", "/estrom-queries-x/_create/a", {}).addCallback(
            lambda answer: self.assertEqual((answer, len(node.requests)), ({"acknowledged": True}, 2)))

    def test_every_node_down_is_backend_unavailable_naming_them_all(self) -> "Any":
        first, second = refusing_url(), refusing_url()
        percolator = self.make(f"{first},{second}", retries=2, backoff=0.01)

        def check(failure: Any) -> None:
            failure.trap(BackendUnavailable)
            self.assertIn(first, failure.value.message)
            self.assertIn(second, failure.value.message)
            self.assertFalse(percolator.healthy)

        d = self.run_request(percolator, "GET", "/")
        d.addCallbacks(lambda _: self.fail("no error with every node down"), check)
        return d


def test_node_urls_are_split_on_commas_and_trimmed() -> None:
    assert node_urls(" http://a:9200/ , http://b:9201,") == ["http://a:9200", "http://b:9201"]
    with pytest.raises(ValueError):
        node_urls(" , ")


def test_failed_shards_names_how_many_and_why() -> None:
    assert failed_shards(SEARCH_OK) is None
    assert failed_shards({"acknowledged": True}) is None
    assert failed_shards(SEARCH_PARTIAL) == "1 of 2 shards failed (node-2 disconnected)"


def test_new_percolator_indexes_get_the_configured_shards_and_replicas() -> None:
    settings = index_body(None, shards=2, replicas=1)["settings"]
    assert (settings["number_of_shards"], settings["number_of_replicas"]) == (2, 1)
    assert (index_body()["settings"]["number_of_shards"], index_body()["settings"]["number_of_replicas"]) == (1, 0)


def test_shards_replicas_and_several_urls_are_settings(tmp_path: Path) -> None:
    environ = {"ESTROM_DATA_DIR": str(tmp_path), "ESTROM_PERCOLATOR": "elasticsearch",
               "ESTROM_ES_URL": "http://127.0.0.1:9210,http://127.0.0.2:9211", "ESTROM_ES_SHARDS": "2", "ESTROM_ES_REPLICAS": "1"}
    s = resolve(None, environ)
    assert (s.es_url, s.es_shards, s.es_replicas) == ("http://127.0.0.1:9210,http://127.0.0.2:9211", 2, 1)
    assert (resolve(None, {"ESTROM_DATA_DIR": str(tmp_path)}).es_shards, resolve(None, {"ESTROM_DATA_DIR": str(tmp_path)}).es_replicas) == (1, 0)


@pytest.mark.parametrize("name, value, message", [
    ("ESTROM_ES_SHARDS", "0", "--es-shards.*>= 1"),
    ("ESTROM_ES_REPLICAS", "-1", "--es-replicas.*>= 0"),
    ("ESTROM_ES_URL", "http://127.0.0.1:9210,127.0.0.2:9211", "--es-url.*not an http"),
])
def test_bad_elasticsearch_settings_exit_with_the_flag_named(tmp_path: Path, name: str, value: str, message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        resolve(None, {"ESTROM_DATA_DIR": str(tmp_path), "ESTROM_PERCOLATOR": "elasticsearch", name: value})

