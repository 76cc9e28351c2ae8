"""Many tails of one id share one WAMP subscription; the last one out releases it; a rejoin catches up."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from autobahn.wamp.exception import ApplicationError
from twisted.internet.defer import Deferred, ensureDeferred, succeed

from beater.hits import encode_hit
from beater.wamp import tailed_event
from router import contract
from tailor.stream import Delivered
from tailor.subscriptions import SubscriptionHub


class FakeSubscription:
    """Stands in for an autobahn Subscription (pure bookkeeping, no router)."""

    def __init__(self, session: "FakeSession", handler: Callable[..., None], topic: str) -> None:
        self.session, self.handler, self.topic, self.active = session, handler, topic, True

    def unsubscribe(self) -> "Deferred[None]":
        self.active = False
        self.session.unsubscribed.append(self.topic)
        return succeed(None)


class FakeSession:
    """Records subscribe calls; ``gate`` lets a test hold a subscribe in flight; ``store`` answers replays."""

    def __init__(self, store: Optional[List[Tuple[int, bytes]]] = None, gap: bool = False,
                 stores: Optional[Dict[str, List[Tuple[int, bytes]]]] = None) -> None:
        self.subscriptions: List[FakeSubscription] = []
        self.unsubscribed: List[str] = []
        self.gate: "Deferred[None] | None" = None
        self.stores = stores if stores is not None else {"b1": store or []}  # each Beater's replay store
        self.gap = gap
        self.replays: List[Tuple[str, Dict[str, int]]] = []
        self.replay_gate: "Deferred[None] | None" = None

    async def call(self, procedure: str, subscription_id: str, since: Dict[str, int], limit: int) -> Dict[str, Any]:
        beater = contract.beater_of_replay_procedure(procedure)
        assert beater is not None, procedure
        self.replays.append((beater, since))
        if self.replay_gate is not None:
            await self.replay_gate
        if beater not in self.stores:
            raise ApplicationError("wamp.error.no_such_procedure")
        store = self.stores[beater]
        after = since.get("seq", 0)
        hits = [[seq, data] for seq, data in store if seq > after][:2]
        return {"hits": hits, "gap": self.gap and len(self.replays) == 1, "missed": None,
                "more": len([1 for seq, _ in store if seq > after]) > 2}

    async def subscribe(self, handler: Callable[..., None], topic: str) -> FakeSubscription:
        if self.gate is not None:
            await self.gate
        sub = FakeSubscription(self, handler, topic)
        self.subscriptions.append(sub)
        return sub


class Sink:
    """Collects what a tail would be given."""

    def __init__(self) -> None:
        self.hits: List[Delivered] = []
        self.notices: List[Tuple[str, Dict[str, Any]]] = []

    def deliver(self, hits: List[Delivered]) -> None:
        self.hits.extend(hits)

    def notice(self, kind: str, **details: Any) -> None:
        self.notices.append((kind, details))


def _hub(*beaters: str) -> "tuple[SubscriptionHub, FakeSession]":
    """A hub on a fake session, knowing the Beaters ``beaters`` (default: one, ``b1``)."""
    hub, session = SubscriptionHub(clock_ms=lambda: 1_700_000_000_000), FakeSession()
    hub.session = session
    for n, beater in enumerate(beaters or ("b1",)):
        hub.beaters.created({"id": n, "uri": contract.replay_procedure(beater)})
    return hub, session


def live(hub: SubscriptionHub, hits: List[Any], subscription_id: str = "id1") -> None:
    """A Beater's slice for the Tailors, on estrom.tailed as the Beater builds it, carrying ``hits`` for ``subscription_id``."""
    hub.on_tailed(*tailed_event(hits, {subscription_id: list(range(len(hits)))}))


def _hit(seq: int, beater: str = "b1") -> Dict[str, Any]:
    return {"_index": "i", "_seq": seq, "_beater": beater, "_id": str(seq), "_source": {}}


