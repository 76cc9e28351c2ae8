"""``estrom up --percolator elasticsearch`` on a two-node Elasticsearch cluster, and a node killed under ingest.

The cluster is ``scripts/services start elasticsearch-cluster`` (two 7.17 nodes, 127.0.0.1 and
127.0.0.2); ``scripts/test`` exports its URLs as ``ESTROM_ES_CLUSTER_URL`` (comma-separated).  These
tests fail, never skip, when it is unset or not one cluster of two nodes.

Estrom gets both URLs (``--es-url a,b``) and makes its percolator index with two primaries and one
replica each (``--es-shards 2 --es-replicas 1``), so that either node holds a copy of every shard.
The node killed is the one estrom talks to first and not the elected master: with two
master-eligible nodes the voting configuration holds one node only, and the cluster lives on
only without the other one.  A thread posts a document every ~50 ms throughout; whatever the
Beater refuses with 503 is posted again (a client's retry); every document whose ingest was
accepted (200 or 202) must reach a tail that resumes with ``since=``.  The killed node is
started again at the end (same URL), so the cluster is whole for whoever comes next.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List

import pytest

from tests.integration.conftest import ROOT, Estrom
from tests.integration.processes import cmdline, wait_for
from tests.integration.tailclients import hits_of, open_tail

SERVICES = ROOT / "scripts" / "services"
INDEX = "cluster-" + uuid.uuid4().hex[:8]
TERM = "clusterfailover"
INTERVAL = 0.05  # seconds between posts
AFTER_KILL = 40  # documents accepted after the dead node has left the cluster: the failed-over path is proven
WITHIN = 90.0


@dataclass(frozen=True)
class Node:
    """One node of the test cluster as ``scripts/services status elasticsearch-cluster`` lists it."""

    name: str
    pid: int
    url: str
    master: bool


def cluster_nodes() -> List[Node]:
    """The running nodes, from ``scripts/services status elasticsearch-cluster``."""
    done = subprocess.run([str(SERVICES), "status", "elasticsearch-cluster"], capture_output=True, text=True, timeout=60)
    nodes = []
    for line in done.stdout.splitlines():
        words = line.split()
        if len(words) >= 5 and words[0].startswith("node-") and words[1] == "running":
            nodes.append(Node(words[0], int(words[3].rstrip(")")), words[4], words[-1] == "master"))
    return nodes


def es_json(url: str, method: str = "GET", body: Any = None, timeout: float = 30.0) -> Any:
    """One JSON request to a node (the test's own view of the cluster, not estrom's)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read() or b"null")


def cluster_urls() -> List[str]:
    """ESTROM_ES_CLUSTER_URL, checked to be one cluster of two nodes; the test fails otherwise."""
    value = os.environ.get("ESTROM_ES_CLUSTER_URL")
    if not value:
        raise AssertionError("ESTROM_ES_CLUSTER_URL is not set: run scripts/test, or "
                             "scripts/services start elasticsearch-cluster and export its last line")
    urls = [url.strip().rstrip("/") for url in value.split(",")]
    assert len(urls) == 2, f"ESTROM_ES_CLUSTER_URL names {len(urls)} nodes, not 2: {value}"
    for url in urls:
        try:
            health = es_json(f"{url}/_cluster/health?wait_for_nodes=2&timeout=30s")
        except OSError as e:
            raise AssertionError(f"cluster node {url} is unreachable: {e}") from None
        assert health.get("number_of_nodes") == 2, f"{url} is not in a cluster of two nodes: {health}"
    return urls


