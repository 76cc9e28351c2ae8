"""The Beater publishes only to topics someone listens to, and never loses a hit to a race."""

from __future__ import annotations

from beater.listeners import DOCS, EXPECT_GRACE_S, TAILED, Listeners


class Clock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def known(clock: Clock) -> Listeners:
    listeners = Listeners(clock)
    listeners.known = True
    return listeners


def test_every_topic_is_published_until_the_subscription_list_is_known() -> None:
    assert Listeners().wants("abc")


def test_a_topic_without_subscribers_is_not_published() -> None:
    assert not known(Clock()).wants("abc")


def test_a_created_subscription_makes_its_topic_published_until_deleted() -> None:
    listeners = known(Clock())
    listeners.created({"id": 7, "uri": "docs-for-abc", "match": "exact"})
    assert listeners.wants("abc") and not listeners.wants("other")
    listeners.deleted(7)
    assert not listeners.wants("abc")


def test_a_registered_id_is_published_during_the_grace_period_before_its_meta_event() -> None:
    clock = Clock()
    listeners = known(clock)
    listeners.expect("abc")
    assert listeners.wants("abc")
    clock.now += EXPECT_GRACE_S + 1
    assert not listeners.wants("abc")


def test_an_expectation_ends_when_its_subscription_comes_and_goes() -> None:
    listeners = known(Clock())
    listeners.expect("abc")
    listeners.created({"id": 7, "uri": "docs-for-abc", "match": "exact"})
    listeners.created({"id": 8, "uri": "tailed-abc", "match": "exact"})
    listeners.deleted(7)
    listeners.deleted(8)
    assert not listeners.wants("abc")


def test_each_kind_of_subscriber_is_expected_until_its_own_subscription_comes() -> None:
    """A WAMP client's topic coming does not end the wait for a Tailor of the same id (nor the other way round):
    the second one's hits are held for it like the first one's."""
    listeners = known(Clock())
    listeners.expect("abc")
    listeners.created({"id": 7, "uri": "docs-for-abc", "match": "exact"})
    assert not listeners.awaiting("abc", DOCS) and listeners.awaiting("abc", TAILED)
    sent = []
    listeners.on_subscribed = lambda sub_id, events, kind: sent.append((sub_id, events, kind))
    listeners.hold("abc", ["hit"], TAILED)
    listeners.created({"id": 8, "uri": "tailed-abc", "match": "exact"})
    assert sent == [("abc", [["hit"]], TAILED)]
    assert listeners.wants_kind("abc", DOCS) and listeners.wants_kind("abc", TAILED)


def test_a_tailor_marker_wants_the_tailors_event_and_not_the_topic() -> None:
    listeners = known(Clock())
    listeners.created({"id": 8, "uri": "tailed-abc", "match": "exact"})
    assert listeners.wants_kind("abc", TAILED) and not listeners.wants_kind("abc", DOCS)
    assert listeners.subscribed("abc") and listeners.router_subscriptions() == {"abc": [8]}


def test_an_id_is_left_only_when_its_last_subscription_of_either_kind_goes() -> None:
    left = []
    listeners = Listeners(Clock(), on_left=left.append)
    listeners.known = True
    listeners.created({"id": 7, "uri": "docs-for-abc", "match": "exact"})
    listeners.created({"id": 8, "uri": "tailed-abc", "match": "exact"})
    listeners.deleted(8)
    assert left == [] and listeners.subscribed("abc")
    listeners.deleted(7)
    assert left == ["abc"] and not listeners.subscribed("abc")


def test_a_prefix_subscription_covering_docs_topics_publishes_everything() -> None:
    listeners = known(Clock())
    listeners.created({"id": 9, "uri": "docs-for-", "match": "prefix"})
    assert listeners.wants("anything")
    listeners.deleted(9)
    assert not listeners.wants("anything")


def test_unrelated_subscriptions_are_ignored() -> None:
    listeners = known(Clock())
    listeners.created({"id": 3, "uri": "com.example.chat", "match": "exact"})
    listeners.created({"id": 4, "uri": "com.example.", "match": "prefix"})
    assert not listeners.wants("abc")


def test_leaving_the_router_publishes_everything_again() -> None:
    listeners = known(Clock())
    listeners.forget()
    assert listeners.wants("abc")


# --- which subscriptions the replay store records -------------------------------------------------


def test_a_wanted_subscription_is_recorded() -> None:
    """What the Beater would publish to now, the replay store keeps."""
    listeners = known(Clock())
    listeners.created({"id": 7, "uri": "docs-for-abc", "match": "exact"})
    assert listeners.records("abc") and not listeners.records("other")


