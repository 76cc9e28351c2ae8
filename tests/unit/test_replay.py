"""The replay store: what a subscription matched, since a seq or a time, and whether that answer is whole."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Sequence, Set

import pytest

from beater.hits import encode_hit, make_hit
from beater.pipeline import group_by_subscription
from beater.replay import ReplayPage, ReplayStore


class WallClock:
    """A settable wall clock, kept in whole milliseconds so _received strings and ms() agree exactly."""

    def __init__(self) -> None:
        self._ms = 1_800_000_000_000

    @property
    def now(self) -> float:
        return self._ms / 1000

    @now.setter
    def now(self, seconds: float) -> None:
        self._ms = round(seconds * 1000)

    def __call__(self) -> float:
        return (self._ms + 0.5) / 1000  # mid-millisecond: the store's int(s * 1000) gives ms() back

    def ms(self) -> int:
        return self._ms

    def iso(self) -> str:
        moment = datetime.fromtimestamp(self._ms // 1000, timezone.utc).replace(microsecond=self._ms % 1000 * 1000)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Feed:
    """Feeds a store as the pipeline does: consecutive seqs of one index, a batch sharing one _received."""

    def __init__(self, clock: WallClock, recorded: Optional[Set[str]] = None, **bounds: Any) -> None:
        self.clock = clock
        self.recorded = recorded if recorded is not None else {"a", "b"}
        self.store = ReplayStore(lambda sub_id: sub_id in self.recorded, clock=clock, **bounds)
        self.next_seq = {"i": 1, "j": 1}
        self.hits: Dict[int, Dict[str, Any]] = {}

    def batch(self, *matches: Sequence[str], index: str = "i", advance: float = 0.001) -> List[int]:
        """One slice: a document per entry of ``matches``, matching those ids; returns their seqs."""
        self.clock.now += advance  # each batch a moment after the last: received times grow
        first = self.next_seq[index]
        self.next_seq[index] = first + len(matches)
        hits = [make_hit(index, {"n": first + k}, first + k, self.clock.iso(), f"d{first + k}") for k in range(len(matches))]
        for hit in hits:
            self.hits[hit["_seq"]] = hit
        self.store.record(index, hits, group_by_subscription(hits, matches))
        return [h["_seq"] for h in hits]

    def since(self, sub_id: str = "a", seq: Optional[int] = None, ms: Optional[int] = None, index: str = "i",
              limit: int = 1000, max_bytes: int = 1 << 20) -> ReplayPage:
        return self.store.replay(index, sub_id, since_seq=seq, since_ms=ms, limit=limit, max_bytes=max_bytes)


def seqs(page: ReplayPage) -> List[int]:
    return [seq for seq, _ in page.hits]


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


@pytest.fixture
def feed(clock: WallClock) -> Feed:
    return Feed(clock)


# --- cursors --------------------------------------------------------------------------------------


def test_since_a_seq_answers_the_hits_after_it(feed: Feed) -> None:
    """since {"seq": n} is exclusive: hits with _seq > n, ascending, and nothing is missing."""
    feed.store.track("a")
    feed.batch(["a"], ["a"], ["b"], ["a"])
    page = feed.since(seq=2)
    assert seqs(page) == [4]
    assert (page.gap, page.missed, page.more) == (False, 0, False)


def test_since_a_time_answers_the_hits_received_at_or_after_it(feed: Feed, clock: WallClock) -> None:
    """since {"time_ms": t} is inclusive: a hit received exactly at t is included."""
    feed.store.track("a")
    feed.batch(["a"])
    feed.batch(["a"], ["a"])
    at = clock.ms()  # the second batch's _received
    feed.batch(["a"])
    page = feed.since(ms=at)
    assert seqs(page) == [2, 3, 4]
    assert (page.gap, page.missed) == (False, 0)


def test_hits_are_the_bytes_a_tail_writes(feed: Feed) -> None:
    """Each hit is [seq, encode_hit(hit)]: compact JSON, the same bytes as a live hit."""
    feed.store.track("a")
    [seq] = feed.batch(["a"])
    [(got_seq, data)] = feed.since(seq=0).hits
    assert got_seq == seq and data == encode_hit(feed.hits[seq])
    assert json.loads(data)["_seq"] == seq


def test_the_answer_is_json_with_hits_gap_missed_and_more(feed: Feed) -> None:
    """to_json is the RPC's answer: hits as [seq, bytes] pairs, gap, missed, more."""
    feed.store.track("a")
    feed.batch(["a"])
    answer = feed.since(seq=0).to_json()
    assert set(answer) == {"hits", "gap", "missed", "more"}
    assert answer["hits"][0][0] == 1 and isinstance(answer["hits"][0][1], bytes)


