"""The whole topology at once: two routers, two Beaters on one Elasticsearch cluster, two Tailors behind a balancer.

Every part is a real process on loopback, started as an operator would on two machines:

* node A (127.0.0.1): ``estrom router`` A, Beater 1, Tailor X;
* node B (127.0.0.2): ``estrom router`` B, Beater 2, Tailor Y; the routers are linked by rlinks
  (``--router-peers``, ``--router-peer-keys``, as in ``test_router_cluster``);
* both Beaters ``--percolator elasticsearch`` on the two-node cluster of
  ``scripts/services start elasticsearch-cluster`` (``ESTROM_ES_CLUSTER_URL``), two primaries and a
  replica each: a registration is one document of the shared percolator index, whichever Beater stored it,
  and every Beater percolates against that index;
* each machine's services share its node's data directory: its tickets, and for its Beater its own
  ``sequences.json`` (its Beater id and sequence numbers);
* the round-robin TCP balancer of ``balancer.py`` in front of Tailor X (backend 0) and Tailor Y (backend 1).

Then, under steady ingest alternating between the Beaters (a refused or unanswered post is retried on the
next Beater until one acknowledges it), kill -9 in turn: router B, Beater 2, Tailor X, the Elasticsearch
node that is not the master.  A client tailing through the balancer resumes with Last-Event-ID whenever its
stream ends; in the end it must hold every acknowledged document, each once.

Every wait is bounded; a failure prints what the parts said.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from tests.integration.balancer import Balancer
from tests.integration.conftest import estrom_executable, free_port
from tests.integration import processes
from tests.integration.processes import cmdline, health, wait_for
from tests.integration.tailclients import Record, TailClient, hits_of
from tests.integration.test_es_cluster import Node, cluster_nodes, cluster_urls, es_json, restore
from tests.integration.test_router_cluster import BOOT_S, LINK_BACK_S, NODE_A, NODE_B, Logged, RouterNode

INDEX = "topology-" + uuid.uuid4().hex[:8]
WITHIN = 90.0  # seconds: any one part back after its kill, on a busy 2-core machine
AFTER_EACH = 30  # documents acknowledged after each recovery: the repaired path is proven again
INTERVAL = 0.02  # seconds between posts


class Part(Logged):
    """``estrom beater`` or ``estrom tailor`` joined to one router node, in that node's data directory."""

    def __init__(self, name: str, part: str, node: RouterNode, extra: Optional[List[str]] = None) -> None:
        super().__init__(node.data_dir / f"{name.replace(' ', '-')}.log")
        self.name = name
        self.part = part
        self.node = node
        self.port = free_port()
        self.extra = extra or []

    def start(self) -> None:
        """Start it (non-blocking); a restart keeps the port and the data directory."""
        port_flag = "--beater-port" if self.part == "beater" else "--tailor-port"
        self.spawn(estrom_executable() + [self.part, "--router-url", self.node.url, "--data-dir", str(self.node.data_dir),
                                          port_flag, str(self.port), "--log-level", "info"] + self.extra)

    def kill9(self) -> None:
        """SIGKILL its process group, as the OOM killer would."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def serving(self) -> Optional[bool]:
        """A Beater: its health is 200 (joined its router).  A Tailor: 200 and a Beater answers it."""
        answer = health(self.port)
        if answer is None or answer[0] != 200:
            return None
        return True if self.part == "beater" or answer[1].get("beater") else None

    def registered(self, sub_id: str) -> bool:
        """Whether this run's log says this Beater stored ``sub_id`` (``beater/service.py`` logs each new one)."""
        return f"registered {sub_id}" in self.this_run()