class RetryingPoster:
    """Posts ``{"message": "<term> steady", "n": <counter>}`` every INTERVAL seconds in a thread.

    A document the Beater refuses with 503 is posted again before the next new one, as a client
    that retries would; ``accepted`` are the counters answered 200 or 202 (in the end, after any retries)."""

    def __init__(self, estrom: Estrom, term: str) -> None:
        self.estrom = estrom
        self.term = term
        self.accepted: List[int] = []
        self.refused: Dict[int, int] = {}  # counter -> how many 503s it got before it was accepted
        self.failed: Dict[int, str] = {}  # any other answer, or no answer
        self.slowest = 0.0  # seconds: the longest a post took to be answered
        self._retry: List[int] = []
        self._give_up = float("inf")  # when stop() stops waiting for the retries to be accepted
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _post(self, n: int) -> None:
        body = json.dumps({"message": f"{self.term} steady", "n": n})
        started = time.monotonic()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.estrom.beater_port, timeout=60)
            conn.request("POST", f"/api/v0.1/beat/{INDEX}", body=body, headers={"content-type": "application/json"})
            response = conn.getresponse()
            answer = response.read()
            conn.close()
        except OSError as e:
            self.failed[n] = repr(e)
            return
        finally:
            self.slowest = max(self.slowest, time.monotonic() - started)
        if response.status in (200, 202):
            self.accepted.append(n)
        elif response.status == 503:
            self.refused[n] = self.refused.get(n, 0) + 1
            self._retry.append(n)
        else:
            self.failed[n] = f"{response.status} {answer[:200]!r}"

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set() or self._retry:
            if self._retry:
                self._post(self._retry.pop(0))
            elif not self._stop.is_set():
                self._post(n)
                n += 1
            time.sleep(INTERVAL)
            if self._stop.is_set() and self._retry and time.monotonic() > self._give_up:
                return

    def wait_accepted(self, count: int, what: str) -> None:
        """Wait (bounded) until ``count`` documents have been accepted in all."""
        wait_for(what, lambda: True if len(self.accepted) >= count else None, WITHIN, self.estrom)

    def stop(self) -> None:
        """Stop posting new documents; finish the retries (bounded)."""
        self._give_up = time.monotonic() + WITHIN
        self._stop.set()
        self._thread.join(WITHIN + 30)
        assert not self._thread.is_alive(), "the poster did not stop"

    @property
    def unaccepted(self) -> List[int]:
        """Counters refused with 503 and not accepted since (after stop: never accepted)."""
        return list(self._retry)

    def report(self) -> str:
        """One line on what was posted and answered."""
        return (f"{len(self.accepted)} accepted, {len(self.refused)} refused with 503 at first "
                f"({sum(self.refused.values())} refusals, all retried), {len(self._retry)} never accepted, "
                f"{len(self.failed)} failed otherwise {dict(list(self.failed.items())[:5])}; "
                f"slowest answer {self.slowest:.2f} s")


def counters(records: List[Dict[str, Any]]) -> List[int]:
    """The counter of each hit among ``records``, in the order received."""
    return [hit["_source"]["n"] for hit in hits_of(records)]


@dataclass
class Cluster:
    """The running cluster and the estrom on it."""

    urls: List[str]
    victim: Node  # the node estrom talks to first, not the master: the one killed
    survivor: Node
    estrom: Estrom
    killed: bool = False


