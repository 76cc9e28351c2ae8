"""The query lifecycle: a registration without subscribers for the grace period expires, one with a
subscriber or registered with persist=true does not, and the registrations log spreads removals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Tuple

import pytest
from twisted.internet.defer import ensureDeferred, succeed
from twisted.internet.task import Clock as ReactorClock

from beater.errors import EstromError, UnknownSubscription
from beater.kafka.registrations import REASON_HEADER, LogConfig, RegistrationLog, decode, encode, rebuild, tombstone_of
from beater.lifecycle import DELETED, EXPIRED, HitRates, Lifecycle, Sweeper, is_expired, sweep_interval
from beater.listeners import Listeners
from beater.percolator.embedded import EmbeddedPercolator
from beater.registration import Registration, make_registration
from beater.service import Beater
from tests.unit.deferreds import result

GRACE = 100.0


class Clock:
    """A settable clock."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def lifecycle(clock: Clock, grace: float = GRACE) -> Lifecycle:
    return Lifecycle(grace, clock=clock, wall=clock)


# --- the rule ------------------------------------------------------------------------------------


@pytest.mark.parametrize("quiet_for, persist, in_use, expired", [
    (GRACE, False, False, True),
    (GRACE - 1, False, False, False),
    (GRACE * 10, True, False, False),
    (GRACE * 10, False, True, False),
])
def test_the_expiry_rule(quiet_for: float, persist: bool, in_use: bool, expired: bool) -> None:
    assert is_expired(0.0, quiet_for, GRACE, persist, in_use) is expired


def test_a_grace_of_zero_never_expires_anything() -> None:
    assert not is_expired(0.0, 1e12, 0.0, False, False)


def test_sweeps_come_ten_times_per_grace_at_most_once_a_minute() -> None:
    assert sweep_interval(3.0) == pytest.approx(0.3)
    assert sweep_interval(86400.0) == 60.0


# --- what is due ---------------------------------------------------------------------------------


def test_a_registration_without_subscribers_is_due_after_the_grace() -> None:
    clock = Clock()
    life = lifecycle(clock)
    life.track("a", "events")
    clock.now += GRACE - 1
    assert life.due() == []
    clock.now += 1
    assert life.due() == ["a"]


def test_a_subscriber_restarts_the_clock() -> None:
    clock = Clock()
    life = lifecycle(clock)
    life.track("a", "events")
    clock.now += GRACE / 2
    life.touch("a")
    clock.now += GRACE / 2
    assert life.due() == []
    clock.now += GRACE / 2
    assert life.due() == ["a"]


def test_a_registration_in_use_is_never_due() -> None:
    clock = Clock()
    life = lifecycle(clock)
    subscribed = {"a"}
    life.in_use = lambda i: i in subscribed
    life.track("a", "events")
    clock.now += GRACE * 5
    assert life.due() == []
    subscribed.clear()  # the last subscriber left (Listeners tell on_left, which touches)
    life.touch("a")
    clock.now += GRACE
    assert life.due() == ["a"]


def test_a_persistent_registration_is_never_due() -> None:
    clock = Clock()
    life = lifecycle(clock)
    life.track("a", "events", persist=True)
    clock.now += GRACE * 100
    assert life.due() == []


def test_registering_again_with_persist_exempts_a_registration() -> None:
    clock = Clock()
    life = lifecycle(clock)
    life.track("a", "events")
    life.track("a", "events", persist=True)
    clock.now += GRACE * 2
    assert life.due() == [] and life.tracked["a"].persist


def test_with_expiry_off_nothing_is_ever_due() -> None:
    clock = Clock()
    life = lifecycle(clock, grace=0.0)
    life.track("a", "events")
    clock.now += 1e9
    assert life.due() == [] and not life.enabled


def test_one_sweep_takes_at_most_its_limit() -> None:
    clock = Clock()
    life = lifecycle(clock)
    for i in range(5):
        life.track(f"r{i}", "events")
    clock.now += GRACE
    assert len(life.due(limit=3)) == 3
    assert len(life.due(limit=3)) == 2


def test_a_registration_removed_and_registered_again_is_due_once() -> None:
    clock = Clock()
    life = lifecycle(clock)
    life.track("a", "events")
    life.forget("a", DELETED)
    clock.now += 1
    life.track("a", "events")
    clock.now += GRACE / 2
    assert life.due() == []
    clock.now += GRACE
    assert life.due() == ["a"]


def test_a_removed_registration_says_why_it_is_gone() -> None:
    clock = Clock()
    life = lifecycle(clock)
    life.track("a", "events")
    life.forget("a", EXPIRED)
    assert life.gone("a") == (EXPIRED, clock.now) and "a" not in life.tracked
    life.track("a", "events")  # registered again: no longer gone
    assert life.gone("a") is None


def test_stored_registrations_are_tracked_once_with_their_metadata() -> None:
    life = lifecycle(Clock())
    life.track("a", "events")
    stored = [{"id": "a", "index": "events"}, {"id": "b", "index": "logs", "persist": True, "created_at": 5.0}]
    assert life.load(stored) == 1
    assert life.tracked["b"].persist and life.tracked["b"].created_at == 5.0