class Topology:
    """Both nodes, both Beaters, both Tailors, the balancer; the Elasticsearch cluster they share."""

    def __init__(self, root: Path, victim: Node, survivor: Node) -> None:
        self.a = RouterNode("A", NODE_A, root / "node-a")
        self.b = RouterNode("B", NODE_B, root / "node-b")
        self.a.peers, self.b.peers = [self.b], [self.a]
        self.victim, self.survivor = victim, survivor
        self.victim_killed = False
        es = ["--percolator", "elasticsearch", "--es-url", f"{victim.url},{survivor.url}", "--es-shards", "2", "--es-replicas", "1"]
        self.beater1 = Part("beater 1", "beater", self.a, es)
        self.beater2 = Part("beater 2", "beater", self.b, es)
        self.tailor_x = Part("tailor X", "tailor", self.a)
        self.tailor_y = Part("tailor Y", "tailor", self.b)
        self.beaters = [self.beater1, self.beater2]
        self.balancer: Optional[Balancer] = None

    @property
    def parts(self) -> List[Logged]:
        """Every process of the topology (the balancer is a thread of this one)."""
        return [self.a, self.b, self.beater1, self.beater2, self.tailor_x, self.tailor_y]

    @property
    def output(self) -> List[str]:
        """What every part said (``wait_for`` prints it on failure)."""
        return [line for part in self.parts for line in part.output]

    def start(self) -> None:
        """Keys, both routers, then the four services; until links, Beaters and Tailors all serve."""
        self.a.public_key(), self.b.public_key()
        self.a.start()
        self.b.start()
        self.a.wait_booted()
        self.b.wait_booted()
        for part in (self.beater1, self.beater2, self.tailor_x, self.tailor_y):
            part.start()
        wait_for("both rlinks up", lambda: True if self.a.links_up() >= 1 and self.b.links_up() >= 1 else None, LINK_BACK_S, self)
        for part in (self.beater1, self.beater2, self.tailor_x, self.tailor_y):
            wait_for(f"{part.name} serving", part.serving, BOOT_S, self)
        self.balancer = Balancer([("127.0.0.1", self.tailor_x.port), ("127.0.0.1", self.tailor_y.port)])

    def stop(self) -> None:
        """Balancer, services, routers."""
        if self.balancer is not None:
            self.balancer.close()
        for part in (self.tailor_x, self.tailor_y, self.beater1, self.beater2, self.b, self.a):
            part.stop()

    def post(self, beater: Part, docs: List[Dict[str, Any]], timeout: float = 60.0) -> Tuple[int, Any]:
        """POST ``docs`` to ``beater``; status and decoded answer."""
        conn = http.client.HTTPConnection("127.0.0.1", beater.port, timeout=timeout)
        try:
            conn.request("POST", f"/api/v0.1/beat/{INDEX}", body=json.dumps(docs), headers={"content-type": "application/json"})
            response = conn.getresponse()
            body = response.read()
            try:
                return response.status, json.loads(body)
            except ValueError:
                return response.status, body[:300]
        finally:
            conn.close()


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """The whole topology, shared by this module's tests; the ES node killed in a test is started again."""
    urls = cluster_urls()
    nodes = cluster_nodes()
    assert sorted(n.url for n in nodes) == sorted(urls), f"scripts/services lists {nodes}, ESTROM_ES_CLUSTER_URL {urls}"
    victims = [n for n in nodes if not n.master]
    assert len(victims) == 1, f"expected one elected master among {nodes}"
    victim, survivor = victims[0], next(n for n in nodes if n.master)
    instance = Topology(tmp_path_factory.mktemp("estrom-topology"), victim, survivor)
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
        es_json(f"{survivor.url}/estrom-queries-{INDEX}", "DELETE")
        if instance.victim_killed:
            restore(victim)


def docs(term: str, numbers: range) -> List[Dict[str, Any]]:
    """Documents ``{"message": "<term> ...", "n": i}``."""
    return [{"message": f"{term} number {i}", "n": i} for i in numbers]


def counters(records: List[Record]) -> List[int]:
    """The ``n`` of each hit among ``records``, in the order received."""
    return [hit["_source"]["n"] for hit in hits_of(records)]


def read_counters(client: TailClient, wanted: List[int], timeout: float = 30.0) -> List[int]:
    """Read until every counter of ``wanted`` arrived (bounded; the assertions say what is missing)."""
    try:
        client.read_until(lambda c: not (set(wanted) - set(counters(c.records))), timeout, "every document")
    except AssertionError:
        pass
    return counters(client.records)


# --- documents and registrations cross the cluster ------------------------------------------------