def restore(victim: Node) -> None:
    """Start the killed node again (``scripts/services start`` starts only the nodes that are down)."""
    done = subprocess.run([str(SERVICES), "start", "elasticsearch-cluster"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"restarting {victim.name} failed:\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """``estrom up`` with both node URLs (the victim first), two primaries and a replica per percolator index."""
    urls = cluster_urls()
    nodes = cluster_nodes()
    assert sorted(n.url for n in nodes) == sorted(urls), f"scripts/services lists {nodes}, ESTROM_ES_CLUSTER_URL {urls}"
    victims = [n for n in nodes if not n.master]
    assert len(victims) == 1, f"expected one elected master among {nodes}"
    victim, survivor = victims[0], next(n for n in nodes if n.master)
    instance = Estrom(tmp_path_factory.mktemp("estrom-cluster"), extra_args=[
        "--percolator", "elasticsearch", "--es-url", f"{victim.url},{survivor.url}",
        "--es-shards", "2", "--es-replicas", "1",
    ])
    instance.start()
    state = Cluster(urls, victim, survivor, instance)
    yield state
    instance.stop()
    es_json(f"{survivor.url}/estrom-queries-{INDEX}", "DELETE")
    if state.killed:
        restore(victim)


def test_queries_on_the_cluster_are_matched_from_an_index_of_two_primaries_with_a_replica_each(cluster: Cluster) -> None:
    """A registered query matches a posted document; its percolator index has 2 primaries and 1 replica,
    spread so that each node holds a copy of both shards."""
    tail = open_tail(cluster.estrom, "ndjson", i=INDEX, q="clustered AND match")
    status, answer = cluster.estrom.post(INDEX, [{"message": "clustered match"}, {"message": "clustered only"}])
    assert status == 200 and answer["accepted"] == 2, answer
    assert [h["_source"] for h in tail.read_hits(1)] == [{"message": "clustered match"}]
    tail.close()
    name = f"estrom-queries-{INDEX}"
    health = es_json(f"{cluster.survivor.url}/_cluster/health/{name}?wait_for_status=green&timeout=60s")
    assert health["status"] == "green", health
    settings = es_json(f"{cluster.survivor.url}/{name}/_settings")[name]["settings"]["index"]
    assert (settings["number_of_shards"], settings["number_of_replicas"]) == ("2", "1")
    shards = es_json(f"{cluster.survivor.url}/_cat/shards/{name}?format=json&h=shard,prirep,state,node")
    copies = {(s["shard"], s["node"]) for s in shards if s["state"] == "STARTED"}
    assert copies == {(shard, node) for shard in ("0", "1") for node in ("node-1", "node-2")}, shards


def test_a_node_killed_under_ingest_loses_no_accepted_document_for_a_resuming_tail(cluster: Cluster) -> None:
    """kill -9 of the node estrom talks to, documents posted every 50 ms throughout: the backend fails over
    to the other node, and every accepted document (503s retried until accepted) reaches a tail resuming
    with since= after it.  Loss: 0."""
    leaves = open_tail(cluster.estrom, "ndjson", i=INDEX, q=TERM)
    poster = RetryingPoster(cluster.estrom, TERM)
    try:
        poster.wait_accepted(20, "twenty documents accepted before the kill")
        leaves.read_hits(5)
        leaves.close()
        seen = counters(leaves.records)
        last_seq = hits_of(leaves.records)[-1]["_seq"]
        victim = cluster.victim
        assert "estrom.esrunner.EsRunner" in cmdline(victim.pid), f"pid {victim.pid} is not {victim.name}"
        os.kill(victim.pid, signal.SIGKILL)
        cluster.killed = True
        killed_at = time.monotonic()
        wait_for(f"{victim.name} gone from the cluster", lambda: True if es_json(
            f"{cluster.survivor.url}/_cluster/health?timeout=1s").get("number_of_nodes") == 1 else None, WITHIN)
        left_after = time.monotonic() - killed_at
        poster.wait_accepted(len(poster.accepted) + AFTER_KILL, "documents accepted after the node left")
    finally:
        poster.stop()
    health = es_json(f"{cluster.survivor.url}/_cluster/health/estrom-queries-{INDEX}?timeout=1s")
    resumer = open_tail(cluster.estrom, "ndjson", i=INDEX, q=TERM, since=last_seq)
    wanted = set(poster.accepted) - set(seen)
    try:
        resumer.read_until(lambda c: not (wanted - set(counters(c.records))), WITHIN, "every accepted document")
    except AssertionError:
        pass  # the assertions below say what is missing
    resumer.close()
    got = seen + counters(resumer.records)
    missing = sorted(set(poster.accepted) - set(got))
    print(f"\nnode kill: {poster.report()}; the node left the cluster {left_after:.2f} s after SIGKILL; "
          f"percolator index then {health.get('status')}; lost {len(missing)} of {len(poster.accepted)} accepted documents")
    assert poster.failed == {}, poster.report()
    assert poster.unaccepted == [], f"documents refused until the end: {poster.unaccepted}"
    assert missing == [], f"{len(missing)} accepted documents never reached the resuming tail: {missing[:30]}"
    assert len(got) == len(set(got)), "a document arrived twice"