# --- hits ----------------------------------------------------------------------------------------


def test_hits_per_minute_slide_over_the_last_minute() -> None:
    clock = Clock(600.0)  # the start of a minute
    rates = HitRates(clock)
    rates.hit("a", 30)
    clock.now += 30
    rates.hit("a", 30)
    assert rates.per_minute("a") == 60
    clock.now += 60  # half way through the next minute: half of the previous minute still counts
    assert rates.per_minute("a") == pytest.approx(30)
    clock.now += 120
    assert rates.per_minute("a") == 0 and rates.last_hit("a") == 630.0


def test_counting_publisher_counts_each_events_hits_and_passes_it_on() -> None:
    life = lifecycle(Clock())
    sent: List[Tuple[str, int, Any]] = []

    def publish(sub_id: str, hits: List[Any], acknowledge: bool = False) -> Any:
        sent.append((sub_id, len(hits), acknowledge))
        return succeed(True)

    counted = life.counting(publish)
    assert result(counted("a", [1, 2, 3], acknowledge=True)) is True
    assert sent == [("a", 3, True)]
    assert life.hits.last_hit("a") is not None and life.hits.per_minute("a") > 0


# --- the sweep -----------------------------------------------------------------------------------


def test_a_sweep_expires_what_is_due() -> None:
    clock = Clock()
    life = lifecycle(clock)
    life.track("a", "events")
    expired: List[str] = []

    async def expire(sub_id: str) -> bool:
        expired.append(sub_id)
        return True

    sweeper = Sweeper(ReactorClock(), life, expire, lambda: True)
    clock.now += GRACE
    assert result(ensureDeferred(sweeper.sweep())) == 1 and expired == ["a"]


def test_nothing_expires_while_the_routers_subscriptions_are_unknown() -> None:
    clock = Clock()
    life = lifecycle(clock)
    life.track("a", "events")
    sweeper = Sweeper(ReactorClock(), life, lambda _: succeed(True), lambda: False)
    clock.now += GRACE
    assert result(ensureDeferred(sweeper.sweep())) == 0
    assert life.due() == ["a"]  # still due for the next sweep that knows


def test_an_expiry_that_fails_is_tried_again_after_another_grace() -> None:
    clock = Clock()
    life = lifecycle(clock)
    life.track("a", "events")

    async def expire(sub_id: str) -> bool:
        raise RuntimeError("backend down")

    sweeper = Sweeper(ReactorClock(), life, expire, lambda: True)
    clock.now += GRACE
    assert result(ensureDeferred(sweeper.sweep())) == 0
    assert "a" in life.tracked and life.due() == []
    clock.now += GRACE
    assert life.due() == ["a"]


def test_listeners_tell_the_lifecycle_when_a_subscriber_leaves() -> None:
    clock = Clock()
    life = lifecycle(clock)
    listeners = Listeners(clock, on_heard=life.touch, on_left=life.touch)
    listeners.known = True
    life.in_use = lambda i: listeners.subscribed(i) or listeners.expecting(i)
    life.track("a", "events")
    listeners.created({"id": 7, "uri": "docs-for-a", "match": "exact"})
    clock.now += GRACE * 3
    assert life.due() == []
    listeners.deleted(7)
    clock.now += GRACE - 1
    assert life.due() == []
    clock.now += 1
    assert life.due() == ["a"]


# --- the Beater ----------------------------------------------------------------------------------


def beater(tmp_path: Path, clock: Clock) -> Beater:
    b = Beater(EmbeddedPercolator(tmp_path / "registrations.sqlite3"), pipeline=None)  # type: ignore[arg-type]
    b.lifecycle = lifecycle(clock)
    result(b.percolator.start())
    return b


def call(coroutine: Any) -> Any:
    return result(ensureDeferred(coroutine))


def test_an_expired_registration_is_no_longer_matched_nor_found_and_says_so(tmp_path: Path) -> None:
    clock = Clock()
    b = beater(tmp_path, clock)
    answer = call(b.register("events", "hello"))
    assert answer["persist"] is False and answer["created_at"] == clock.now
    clock.now += GRACE
    [due] = b.lifecycle.due()
    assert call(b.expire(due))
    assert result(b.percolator.percolate("events", [{"m": "hello"}])) == [[]]
    with pytest.raises(UnknownSubscription, match="expired.*register the query again"):
        call(b.lookup(answer["id"]))


def test_an_expired_registration_stays_gone_after_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    b = beater(tmp_path, clock)
    answer = call(b.register("events", "hello"))
    call(b.expire(answer["id"]))
    result(b.percolator.stop())
    again = EmbeddedPercolator(tmp_path / "registrations.sqlite3")
    result(again.start())
    assert result(again.lookup(answer["id"])) is None and result(again.registrations()) == []