def test_a_document_ingested_on_either_beater_reaches_tails_on_both_tailors(topology: Topology) -> None:
    """Tails on X and on Y for one query; 100 documents posted alternately to Beater 1 and Beater 2, five at a
    time: every document reaches both tails, each once."""
    term, total = "bothways", 100
    on_x = TailClient.get(topology.tailor_x.port, {"i": INDEX, "q": term, "format": "ndjson"})
    on_y = TailClient.get(topology.tailor_y.port, {"i": INDEX, "q": term, "format": "ndjson"})
    for client in (on_x, on_y):
        assert client.status == 200, client.body_json()
        client.read_until(lambda c: c.parser.header is not None, what="the header")
    for k, start in enumerate(range(0, total, 5)):
        status, answer = topology.post(topology.beaters[k % 2], docs(term, range(start, start + 5)))
        assert status == 200 and answer["accepted"] == 5, (status, answer)
    got = {name: read_counters(client, list(range(total))) for name, client in (("X", on_x), ("Y", on_y))}
    for client in (on_x, on_y):
        client.close()
    for name, numbers in got.items():
        missing = sorted(set(range(total)) - set(numbers))
        assert missing == [], f"tail on {name}: {len(missing)} of {total} documents never arrived: {missing[:20]}"
        assert len(numbers) == len(set(numbers)), f"tail on {name}: a document arrived twice"
    beaters = {hit["_beater"] for hit in hits_of(on_x.records)}
    assert len(beaters) == 2, f"hits came from {beaters}, not from both Beaters"


def test_a_registration_made_through_one_beater_is_stored_once_and_matched_by_every_beater(topology: Topology) -> None:
    """A tail's ``i=&q=`` on X registers through one Beater (the router picks it): that Beater alone stores the
    query, the percolator index holds it once, and documents posted to each Beater reach the tail."""
    term, each = "registeredonce", 20
    tail = TailClient.get(topology.tailor_x.port, {"i": INDEX, "q": f"{term} AND shared", "format": "ndjson"})
    assert tail.status == 200, tail.body_json()
    tail.read_until(lambda c: c.parser.header is not None, what="the header")
    sub_id = tail.parser.subscription_id
    assert sub_id is not None
    stored_by = [b.name for b in topology.beaters if b.registered(sub_id)]
    assert len(stored_by) == 1, f"registration {sub_id} logged as stored by {stored_by}"
    stored = es_json(f"{topology.survivor.url}/estrom-queries-{INDEX}/_search?q=_id:{sub_id}")
    assert stored["hits"]["total"]["value"] == 1, stored
    for k, beater in enumerate(topology.beaters):
        status, answer = topology.post(beater, [{"message": f"{term} shared from {beater.name}", "n": k * each + i} for i in range(each)])
        assert status == 200 and answer["accepted"] == each, (beater.name, status, answer)
    got = read_counters(tail, list(range(2 * each)))
    tail.close()
    by_beater: Dict[str, int] = {}
    for hit in hits_of(tail.records):
        by_beater[hit["_beater"]] = by_beater.get(hit["_beater"], 0) + 1
    missing = sorted(set(range(2 * each)) - set(got))
    assert missing == [], f"stored by {stored_by}; never arrived: {missing} (per Beater id: {by_beater})"
    assert sorted(got) == list(range(2 * each)), "a document arrived twice"
    assert len(by_beater) == 2, f"hits from {by_beater}: not matched by both Beaters"


# --- kill -9, one part after another, under steady ingest -----------------------------------------


