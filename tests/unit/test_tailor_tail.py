"""One open tail as a push producer: what it writes, buffers, drops, skips and when it ends.

The tail is driven with a fake request that collects the bytes and a fake
clock, as Twisted would drive it: ``pauseProducing`` when the client's socket
stops draining, ``resumeProducing`` when it drains again.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, Dict, List, Optional, Tuple

from twisted.internet.task import Clock

from beater.hits import encode_hit
from router import contract
from tailor.stream import FOOTER, FORMATS, Delivered
from tailor.cursor import Cursor
from tailor.tail import Tail


class FakeRequest:
    """The parts of twisted.web's Request a Tail uses, recording what it was told."""

    def __init__(self) -> None:
        self.headers: Dict[bytes, bytes] = {}
        self.writes: List[bytes] = []
        self.producer: Any = None
        self.streaming: Optional[bool] = None
        self.unregistered = 0
        self.finished = 0
        self.channel = SimpleNamespace(transport=None)

    def setHeader(self, name: bytes, value: bytes) -> None:
        self.headers[name] = value

    def write(self, data: bytes) -> None:
        assert not self.finished, "write after finish"
        self.writes.append(data)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer, self.streaming = producer, streaming

    def unregisterProducer(self) -> None:
        self.unregistered += 1

    def finish(self) -> None:
        self.finished += 1

    @property
    def body(self) -> bytes:
        return b"".join(self.writes)


def hit(seq: int, beater: str = "b1") -> Delivered:
    """A delivered hit ``seq`` of ``beater`` (all hits with seqs of the same width have the same size)."""
    return Delivered(beater, seq, encode_hit({"_seq": seq, "_beater": beater, "msg": "m"}))


def hits(*seqs: int) -> List[Delivered]:
    """Delivered hits with these event ids."""
    return [hit(seq) for seq in seqs]


def opened(fmt: str = "json", **options: Any) -> Tuple[Tail, FakeRequest, Clock]:
    """An open tail over a fake request and a fake clock."""
    request, clock = FakeRequest(), Clock()
    tail = Tail(request, FORMATS[fmt], clock, "sub-1", **options)  # type: ignore[arg-type]
    tail.open()
    return tail, request, clock


def elements(request: FakeRequest) -> List[Any]:
    """The hits array of a JSON tail, closed with the footer if it is still open."""
    body = request.body if request.finished else request.body + FOOTER
    document = json.loads(body)
    assert document["subscription_id"] == "sub-1"
    return document["hits"]


def seqs(request: FakeRequest) -> List[int]:
    """The event ids of the hits written, in order (records left out)."""
    return [e["_seq"] for e in elements(request) if "_estrom" not in e]


def records(request: FakeRequest) -> List[Dict[str, Any]]:
    """The Tailor records written, in order."""
    return [e["_estrom"] for e in elements(request) if "_estrom" in e]


# --- opening ----------------------------------------------------------------------------------

def test_open_sends_headers_and_the_format_header() -> None:
    """The 200 carries the format's content type and the subscription id; the body starts with the header."""
    _, request, _ = opened()
    assert request.headers[b"content-type"] == FORMATS["json"].content_type
    assert request.headers[b"x-estrom-subscription-id"] == b"sub-1"
    assert request.headers[b"cache-control"] == b"no-cache"
    assert request.body == FORMATS["json"].header("sub-1")


def test_open_registers_the_tail_as_a_streaming_producer() -> None:
    """Twisted is told the tail is a push producer, so it pauses and resumes it."""
    tail, request, _ = opened()
    assert request.producer is tail
    assert request.streaming is True


# --- writing and buffering --------------------------------------------------------------------

def test_hits_are_written_at_once_while_not_paused() -> None:
    """A client that reads gets each event's hits in the same call, nothing buffered."""
    tail, request, _ = opened()
    tail.deliver(hits(1, 2))
    assert seqs(request) == [1, 2]
    assert not tail.pending