def test_two_tails_of_one_id_make_one_subscription_and_both_receive() -> None:
    """One WAMP subscription feeds every tail of the id, each hit with its event id and its JSON."""
    hub, session = _hub()
    a, b = Sink(), Sink()
    ensureDeferred(hub.acquire("id1", a))
    ensureDeferred(hub.acquire("id1", b))
    assert [s.topic for s in session.subscriptions] == ["tailed-id1"]
    live(hub, [{"_seq": 1, "_beater": "b1", "n": 1}])
    assert a.hits == b.hits == [("b1", 1, b'{"_seq":1,"_beater":"b1","n":1}')]


def test_last_tail_leaving_unsubscribes() -> None:
    hub, session = _hub()
    a, b = Sink(), Sink()
    ensureDeferred(hub.acquire("id1", a))
    ensureDeferred(hub.acquire("id1", b))
    hub.release("id1", a)
    assert session.unsubscribed == []
    hub.release("id1", b)
    assert session.unsubscribed == ["tailed-id1"]
    assert hub.subscribed_ids == []


def test_concurrent_first_tails_share_the_subscribe_in_flight() -> None:
    hub, session = _hub()
    session.gate = Deferred()
    first = ensureDeferred(hub.acquire("id1", Sink()))
    second = ensureDeferred(hub.acquire("id1", Sink()))
    assert not first.called and not second.called
    session.gate.callback(None)
    assert first.called and second.called
    assert len(session.subscriptions) == 1


def test_leaving_during_subscribe_does_not_leak_the_subscription() -> None:
    hub, session = _hub()
    session.gate = Deferred()
    listener = Sink()
    d = ensureDeferred(hub.acquire("id1", listener))
    hub.release("id1", listener)
    session.gate.callback(None)
    assert d.called
    assert session.unsubscribed == ["tailed-id1"]


def test_acquire_without_a_router_session_fails_and_keeps_nothing() -> None:
    hub = SubscriptionHub()
    failures: List[Any] = []
    ensureDeferred(hub.acquire("id1", Sink())).addErrback(failures.append)
    assert failures and isinstance(failures[0].value, ConnectionError)
    assert hub.subscribed_ids == []


def test_resubscribe_after_rejoin_restores_live_ids() -> None:
    hub, old = _hub()
    ensureDeferred(hub.acquire("id1", Sink()))
    new = FakeSession()
    hub.session = new
    ensureDeferred(hub.resubscribe_all())
    assert [s.topic for s in new.subscriptions] == ["tailed-id1"]


def test_a_tailed_hit_reaches_the_tails_as_the_bytes_the_beater_encoded() -> None:
    """Nobody between the Beater and the tail decodes a hit: the tail writes the Beater's ``encode_hit`` bytes."""
    hub, _ = _hub()
    sink = Sink()
    ensureDeferred(hub.acquire("id1", sink))
    hit = {"_index": "i", "_seq": 7, "_beater": "b1", "_id": "x", "_source": {"a": 1.5, "t": "caf\u00e9"}}
    live(hub, [hit])
    assert sink.hits == [Delivered("b1", 7, encode_hit(hit))]
    assert sink.hits[0].data == '{"_index":"i","_seq":7,"_beater":"b1","_id":"x","_source":{"a":1.5,"t":"café"}}'.encode()


def test_after_a_rejoin_what_was_missed_comes_from_the_replay_store_in_order_without_repeats() -> None:
    """Hits published while the router was away are fetched from after the last one passed on; live ones wait."""
    hub, old = _hub()
    sink = Sink()
    ensureDeferred(hub.acquire("id1", sink))
    live(hub, [_hit(1), _hit(2)])
    new = FakeSession(store=[(seq, b"h%d" % seq) for seq in range(1, 7)])
    new.replay_gate = Deferred()
    hub.session = new
    ensureDeferred(hub.resubscribe_all())
    live(hub, [_hit(6), _hit(7)])  # live, while the replay is still running
    new.replay_gate.callback(None)
    assert [h.seq for h in sink.hits] == [1, 2, 3, 4, 5, 6, 7]
    assert new.replays[0] == ("b1", {"seq": 2})


def test_a_rejoin_before_any_hit_catches_up_from_the_time_of_subscribing() -> None:
    """With nothing passed on yet, the catch-up starts at the time the id was subscribed."""
    hub, _ = _hub()
    ensureDeferred(hub.acquire("id1", Sink()))
    new = FakeSession()
    hub.session = new
    ensureDeferred(hub.resubscribe_all())
    assert new.replays == [("b1", {"time_ms": 1_700_000_000_000})]