def test_a_page_holds_at_most_limit_hits_and_says_more(feed: Feed) -> None:
    """With more hits than limit the page says more; asking again since its last seq gets the rest."""
    feed.store.track("a")
    feed.batch(*[["a"]] * 5)
    first = feed.since(seq=0, limit=2)
    assert seqs(first) == [1, 2] and first.more
    second = feed.since(seq=seqs(first)[-1], limit=10)
    assert seqs(second) == [3, 4, 5] and not second.more and not second.gap


def test_a_page_stops_at_the_byte_cap_but_always_carries_one_hit(feed: Feed) -> None:
    """The byte cap cuts a page short (more=True); a hit bigger than the cap still goes alone."""
    feed.store.track("a")
    feed.batch(["a"], ["a"], ["a"])
    one = len(feed.since(seq=0).hits[0][1])
    page = feed.since(seq=0, max_bytes=2 * one + 1)
    assert seqs(page) == [1, 2] and page.more
    assert seqs(feed.since(seq=0, max_bytes=1)) == [1]


def test_a_seq_beyond_the_newest_answers_nothing_and_no_gap(feed: Feed) -> None:
    """Nothing has happened after the newest seq: an empty, whole answer."""
    feed.store.track("a")
    feed.batch(["a"])
    page = feed.since(seq=99)
    assert (page.hits, page.gap, page.missed) == ([], False, 0)


# --- what is recorded -----------------------------------------------------------------------------


def test_documents_matched_only_by_unrecorded_subscriptions_are_not_stored(feed: Feed) -> None:
    """A hit of a subscription nobody listens to (nor did recently) costs the store nothing."""
    feed.batch(["z"], ["z", "y"])
    assert feed.store.stats()["documents"] == 0 and feed.store.stats()["bytes"] == 0


def test_a_document_matched_by_several_subscriptions_is_stored_once(feed: Feed) -> None:
    """One copy of the bytes, one seq per recorded subscription."""
    feed.batch(["a", "b", "z"])
    stats = feed.store.stats()
    assert (stats["documents"], stats["pairs"]) == (1, 2)
    assert stats["bytes"] == len(encode_hit(feed.hits[1]))
    assert feed.since("a", seq=0).hits == feed.since("b", seq=0).hits


def test_a_quiet_tracked_subscription_resumes_since_it_was_tracked_without_a_gap(feed: Feed, clock: WallClock) -> None:
    """Tracked (registered / subscribed) before its first hit: a replay since then is whole."""
    feed.batch(["b"])  # other traffic before
    clock.now += 0.01
    feed.store.track("a")
    tracked_at = clock.ms()
    feed.batch(["b"])
    assert (feed.since(ms=tracked_at).gap, feed.since(seq=1).gap) == (False, False)
    feed.batch(["a"])
    page = feed.since(ms=tracked_at)
    assert seqs(page) == [3] and not page.gap


# --- gaps -----------------------------------------------------------------------------------------


def test_count_eviction_makes_a_gap_and_counts_what_was_missed(clock: WallClock) -> None:
    """Beyond max_docs the oldest documents go; a replay reaching back to them says how many of its hits went."""
    feed = Feed(clock, max_docs=3)
    feed.store.track("a")
    feed.batch(["a"], ["b"], ["a"], ["a"], ["a"])  # documents 1 and 2 are evicted
    page = feed.since(seq=0)
    assert seqs(page) == [3, 4, 5]
    assert (page.gap, page.missed) == (True, 1)
    assert feed.store.evictions["count"] == 2