def test_a_subscription_stays_recorded_for_the_horizon_after_its_last_subscriber_left() -> None:
    """A tail that lost its connection can resume: its hits are kept for replay_horizon_s after it went."""
    clock = Clock()
    listeners = Listeners(clock, replay_horizon_s=600)
    listeners.known = True
    listeners.created({"id": 7, "uri": "docs-for-abc", "match": "exact"})
    clock.now += 3600  # subscribed for an hour
    listeners.deleted(7)
    clock.now += 599
    assert not listeners.wants("abc") and listeners.records("abc")
    clock.now += 2
    assert not listeners.records("abc")


def test_an_expected_subscription_is_recorded_for_the_horizon() -> None:
    """A registration or lookup counts as hearing the id, past the publishing grace period."""
    clock = Clock()
    listeners = Listeners(clock, replay_horizon_s=600)
    listeners.known = True
    listeners.expect("abc")
    clock.now += EXPECT_GRACE_S + 1
    assert not listeners.wants("abc") and listeners.records("abc")


def test_last_heard_times_survive_a_router_restart() -> None:
    """forget() (the router session ended) keeps heard times, and stamps the live ids as heard now."""
    clock = Clock()
    listeners = Listeners(clock, replay_horizon_s=600)
    listeners.known = True
    listeners.created({"id": 7, "uri": "docs-for-abc", "match": "exact"})
    clock.now += 100
    listeners.forget()
    assert listeners.last_heard("abc") == clock.now
    listeners.known = True  # the new session's list does not have the tail yet
    assert listeners.records("abc")


def test_after_a_rejoin_the_ids_that_had_subscribers_are_held_until_they_come_back() -> None:
    """A tail on another router node is subscribed again only once that node relinks, seconds after the Beater's
    rejoin: its hits are held meanwhile (a topology test lost 26-40 acknowledged documents without this)."""
    from beater.listeners import REJOIN_GRACE_S

    clock = Clock()
    listeners = Listeners(clock, replay_horizon_s=600)
    listeners.known = True
    listeners.created({"id": 7, "uri": "docs-for-abc", "match": "exact"})
    listeners.forget()
    listeners.known = True
    assert listeners.wants("abc") and listeners.awaiting("abc")
    clock.now += REJOIN_GRACE_S + 1
    assert not listeners.wants("abc")  # nobody came back: no longer held


def test_the_store_is_told_of_every_expected_or_subscribed_id() -> None:
    """on_heard sees registrations, lookups and subscriptions, so the store tracks quiet ids too."""
    heard = []
    listeners = Listeners(Clock(), on_heard=heard.append)
    listeners.expect("abc")
    listeners.created({"id": 7, "uri": "docs-for-xyz", "match": "exact"})
    listeners.created({"id": 8, "uri": "com.example.chat", "match": "exact"})
    assert heard == ["abc", "xyz"]


def test_hits_of_an_expected_id_wait_for_its_subscription_and_then_go_out_in_order() -> None:
    """In a cluster the subscription of a client of another node reaches this router ms after that node
    acknowledged it: what the id matched meanwhile is held, and handed on when the router reports it."""
    listeners = known(Clock())
    sent = []
    listeners.on_subscribed = lambda sub_id, events, kind: sent.append((sub_id, events))
    listeners.expect("abc")
    assert listeners.awaiting("abc")
    listeners.hold("abc", ["hit 1"])
    listeners.hold("abc", ["hit 2"])
    assert sent == []
    listeners.created({"id": 7, "uri": "docs-for-abc", "match": "exact"})
    assert sent == [("abc", [["hit 1"], ["hit 2"]])]
    assert not listeners.awaiting("abc") and listeners.wants("abc")


def test_held_hits_of_an_id_nobody_came_for_are_dropped_with_its_expectation() -> None:
    clock = Clock()
    listeners = known(clock)
    sent = []
    listeners.on_subscribed = lambda sub_id, events, kind: sent.append(events)
    listeners.expect("abc")
    listeners.hold("abc", ["hit"])
    clock.now += EXPECT_GRACE_S + 1
    assert not listeners.wants("abc") and not listeners.awaiting("abc")
    listeners.created({"id": 7, "uri": "docs-for-abc", "match": "exact"})
    assert sent == []


def test_an_id_already_subscribed_or_covered_by_a_prefix_subscription_is_not_held() -> None:
    listeners = known(Clock())
    listeners.created({"id": 7, "uri": "docs-for-abc", "match": "exact"})
    listeners.expect("abc")
    assert not listeners.awaiting("abc")
    listeners.expect("other")
    listeners.created({"id": 9, "uri": "docs-for-", "match": "prefix"})
    assert not listeners.awaiting("other")
