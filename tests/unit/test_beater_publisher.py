"""Per slice, one event per topic a WAMP client follows and one event for the Tailors carrying every tailed id."""

from __future__ import annotations

from typing import Any, List, Tuple

from twisted.internet.defer import Deferred, ensureDeferred

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
    one, two = {"n": 1}, {"n": 2}
    publish(publisher, "a", [one, two])
    publish(publisher, "b", [two])
    assert session.published == []
    publisher.end_slice()
    assert session.published == [(contract.TOPIC_TAILED, ([one, two], {"a": [0, 1], "b": [1]}))]


def test_an_id_followed_both_ways_goes_to_the_tailors_first_and_then_to_its_topic() -> None:
    """The Tailors' event carries every HTTP tail's hits: the router routes it before the WAMP topics."""
    publisher, session = publisher_with("docs-for-a", "tailed-a", "docs-for-b")
    publish(publisher, "b", [{"n": 2}])
    publish(publisher, "a", [{"n": 1}])
    publisher.end_slice()
    assert [topic for topic, _ in session.published] == [contract.TOPIC_TAILED, "docs-for-b", "docs-for-a"]


def test_an_id_nobody_follows_is_not_published() -> None:
    publisher, session = publisher_with("tailed-a")
    assert publish(publisher, "z", [{"n": 1}]) is False
    assert publisher.end_slice() == [] and session.published == []


def test_an_acknowledged_slice_answers_every_event_s_acknowledgement() -> None:
    publisher, _ = publisher_with("tailed-a", "docs-for-a")
    publish(publisher, "a", [{"n": 1}], acknowledge=True)
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
    publish(publisher, "a", [{"n": 1}])
    publish(publisher, "a", [{"n": 2}])
    publisher.end_slice()
    assert session.published == []
    publisher.listeners.created({"id": 9, "uri": "tailed-a", "match": "exact"})
    assert session.published == [(contract.TOPIC_TAILED, ([{"n": 1}, {"n": 2}], {"a": [0, 1]}))]
