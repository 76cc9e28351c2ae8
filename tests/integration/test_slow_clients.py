"""A client that stops reading costs the Tailor a bounded buffer and costs the other clients nothing.

One ``estrom up`` (``--tail-buffer-bytes 1048576``) serves three tails of ``q=*``
on ``events`` while more than 20,000 Wikimedia recent changes flow through it:
a client that reads as fast as it can, and two that send their GET and then
never read (raw sockets with a 4 KiB receive buffer), one in the JSON format,
one in SSE.  The flow happens once (a module fixture); each test checks one
consequence of it.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from typing import Iterator, List

import pytest

from tests.integration.conftest import Estrom, http_get_json
from tests.integration.processes import TAILOR, child_pid, rss_kb, wait_for
from tests.integration.tailclients import (
    ReaderThread, accounted_for, Record, StuckClient, controls_of, hits_of, open_tail, post_ndjson, recentchange_lines,
    seqs_of,
)

BUFFER_BYTES = 1048576
RSS_MARGIN_KB = 40 * 1024
"""What the Tailor may grow by, beyond the configured buffer, while 20,000 hits pass two stuck clients."""
ROUNDS = 5  # 5 x 4,062 recent changes: more than 20,000 hits
QUERY = {"i": "events", "q": "*"}


@pytest.fixture(scope="module")
def estrom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estrom]:
    """``estrom up`` with a 1 MiB buffer per tail (the default, said explicitly)."""
    instance = Estrom(tmp_path_factory.mktemp("estrom-slow"), ["--tail-buffer-bytes", str(BUFFER_BYTES)])
    instance.start()
    yield instance
    instance.stop()


def wait_for_header(stuck: StuckClient, marker: bytes, instance: Estrom) -> None:
    """Wait until the stream's header sits in the stuck client's receive buffer (peeked, not read).

    The Tailor writes the header only once the tail is subscribed: from then on every hit is
    either written or counted as dropped for this client.
    """
    stuck.sock.setblocking(False)

    def peek() -> object:
        try:
            return True if marker in stuck.sock.recv(4096, socket.MSG_PEEK) else None
        except BlockingIOError:
            return None

    try:
        wait_for("the stuck client's header", peek, 20, instance)
    finally:
        stuck.sock.setblocking(True)


class RssSampler:
    """Samples a process's VmRSS every 50 ms in a thread; keeps the largest value."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = rss_kb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.peak_kb = max(self.peak_kb, rss_kb(self.pid))
            except (OSError, AssertionError):
                return

    def stop(self) -> int:
        """Stop sampling; return the peak in KiB."""
        self._stop.set()
        self._thread.join(5)
        self.peak_kb = max(self.peak_kb, rss_kb(self.pid))
        return self.peak_kb


@dataclass
class Flood:
    """What happened while the documents flowed."""

    sent: int
    reader: List[Record]
    stuck_json: List[Record]
    stuck_sse: List[Record]
    rss_before_kb: int
    rss_peak_kb: int


def read_until_accounted(stuck: StuckClient, sent: int) -> List[Record]:
    """Wake the stuck client and read until its hits plus the dropped counts account for ``sent``."""
    client = stuck.wake()

    client.read_until(lambda c: accounted_for(c.records) >= sent, timeout=60, what=f"{sent} hits or dropped counts")
    stuck.close()
    return client.records


@pytest.fixture(scope="module")
def flood(estrom: Estrom) -> Flood:
    """Three tails of q=*; more than 20,000 hits posted in NDJSON chunks of 500; then the stuck ones read."""
    reader_client = open_tail(estrom, **QUERY)
    reader = ReaderThread(reader_client)
    stuck_json = StuckClient(estrom.tailor_port, dict(QUERY))
    stuck_sse = StuckClient(estrom.tailor_port, dict(QUERY, format="sse"))
    wait_for_header(stuck_json, b'"hits": [', estrom)
    wait_for_header(stuck_sse, b"event: subscription", estrom)
    tailor = child_pid(estrom, TAILOR)
    assert tailor is not None, "no Tailor child of estrom up"
    sampler = RssSampler(tailor)
    before = sampler.peak_kb
    lines = recentchange_lines()
    sent = sum(post_ndjson(estrom, "events", lines, chunk=500) for _ in range(ROUNDS))
    records = reader.join(sent, timeout=60)
    reader_client.close()
    peak = sampler.stop()
    return Flood(sent, records, read_until_accounted(stuck_json, sent), read_until_accounted(stuck_sse, sent), before, peak)


