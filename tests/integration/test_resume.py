"""A tail that lost its connection resumes where it was: every hit once, in order, or an explicit gap.

Each test tails its own query term on a real ``estrom up``: a first client reads
part of the stream and goes away, documents are posted meanwhile, a second
client resumes (``Last-Event-ID``, ``since=<event id>``, ``since=<time>``), and
a last document posted after the resume proves that the live stream continues
after the replay.  The union of what the two clients received is compared with
what was posted.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Iterator, List

import pytest

from beater.hits import received_ms
from tailor.cursor import parse_cursor
from tests.integration.conftest import Estrom
from tests.integration.tailclients import TailClient, controls_of, hits_of, open_tail, post_docs

SENTINEL = -1


@pytest.fixture(scope="module")
def estrom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estrom]:
    """A running ``estrom up`` with the default replay store."""
    instance = Estrom(tmp_path_factory.mktemp("estrom-resume"))
    instance.start()
    yield instance
    instance.stop()


def docs(term: str, numbers: range) -> List[Dict[str, Any]]:
    """Documents matching ``term``, numbered."""
    return [{"message": f"{term} number {n}", "n": n} for n in numbers]


def numbers(records: List[Dict[str, Any]]) -> List[int]:
    """The ``n`` of each hit among ``records``, in the order received."""
    return [hit["_source"]["n"] for hit in hits_of(records)]


def interrupted(estrom: Estrom, term: str, fmt: str, first: int, meanwhile: int, read: int = 3) -> TailClient:
    """A client reads at least ``read`` of ``first`` documents and leaves; ``meanwhile`` more are posted after it left."""
    client = open_tail(estrom, fmt, i="events", q=term)
    post_docs(estrom, "events", docs(term, range(first)))
    client.read_hits(read)
    client.close()
    post_docs(estrom, "events", docs(term, range(first, first + meanwhile)))
    return client


def continue_live(estrom: Estrom, resumed: TailClient, term: str) -> List[Dict[str, Any]]:
    """Post one more document and read the resumed tail until it arrives; return the resumed tail's records."""
    post_docs(estrom, "events", docs(term, range(SENTINEL, SENTINEL + 1)))
    resumed.read_until(lambda c: SENTINEL in numbers(c.records), what="the document posted after the resume")
    resumed.close()
    return resumed.records


def test_sse_resumes_after_last_event_id_with_every_hit_once(estrom: Estrom) -> None:
    """SSE: reconnecting with ``Last-Event-ID`` gets exactly what came after that event, then the live stream."""
    term = "resumesse"
    first = interrupted(estrom, term, "sse", first=20, meanwhile=10)
    last_id = first.parser.last_event_id
    last = hits_of(first.records)[-1]
    assert parse_cursor(last_id).seqs == {last["_beater"]: last["_seq"]}  # one Beater: its last hit
    second = open_tail(estrom, "sse", headers={"Last-Event-ID": last_id}, i="events", q=term)
    records = continue_live(estrom, second, term)
    assert numbers(first.records) + numbers(records) == list(range(30)) + [SENTINEL]
    assert controls_of(records) == []


@pytest.mark.parametrize("fmt", ["ndjson", "json"])
def test_since_an_event_id_resumes_with_every_hit_once(estrom: Estrom, fmt: str) -> None:
    """NDJSON and JSON: ``since=<_seq of the last hit seen>`` gets exactly the hits after it, in order."""
    term = f"resumeseq{fmt}"
    first = interrupted(estrom, term, fmt, first=20, meanwhile=10)
    last_seq = hits_of(first.records)[-1]["_seq"]
    second = open_tail(estrom, fmt, i="events", q=term, since=last_seq)
    records = continue_live(estrom, second, term)
    assert numbers(first.records) + numbers(records) == list(range(30)) + [SENTINEL]
    seqs = [h["_seq"] for h in hits_of(first.records) + hits_of(records)]
    assert seqs == sorted(set(seqs))
    assert controls_of(records) == []