class AlternatingPoster:
    """Posts ``{"message": "<term> steady", "n": <counter>}`` every INTERVAL s in a thread, to Beater 1 and
    Beater 2 in turn.  A document not acknowledged (503, another status, no answer) is posted again, to the
    next Beater, before any new one: a client with two Beaters to choose from."""

    def __init__(self, topology: Topology, term: str) -> None:
        self.topology = topology
        self.term = term
        self.acknowledged: Dict[int, str] = {}  # counter -> the Beater that acknowledged it
        self.acknowledged_at: Dict[int, float] = {}  # counter -> when its acknowledgement came
        self.refusals: Dict[int, List[str]] = {}  # counter -> what each failed attempt was answered
        self._retry: List[int] = []
        self._attempt = 0
        self._give_up = float("inf")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _post(self, n: int) -> None:
        beater = self.topology.beaters[self._attempt % 2]
        self._attempt += 1
        try:
            status, answer = self.topology.post(beater, [{"message": f"{self.term} steady", "n": n}], timeout=40)
        except OSError as e:
            status, answer = 0, repr(e)
        if status == 200 and isinstance(answer, dict) and answer.get("accepted") == 1:
            self.acknowledged[n] = beater.name
            self.acknowledged_at[n] = time.monotonic()
        else:
            self.refusals.setdefault(n, []).append(f"{beater.name}: {status} {str(answer)[:120]}")
            self._retry.append(n)

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

    def acknowledged_by(self, beater: Part) -> int:
        """How many documents ``beater`` acknowledged."""
        return sum(1 for name in list(self.acknowledged.values()) if name == beater.name)

    def wait_acknowledged(self, more: int, what: str, beater: Optional[Part] = None) -> None:
        """Until ``more`` further documents (acknowledged by ``beater``, if given) have been acknowledged."""
        count = (lambda: self.acknowledged_by(beater)) if beater is not None else (lambda: len(self.acknowledged))
        target = count() + more
        wait_for(what, lambda: True if count() >= target else None, WITHIN, self.topology)

    def stop(self) -> None:
        """Stop posting new documents; finish the retries (bounded)."""
        self._give_up = time.monotonic() + WITHIN
        self._stop.set()
        self._thread.join(WITHIN + 60)
        assert not self._thread.is_alive(), "the poster did not stop"

    @property
    def unacknowledged(self) -> List[int]:
        """Counters never acknowledged (after stop: given up on)."""
        return list(self._retry)