def test_more_than_20000_hits_flowed(flood: Flood) -> None:
    """The scenario is what it claims: over 20,000 accepted documents, all matching q=*."""
    assert flood.sent >= 20000


def test_the_reading_client_gets_every_hit_in_order(flood: Flood) -> None:
    """A client that keeps reading gets every hit once, in event-id order, and no dropped record."""
    seqs = seqs_of(flood.reader)
    assert controls_of(flood.reader) == []
    assert len(seqs) == flood.sent
    assert seqs == sorted(set(seqs))


def test_the_tailor_memory_stays_bounded(flood: Flood) -> None:
    """Two stuck clients grow the Tailor by less than their buffers plus a fixed margin."""
    growth = flood.rss_peak_kb - flood.rss_before_kb
    print(f"Tailor RSS {flood.rss_before_kb} KiB before, {flood.rss_peak_kb} KiB peak, growth {growth} KiB")
    assert growth < 2 * BUFFER_BYTES // 1024 + RSS_MARGIN_KB


def assert_losses_reported(stuck: List[Record], flood: Flood) -> None:
    """``stuck`` got dropped records (each a positive count) whose counts plus its hits are all that was sent;
    its hits came once each, in event-id order, and the reading client got them too."""
    dropped = [b["dropped"] for b in controls_of(stuck, "dropped")]
    hits = seqs_of(stuck)
    assert dropped and all(n > 0 for n in dropped)
    assert len(hits) + sum(dropped) == flood.sent
    assert hits == sorted(set(hits)) and set(hits) <= set(seqs_of(flood.reader))


def test_a_stuck_json_client_learns_how_many_hits_it_lost(flood: Flood) -> None:
    """The stuck JSON client, once it reads, gets dropped records: their counts plus its hits are all that was sent."""
    assert_losses_reported(flood.stuck_json, flood)


def test_a_stuck_sse_client_learns_how_many_hits_it_lost(flood: Flood) -> None:
    """The same in SSE: ``event: dropped`` records plus the hit events account for every hit sent."""
    assert_losses_reported(flood.stuck_sse, flood)


def test_a_dropped_record_says_the_running_total(flood: Flood) -> None:
    """Each dropped record's ``dropped_total`` is the sum of the counts so far."""
    for records in (flood.stuck_json, flood.stuck_sse):
        bodies = controls_of(records, "dropped")
        totals = [b["dropped_total"] for b in bodies]
        running = [sum(b["dropped"] for b in bodies[: k + 1]) for k in range(len(bodies))]
        assert totals == running


def test_health_counts_the_dropped_hits(estrom: Estrom, flood: Flood) -> None:
    """Once the stuck tails are gone, the Tailor's health reports the hits it dropped for them."""
    lost = sum(b["dropped"] for r in (flood.stuck_json, flood.stuck_sse) for b in controls_of(r, "dropped"))

    def counted() -> object:
        status, body = http_get_json(f"http://127.0.0.1:{estrom.tailor_port}/api/v0.1/health")
        return body if body["tails"] == 0 else None

    body = wait_for("both stuck tails closed", counted, 20, estrom)
    assert body["dropped"] >= lost


def test_on_slow_close_ends_a_stuck_stream_with_a_slow_client_error(estrom: Estrom, flood: Flood) -> None:
    """With on_slow=close a client that does not read is ended with an estrom.error.slow_client record and the footer."""
    stuck = StuckClient(estrom.tailor_port, dict(QUERY, on_slow="close"))
    wait_for_header(stuck, b'"hits": [', estrom)
    lines = recentchange_lines()
    sent = post_ndjson(estrom, "events", lines) + post_ndjson(estrom, "events", lines)
    client = stuck.wake()
    records = client.read_to_end(timeout=60)
    stuck.close()
    errors = controls_of(records, "error")
    assert [e["error"] for e in errors] == ["estrom.error.slow_client"]
    assert errors[0]["message"]
    assert records[-1] == {"_estrom": errors[0]}  # nothing after the error but the footer
    assert client.parser.ended
    assert len(hits_of(records)) < sent