def two_batches(estrom: Estrom, term: str) -> List[Dict[str, Any]]:
    """Five documents, then (a few milliseconds later) five more, all seen by a live tail; return the ten hits."""
    live = open_tail(estrom, "ndjson", i="events", q=term)
    post_docs(estrom, "events", docs(term, range(5)))
    live.read_hits(5)
    time.sleep(0.01)  # the second batch is received in a later millisecond than the first
    post_docs(estrom, "events", docs(term, range(5, 10)))
    hits = live.read_hits(10)
    live.close()
    return hits


@pytest.mark.parametrize("form", ["iso", "epoch_ms"])
def test_since_a_time_replays_what_was_received_from_then_on(estrom: Estrom, form: str) -> None:
    """``since=<ISO time>`` and ``since=<epoch ms>``: the hits received at or after that time, then the live stream."""
    term = f"resumetime{form.replace('_', '')}"
    hits = two_batches(estrom, term)
    moment = hits[5]["_received"]  # the first hit of the second batch
    since = moment if form == "iso" else str(received_ms(moment))
    expected = [h["_source"]["n"] for h in hits if received_ms(h["_received"]) >= received_ms(moment)]
    assert 5 <= len(expected) < 10
    resumed = open_tail(estrom, "ndjson", i="events", q=term, since=since)
    records = continue_live(estrom, resumed, term)
    assert numbers(records) == expected + [SENTINEL]
    assert controls_of(records) == []


def test_resume_by_subscription_id_gets_the_same_stream(estrom: Estrom) -> None:
    """A tail opened by query resumes by ``s=<its subscription id>&since=<seq>``: same hits, once each."""
    term = "resumebyid"
    first = interrupted(estrom, term, "json", first=10, meanwhile=5)
    subscription_id = first.parser.subscription_id
    assert subscription_id and first.headers["x-estrom-subscription-id"] == subscription_id
    last_seq = hits_of(first.records)[-1]["_seq"]
    second = open_tail(estrom, "json", s=subscription_id, since=last_seq)
    assert second.parser.subscription_id == subscription_id
    records = continue_live(estrom, second, term)
    assert numbers(first.records) + numbers(records) == list(range(15)) + [SENTINEL]


def test_last_event_id_header_wins_over_since_in_the_url(estrom: Estrom) -> None:
    """A browser reconnects to the URL it was given (with its since=) and says in a header where it really was."""
    term = "resumeheaderwins"
    first = interrupted(estrom, term, "sse", first=10, meanwhile=5)
    seen = hits_of(first.records)
    second = open_tail(estrom, "sse", headers={"Last-Event-ID": str(seen[-1]["_seq"])},
                       i="events", q=term, since=seen[0]["_seq"] - 1)
    records = continue_live(estrom, second, term)
    assert numbers(first.records) + numbers(records) == list(range(15)) + [SENTINEL]


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estrom]:
    """An ``estrom up`` whose replay store keeps only 10 documents per index."""
    instance = Estrom(tmp_path_factory.mktemp("estrom-small-store"), ["--replay-max-docs", "10"])
    instance.start()
    yield instance
    instance.stop()


def test_since_older_than_the_store_reaches_is_a_gap_then_the_stream_continues(small_store: Estrom) -> None:
    """Resuming from before what the store holds: a gap record first, then what it still has, then live hits."""
    term = "resumegap"
    live = open_tail(small_store, "ndjson", i="events", q=term)
    post_docs(small_store, "events", docs(term, range(50)))
    hits = live.read_hits(50)
    live.close()
    resumed = open_tail(small_store, "ndjson", i="events", q=term, since=hits[0]["_seq"])
    records = continue_live(small_store, resumed, term)
    gap = records[0].get("_estrom", {})
    assert gap.get("gap") is True, records[:3]
    assert controls_of(records) == [gap]
    replayed = numbers(records)[:-1]
    assert 1 <= len(replayed) <= 10
    assert replayed == list(range(50 - len(replayed), 50))
    assert gap["missed"] in (None, 49 - len(replayed))
    assert numbers(records)[-1] == SENTINEL