def test_age_eviction_makes_a_gap_and_counts_what_was_missed(clock: WallClock) -> None:
    """Documents older than max_age_s go, even with no new traffic."""
    feed = Feed(clock, max_age_s=10)
    feed.store.track("a")
    feed.batch(["a"], ["a"])
    clock.now += 5
    feed.batch(["a"])
    clock.now += 6  # the first batch is 11 s old
    page = feed.since(seq=0)
    assert seqs(page) == [3]
    assert (page.gap, page.missed) == (True, 2)
    assert feed.store.evictions["age"] == 2


def test_pair_eviction_bounds_what_all_subscriptions_hold_together(clock: WallClock) -> None:
    """Beyond max_pairs (document, subscription) pairs the oldest documents go, whichever their index."""
    feed = Feed(clock, max_pairs=2)
    feed.store.track("a")
    feed.batch(["a"], index="i")
    feed.batch(["b"], index="j")  # ids are per index: "b" is one of j's
    feed.batch(["a"], index="i")  # 3 pairs: the oldest document (i's first) goes
    assert feed.store.stats()["pairs"] == 2 and feed.store.evictions["pairs"] == 1
    page = feed.since("a", seq=0, index="i")
    assert seqs(page) == [2] and (page.gap, page.missed) == (True, 1)
    assert seqs(feed.since("b", seq=0, index="j")) == [1]


def test_eviction_of_other_subscriptions_hits_makes_no_gap(clock: WallClock) -> None:
    """A gap is about this subscription's hits: evicting documents it never matched loses it nothing."""
    feed = Feed(clock, max_docs=2)
    feed.store.track("a")
    feed.batch(["b"], ["b"], ["a"], ["a"])
    page = feed.since(seq=0)
    assert seqs(page) == [3, 4] and (page.gap, page.missed) == (False, 0)


def test_a_time_cursor_after_every_evicted_document_has_no_gap(clock: WallClock) -> None:
    """Evictions before the time asked for do not matter."""
    feed = Feed(clock, max_docs=2)
    feed.store.track("a")
    feed.batch(["a"])
    feed.batch(["a"])
    at = clock.ms()
    feed.batch(["a"])  # the first is evicted
    page = feed.since(ms=at)
    assert seqs(page) == [2, 3] and (page.gap, page.missed) == (False, 0)


def test_a_time_cursor_reaching_into_evicted_hits_has_a_gap_of_unknown_size(clock: WallClock) -> None:
    """Evicted documents' times are not kept: the store cannot say how many of them came after t."""
    feed = Feed(clock, max_docs=1)
    feed.store.track("a")
    start = clock.ms()
    feed.batch(["a"])
    feed.batch(["a"])
    page = feed.since(ms=start)
    assert seqs(page) == [2] and (page.gap, page.missed) == (True, None)


def test_a_hit_that_passed_while_the_subscription_was_not_recorded_makes_a_gap(clock: WallClock) -> None:
    """A hit matched while nobody had listened for longer than the horizon was not kept: gap, missed unknown."""
    feed = Feed(clock)
    feed.store.track("a")
    feed.batch(["a"])
    feed.recorded.discard("a")
    feed.batch(["a"])  # not kept
    feed.recorded.add("a")
    feed.batch(["a"])
    page = feed.since(seq=1)
    assert seqs(page) == [3] and (page.gap, page.missed) == (True, None)
    assert feed.since(seq=2).gap is False  # after the lost hit, the record is whole again


def test_a_subscription_never_recorded_reports_a_gap_while_there_was_traffic(feed: Feed) -> None:
    """Nothing was kept for an id nobody listened to: any seq before the newest is a gap."""
    feed.batch(["z"], ["z"])
    page = feed.since("z", seq=0)
    assert (page.hits, page.gap, page.missed) == ([], True, None)
    assert feed.since("z", seq=2).gap is False


