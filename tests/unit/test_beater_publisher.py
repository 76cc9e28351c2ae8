"""Per slice, one event per topic a WAMP client follows and one event for the Tailors carrying every tailed id."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from twisted.internet.defer import Deferred, ensureDeferred

from beater.hits import SliceEncodings, encode_hit
from beater.listeners import Listeners
from beater.wamp import Publisher
from router import contract


class FakeSession:
    """Records publishes; an acknowledged one answers a Deferred."""

    def __init__(self) -> None:
        self.published: List[Tuple[str, Tuple[Any, ...]]] = []

    def is_attached(self) -> bool:
        return True

    def publish(self, topic: str, *args: Any, options: Any = None) -> Any:
        self.published.append((topic, args))
        return Deferred() if options is not None else None


class Holder:
    def __init__(self, session: FakeSession) -> None:
        self.session = session


def publisher_with(*subscriptions: str) -> Tuple[Publisher, FakeSession]:
    """A publisher whose router has exact subscriptions to the given topics."""
    listeners = Listeners()
    listeners.known = True
    for n, uri in enumerate(subscriptions):
        listeners.created({"id": n, "uri": uri, "match": "exact"})
    session = FakeSession()
    return Publisher(Holder(session), listeners), session  # type: ignore[arg-type]


def hit(n: int) -> Dict[str, Any]:
    return {"_seq": n, "_beater": "b1", "n": n}


def tailed(*hits: Dict[str, Any]) -> List[Any]:
    """What the Tailors' event carries of ``hits``: each as ``[seq, its JSON]``."""
    return [[h["_seq"], encode_hit(h)] for h in hits]


def publish(publisher: Publisher, subscription_id: str, hits: List[Any], acknowledge: bool = False) -> Any:
    result: List[Any] = []
    ensureDeferred(publisher.publish(subscription_id, hits, acknowledge)).addCallback(result.append)
    return result[0]


def test_a_topic_a_wamp_client_follows_gets_its_own_event() -> None:
    publisher, session = publisher_with("docs-for-a")
    assert publish(publisher, "a", [{"n": 1}]) is True
    assert session.published == []  # sent at the slice's end
    assert publisher.end_slice() == []
    assert session.published == [("docs-for-a", ([{"n": 1}],))]


def test_every_tailed_id_of_a_slice_travels_in_one_event_each_hit_once() -> None:
    publisher, session = publisher_with("tailed-a", "tailed-b")
    one, two = hit(1), hit(2)
    publish(publisher, "a", [one, two])
    publish(publisher, "b", [two])
    assert session.published == []
    publisher.end_slice()
    assert session.published == [(contract.TOPIC_TAILED, ("b1", tailed(one, two), {"a": [0, 1], "b": [1]}))]


def test_the_tailors_event_carries_the_bytes_the_slice_encoded_for_the_replay_store() -> None:
    """A hit is encoded once per slice: the replay store keeps those bytes and the Tailors get the same object."""
    publisher, session = publisher_with("tailed-a")
    one = hit(1)
    encode = SliceEncodings()
    kept = encode(one)
    publish(publisher, "a", [one])
    publisher.end_slice(encode=encode)
    (_, (_, [[seq, data]], _)), = session.published
    assert seq == 1 and data is kept


def test_an_id_followed_both_ways_goes_to_the_tailors_first_and_then_to_its_topic() -> None:
    """The Tailors' event carries every HTTP tail's hits: the router routes it before the WAMP topics."""
    publisher, session = publisher_with("docs-for-a", "tailed-a", "docs-for-b")
    publish(publisher, "b", [hit(2)])
    publish(publisher, "a", [hit(1)])
    publisher.end_slice()
    assert [topic for topic, _ in session.published] == [contract.TOPIC_TAILED, "docs-for-b", "docs-for-a"]


def test_an_id_nobody_follows_is_not_published() -> None:
    publisher, session = publisher_with("tailed-a")
    assert publish(publisher, "z", [{"n": 1}]) is False
    assert publisher.end_slice() == [] and session.published == []


def test_an_acknowledged_slice_answers_every_event_s_acknowledgement() -> None:
    publisher, _ = publisher_with("tailed-a", "docs-for-a")
    publish(publisher, "a", [hit(1)], acknowledge=True)
    answers = publisher.end_slice(acknowledge=True)
    assert len(answers) == 2 and all(isinstance(a, Deferred) for a in answers)


def test_an_abandoned_slice_sends_nothing_later() -> None:
    publisher, session = publisher_with("tailed-a")
    publish(publisher, "a", [{"n": 1}])
    publisher.abandon_slice()
    assert publisher.end_slice() == [] and session.published == []


def test_held_hits_of_a_tailor_that_shows_up_go_out_in_one_event_in_order() -> None:
    publisher, session = publisher_with()
    publisher.listeners.expect("a")
    publish(publisher, "a", [hit(1)])
    publish(publisher, "a", [hit(2)])
    publisher.end_slice()
    assert session.published == []
    publisher.listeners.created({"id": 9, "uri": "tailed-a", "match": "exact"})
    assert session.published == [(contract.TOPIC_TAILED, ("b1", tailed(hit(1), hit(2)), {"a": [0, 1]}))]