class ResumingClient:
    """An SSE tail through the balancer, read in a thread; when the stream ends (or the connection is reset)
    it reconnects through the balancer with the Last-Event-ID it has, until it is taken again."""

    def __init__(self, topology: Topology, term: str) -> None:
        assert topology.balancer is not None
        self.balancer = topology.balancer
        self.term = term
        self.records: List[Record] = []
        self.last_event_id: Optional[str] = None
        self.landings: List[Tuple[float, int, bool]] = []  # (when, backend, resumed with Last-Event-ID)
        self.ends: List[float] = []  # when a stream ended under it
        self.client: Optional[TailClient] = None
        self.error: Optional[BaseException] = None
        self.wanted_backend: Optional[int] = None
        self._stop = threading.Event()
        self._connect()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _connect(self) -> None:
        deadline = time.monotonic() + WITHIN
        while True:
            headers = {"Last-Event-ID": self.last_event_id} if self.last_event_id else None
            try:
                client = TailClient.get(self.balancer.port, {"i": INDEX, "q": self.term, "format": "sse"}, headers, "sse")
                if client.status == 200:
                    client.read_until(lambda c: c.parser.header is not None, 20, "the header")
                    self.client = client
                    self.landings.append((time.monotonic(), self.balancer.served[-1], headers is not None))
                    return
                client.close()
            except (AssertionError, OSError):
                pass
            assert time.monotonic() < deadline, "no Tailor took the resuming client"
            time.sleep(0.2)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                assert self.client is not None
                try:
                    new = self.client.read_some(0.5)
                    ended = self.client.eof
                except (ConnectionResetError, BrokenPipeError):
                    new, ended = [], True
                self.records.extend(new)
                if self.client.parser.last_event_id:
                    self.last_event_id = self.client.parser.last_event_id
                moving = self.wanted_backend is not None and self.landings[-1][1] != self.wanted_backend
                if ended or moving:
                    if ended:
                        self.ends.append(time.monotonic())
                    self.client.close()
                    self._connect()
        except BaseException as e:  # reported by stop()
            self.error = e

    def on_backend(self, backend: int, timeout: float = 30.0) -> None:
        """Reconnect (with Last-Event-ID) until the balancer has put it on ``backend``."""
        self.wanted_backend = backend
        wait_for(f"the client on backend {backend}", lambda: True if self.landings[-1][1] == backend else None, timeout)
        self.wanted_backend = None

    def wait_for_counters(self, wanted: List[int], timeout: float) -> None:
        """Until every counter of ``wanted`` has arrived (bounded; the assertions say what is missing)."""
        deadline = time.monotonic() + timeout
        while set(wanted) - set(counters(self.records)) and time.monotonic() < deadline and self.error is None:
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop reading and close."""
        self._stop.set()
        self._thread.join(10)
        if self.client is not None:
            self.client.close()
        if self.error is not None:
            raise self.error


@dataclass
class KillRun:
    """What the kills did and what the client received."""

    poster: AlternatingPoster
    client: ResumingClient
    recoveries: Dict[str, float] = field(default_factory=dict)  # seconds from SIGKILL to the part serving again
    kills: Dict[str, float] = field(default_factory=dict)  # when each part was killed
    marks: Dict[str, float] = field(default_factory=dict)  # seconds after a kill something came back; diagnostics

    @property
    def received(self) -> List[int]:
        """The counters the client received, over all its connections, in order."""
        return counters(self.client.records)

    @property
    def lost(self) -> List[int]:
        """Acknowledged counters the client never received."""
        return sorted(set(self.poster.acknowledged) - set(self.received))

    @property
    def repeated_hits(self) -> int:
        """Hits (``_beater``, ``_seq``) received more than once."""
        keys = [(h["_beater"], h["_seq"]) for h in hits_of(self.client.records)]
        return len(keys) - len(set(keys))

    @property
    def repeated_documents(self) -> int:
        """Counters received more than once (a document posted again after a refusal may be one)."""
        return len(self.received) - len(set(self.received))

    def report(self) -> str:
        """One line on what was posted, what the client got and how long each part took to come back."""
        refused = self.poster.refusals
        arrived_anyway = sorted(n for n in refused if self.received.count(n) > 1)
        gaps = [r["_estrom"] for r in self.client.records if "_estrom" in r]
        return (f"{len(self.poster.acknowledged)} acknowledged, {len(refused)} retried "
                f"({sum(len(v) for v in refused.values())} failed attempts, e.g. {[v[0] for v in list(refused.values())[:3]]}), "
                f"{len(self.poster.unacknowledged)} never acknowledged; lost {len(self.lost)}, repeated hits {self.repeated_hits}, "
                f"repeated documents {self.repeated_documents} (retried ones twice: {arrived_anyway[:10]}); "
                f"recoveries {', '.join(f'{k} {v:.1f} s' for k, v in self.recoveries.items())}; "
                f"stream ends {len(self.client.ends)}, landings {[(b, r) for _, b, r in self.client.landings]}; "
                f"Tailor records {gaps[:5]}; {self.marks}; lost (Beater, seconds after each kill): {self.lost_when()[:12]}")

    def lost_when(self) -> List[Tuple[int, str, Dict[str, float]]]:
        """Each lost counter with the Beater that acknowledged it and when, relative to each kill."""
        out = []
        for n in self.lost:
            at = self.poster.acknowledged_at[n]
            out.append((n, self.poster.acknowledged[n], {k: round(at - t, 1) for k, t in self.kills.items()}))
        return out


def links_joined(node: RouterNode) -> int:
    """How many times this run of ``node``'s own link(s) joined a peer (Crossbar logs each join of the remote leg)."""
    return node.this_run().count("rlink remote session ready")


def metric(part: Part, name: str) -> float:
    """One counter of a Beater's ``/metrics``, summed over its labels."""
    return processes.metric(part.port, name)


def timed(run: "KillRun", name: str, since: float) -> None:
    """Record that ``name``, killed at ``since``, serves again now."""
    run.recoveries[name] = time.monotonic() - since
    run.kills[name] = since


