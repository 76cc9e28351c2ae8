"""Two Tailors behind a round-robin load balancer: a client that resumes on the other one loses nothing.

Tailors keep no state a client depends on: the cursor a client resumes from
(``Last-Event-ID``, ``since=``) names every Beater's position, and any Tailor
can replay from it.  So a client may land on another Tailor after a reconnect,
or after its Tailor was killed with SIGKILL, and still get every document
whose ingest was acknowledged, each once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import Iterator, List, Optional, Tuple

import pytest

from tests.integration.balancer import Balancer
from tests.integration.conftest import ROOT, Estrom, estrom_executable, free_port, settings_free_environment
from tests.integration.processes import TAILOR, health, kill_part, wait_for
from tests.integration.tailclients import Record, TailClient, hits_of
from tests.integration.test_faults import BACK_WITHIN, SteadyPoster, counters, read_counters


class StandaloneTailor:
    """``estrom tailor`` as its own process beside ``estrom up``, on the same router and data dir (its ticket)."""

    def __init__(self, instance: Estrom) -> None:
        self.port = free_port()
        self.output: List[str] = []
        self.process = subprocess.Popen(
            estrom_executable() + ["tailor", "--data-dir", str(instance.data_dir), "--router-url", instance.router_url,
                                   "--tailor-port", str(self.port), "--log-level", "warn"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, start_new_session=True,
            env=settings_free_environment(),
        )
        threading.Thread(target=self._pump, daemon=True).start()
        wait_for("the second Tailor serves", self.serving, 60)

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def serving(self) -> Optional[bool]:
        answer = health(self.port)
        return True if answer is not None and answer[0] == 200 and answer[1].get("beater") else None

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Estrom, StandaloneTailor, Balancer]]:
    instance = Estrom(tmp_path_factory.mktemp("estrom-tailors"))
    instance.start()
    second = StandaloneTailor(instance)
    balancer = Balancer([("127.0.0.1", instance.tailor_port), ("127.0.0.1", second.port)])
    yield instance, second, balancer
    balancer.close()
    if second.process.poll() is None:
        second.kill()
    instance.stop()


def open_balanced(balancer: Balancer, term: str, last_event_id: Optional[str] = None) -> Tuple[TailClient, int]:
    """An SSE tail through the balancer; returns it and the backend it landed on."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else None
    client = TailClient.get(balancer.port, {"i": "events", "q": term, "format": "sse"}, headers, "sse")
    assert client.status == 200, (client.status, client.body_json())
    client.read_until(lambda c: c.parser.header is not None, what="the header")
    return client, balancer.served[-1]


def assert_every_acknowledged_once(poster: SteadyPoster, before: List[Record], after: List[Record]) -> None:
    got = counters(before) + counters(after)
    missing = sorted(set(poster.acknowledged) - set(got))
    assert missing == [], f"{len(missing)} acknowledged documents never arrived: {missing[:30]}; {poster.report(got)}"
    keys = [(h["_beater"], h["_seq"]) for h in hits_of(before) + hits_of(after)]
    assert len(keys) == len(set(keys)), "a hit arrived twice across the resume"


def test_a_client_that_resumes_on_the_other_tailor_loses_nothing(cluster: Tuple[Estrom, StandaloneTailor, Balancer]) -> None:
    instance, _, balancer = cluster
    first, landed = open_balanced(balancer, "balancedresume")
    poster = SteadyPoster(instance, "balancedresume")
    try:
        first.read_hits(5)
        first.close()
        poster.wait_acknowledged(len(poster.acknowledged) + 20, "documents posted while the client is away")
        resumed, relanded = open_balanced(balancer, "balancedresume", first.parser.last_event_id)
        poster.wait_acknowledged(len(poster.acknowledged) + 10, "documents posted after the resume")
    finally:
        poster.stop()
    assert relanded != landed, "round robin sent the resume to the same Tailor"
    after = read_counters(resumed, [n for n in poster.acknowledged if n not in counters(first.records)])
    resumed.close()
    assert_every_acknowledged_once(poster, first.records, after)


def test_a_tailor_killed_under_ingest_costs_a_client_that_resumes_elsewhere_nothing(
        cluster: Tuple[Estrom, StandaloneTailor, Balancer]) -> None:
    instance, second, balancer = cluster
    client, landed = open_balanced(balancer, "balancedkill")
    poster = SteadyPoster(instance, "balancedkill")
    try:
        client.read_hits(5)
        if landed == 1:
            second.kill()
        else:
            kill_part(instance, TAILOR, "Tailor", BACK_WITHIN)
        # The client sees its connection end; it reconnects through the balancer with Last-Event-ID.
        client.read_until(lambda c: c.eof, BACK_WITHIN, "the end of the killed Tailor's stream")
        poster.wait_acknowledged(len(poster.acknowledged) + 20, "documents posted while the client is away")
        deadline = time.monotonic() + BACK_WITHIN
        while True:
            try:
                resumed, relanded = open_balanced(balancer, "balancedkill", client.parser.last_event_id)
                break
            except (AssertionError, OSError):
                assert time.monotonic() < deadline, "no Tailor took the resuming client"
                time.sleep(0.2)
        poster.wait_acknowledged(len(poster.acknowledged) + 10, "documents posted after the resume")
    finally:
        poster.stop()
    after = read_counters(resumed, [n for n in poster.acknowledged if n not in counters(client.records)])
    resumed.close()
    print(f"\nkilled Tailor {landed}, resumed on {relanded}: {poster.report(counters(client.records) + counters(after))}")
    assert poster.refused == [] and poster.failed == {}, "ingest does not depend on a Tailor"
    assert_every_acknowledged_once(poster, client.records, after)