def test_hits_wait_while_paused() -> None:
    """While the client does not read, nothing more is written."""
    tail, request, _ = opened()
    tail.pauseProducing()
    before = request.body
    tail.deliver(hits(1, 2))
    assert request.body == before
    assert [h.seq for h in tail.pending] == [1, 2]


def test_resume_writes_the_hits_that_waited() -> None:
    """When the client reads again the buffered hits are written, in order, with no dropped record if none was dropped."""
    tail, request, _ = opened()
    tail.pauseProducing()
    tail.deliver(hits(1))
    tail.deliver(hits(2, 3))
    tail.resumeProducing()
    assert seqs(request) == [1, 2, 3]
    assert records(request) == []
    assert not tail.pending


def test_resume_writes_the_dropped_record_before_the_waiting_hits() -> None:
    """After an overflow the client first learns how many hits it lost, then gets the ones kept."""
    tail, request, _ = opened(max_hits=2)
    tail.pauseProducing()
    tail.deliver(hits(1, 2, 3, 4, 5))
    tail.resumeProducing()
    assert elements(request) == [
        {"_estrom": {"dropped": 3, "dropped_total": 3}},
        json.loads(hit(4).data),
        json.loads(hit(5).data),
    ]


def test_count_bound_drops_the_oldest_hits() -> None:
    """Past max_hits waiting, the oldest are dropped and the newest kept."""
    tail, request, _ = opened(max_hits=3)
    tail.pauseProducing()
    for seq in range(1, 8):
        tail.deliver(hits(seq))
    assert [h.seq for h in tail.pending] == [5, 6, 7]
    assert tail.dropped == 4


def test_byte_bound_drops_the_oldest_hits() -> None:
    """Past max_bytes waiting, the oldest are dropped and the newest kept, even below max_hits."""
    size = len(hit(1).data)
    tail, request, _ = opened(max_hits=1000, max_bytes=3 * size)
    tail.pauseProducing()
    tail.deliver(hits(1, 2, 3, 4, 5))
    assert [h.seq for h in tail.pending] == [3, 4, 5]
    assert tail.pending_bytes == 3 * size
    assert tail.dropped == 2


def test_a_hit_larger_than_the_byte_bound_is_dropped_while_paused() -> None:
    """A single hit bigger than the whole buffer cannot wait; it is counted as dropped."""
    tail, request, _ = opened(max_bytes=10)
    tail.pauseProducing()
    tail.deliver(hits(1))
    assert not tail.pending
    assert tail.pending_bytes == 0
    assert tail.dropped == 1


def test_dropped_plus_written_is_delivered() -> None:
    """Every delivered hit is either written to the client or counted as dropped, and the client is told the count."""
    tail, request, _ = opened(max_hits=4)
    delivered = 0
    seq = 0
    for round_ in range(5):
        tail.pauseProducing()
        for _ in range(3 + 2 * round_):
            seq += 1
            tail.deliver(hits(seq))
            delivered += 1
        tail.resumeProducing()
        tail.deliver(hits(seq + 1))
        seq += 1
        delivered += 1
    told = sum(r["dropped"] for r in records(request))
    assert tail.written == len(seqs(request))
    assert tail.written + tail.dropped_total == delivered
    assert told == tail.dropped_total > 0


def test_dropped_total_accumulates_across_overflows() -> None:
    """Each dropped record says how many since the last one and how many in all."""
    tail, request, _ = opened(max_hits=1)
    for first in (1, 10):
        tail.pauseProducing()
        tail.deliver(hits(first, first + 1, first + 2))
        tail.resumeProducing()
    assert records(request) == [{"dropped": 2, "dropped_total": 2}, {"dropped": 2, "dropped_total": 4}]


def test_pause_during_a_flush_keeps_the_rest_waiting() -> None:
    """A client that stops reading again is not written to until it resumes once more."""
    tail, request, _ = opened()
    tail.pauseProducing()
    tail.deliver(hits(1))
    tail.resumeProducing()
    tail.pauseProducing()
    tail.deliver(hits(2))
    assert seqs(request) == [1]
    tail.resumeProducing()
    assert seqs(request) == [1, 2]