def test_persist_is_stored_and_an_existing_registration_is_upgraded(tmp_path: Path) -> None:
    clock = Clock()
    b = beater(tmp_path, clock)
    first = call(b.register("events", "hello"))
    clock.now += 10
    upgraded = call(b.register("events", "hello", persist="true"))
    assert upgraded["id"] == first["id"] and upgraded["persist"] is True
    assert upgraded["created_at"] == first["created_at"]  # the stored one, not this call's
    assert result(b.percolator.lookup(first["id"])).persist
    assert call(b.register("events", "hello"))["persist"] is True  # registering without does not downgrade


def test_persist_must_be_a_boolean(tmp_path: Path) -> None:
    b = beater(tmp_path, Clock())
    with pytest.raises(EstromError, match="persist must be true or false"):
        call(b.register("events", "hello", persist="maybe"))


def test_a_deleted_registration_says_an_administrator_deleted_it(tmp_path: Path) -> None:
    b = beater(tmp_path, Clock())
    answer = call(b.register("events", "hello"))
    assert call(b.delete(answer["id"])) == {"id": answer["id"], "index": "events", "deleted": True}
    with pytest.raises(UnknownSubscription, match="deleted by an administrator"):
        call(b.lookup(answer["id"]))
    with pytest.raises(UnknownSubscription):
        call(b.delete(answer["id"]))


def test_an_id_never_registered_gets_the_hint_too(tmp_path: Path) -> None:
    b = beater(tmp_path, Clock())
    with pytest.raises(UnknownSubscription, match="never registered.*register the query again"):
        call(b.lookup("0123456789abcdef"))


def test_the_stored_registrations_are_listed_with_their_metadata(tmp_path: Path) -> None:
    b = beater(tmp_path, Clock())
    call(b.register("events", "hello", persist=True))
    [stored] = result(b.percolator.registrations())
    assert stored["persist"] is True and stored["index"] == "events"


# --- the registrations log -----------------------------------------------------------------------


class _Reactor:
    def callFromThread(self, f: Any, *a: Any, **kw: Any) -> None:
        f(*a, **kw)


def test_persist_and_created_at_travel_in_the_log() -> None:
    original = Registration(**{**make_registration("events", "a").__dict__, "persist": True, "created_at": 12.5})
    again = rebuild(decode(*encode(original)), {})
    assert again.persist and again.created_at == 12.5


def test_a_tombstone_names_its_id_and_reason() -> None:
    assert tombstone_of(b"abc", None, [(REASON_HEADER, b"expired")]) == ("abc", "expired")
    assert tombstone_of(b"abc", None) == ("abc", DELETED)
    assert tombstone_of(b"abc", b"{}") is None


def test_replaying_the_log_honours_tombstones_in_order() -> None:
    registered: List[str] = []
    dropped: List[Tuple[str, str]] = []

    def register(registration: Any) -> Any:
        registered.append(registration.id)
        return succeed(True)

    async def drop(sub_id: str, reason: str) -> None:
        dropped.append((sub_id, reason))

    log = RegistrationLog(_Reactor(), LogConfig(["127.0.0.1:9"]), register, {}, drop=drop)
    first, second = make_registration("events", "a"), make_registration("events", "b")
    key = first.id.encode()
    log._records([(0, *encode(first), []), (1, *encode(second), []), (2, key, None, [(REASON_HEADER, b"expired")])], caught_up=True)
    assert registered == [first.id, second.id]
    assert dropped == [(first.id, EXPIRED)]
    assert log.known == {second.id}  # registering the first again produces it again


def test_an_expired_registration_with_a_subscriber_here_is_kept_and_logged_again(tmp_path: Path) -> None:
    clock = Clock()
    b = beater(tmp_path, clock)
    produced: List[Tuple[str, bool]] = []

    class Log:
        async def publish(self, registration: Any, force: bool = False) -> None:
            produced.append((registration.id, force))

    b.registrations_log = Log()
    answer = call(b.register("events", "hello"))
    b.lifecycle.in_use = lambda i: True  # another Beater decided; this one has a subscriber
    call(b.dropped_from_log(answer["id"], EXPIRED))
    assert result(b.percolator.lookup(answer["id"])) is not None
    assert produced[-1] == (answer["id"], True)
    call(b.dropped_from_log(answer["id"], DELETED))  # an administrator's delete is final
    assert result(b.percolator.lookup(answer["id"])) is None


def test_with_the_log_an_expiry_is_a_tombstone_for_every_beater(tmp_path: Path) -> None:
    b = beater(tmp_path, Clock())
    tombstones: List[Tuple[str, str]] = []

    class Log:
        async def publish(self, registration: Any, force: bool = False) -> None:
            pass

        async def tombstone(self, sub_id: str, reason: str) -> None:
            tombstones.append((sub_id, reason))

    b.registrations_log = Log()
    answer = call(b.register("events", "hello"))
    assert call(b.expire(answer["id"]))
    assert tombstones == [(answer["id"], EXPIRED)]
    assert result(b.percolator.lookup(answer["id"])) is not None  # removed here when the tombstone is read back


def test_the_log_value_is_plain_json() -> None:
    _, value = encode(make_registration("events", "a"))
    assert json.loads(value)["persist"] is False
