"""Killing a part of ``estrom up`` under steady ingest loses no acknowledged document for a tail that resumes.

A thread posts one small document every ~20 ms, each with a counter, and
records which were acknowledged (HTTP 200) and which were refused (503, the
router being away).  Then a real process is killed with SIGKILL, the way the
OOM killer would: the router (Crossbar) or the Tailor.  ``estrom up``'s
supervisor restarts it; clients that resume (``since=``, ``Last-Event-ID``)
must receive every acknowledged document.  Refused ones are only reported.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional

import pytest

from tests.integration.conftest import Estrom
from tests.integration.processes import ROUTER, TAILOR, healthy, kill_part, tailor_up, wait_for
from tests.integration.tailclients import ReaderThread, Record, TailClient, hits_of, open_tail

BACK_WITHIN = 90.0  # seconds: Crossbar boots in a few, plus the services' reconnect back-off, on a busy machine
AFTER_RESTART = 25  # acknowledged documents posted after the restart, so the live path is proven again


@pytest.fixture(scope="module")
def estrom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estrom]:
    """A running ``estrom up`` whose parts the tests kill."""
    instance = Estrom(tmp_path_factory.mktemp("estrom-faults"))
    instance.start()
    yield instance
    instance.stop()


class SteadyPoster:
    """Posts ``{"message": "<term> ...", "n": <counter>}`` every ~20 ms in a thread; records every answer."""

    def __init__(self, estrom: Estrom, term: str, interval: float = 0.02) -> None:
        self.estrom = estrom
        self.term = term
        self.interval = interval
        self.acknowledged: List[int] = []
        self.refused: List[int] = []  # 503: the Beater said nothing (or not all) was delivered
        self.failed: Dict[int, str] = {}  # any other answer, or no answer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _post(self, n: int) -> None:
        body = json.dumps({"message": f"{self.term} steady", "n": n})
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.estrom.beater_port, timeout=10)
            conn.request("POST", "/api/v0.1/beat/events", body=body, headers={"content-type": "application/json"})
            response = conn.getresponse()
            answer = response.read()
            conn.close()
        except OSError as e:
            self.failed[n] = repr(e)
            return
        if response.status == 200:
            self.acknowledged.append(n)
        elif response.status == 503:
            self.refused.append(n)
        else:
            self.failed[n] = f"{response.status} {answer[:200]!r}"

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            self._post(n)
            n += 1
            self._stop.wait(self.interval)

    def wait_acknowledged(self, count: int, what: str) -> None:
        """Wait (bounded) until ``count`` documents have been acknowledged in all."""
        wait_for(what, lambda: True if len(self.acknowledged) >= count else None, BACK_WITHIN, self.estrom)

    def stop(self) -> None:
        """Stop posting."""
        self._stop.set()
        self._thread.join(15)
        assert not self._thread.is_alive(), "the poster did not stop"

    def report(self, received: List[int]) -> str:
        """One line on what was refused and whether it arrived anyway."""
        arrived = sorted(set(self.refused) & set(received))
        return (f"{len(self.acknowledged)} acknowledged, {len(self.refused)} refused with 503 "
                f"({len(arrived)} of them arrived anyway: {arrived[:20]}), {len(self.failed)} failed otherwise: "
                f"{dict(list(self.failed.items())[:5])}")


def counters(records: List[Record]) -> List[int]:
    """The counter of each hit among ``records``, in the order received."""
    return [hit["_source"]["n"] for hit in hits_of(records)]


def kill_under_ingest(estrom: Estrom, poster: SteadyPoster, marker: str, name: str,
                      back: Callable[[], Optional[bool]], what: str) -> None:
    """SIGKILL a part while ``poster`` posts; wait for its successor, for ``back`` (``what``: the part serves
    again) and for AFTER_RESTART more acknowledged documents."""
    kill_part(estrom, marker, name, BACK_WITHIN)
    wait_for(what, back, BACK_WITHIN, estrom)
    poster.wait_acknowledged(len(poster.acknowledged) + AFTER_RESTART, "documents acknowledged after the restart")


def read_counters(client: TailClient, wanted: List[int], timeout: float = BACK_WITHIN) -> List[Record]:
    """Read a tail until every counter in ``wanted`` has arrived (bounded); return its records."""
    missing = set(wanted)
    try:
        client.read_until(lambda c: not (missing - set(counters(c.records))), timeout, "every acknowledged document")
    except AssertionError:
        pass  # the tests' assertions say what is missing
    return client.records


@dataclass
class RouterKill:
    """What the clients saw around a router SIGKILL."""

    poster: SteadyPoster
    before: List[Record]  # the resuming client, before the kill
    resumed: List[Record]  # the same client, resumed with since= after the restart
    open_tail: List[Record]  # a JSON tail that stayed open throughout
    open_tail_ended: bool


@pytest.fixture(scope="module")
def router_kill(estrom: Estrom) -> Iterator[RouterKill]:
    """Steady ingest; an open JSON tail; a client that leaves, the router is SIGKILLed and restarted, it resumes."""
    term = "faultrouter"
    stays = ReaderThread(open_tail(estrom, "json", i="events", q=term))
    leaves = open_tail(estrom, "ndjson", i="events", q=term)
    poster = SteadyPoster(estrom, term)
    try:
        poster.wait_acknowledged(10, "ten documents acknowledged before the kill")
        leaves.read_hits(5)
        leaves.close()
        last_seq = hits_of(leaves.records)[-1]["_seq"]
        kill_under_ingest(estrom, poster, ROUTER, "router", lambda: healthy(estrom),
                          "the Beater and the Tailor back on the router")
    finally:
        poster.stop()
    print(f"\nrouter kill: {poster.report([])}")
    resumer = open_tail(estrom, "ndjson", i="events", q=term, since=last_seq)
    resumed = read_counters(resumer, [n for n in poster.acknowledged if n not in counters(leaves.records)])
    resumer.close()
    deadline = time.monotonic() + BACK_WITHIN
    while set(poster.acknowledged) - set(counters(stays.client.records)) and stays.running and time.monotonic() < deadline:
        time.sleep(0.1)
    ended = stays.client.eof or stays.reset
    records = stays.stop()
    stays.client.close()
    yield RouterKill(poster, list(leaves.records), resumed, records, ended)


def test_router_kill_every_acknowledged_document_reaches_the_resuming_client(router_kill: RouterKill) -> None:
    """A client that resumes with since= after the router restart has every document that got a 200."""
    r = router_kill
    got = counters(r.before) + counters(r.resumed)
    print(f"resuming client: {r.poster.report(got)}")
    missing = sorted(set(r.poster.acknowledged) - set(got))
    assert missing == [], f"{len(missing)} acknowledged documents never reached the resuming client: {missing[:30]}"


def test_router_kill_the_resumed_stream_has_no_repeats(router_kill: RouterKill) -> None:
    """Before and after the resume, each hit arrives once, in event-id order."""
    seqs = [h["_seq"] for h in hits_of(router_kill.before) + hits_of(router_kill.resumed)]
    assert seqs == sorted(set(seqs))


def test_router_kill_an_open_json_tail_stays_open_and_misses_nothing(router_kill: RouterKill) -> None:
    """A JSON tail open across the router restart is not ended, and the Tailor's catch-up fills what it missed."""
    r = router_kill
    got = counters(r.open_tail)
    print(f"open tail: {r.poster.report(got)}; its records other than hits: "
          f"{[x for x in r.open_tail if '_estrom' in x][:5]}")
    assert not r.open_tail_ended
    missing = sorted(set(r.poster.acknowledged) - set(got))
    assert missing == [], f"{len(missing)} acknowledged documents never reached the open tail: {missing[:30]}"
    seqs = [h["_seq"] for h in hits_of(r.open_tail)]
    assert seqs == sorted(set(seqs))