# --- on_slow=close ----------------------------------------------------------------------------

def test_on_slow_close_ends_with_an_error_record_and_finishes() -> None:
    """With on_slow=close the first overflow ends the stream: an error record, the footer, finish()."""
    closed: List[Tail] = []
    tail, request, _ = opened(max_hits=2, on_slow="close", on_closed=closed.append)
    tail.deliver(hits(1))
    tail.pauseProducing()
    tail.deliver(hits(2, 3, 4))
    assert request.finished == 1
    assert request.unregistered == 1
    assert tail.closed and closed == [tail]
    assert request.body.endswith(FOOTER)
    assert seqs(request) == [1]
    error = records(request)[-1]
    assert error["error"] == contract.ERROR_SLOW_CLIENT
    assert error["dropped"] == 1
    assert "message" in error


def test_on_slow_close_in_sse_is_an_error_event() -> None:
    """In SSE the error is an ``event: error`` before the end."""
    tail, request, _ = opened("sse", max_hits=1, on_slow="close")
    tail.pauseProducing()
    tail.deliver(hits(1, 2))
    assert b"event: error\ndata: " in request.body
    assert request.finished == 1


def test_on_slow_close_writes_nothing_after_finishing() -> None:
    """Hits delivered after the tail was closed are ignored."""
    tail, request, _ = opened(max_hits=1, on_slow="close")
    tail.pauseProducing()
    tail.deliver(hits(1, 2))
    body = request.body
    tail.deliver(hits(3))
    tail.resumeProducing()
    assert request.body == body


# --- dedupe by event id -----------------------------------------------------------------------

def test_hits_not_newer_than_the_last_written_are_skipped() -> None:
    """A hit whose event id is <= the last one written is never written twice."""
    tail, request, _ = opened()
    tail.deliver(hits(1, 2, 3))
    tail.deliver(hits(2, 3, 4))
    tail.deliver(hits(4))
    assert seqs(request) == [1, 2, 3, 4]


def test_hits_up_to_after_are_skipped() -> None:
    """A tail resumed after event id N writes only hits with ids above N."""
    tail, request, _ = opened(since=Cursor(any_seq=10))
    tail.deliver(hits(9, 10, 11))
    assert seqs(request) == [11]


def test_dedupe_applies_to_hits_waiting_in_the_buffer() -> None:
    """A hit already waiting is not queued a second time."""
    tail, request, _ = opened()
    tail.pauseProducing()
    tail.deliver(hits(1, 2))
    tail.deliver(hits(2, 3))
    tail.resumeProducing()
    assert seqs(request) == [1, 2, 3]


# --- hold, replay, release --------------------------------------------------------------------

def test_held_live_hits_wait_for_the_replay() -> None:
    """While held, live hits are not written."""
    tail, request, _ = opened(since=Cursor(any_seq=2))
    tail.hold()
    tail.deliver(hits(5, 6))
    assert seqs(request) == []


def test_replay_comes_first_then_held_hits_minus_the_overlap() -> None:
    """Replayed hits are written first; the held live hits follow, without those the replay covered."""
    tail, request, _ = opened(since=Cursor(any_seq=2))
    tail.hold()
    tail.deliver(hits(5, 6))
    tail.deliver(hits(7))
    assert tail.replayed(hits(3, 4, 5, 6)) is None
    tail.release_held()
    assert seqs(request) == [3, 4, 5, 6, 7]


def test_replay_pages_are_written_in_order() -> None:
    """Several replay pages, then the release, make one ordered stream without repeats."""
    tail, request, _ = opened()
    tail.hold()
    tail.deliver(hits(4))
    tail.replayed(hits(1, 2))
    tail.replayed(hits(3, 4))
    tail.release_held()
    tail.deliver(hits(5))
    assert seqs(request) == [1, 2, 3, 4, 5]


def test_after_release_live_hits_are_written_at_once() -> None:
    """Once released, the tail is an ordinary live tail again."""
    tail, request, _ = opened()
    tail.hold()
    tail.release_held()
    tail.deliver(hits(1))
    assert seqs(request) == [1]


