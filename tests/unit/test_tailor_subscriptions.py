"""Many tails of one id share one WAMP subscription; the last one out releases it."""

from __future__ import annotations

from typing import Any, Callable, List

from twisted.internet.defer import Deferred, ensureDeferred, succeed

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
    """Records subscribe calls; ``gate`` lets a test hold a subscribe in flight."""

    def __init__(self) -> None:
        self.subscriptions: List[FakeSubscription] = []
        self.unsubscribed: List[str] = []
        self.gate: "Deferred[None] | None" = None

    async def subscribe(self, handler: Callable[..., None], topic: str) -> FakeSubscription:
        if self.gate is not None:
            await self.gate
        sub = FakeSubscription(self, handler, topic)
        self.subscriptions.append(sub)
        return sub


def _hub() -> "tuple[SubscriptionHub, FakeSession]":
    hub, session = SubscriptionHub(), FakeSession()
    hub.session = session
    return hub, session


def test_two_tails_of_one_id_make_one_subscription_and_both_receive() -> None:
    hub, session = _hub()
    got_a: List[Any] = []
    got_b: List[Any] = []
    ensureDeferred(hub.acquire("id1", got_a.extend))
    ensureDeferred(hub.acquire("id1", got_b.extend))
    assert [s.topic for s in session.subscriptions] == ["docs-for-id1"]
    session.subscriptions[0].handler([{"n": 1}])
    assert got_a == got_b == [b'{"n":1}']


def test_last_tail_leaving_unsubscribes() -> None:
    hub, session = _hub()
    a, b = (lambda hits: None), (lambda hits: None)
    ensureDeferred(hub.acquire("id1", a))
    ensureDeferred(hub.acquire("id1", b))
    hub.release("id1", a)
    assert session.unsubscribed == []
    hub.release("id1", b)
    assert session.unsubscribed == ["docs-for-id1"]
    assert hub.subscribed_ids == []


def test_concurrent_first_tails_share_the_subscribe_in_flight() -> None:
    hub, session = _hub()
    session.gate = Deferred()
    first = ensureDeferred(hub.acquire("id1", lambda hits: None))
    second = ensureDeferred(hub.acquire("id1", lambda hits: None))
    assert not first.called and not second.called
    session.gate.callback(None)
    assert first.called and second.called
    assert len(session.subscriptions) == 1


def test_leaving_during_subscribe_does_not_leak_the_subscription() -> None:
    hub, session = _hub()
    session.gate = Deferred()
    listener = lambda hits: None  # noqa: E731
    d = ensureDeferred(hub.acquire("id1", listener))
    hub.release("id1", listener)
    session.gate.callback(None)
    assert d.called
    assert session.unsubscribed == ["docs-for-id1"]


def test_acquire_without_a_router_session_fails_and_keeps_nothing() -> None:
    hub = SubscriptionHub()
    failures: List[Any] = []
    ensureDeferred(hub.acquire("id1", lambda hits: None)).addErrback(failures.append)
    assert failures and isinstance(failures[0].value, ConnectionError)
    assert hub.subscribed_ids == []


def test_resubscribe_after_rejoin_restores_live_ids() -> None:
    hub, old = _hub()
    ensureDeferred(hub.acquire("id1", lambda hits: None))
    new = FakeSession()
    hub.session = new
    ensureDeferred(hub.resubscribe_all())
    assert [s.topic for s in new.subscriptions] == ["docs-for-id1"]


def test_a_hit_arriving_on_several_topics_is_encoded_once_and_identically() -> None:
    hub = SubscriptionHub()
    hit = {"_index": "i", "_seq": 7, "_id": "x", "_source": {"a": 1}}
    first = hub.encode(hit)
    assert hub.encode(dict(hit)) is first
    assert first == b'{"_index":"i","_seq":7,"_id":"x","_source":{"a":1}}'