def test_a_subscription_recorded_without_being_tracked_is_whole_only_from_its_first_recorded_hit(clock: WallClock) -> None:
    """Recorded first while the router's list was unknown: earlier hits of it may have passed unrecorded."""
    feed = Feed(clock, recorded=set())
    feed.batch(["a"])  # nobody records "a" yet: lost to replay
    feed.recorded.add("a")  # e.g. the router session ended: every id is wanted
    feed.batch(["a"], ["a"])
    page = feed.since(seq=0)
    assert seqs(page) == [2, 3] and (page.gap, page.missed) == (True, None)
    assert feed.since(seq=1).gap is False


def test_a_restarted_beaters_empty_store_reports_a_gap(clock: WallClock) -> None:
    """After a restart the store starts empty and seqs jump ahead: seqs and times of the last run are gaps."""
    before = Feed(clock)
    before.store.track("a")
    before.batch(["a"])
    last_seq, last_ms = 1, clock.ms()
    clock.now += 5
    after = Feed(clock)  # the new process
    after.store.track("a")
    for page in (after.since(seq=last_seq), after.since(ms=last_ms)):
        assert (page.gap, page.missed) == (True, None)
    after.next_seq["i"] = 100_001  # the sequencer continues after its reserved block
    after.batch(["a"])
    assert (after.since(seq=last_seq).gap, after.since(seq=99_999).gap) == (True, True)
    assert after.since(seq=100_000).gap is False  # the first seq after it is the store's first


def test_a_time_after_the_start_with_no_traffic_is_whole(feed: Feed, clock: WallClock) -> None:
    """Nothing was received since t: an empty, whole answer (a fresh tail resuming before any hit)."""
    clock.now += 1
    feed.store.track("a")
    page = feed.since(ms=clock.ms())
    assert (page.hits, page.gap, page.missed) == ([], False, 0)


# --- memory ---------------------------------------------------------------------------------------


def test_trimmed_seqs_make_missed_unknown(clock: WallClock) -> None:
    """Once dead seqs are trimmed from a subscription's array, a cursor before them gets missed=None."""
    feed = Feed(clock, max_docs=10)
    feed.store.track("a")
    feed.batch(*[["a"]] * 100)  # 90 evicted; the next append trims the dead half
    feed.batch(["a"])
    page = feed.since(seq=0)
    assert page.gap and page.missed is None
    assert len(page.hits) == 10


def test_memory_stays_bounded_when_every_subscription_is_recorded(clock: WallClock) -> None:
    """With every id recorded, held pairs stay under max_pairs and seqs in arrays under twice that plus a sweep."""
    feed = Feed(clock, recorded=set(f"s{k}" for k in range(50)), max_pairs=500, sweep_min=100)
    for n in range(200):
        feed.batch(*[[f"s{(n + k) % 50}" for k in range(10)]] * 5)
    stats = feed.store.stats()
    assert stats["pairs"] <= 500
    assert stats["documents"] == 50  # 10 pairs each
    assert stats["array_pairs"] <= 2 * 500 + 100
    assert stats["bytes"] == sum(len(encode_hit(feed.hits[s])) for s in range(951, 1001))


def test_forgotten_entries_of_unrecorded_subscriptions_are_swept(clock: WallClock) -> None:
    """Tracked ids that were never matched and are no longer recorded do not pile up."""
    feed = Feed(clock, recorded=set(), sweep_min=10)
    for k in range(100):
        feed.store.track(f"t{k}")
    assert feed.store.stats()["subscriptions"] < 40


def test_exactly_one_cursor_is_required(feed: Feed) -> None:
    """A replay gives since_seq or since_ms, not both or neither."""
    with pytest.raises(ValueError):
        feed.store.replay("i", "a")
    with pytest.raises(ValueError):
        feed.store.replay("i", "a", since_seq=1, since_ms=1)


# --- the operation: Beater.replay and its WAMP errors ------------------------------------------------