@pytest.fixture(scope="module")
def kill_run(topology: Topology) -> Iterator[KillRun]:
    """Steady ingest to both Beaters, a client tailing through the balancer, and four kills in turn."""
    term = "topologykill"
    client = ResumingClient(topology, term)
    poster = AlternatingPoster(topology, term)
    run = KillRun(poster, client)
    try:
        poster.wait_acknowledged(AFTER_EACH, "documents acknowledged before the first kill")

        # Router B: Beater 2 and Tailor Y lose their router; B restarts on the same port.
        a_links = links_joined(topology.a)
        unheard = metric(topology.beater2, "estrom_publishes_unheard_total")
        killed = time.monotonic()
        topology.b.kill9()
        topology.b.start()
        topology.b.wait_booted()
        run.marks["B's link to A up"] = wait_for("B's link to A up again", lambda: time.monotonic() - killed
                                                  if topology.b.links_up() >= 1 else None, LINK_BACK_S, topology)
        run.marks["A's link to B up"] = wait_for("A's link to B up again", lambda: time.monotonic() - killed
                                                  if links_joined(topology.a) > a_links else None, LINK_BACK_S, topology)
        wait_for("Tailor Y serving again", topology.tailor_y.serving, WITHIN, topology)
        poster.wait_acknowledged(5, "Beater 2 acknowledging again", topology.beater2)
        regained = re.findall(r"router session regained after ([0-9.]+) s", topology.beater2.this_run())
        if regained:
            run.marks["Beater 2 back on B"] = float(regained[-1])
        run.marks["Beater 2 unheard publishes"] = metric(topology.beater2, "estrom_publishes_unheard_total") - unheard
        timed(run, "router B", killed)
        poster.wait_acknowledged(AFTER_EACH, "documents acknowledged after router B's restart")

        # Beater 2: restarted with the same data directory (its Beater id, its sequence file).
        killed = time.monotonic()
        topology.beater2.kill9()
        topology.beater2.start()
        wait_for("Beater 2 serving again", topology.beater2.serving, WITHIN, topology)
        poster.wait_acknowledged(5, "Beater 2 acknowledging again", topology.beater2)
        timed(run, "Beater 2", killed)
        poster.wait_acknowledged(AFTER_EACH, "documents acknowledged after Beater 2's restart")

        # Tailor X, with the client on it: its stream ends, it resumes through the balancer.
        client.on_backend(0)
        poster.wait_acknowledged(5, "documents acknowledged with the client on X")
        ends = len(client.ends)
        killed = time.monotonic()
        topology.tailor_x.kill9()
        wait_for("the client's stream on X ended", lambda: True if len(client.ends) > ends else None, WITHIN, topology)
        topology.tailor_x.start()
        wait_for("Tailor X serving again", topology.tailor_x.serving, WITHIN, topology)
        timed(run, "Tailor X", killed)
        run.recoveries["client resumed"] = client.landings[-1][0] - killed
        poster.wait_acknowledged(AFTER_EACH, "documents acknowledged after Tailor X's restart")

        # The Elasticsearch node that is not the master (the one the Beaters talk to first).
        victim = topology.victim
        assert "estrom.esrunner.EsRunner" in cmdline(victim.pid), f"pid {victim.pid} is not {victim.name}"
        killed = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)
        topology.victim_killed = True
        wait_for(f"{victim.name} gone from the cluster", lambda: True if es_json(
            f"{topology.survivor.url}/_cluster/health?timeout=1s").get("number_of_nodes") == 1 else None, WITHIN)
        run.recoveries["ES node left"] = time.monotonic() - killed
        poster.wait_acknowledged(5, "Beater 1 acknowledging on one ES node", topology.beater1)
        poster.wait_acknowledged(5, "Beater 2 acknowledging on one ES node", topology.beater2)
        timed(run, "ES node", killed)
        poster.wait_acknowledged(AFTER_EACH, "documents acknowledged after the ES node's death")
    finally:
        poster.stop()
    client.wait_for_counters(list(poster.acknowledged), WITHIN)
    client.stop()
    print(f"\nkills under ingest: {run.report()}")
    yield run


def test_through_every_kill_the_resuming_client_receives_every_acknowledged_document(kill_run: KillRun) -> None:
    """Router B, Beater 2, Tailor X and an ES node SIGKILLed in turn: every acknowledged document reaches the
    client that tails through the balancer and resumes with Last-Event-ID.  Loss: 0."""
    assert kill_run.poster.unacknowledged == [], f"documents never acknowledged: {kill_run.poster.unacknowledged[:20]}; {kill_run.report()}"
    assert kill_run.lost == [], f"lost {len(kill_run.lost)}: {kill_run.lost[:30]}; {kill_run.report()}"


def test_through_every_kill_the_resuming_client_receives_each_document_once(kill_run: KillRun) -> None:
    """No hit arrives twice, across every resume, and no document either.  Repeats: 0."""
    assert (kill_run.repeated_hits, kill_run.repeated_documents) == (0, 0), kill_run.report()
