"""Counts shared per subscription: one hub listener per window spec, windows closed on the clock, records to every tail;
and the counts request that asks for them."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Tuple

import pytest
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock

from beater.hits import encode_hit
from tailor.counts import COUNTS_BEATER, CountsAggregator, CountsHub
from tailor.cursor import Cursor
from tailor.params import DEFAULT_LATENESS_MS, BadRequest, parse_counts
from tailor.stream import Delivered
from tailor.tail import fresh_hits
from tailor.windows import WindowSpec, iso_ms
from tests.unit.deferreds import result

T0 = 1_764_590_400_000
SPEC = WindowSpec(window_ms=1000, by="wiki")


class FakeHub:
    """The parts of SubscriptionHub an aggregator uses: acquire (answered by the test) and release."""

    def __init__(self) -> None:
        self.acquired: List[Tuple[str, Any]] = []
        self.released: List[Tuple[str, Any]] = []
        self.pending: List["Deferred[None]"] = []

    async def acquire(self, subscription_id: str, sink: Any) -> None:
        self.acquired.append((subscription_id, sink))
        d: "Deferred[None]" = Deferred()
        self.pending.append(d)
        await d

    def release(self, subscription_id: str, sink: Any) -> None:
        self.released.append((subscription_id, sink))


class RecordingTail:
    def __init__(self) -> None:
        self.items: List[Delivered] = []
        self.notices: List[Tuple[str, Any]] = []

    def deliver(self, hits: List[Delivered]) -> None:
        self.items.extend(hits)

    def notice(self, kind: str, **details: Any) -> None:
        self.notices.append((kind, details))

    @property
    def records(self) -> List[Any]:
        return [json.loads(i.data) for i in self.items]


def clock_at(ms: int) -> Clock:
    clock = Clock()
    clock.advance(ms / 1000)
    return clock


def delivered(received_ms: int, seq: int, wiki: str) -> Delivered:
    hit = {"_index": "w", "_id": str(seq), "_seq": seq, "_beater": "b", "_received": iso_ms(received_ms), "_source": {"wiki": wiki}}
    return Delivered("b", seq, encode_hit(hit))


def joined(counts: CountsHub, key: Any, tail: Any, partial: bool = True) -> "Deferred[CountsAggregator]":
    return ensureDeferred(counts.join(key, tail, partial))


def started(clock: Clock, *tails: RecordingTail, provisional_s: float = 0.0) -> Tuple[FakeHub, CountsHub, CountsAggregator]:
    hub = FakeHub()
    counts = CountsHub(hub, clock)
    key = ("sub", SPEC, provisional_s)
    joins = [joined(counts, key, tail) for tail in tails]
    for d in hub.pending:
        d.callback(None)
    aggregators = [result(j) for j in joins]
    return hub, counts, aggregators[0]


def test_a_closed_window_reaches_the_tail_as_an_encoded_record() -> None:
    clock, tail = clock_at(T0), RecordingTail()
    _, _, aggregator = started(clock, tail)
    aggregator.deliver([delivered(T0 + 100, 1, "enwiki"), delivered(T0 + 200, 2, "enwiki")])
    clock.advance(1.0)
    (record,) = tail.records
    assert (record["count"], record["groups"], record["window"]["start"]) == (2, [{"key": "enwiki", "count": 2}], iso_ms(T0))


def test_nothing_is_sent_before_a_window_closes() -> None:
    clock, tail = clock_at(T0), RecordingTail()
    _, _, aggregator = started(clock, tail)
    aggregator.deliver([delivered(T0 + 100, 1, "enwiki")])
    clock.advance(0.999)
    assert tail.items == []


def test_every_window_is_sent_as_the_clock_passes_it_even_an_empty_one() -> None:
    clock, tail = clock_at(T0), RecordingTail()
    started(clock, tail)
    for _ in range(3):
        clock.advance(1.0)
    assert [r["count"] for r in tail.records] == [0, 0, 0]


def test_window_records_come_from_the_counts_pseudo_beater_with_growing_seqs_that_a_tail_never_drops() -> None:
    clock, tail = clock_at(T0), RecordingTail()
    started(clock, tail)
    for _ in range(3):
        clock.advance(1.0)
    assert [(i.beater, i.seq) for i in tail.items] == [(COUNTS_BEATER, 1), (COUNTS_BEATER, 2), (COUNTS_BEATER, 3)]
    assert fresh_hits(Cursor(floor_ms=T0), tail.items) == tail.items


def test_tails_of_the_same_spec_share_one_aggregator_and_one_hub_listener() -> None:
    clock, a, b = clock_at(T0), RecordingTail(), RecordingTail()
    hub, counts, aggregator = started(clock, a, b)
    assert len(hub.acquired) == 1 and counts.aggregators == 1
    aggregator.deliver([delivered(T0 + 1, 1, "x")])
    clock.advance(1.0)
    assert a.items == b.items and a.records[0]["count"] == 1


def test_a_different_spec_gets_its_own_aggregator() -> None:
    clock = clock_at(T0)
    hub, counts, _ = started(clock, RecordingTail())
    other = joined(counts, ("sub", WindowSpec(window_ms=2000), 0.0), RecordingTail())
    hub.pending[-1].callback(None)
    result(other)
    assert counts.aggregators == 2 and len(hub.acquired) == 2


def test_the_last_tail_leaving_stops_the_aggregator_and_releases_the_subscription() -> None:
    clock, a, b = clock_at(T0), RecordingTail(), RecordingTail()
    hub, counts, aggregator = started(clock, a, b)
    counts.leave(aggregator, a)
    assert hub.released == []
    counts.leave(aggregator, b)
    assert hub.released == [("sub", aggregator)] and counts.aggregators == 0
    assert clock.getDelayedCalls() == []


def test_a_tail_that_left_gets_no_more_windows() -> None:
    clock, a, b = clock_at(T0), RecordingTail(), RecordingTail()
    _, counts, aggregator = started(clock, a, b)
    counts.leave(aggregator, a)
    clock.advance(1.0)
    assert a.items == [] and len(b.items) == 1


def test_a_failed_subscribe_fails_every_waiting_tail_and_leaves_no_aggregator() -> None:
    clock = clock_at(T0)
    hub = FakeHub()
    counts = CountsHub(hub, clock)
    key = ("sub", SPEC, 0.0)
    first, second = joined(counts, key, RecordingTail()), joined(counts, key, RecordingTail())
    hub.pending[0].errback(ConnectionError("router down"))
    for d in (first, second):
        with pytest.raises(ConnectionError):
            result(d)
    assert counts.aggregators == 0


def test_a_tail_that_refuses_partial_windows_skips_the_first_partial_one() -> None:
    clock = clock_at(T0 + 500)
    hub = FakeHub()
    counts = CountsHub(hub, clock)
    whole, every = RecordingTail(), RecordingTail()
    key = ("sub", SPEC, 0.0)
    joins = [joined(counts, key, whole, partial=False), joined(counts, key, every)]
    hub.pending[0].callback(None)
    [result(j) for j in joins]
    clock.advance(0.5)
    clock.advance(1.0)
    assert [r["window"]["partial"] for r in every.records] == [True, False]
    assert [r["window"]["partial"] for r in whole.records] == [False]


def test_a_gap_makes_open_windows_partial_and_is_passed_on() -> None:
    clock, tail = clock_at(T0), RecordingTail()
    _, _, aggregator = started(clock, tail)
    aggregator.notice("gap", gap=True, missed=None)
    clock.advance(1.0)
    assert tail.notices == [("gap", {"gap": True, "missed": None})]
    assert tail.records[0]["window"]["partial"] is True


def test_provisional_records_are_sent_on_their_interval() -> None:
    clock, tail = clock_at(T0), RecordingTail()
    _, _, aggregator = started(clock, tail, provisional_s=0.25)
    aggregator.deliver([delivered(T0 + 1, 1, "x")])
    clock.advance(0.25)
    assert [(r["count"], r["window"]["final"]) for r in tail.records] == [(1, False)]


def test_a_hit_that_is_not_json_still_counts() -> None:
    clock, tail = clock_at(T0), RecordingTail()
    _, _, aggregator = started(clock, tail)
    aggregator.deliver([Delivered("b", 1, b"not json")])
    clock.advance(1.0)
    assert tail.records[0]["count"] == 1


# --- the counts request (tailor/params.py) -------------------------------------------------------

QUERY = {"i": ["wiki"], "q": ["type:edit"]}


def counts_request(headers: Any = None, **args: str) -> Any:
    return parse_counts({**QUERY, **{k: [v] for k, v in args.items()}}, headers or {})


def refused_part(**args: str) -> str:
    with pytest.raises(BadRequest) as refused:
        counts_request(**args)
    return refused.value.part


def test_a_counts_request_defaults_to_ten_second_windows_top_ten_and_a_second_of_lateness() -> None:
    wanted = counts_request()
    assert (wanted.window_ms, wanted.by, wanted.top, wanted.time_field) == (10_000, None, 10, None)
    assert (wanted.lateness_ms, wanted.provisional_ms, wanted.partial) == (DEFAULT_LATENESS_MS, 0, True)


def test_a_counts_request_takes_the_docs_parameters() -> None:
    wanted = counts_request(format="sse", limit="3", timeout="60")
    assert (wanted.tail.format.name, wanted.tail.limit, wanted.tail.timeout, wanted.tail.args) == ("sse", 3, 60.0, ("wiki", "type:edit", "or"))


def test_a_counts_request_reads_window_by_top_time_field_lateness_provisional_and_partial() -> None:
    wanted = counts_request(window="1m", by="wiki", top="3", time_field="meta.dt", lateness="5s", provisional="2s", partial="false")
    assert (wanted.window_ms, wanted.by, wanted.top, wanted.time_field) == (60_000, "wiki", 3, "meta.dt")
    assert (wanted.lateness_ms, wanted.provisional_ms, wanted.partial) == (5000, 2000, False)


def test_lateness_s_is_the_same_as_lateness_in_seconds() -> None:
    assert counts_request(lateness_s="2.5").lateness_ms == 2500


@pytest.mark.parametrize("args, part", [
    ({"window": "500ms"}, "window=500ms"),
    ({"window": "2h"}, "window=2h"),
    ({"window": "soon"}, "window=soon"),
    ({"top": "0"}, "top=0"),
    ({"top": "101"}, "top=101"),
    ({"lateness": "-1s"}, "lateness=-1s"),
    ({"provisional": "100ms"}, "provisional=100ms"),
    ({"window": "10s", "provisional": "20s"}, "provisional=20s"),
    ({"partial": "maybe"}, "partial=maybe"),
    ({"by": " "}, "by= "),
    ({"time_field": "x" * 300}, "time_field=" + "x" * 300),
    ({"since": "0"}, "since=0"),
    ({"format": "xml"}, "format=xml"),
])
def test_a_bad_counts_parameter_is_refused_by_name(args: Dict[str, str], part: str) -> None:
    assert refused_part(**args) == part


def test_a_reconnecting_event_source_is_not_refused_but_noted() -> None:
    wanted = counts_request(headers={"last-event-id": "@1764590400000,counts:3"})
    assert wanted.resumed and wanted.tail.since is None