def test_a_rejoin_the_store_cannot_cover_tells_every_tail_of_the_gap() -> None:
    """A replay store that no longer reaches back makes each tail say so in-band."""
    hub, _ = _hub()
    sink = Sink()
    ensureDeferred(hub.acquire("id1", sink))
    new = FakeSession(gap=True)
    hub.session = new
    ensureDeferred(hub.resubscribe_all())
    assert sink.notices == [("gap", {"gap": True, "missed": None, "beater": "b1"})]


def test_hits_of_two_beaters_reach_the_tails_although_their_seqs_overlap() -> None:
    """Each Beater counts its own hits: the hub passes on b2's hit 1 after b1's hit 5."""
    hub, session = _hub("b1", "b2")
    sink = Sink()
    ensureDeferred(hub.acquire("id1", sink))
    live(hub, [_hit(5, "b1")])
    live(hub, [_hit(1, "b2")])
    live(hub, [_hit(5, "b1")])  # a repeat
    assert [(h.beater, h.seq) for h in sink.hits] == [("b1", 5), ("b2", 1)]


def test_after_a_rejoin_every_beater_is_caught_up_from_its_own_last_hit() -> None:
    """b1 from after its hit 2, b2 (nothing from it yet) from the time of subscribing."""
    hub, old = _hub("b1", "b2")
    sink = Sink()
    ensureDeferred(hub.acquire("id1", sink))
    live(hub, [_hit(1, "b1"), _hit(2, "b1")])
    new = FakeSession(stores={"b1": [(seq, b"a%d" % seq) for seq in (1, 2, 3)], "b2": [(7, b"b7")]})
    hub.session = new
    ensureDeferred(hub.resubscribe_all())
    assert new.replays == [("b1", {"seq": 2}), ("b2", {"time_ms": 1_700_000_000_000})]
    assert [(h.beater, h.seq) for h in sink.hits] == [("b1", 1), ("b1", 2), ("b1", 3), ("b2", 7)]


def test_a_beater_that_is_not_back_after_a_rejoin_is_a_gap_once_the_retries_end() -> None:
    """A Beater the cursor heard from but that no longer serves: the tails are told, naming it."""
    hub, old = _hub("b1", "b2")
    sink = Sink()
    ensureDeferred(hub.acquire("id1", sink))
    live(hub, [_hit(4, "b2")])
    new = FakeSession(stores={"b1": []})
    hub.session = new
    hub.beaters.deleted(1)  # b2 left
    ensureDeferred(hub.resubscribe_all())
    assert ("b2", {"seq": 4}) in new.replays
    assert sink.notices == [("gap", {"gap": True, "missed": None, "beater": "b2"})]


def test_a_slice_for_the_tailors_reaches_each_tailed_id_and_skips_the_others() -> None:
    """One estrom.tailed event carries every tailed id's hits once; each entry gets its own, others are ignored."""
    hub, session = _hub()
    a, b = Sink(), Sink()
    ensureDeferred(hub.acquire("id1", a))
    ensureDeferred(hub.acquire("id2", b))
    hub.on_tailed(*tailed_event([_hit(1), _hit(2), _hit(3)], {"id1": [0, 2], "id2": [2], "elsewhere": [1]}))
    assert [h.seq for h in a.hits] == [1, 3]
    assert [h.seq for h in b.hits] == [3]
    assert a.hits[1] is b.hits[0]  # one Delivered for both


def test_a_join_subscribes_to_the_tailors_topic_before_any_marker() -> None:
    """The slices come on one topic: it is subscribed first, so no marker is live without it."""
    hub, _ = _hub()
    ensureDeferred(hub.acquire("id1", Sink()))
    new = FakeSession()
    ensureDeferred(hub.joined(new))
    assert [s.topic for s in new.subscriptions][:1] == [contract.TOPIC_TAILED]
    assert contract.tailed_marker_for("id1") in [s.topic for s in new.subscriptions]
