"""What ``estrom.counts`` names and accepts: pure parts of ``tailor/counts_wamp.py``."""

from __future__ import annotations

import pytest

from tailor.counts_wamp import counts_arguments, topic_of, window_text
from tailor.params import BadRequest, parse_counts


def request(**options: str):
    return parse_counts(counts_arguments("0123456789abcdef", options), {})


@pytest.mark.parametrize("ms, text", [(10_000, "10s"), (60_000, "1m"), (90_000, "90s"), (3_600_000, "1h"), (1500, "1500ms")])
def test_a_window_is_named_in_its_shortest_exact_unit(ms: int, text: str) -> None:
    assert window_text(ms) == text


def test_default_options_give_the_plain_topic() -> None:
    assert topic_of("0123456789abcdef", request(window="10s")) == "counts-for-0123456789abcdef-10s"


def test_a_dotted_field_is_spelt_in_the_topic() -> None:
    assert topic_of("0123456789abcdef", request(window="1m", by="meta.domain")) == "counts-for-0123456789abcdef-1m-meta.domain"


def test_equal_requests_meet_on_one_topic_however_the_window_is_written() -> None:
    assert topic_of("0123456789abcdef", request(window="60s")) == topic_of("0123456789abcdef", request(window="1m"))


def test_other_options_fold_into_a_variant_tag() -> None:
    plain = topic_of("0123456789abcdef", request(window="10s", by="wiki"))
    variants = {topic_of("0123456789abcdef", request(window="10s", by="wiki", **extra))
                for extra in ({"top": "3"}, {"time_field": "meta.dt"}, {"lateness": "5s"}, {"provisional": "1s"})}
    assert len(variants) == 4
    assert all(v.startswith(plain + "~") and len(v) == len(plain) + 9 for v in variants)


def test_a_field_that_is_no_uri_component_goes_into_the_tag() -> None:
    topic = topic_of("0123456789abcdef", request(window="10s", by="user name"))
    assert topic.startswith("counts-for-0123456789abcdef-10s~") and " " not in topic


def test_an_unknown_option_is_refused_by_name() -> None:
    with pytest.raises(BadRequest) as refused:
        counts_arguments("0123456789abcdef", {"windw": "10s"})
    assert refused.value.part == "windw"


def test_a_missing_subscription_id_is_refused() -> None:
    with pytest.raises(BadRequest) as refused:
        counts_arguments(None, {})
    assert refused.value.part == "subscription_id"


def test_numbers_are_taken_as_their_text() -> None:
    assert request(window=30, top=5).top == 5  # type: ignore[arg-type]


class FakeRouter:
    """Answers estrom.lookup and wamp.subscription.lookup; records publishes."""

    def __init__(self) -> None:
        self.held: set = set()
        self.published: list = []

    async def call(self, procedure: str, *args: object) -> object:
        if procedure == "estrom.lookup":
            return {"id": args[0], "index": "i", "readable": "x"}
        return 1 if args[0] in self.held else None

    def publish(self, topic: str, record: object) -> None:
        self.published.append((topic, record))


class FakeCounts:
    def __init__(self) -> None:
        self.joined: list = []
        self.left: list = []

    async def join(self, key: object, tail: object, partial: bool = True) -> str:
        self.joined.append(key)
        return "aggregator"

    def leave(self, aggregator: object, tail: object) -> None:
        self.left.append(aggregator)


def started(router: FakeRouter, counts: FakeCounts, clock: object) -> tuple:
    from twisted.internet.defer import ensureDeferred

    from tailor.counts_wamp import WampCounts

    wamp = WampCounts(counts, lambda: router, clock)  # type: ignore[arg-type]
    answers: list = []
    ensureDeferred(wamp.counts_procedure("0123456789abcdef", window="10s")).addCallback(answers.append)
    return wamp, answers[0]


def test_counting_stops_once_the_topic_has_had_no_subscriber_for_a_while() -> None:
    from twisted.internet.task import Clock

    from tailor.counts_wamp import IDLE_AFTER_S, IDLE_CHECK_S

    clock, router, counts = Clock(), FakeRouter(), FakeCounts()
    wamp, answer = started(router, counts, clock)
    clock.advance(IDLE_CHECK_S)
    assert wamp.publishers and not counts.left
    clock.pump([IDLE_CHECK_S] * int(IDLE_AFTER_S / IDLE_CHECK_S + 1))
    assert not wamp.publishers and counts.left == ["aggregator"]


def test_counting_goes_on_while_the_router_holds_a_subscription() -> None:
    from twisted.internet.task import Clock

    from tailor.counts_wamp import IDLE_AFTER_S, IDLE_CHECK_S

    clock, router, counts = Clock(), FakeRouter(), FakeCounts()
    wamp, answer = started(router, counts, clock)
    router.held.add(answer["topic"])
    clock.pump([IDLE_CHECK_S] * int(3 * IDLE_AFTER_S / IDLE_CHECK_S))
    assert list(wamp.publishers) == [answer["topic"]] and not counts.left


def test_a_second_call_for_one_topic_joins_the_first_aggregator() -> None:
    from twisted.internet.defer import ensureDeferred
    from twisted.internet.task import Clock

    clock, router, counts = Clock(), FakeRouter(), FakeCounts()
    wamp, answer = started(router, counts, clock)
    again: list = []
    ensureDeferred(wamp.counts_procedure("0123456789abcdef", window="10000ms")).addCallback(again.append)
    assert again[0]["topic"] == answer["topic"] and len(counts.joined) == 1