class Registered:
    """A registration as the percolator's lookup answers it."""

    def __init__(self, sub_id: str, index: str) -> None:
        self.id, self.index = sub_id, index

    def to_json(self) -> Dict[str, Any]:
        return {"id": self.id, "index": self.index}


class LookupOnly:
    """A percolator that knows one registration: "a" on index "i"."""

    async def lookup(self, sub_id: str) -> Optional[Registered]:
        return Registered(sub_id, "i") if sub_id == "a" else None


def beater_over(feed: Feed) -> Any:
    from beater.service import Beater

    return Beater(LookupOnly(), None, replay=feed.store)  # type: ignore[arg-type]


def call(fn: Any, *args: Any) -> Any:
    """Run a coroutine function that never waits (the stubs answer at once)."""
    from twisted.internet.defer import ensureDeferred

    results: List[Any] = []
    ensureDeferred(fn(*args)).addBoth(results.append)
    [result] = results
    if hasattr(result, "raiseException"):
        result.raiseException()
    return result


def test_beater_replay_looks_up_the_index_and_answers_the_page(feed: Feed) -> None:
    """Beater.replay(id, since, limit) finds the subscription's index and answers the store's page as JSON."""
    feed.store.track("a")
    feed.batch(["a"], ["a"], ["a"])
    answer = call(beater_over(feed).replay, "a", {"seq": 1}, 1)
    assert [seq for seq, _ in answer["hits"]] == [2]
    assert (answer["gap"], answer["missed"], answer["more"]) == (False, 0, True)


def test_beater_replay_caps_the_limit(feed: Feed) -> None:
    """A limit above 1000 is served as 1000, not refused."""
    feed.store.track("a")
    feed.batch(*[["a"]] * 1001)
    answer = call(beater_over(feed).replay, "a", {"time_ms": 0}, 10**9)
    assert len(answer["hits"]) == 1000 and answer["more"]


def test_an_unknown_subscription_is_an_unknown_subscription_error(feed: Feed) -> None:
    """Ids the Beater never registered are refused with estrom.error.unknown_subscription."""
    from beater.errors import UnknownSubscription

    with pytest.raises(UnknownSubscription):
        call(beater_over(feed).replay, "nope", {"seq": 0})


@pytest.mark.parametrize("since", [None, 5, "5", {}, {"seq": -1}, {"seq": True}, {"seq": 1.5}, {"seq": "1"},
                                   {"time": 5}, {"seq": 1, "time_ms": 2}, {"time_ms": 2 ** 70}])
def test_a_malformed_since_is_an_invalid_argument(feed: Feed, since: Any) -> None:
    """since must be exactly {"seq": int >= 0} or {"time_ms": int >= 0}."""
    from beater.errors import EstromError

    with pytest.raises(EstromError) as caught:
        call(beater_over(feed).replay, "a", since)
    assert caught.value.uri == "estrom.error.invalid_argument"


@pytest.mark.parametrize("limit", [0, -3, 2.5, "10", True])
def test_a_malformed_limit_is_an_invalid_argument(feed: Feed, limit: Any) -> None:
    """limit must be an integer >= 1."""
    from beater.errors import EstromError

    with pytest.raises(EstromError) as caught:
        call(beater_over(feed).replay, "a", {"seq": 0}, limit)
    assert caught.value.uri == "estrom.error.invalid_argument"


def test_over_wamp_errors_are_application_errors_with_estrom_uris(feed: Feed) -> None:
    """The WAMP adapter turns the operation's errors into ApplicationError with estrom.error.* URIs."""
    from autobahn.wamp.exception import ApplicationError

    from beater.wamp import _as_wamp_errors

    replay = _as_wamp_errors(beater_over(feed).replay)
    for args, uri in (((("nope", {"seq": 0})), "estrom.error.unknown_subscription"),
                      ((("a", {"seq": "x"})), "estrom.error.invalid_argument"),
                      ((("a",)), "estrom.error.invalid_argument")):  # since missing
        with pytest.raises(ApplicationError) as caught:
            call(replay, *args)
        assert caught.value.error == uri