def test_router_kill_every_post_was_answered(router_kill: RouterKill) -> None:
    """While the router is away the Beater answers 503 (never hangs or drops the connection)."""
    assert router_kill.poster.failed == {}


@dataclass
class TailorKill:
    """What an SSE client saw around a Tailor SIGKILL."""

    poster: SteadyPoster
    before: List[Record]
    last_event_id: Optional[str]
    resumed: List[Record]


@pytest.fixture(scope="module")
def tailor_kill(estrom: Estrom, router_kill: RouterKill) -> Iterator[TailorKill]:
    """Steady ingest; an SSE client reading; the Tailor is SIGKILLed and restarted; the client reconnects."""
    wait_for("healthy before the Tailor kill", lambda: healthy(estrom), BACK_WITHIN, estrom)
    term = "faulttailor"
    reader = ReaderThread(open_tail(estrom, "sse", i="events", q=term))
    poster = SteadyPoster(estrom, term)
    try:
        poster.wait_acknowledged(10, "ten documents acknowledged before the kill")
        wait_for("the SSE client has hits", lambda: True if hits_of(reader.client.records) else None, 30, estrom)
        kill_under_ingest(estrom, poster, TAILOR, "Tailor", lambda: tailor_up(estrom), "the new Tailor answers health")
    finally:
        poster.stop()
    print(f"\nTailor kill: {poster.report([])}")
    before = reader.stop()
    reader.client.close()
    last_event_id = reader.client.parser.last_event_id
    resumer = open_tail(estrom, "sse", headers={"Last-Event-ID": last_event_id or "0"}, i="events", q=term)
    resumed = read_counters(resumer, [n for n in poster.acknowledged if n not in counters(before)])
    resumer.close()
    yield TailorKill(poster, list(before), last_event_id, resumed)


def test_tailor_kill_the_sse_client_reconnects_and_loses_nothing_acknowledged(tailor_kill: TailorKill) -> None:
    """After a Tailor SIGKILL and restart, reconnecting with Last-Event-ID brings every document that got a 200."""
    t = tailor_kill
    assert t.last_event_id is not None
    got = counters(t.before) + counters(t.resumed)
    print(f"SSE client: {t.poster.report(got)}")
    missing = sorted(set(t.poster.acknowledged) - set(got))
    assert missing == [], f"{len(missing)} acknowledged documents never reached the SSE client: {missing[:30]}"


def test_tailor_kill_the_reconnected_stream_has_no_repeats(tailor_kill: TailorKill) -> None:
    """Each hit arrives once across the reconnect, in event-id order, with no gap record."""
    t = tailor_kill
    seqs = [h["_seq"] for h in hits_of(t.before) + hits_of(t.resumed)]
    assert seqs == sorted(set(seqs))
    assert [r for r in t.resumed if "_estrom" in r and "gap" in r["_estrom"]] == []


def test_tailor_kill_ingest_never_stopped(tailor_kill: TailorKill) -> None:
    """The Beater does not need the Tailor: every post during the Tailor's restart got a 200."""
    assert tailor_kill.poster.refused == [] and tailor_kill.poster.failed == {}
