"""The registrations log's pure parts: the record of a registration, reading it back, rebuilding it
exactly (or refusing it when this Beater computes another id), and applying entries in log order."""

from __future__ import annotations

import json
from typing import Any, List

import pytest
from twisted.internet.defer import succeed

from beater.kafka.registrations import BadEntry, LogConfig, RegistrationLog, decode, encode, rebuild
from beater.mappings import load_mappings
from beater.registration import make_registration
from estrom import settings


def test_a_registration_round_trips_to_the_same_registration() -> None:
    original = make_registration("events", "Foo AND bar", "and")
    key, value = encode(original)
    assert key == original.id.encode()
    data = json.loads(value)
    assert data["query"] == "Foo AND bar" and data["default_operator"] == "and" and data["index"] == "events"
    again = rebuild(decode(key, value), {})
    assert again == original


def test_a_dsl_query_round_trips() -> None:
    original = make_registration("events", {"bool": {"must": [{"match": {"title": "x"}}]}})
    assert rebuild(decode(*encode(original)), {}).id == original.id


def test_an_entry_whose_id_this_beater_does_not_compute_is_refused(tmp_path: Any) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"events": {"properties": {"count": {"type": "long"}}}}))
    mapped = load_mappings(path)
    key, value = encode(make_registration("events", "count:5"))  # registered under the dynamic mapping
    with pytest.raises(BadEntry, match="computes to id"):
        rebuild(decode(key, value), mapped)


@pytest.mark.parametrize("key, value, why", [
    (b"x", None, "tombstone"),
    (b"x", b"not json", "not JSON"),
    (b"x", b"[1]", "format"),
    (b"x", b'{"format": 1, "id": "x", "index": "events"}', "missing"),
    (b"y", b'{"format": 1, "id": "x", "index": "events", "query": "a"}', "key"),
])
def test_bad_entries_say_why(key: bytes, value: Any, why: str) -> None:
    with pytest.raises(BadEntry, match=why):
        decode(key, value)


class _Reactor:
    def callFromThread(self, f: Any, *a: Any, **kw: Any) -> None:
        f(*a, **kw)


def test_entries_are_registered_in_order_and_caught_up_fires_after_them() -> None:
    registered: List[str] = []

    def register(registration: Any) -> Any:
        registered.append(registration.id)
        return succeed(True)

    log = RegistrationLog(_Reactor(), LogConfig(["127.0.0.1:9"]), register, {})
    first, second = make_registration("events", "a"), make_registration("events", "b")
    records = [(0, *encode(first)), (1, b"junk", b"junk"), (2, *encode(second))]
    log._records(records, caught_up=False)
    assert not log.caught_up.called
    log._records([], caught_up=True)
    assert registered == [first.id, second.id]
    assert log.caught_up.called and log.skipped == 1 and log.applied == 2
    assert log.known == {first.id, second.id}


def test_the_registrations_topic_must_be_a_topic_of_its_own(tmp_path: Any) -> None:
    environ = {"ESTROM_DATA_DIR": str(tmp_path), "ESTROM_KAFKA_BOOTSTRAP": "127.0.0.1:9092", "ESTROM_KAFKA_TOPICS": "events"}
    assert settings.resolve(None, environ).kafka_registrations_topic == "estrom-registrations"
    with pytest.raises(SystemExit, match="kafka-registrations-topic"):
        settings.resolve(None, {**environ, "ESTROM_KAFKA_REGISTRATIONS_TOPIC": "events"})
    with pytest.raises(SystemExit, match="kafka-registrations-topic"):
        settings.resolve(None, {**environ, "ESTROM_KAFKA_REGISTRATIONS_TOPIC": "bad topic"})


# --- the Beater answers a registration only once it is in the log ------------------------------------


class _Percolator:
    def __init__(self) -> None:
        self.registered: List[str] = []

    def register(self, registration: Any) -> Any:
        new = registration.id not in self.registered
        self.registered.append(registration.id)
        return succeed(new)


class _Log:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.published: List[str] = []

    async def publish(self, registration: Any) -> None:
        from beater.errors import BackendUnavailable

        if self.fail:
            raise BackendUnavailable("no log")
        self.published.append(registration.id)


def _beater(log: Any) -> Any:
    from beater.service import Beater

    beater = Beater(_Percolator(), pipeline=None)  # type: ignore[arg-type]
    beater.registrations_log = log
    return beater


def test_a_registration_is_answered_after_it_is_in_the_log() -> None:
    from twisted.internet.defer import ensureDeferred

    from tests.unit.deferreds import result

    log = _Log()
    answer = result(ensureDeferred(_beater(log).register("events", "a AND b")))
    assert log.published == [answer["id"]]


def test_a_registration_the_log_cannot_take_is_an_unavailable_error() -> None:
    from twisted.internet.defer import ensureDeferred

    from beater.errors import BackendUnavailable
    from tests.unit.deferreds import result

    beater = _beater(_Log(fail=True))
    with pytest.raises(BackendUnavailable):
        result(ensureDeferred(beater.register("events", "a")))
    assert beater.percolator.registered  # registered here: registering again is idempotent and retries the log


def test_an_id_already_in_the_log_is_not_produced_again() -> None:
    from twisted.internet.defer import ensureDeferred

    from tests.unit.deferreds import result

    log = RegistrationLog(_Reactor(), LogConfig(["127.0.0.1:9"]), lambda r: succeed(True), {})
    registration = make_registration("events", "a")
    log.known.add(registration.id)
    assert result(ensureDeferred(log.publish(registration))) is None  # no producer needed, none touched