def test_replayed_to_a_paused_client_answers_a_deferred_fired_on_resume() -> None:
    """The replay asks for its next page only once the client took this one."""
    tail, request, _ = opened()
    tail.hold()
    tail.pauseProducing()
    waiter = tail.replayed(hits(1, 2))
    assert waiter is not None
    fired: List[Any] = []
    waiter.addCallback(fired.append)
    assert fired == []
    tail.resumeProducing()
    assert fired == [None]
    assert seqs(request) == [1, 2]


def test_closing_wakes_a_waiting_replay() -> None:
    """A replay waiting for a client that left is woken (and then stops)."""
    tail, _, _ = opened()
    tail.pauseProducing()
    waiter = tail.replayed(hits(1))
    fired: List[Any] = []
    waiter.addCallback(fired.append)  # type: ignore[union-attr]
    tail.close()
    assert fired == [None]


def test_gap_notice_is_a_record() -> None:
    """A gap in a resumed stream reaches the client as a record."""
    tail, request, _ = opened()
    tail.notice("gap", gap=True, missed=3)
    tail.deliver(hits(1))
    assert elements(request) == [{"_estrom": {"gap": True, "missed": 3}}, json.loads(hit(1).data)]


def test_replay_page_reaches_a_reading_client_whole_after_held_hits_were_trimmed() -> None:
    """A client that reads gets every replayed hit, even after the held live hits were trimmed to bound memory."""
    tail, request, _ = opened(max_hits=2)
    tail.hold()
    tail.deliver(hits(1, 2, 3, 4))  # live hits outrun the replay: the held list keeps only 3 and 4
    tail.replayed(hits(1, 2, 3, 4))  # the replay store has them all, and the client is not paused
    tail.release_held()
    assert seqs(request) == [1, 2, 3, 4]


def test_held_hits_covered_by_the_replay_are_not_reported_dropped() -> None:
    """Held live hits trimmed to bound memory but then written by the replay were not lost: no dropped record."""
    tail, request, _ = opened(max_hits=2)
    tail.hold()
    tail.deliver(hits(1, 2, 3))  # the held list keeps 2 and 3
    tail.replayed(hits(1, 2))
    tail.replayed(hits(3))
    tail.release_held()
    assert seqs(request) == [1, 2, 3]
    assert records(request) == []


def test_on_slow_close_does_not_close_a_reading_client_during_a_long_replay() -> None:
    """Live hits outnumbering the buffer while the Tailor replays are not the client's slowness."""
    tail, request, _ = opened(max_hits=2, on_slow="close")
    tail.hold()
    tail.deliver(hits(1, 2, 3))
    assert not tail.closed
    assert request.finished == 0


# --- the stream's end -------------------------------------------------------------------------

def test_limit_ends_with_the_footer_after_exactly_n_hits() -> None:
    """With limit=N the N-th hit is followed by the footer and nothing more; the request is finished."""
    tail, request, _ = opened(limit=3)
    tail.deliver(hits(1, 2))
    tail.deliver(hits(3, 4, 5))
    tail.deliver(hits(6))
    assert request.finished == 1
    assert request.body.endswith(b"\n]}\n")
    assert elements(request) == [json.loads(hit(n).data) for n in (1, 2, 3)]
    assert tail.closed


def test_limit_counts_hits_only_not_records() -> None:
    """Dropped records do not use up the limit."""
    tail, request, _ = opened(limit=2, max_hits=1)
    tail.pauseProducing()
    tail.deliver(hits(1, 2, 3))
    tail.resumeProducing()
    assert not tail.closed
    tail.deliver(hits(4))
    assert seqs(request) == [3, 4]
    assert request.finished == 1


def test_timeout_writes_the_footer_when_the_clock_reaches_it() -> None:
    """timeout=T ends the stream with the bare footer T seconds after it opened, not before."""
    tail, request, clock = opened(timeout=5.0)
    tail.deliver(hits(1))
    clock.advance(4.9)
    assert request.finished == 0
    clock.advance(0.1)
    assert request.finished == 1
    assert request.body == FORMATS["json"].header("sub-1") + hit(1).data + b"\n]}\n"


def test_timeout_writes_what_was_waiting_first() -> None:
    """A paused client's buffered hits are written before the footer when the timeout ends it."""
    tail, request, clock = opened(timeout=1.0)
    tail.pauseProducing()
    tail.deliver(hits(1, 2))
    clock.advance(1.0)
    assert seqs(request) == [1, 2]
    assert request.finished == 1


def test_max_tail_s_writes_an_end_record() -> None:
    """The Tailor's longest tail duration ends the stream with an end record saying so, then the footer."""
    tail, request, clock = opened(max_tail_s=60.0)
    clock.advance(60.0)
    assert request.finished == 1
    assert records(request) == [{"end": "max_tail_s", "max_tail_s": 60.0}]
    assert request.body.endswith(b"\n]}\n")


def test_sse_limit_writes_an_end_event() -> None:
    """In SSE even a limit is said, so the browser does not reconnect."""
    tail, request, _ = opened("sse", limit=1)
    tail.deliver(hits(1))
    assert request.body.endswith(b'event: end\ndata: {"_estrom":{"end":"limit"}}\n\n')


def test_ndjson_timeout_writes_an_end_line() -> None:
    """In NDJSON the timeout is a last line."""
    tail, request, clock = opened("ndjson", timeout=2.0)
    clock.advance(2.0)
    assert request.body.endswith(b'{"_estrom":{"end":"timeout"}}\n')


# --- heartbeats -------------------------------------------------------------------------------

def test_heartbeat_on_an_idle_tail() -> None:
    """A tail that wrote nothing for heartbeat_s gets a heartbeat."""
    tail, request, clock = opened(heartbeat_s=15.0)
    header = request.body
    clock.advance(15.0)
    assert request.body == header + FORMATS["json"].heartbeat()


def test_no_heartbeat_before_the_interval() -> None:
    """Nothing is written before heartbeat_s has passed."""
    tail, request, clock = opened(heartbeat_s=15.0)
    writes = len(request.writes)
    clock.advance(14.9)
    assert len(request.writes) == writes


def test_no_heartbeat_after_hits_were_written() -> None:
    """Hits in the interval are traffic enough: no heartbeat at its end."""
    tail, request, clock = opened(heartbeat_s=15.0)
    clock.advance(10.0)
    tail.deliver(hits(1))
    writes = len(request.writes)
    clock.advance(5.0)
    assert len(request.writes) == writes


def test_no_heartbeat_while_paused() -> None:
    """A client that does not read gets no heartbeats piling up in its buffer."""
    tail, request, clock = opened(heartbeat_s=15.0)
    tail.pauseProducing()
    writes = len(request.writes)
    clock.advance(15.0)
    clock.advance(15.0)
    assert len(request.writes) == writes


def test_sse_heartbeat_is_a_comment() -> None:
    """In SSE the heartbeat is a comment line."""
    tail, request, clock = opened("sse", heartbeat_s=15.0)
    clock.advance(15.0)
    assert request.writes[-1] == b":\n\n"


# --- closing ----------------------------------------------------------------------------------

def test_close_calls_on_closed_once() -> None:
    """Closing twice releases the subscription once."""
    closed: List[Tail] = []
    tail, _, _ = opened(on_closed=closed.append)
    tail.close()
    tail.close()
    assert closed == [tail]


def test_close_stops_the_timers() -> None:
    """After close no timeout, max_tail_s or heartbeat is left on the clock."""
    tail, request, clock = opened(timeout=5.0, max_tail_s=60.0, heartbeat_s=1.0)
    assert clock.getDelayedCalls()
    tail.close()
    assert clock.getDelayedCalls() == []
    writes = len(request.writes)
    clock.advance(100.0)
    assert len(request.writes) == writes
    assert request.finished == 0


def test_close_drops_what_was_waiting() -> None:
    """A closed tail holds no buffered hits."""
    tail, _, _ = opened()
    tail.pauseProducing()
    tail.deliver(hits(1, 2))
    tail.close()
    assert not tail.pending and tail.pending_bytes == 0


def test_finishing_calls_on_closed_once() -> None:
    """A tail ended by its limit releases its subscription exactly once."""
    closed: List[Tail] = []
    tail, _, _ = opened(limit=1, on_closed=closed.append)
    tail.deliver(hits(1))
    tail.close()
    assert closed == [tail]


def test_stop_producing_closes() -> None:
    """The connection going away closes the tail and releases it."""
    closed: List[Tail] = []
    tail, request, clock = opened(timeout=5.0, on_closed=closed.append)
    tail.stopProducing()
    assert tail.closed
    assert closed == [tail]
    assert clock.getDelayedCalls() == []


def test_nothing_is_written_after_close() -> None:
    """Hits, notices and resumes after close write nothing."""
    tail, request, _ = opened()
    tail.close()
    body = request.body
    tail.deliver(hits(1))
    tail.notice("gap", gap=True, missed=None)
    tail.resumeProducing()
    tail.finish()
    assert request.body == body


# --- several Beaters --------------------------------------------------------------------------

def test_hits_of_two_beaters_with_the_same_seqs_are_all_written() -> None:
    """Sequence numbers are per Beater: b2's hit 1 is not b1's hit 1."""
    tail, request, _ = opened()
    tail.deliver([hit(1, "b1"), hit(2, "b1")])
    tail.deliver([hit(1, "b2")])
    tail.deliver([hit(3, "b1"), hit(2, "b2")])
    assert [(e["_beater"], e["_seq"]) for e in elements(request)] == [("b1", 1), ("b1", 2), ("b2", 1), ("b1", 3), ("b2", 2)]


def test_a_hit_already_written_is_skipped_per_beater() -> None:
    """A repeat of b2's hit 1 goes; b1's hit 1 after b2's hit 5 does not."""
    tail, request, _ = opened()
    tail.deliver([hit(5, "b2"), hit(1, "b2")])
    tail.deliver([hit(1, "b1"), hit(5, "b2")])
    assert [(e["_beater"], e["_seq"]) for e in elements(request)] == [("b2", 5), ("b1", 1)]


def test_a_resumed_tail_skips_what_its_cursor_covers_on_each_beater() -> None:
    """``since=@t,b1:10`` skips b1's hits up to 10 and none of b2's."""
    tail, request, _ = opened(since=Cursor({"b1": 10}, floor_ms=1_700_000_000_000))
    tail.deliver([hit(9, "b1"), hit(11, "b1"), hit(3, "b2")])
    assert [(e["_beater"], e["_seq"]) for e in elements(request)] == [("b1", 11), ("b2", 3)]


def test_sse_ids_are_the_cursor_after_each_hit() -> None:
    """A browser's Last-Event-ID names every Beater it heard from, with the tail's floor."""
    tail, request, _ = opened("sse", since=Cursor(floor_ms=1_700_000_000_000))
    tail.deliver([hit(4, "b1"), hit(7, "b2"), hit(5, "b1")])
    ids = [line[4:] for line in request.body.decode().splitlines() if line.startswith("id: ")]
    assert ids == ["@1700000000000,b1:4", "@1700000000000,b1:4,b2:7", "@1700000000000,b1:5,b2:7"]


def test_the_cursor_of_a_dropped_hit_is_not_in_the_next_sse_id() -> None:
    """Ids say what was written: a client that resumes after a drop is replayed what it did not get."""
    tail, request, _ = opened("sse", since=Cursor(floor_ms=1), max_hits=1)
    tail.pauseProducing()
    tail.deliver([hit(1, "b1"), hit(2, "b2")])  # b1:1 is dropped for b2:2
    tail.resumeProducing()
    ids = [line[4:] for line in request.body.decode().splitlines() if line.startswith("id: ")]
    assert ids == ["@1,b2:2"]
