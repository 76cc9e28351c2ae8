"""The Kafka source's pure logic: settings, poison, offsets to commit, pause/resume decisions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from beater.kafka.logic import (
    FlowControl, KafkaSettingError, OffsetTracker, classify, index_for, parse_bootstrap, parse_index_map, parse_topics,
)
from estrom import settings
from estrom.children import child_arguments

ORIGIN = {"topic": "t", "partition": 0, "offset": 7}


# --- settings ---------------------------------------------------------------------------------------


def test_index_map_parses_and_unmapped_topics_keep_their_name() -> None:
    mapping = parse_index_map(" events = recent , logs=app-logs ", ["events", "logs", "other"])
    assert mapping == {"events": "recent", "logs": "app-logs"}
    assert index_for("other", mapping) == "other"
    assert parse_index_map("", ["a"]) == {}


@pytest.mark.parametrize("text, message", [
    ("events", "is not topic=index"),
    ("=x", "is not topic=index"),
    ("nope=x", "is not one of the consumed topics"),
    ("events=a,events=b", "mapped twice"),
    ("events=UPPER", "not a usable index name"),
])
def test_bad_index_maps_say_why(text: str, message: str) -> None:
    with pytest.raises(KafkaSettingError, match=message):
        parse_index_map(text, ["events"])


def test_topics_and_bootstrap_parse() -> None:
    assert parse_topics("events, logs,events") == ["events", "logs"]
    assert parse_bootstrap("127.0.0.1:9092, kafka:9093") == ["127.0.0.1:9092", "kafka:9093"]
    for bad in ("", "a b", "x/y"):
        with pytest.raises(KafkaSettingError):
            parse_topics(bad)
    for bad in ("", "host", ":9092", "host:0", "host:port"):
        with pytest.raises(KafkaSettingError):
            parse_bootstrap(bad)


def resolve(tmp_path: Path, *argv: str, environ: dict | None = None) -> settings.Settings:
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser)
    return settings.resolve(parser.parse_args(["--data-dir", str(tmp_path), *argv]), environ=environ or {})


def test_kafka_is_off_by_default_and_settings_reach_children(tmp_path: Path) -> None:
    assert not resolve(tmp_path).kafka_enabled
    s = resolve(tmp_path, "--kafka-topics", "events,Logs", "--kafka-index-map", "Logs=logs",
                environ={"ESTROM_KAFKA_BOOTSTRAP": "127.0.0.1:9092", "ESTROM_KAFKA_GROUP": "g"})
    config = s.kafka_config()
    assert (config.bootstrap, config.topics, config.group, config.index_map) == (["127.0.0.1:9092"], ["events", "Logs"], "g", {"Logs": "logs"})
    assert resolve(tmp_path, *child_arguments(s)).kafka_config() == config


@pytest.mark.parametrize("argv, message", [
    (["--kafka-topics", "a"], "needs --kafka-bootstrap"),
    (["--kafka-bootstrap", "h:1"], "name the topics"),
    (["--kafka-bootstrap", "nohost", "--kafka-topics", "a"], "--kafka-bootstrap.*not HOST:PORT"),
    (["--kafka-bootstrap", "h:1", "--kafka-topics", "Events"], "map it, e.g. --kafka-index-map Events=<index>"),
    (["--kafka-bootstrap", "h:1", "--kafka-topics", "a", "--kafka-dead-letter-topic", "a"], "also consumed"),
    (["--kafka-bootstrap", "h:1", "--kafka-topics", "a", "--kafka-max-in-flight", "0"], "--kafka-max-in-flight.*>= 1"),
    (["--kafka-bootstrap", "h:1", "--kafka-topics", "a", "--kafka-group", " "], "--kafka-group.*empty"),
])
def test_bad_kafka_settings_exit_with_the_flag_named(tmp_path: Path, argv: list, message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        resolve(tmp_path, *argv)


# --- poison -------------------------------------------------------------------------------------------


def test_a_json_object_becomes_a_document_carrying_its_position() -> None:
    document, poison = classify(b'{"m": "x"}', "events", ORIGIN, 1000)
    assert poison is None and document is not None
    assert (document.source, document.kafka) == ({"m": "x"}, ORIGIN)
    enveloped, _ = classify(json.dumps({"_id": "a1", "_source": {"m": 1}}).encode(), "events", ORIGIN, 1000)
    assert enveloped is not None and (enveloped.id, enveloped.source) == ("a1", {"m": 1})


@pytest.mark.parametrize("value, reason", [
    (b"not json", "not_json"),
    (b"\xff\xfe{}", "not_json"),
    (None, "not_json"),
    (b"[1, 2]", "invalid_document"),
    (b'"text"', "invalid_document"),
    (b'{"_index": "other", "_source": {}}', "invalid_document"),
    (b'{"m": "' + b"x" * 100 + b'"}', "too_large"),
    (b'{"a": "\\ud800"}', "invalid_document"),  # a lone surrogate: no UTF-8 writer carries it
])
def test_poison_records_are_classified(value: bytes, reason: str) -> None:
    document, poison = classify(value, "events", ORIGIN, 64)
    assert document is None and poison is not None
    assert poison.reason == reason and poison.message


@pytest.mark.parametrize("value, reason", [
    (b'{"a": ' + b"[" * 200 + b"]" * 200 + b"}", "too_deep"),  # the document limits of HTTP ingest
    (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "too_deep"),  # past Python's recursion limit
    (b'{"n": ' + b"9" * 5000 + b"}", "not_json"),  # more digits than Python converts
])
def test_records_over_the_document_limits_are_poison(value: bytes, reason: str) -> None:
    document, poison = classify(value, "events", ORIGIN, 1 << 20)
    assert document is None and poison is not None and poison.reason == reason


# --- offsets --------------------------------------------------------------------------------------------


def test_the_commit_position_is_the_lowest_offset_not_fully_delivered() -> None:
    tracker = OffsetTracker()
    gen = tracker.assign(("t", 0))
    for offset in (10, 11, 12, 13):
        tracker.add(("t", 0), gen, offset)
    assert tracker.to_commit() == {("t", 0): 10}
    tracker.done(("t", 0), gen, [11, 12])  # out of order: 10 still holds the position
    assert tracker.to_commit() == {("t", 0): 10}
    tracker.done(("t", 0), gen, [10])
    assert tracker.to_commit() == {("t", 0): 13}
    tracker.done(("t", 0), gen, [13])
    assert tracker.to_commit() == {("t", 0): 14}  # all done: one past the last
    assert tracker.in_flight == 0


def test_only_moved_positions_are_committed_again() -> None:
    tracker = OffsetTracker()
    a, b = tracker.assign(("t", 0)), tracker.assign(("t", 1))
    tracker.add(("t", 0), a, 0)
    tracker.add(("t", 1), b, 5)
    tracker.done(("t", 0), a, [0])
    positions = tracker.to_commit()
    assert positions == {("t", 0): 1, ("t", 1): 5}
    tracker.committed(positions)
    assert tracker.to_commit() == {}
    tracker.done(("t", 1), b, [5])
    assert tracker.to_commit([("t", 0), ("t", 1)]) == {("t", 1): 6}
    assert tracker.to_commit([("t", 0)]) == {}


def test_a_partition_seen_nothing_has_nothing_to_commit() -> None:
    tracker = OffsetTracker()
    tracker.assign(("t", 0))
    assert tracker.to_commit() == {} and tracker.position(("t", 0)) is None


def test_deliveries_of_a_revoked_generation_change_nothing() -> None:
    tracker = OffsetTracker()
    old = tracker.assign(("t", 0))
    tracker.add(("t", 0), old, 1)
    tracker.add(("t", 0), old, 2)
    assert tracker.pending([("t", 0)]) == 2
    tracker.revoke([("t", 0)])
    assert tracker.in_flight == 0 and tracker.to_commit() == {}
    new = tracker.assign(("t", 0))
    assert new != old and not tracker.current(("t", 0), old)
    assert tracker.done(("t", 0), old, [1, 2]) == 0
    assert not tracker.add(("t", 0), old, 3)
    tracker.add(("t", 0), new, 1)
    assert tracker.in_flight == 1 and tracker.to_commit() == {("t", 0): 1}


def test_a_fetch_is_added_at_once_like_one_record_at_a_time() -> None:
    one, many = OffsetTracker(), OffsetTracker()
    a, b = one.assign(("t", 0)), many.assign(("t", 0))
    for offset in (7, 5, 6, 6):
        assert one.add(("t", 0), a, offset)
    assert many.add_all(("t", 0), b, [7, 5, 6, 6])
    assert many.in_flight == one.in_flight == 3
    assert many.to_commit() == one.to_commit() == {("t", 0): 5}
    many.done(("t", 0), b, [5, 6, 7])
    assert many.to_commit() == {("t", 0): 8} and many.in_flight == 0
    many.add_all(("t", 0), b, [])
    assert many.to_commit() == {("t", 0): 8}
    many.revoke([("t", 0)])
    assert not many.add_all(("t", 0), b, [9]) and many.in_flight == 0


def test_a_record_handed_out_twice_counts_once() -> None:
    tracker = OffsetTracker()
    gen = tracker.assign(("t", 0))
    tracker.add(("t", 0), gen, 4)
    tracker.add(("t", 0), gen, 4)
    assert tracker.in_flight == 1
    assert tracker.done(("t", 0), gen, [4, 4]) == 1 and tracker.in_flight == 0


# --- flow ------------------------------------------------------------------------------------------------


def test_partitions_pause_at_the_high_mark_and_resume_below_the_low_one() -> None:
    flow = FlowControl(100)
    assert flow.decide(99, paused=False) is None
    assert flow.decide(100, paused=False) == "pause"
    assert flow.decide(80, paused=True) is None  # hysteresis: not at once
    assert flow.decide(50, paused=True) == "resume"
    assert flow.decide(0, paused=False) is None
    assert FlowControl(1).decide(0, paused=True) == "resume"
    with pytest.raises(ValueError):
        FlowControl(0)


# --- the reactor side of the source (a fake pipeline, no broker) -----------------------------------------


class FakePipeline:
    def __init__(self) -> None:
        from beater.metrics import BeaterMetrics

        self.metrics = BeaterMetrics()
        self.submitted: list = []

    def submit(self, index: str, documents: list, acknowledged: bool = False) -> "object":
        from twisted.internet.defer import Deferred

        d: Deferred = Deferred()
        self.submitted.append((index, [doc.kafka["offset"] for doc in documents], acknowledged, d))
        return d


def make_source() -> tuple:
    from twisted.internet.task import Clock

    from beater.kafka.source import KafkaConfig, KafkaSource

    clock = Clock()
    pipeline = FakePipeline()
    source = KafkaSource(clock, pipeline, KafkaConfig(bootstrap=["h:1"], topics=["t"], group="g"))  # type: ignore[arg-type]
    return clock, pipeline, source


def records(source: object, gen: int, index: str, *offsets: int) -> list:
    """One chunk of partition t/0 (as the consumer thread hands it over) holding ``offsets``."""
    from beater.kafka.source import _Chunk

    documents = []
    for offset in offsets:
        document, _ = classify(b'{"m": 1}', index, {"topic": "t", "partition": 0, "offset": offset}, 100)
        documents.append(document)
    assert source.tracker.add_all(("t", 0), gen, list(offsets))  # type: ignore[attr-defined]
    return [_Chunk(("t", 0), gen, index, list(offsets), documents)]


def test_offsets_are_done_only_when_the_acknowledged_submission_fires() -> None:
    from beater.pipeline import SubmitReport

    clock, pipeline, source = make_source()
    gen = source.tracker.assign(("t", 0))
    source._arrived(records(source, gen, "a", 0, 1) + records(source, gen, "b", 2))
    assert [(i, o, ack) for i, o, ack, _ in pipeline.submitted] == [("a", [0, 1], True), ("b", [2], True)]
    pipeline.submitted[1][3].callback(SubmitReport(1))
    assert source.tracker.to_commit() == {("t", 0): 0}  # 2 is done, 0 and 1 are not
    pipeline.submitted[0][3].callback(SubmitReport(2))
    assert source.tracker.to_commit() == {("t", 0): 3} and source.tracker.in_flight == 0


def test_a_failed_submission_is_submitted_again_and_a_revoked_one_is_dropped() -> None:
    from beater.errors import NotAllDelivered

    clock, pipeline, source = make_source()
    gen = source.tracker.assign(("t", 0))
    source._arrived(records(source, gen, "a", 0))
    pipeline.submitted[0][3].errback(NotAllDelivered("the router is not reachable", 0, 1))
    assert len(pipeline.submitted) == 1
    clock.advance(1.0)
    assert [o for _, o, _, _ in pipeline.submitted] == [[0], [0]]
    source.tracker.revoke([("t", 0)])
    pipeline.submitted[1][3].errback(NotAllDelivered("the router is not reachable", 0, 1))
    clock.advance(1.0)
    assert len(pipeline.submitted) == 2  # no longer ours: the new owner reads it again


def test_a_submission_never_acknowledged_is_retried_after_the_timeout() -> None:
    from beater.kafka.source import ACK_TIMEOUT_S

    clock, pipeline, source = make_source()
    gen = source.tracker.assign(("t", 0))
    source._arrived(records(source, gen, "a", 5))
    clock.advance(ACK_TIMEOUT_S)
    clock.advance(1.0)
    assert [o for _, o, _, _ in pipeline.submitted] == [[5], [5]]


class FakeRecord:
    def __init__(self, offset: int, value: "bytes | None") -> None:
        self.topic, self.partition, self.offset, self.value, self.key = "t", 0, offset, value, None


def test_a_poll_of_a_partition_becomes_one_chunk_and_its_poison_is_done_at_once() -> None:
    from kafka import TopicPartition

    clock, pipeline, source = make_source()
    source._log = lambda *a, **kw: None  # no reactor thread here
    tp = TopicPartition("t", 0)
    gen = source.tracker.assign(("t", 0))
    fetched = [FakeRecord(0, b'{"m": 0}'), FakeRecord(1, b"not json"), FakeRecord(2, b'{"m": 2}'), FakeRecord(3, None)]
    chunk, producer = source._take(tp, fetched, None)
    assert producer is None  # no dead-letter topic configured
    assert chunk.key == ("t", 0) and chunk.generation == gen and chunk.index == "t" and chunk.offsets == [0, 2]
    assert [d.source for d in chunk.documents] == [{"m": 0}, {"m": 2}]
    assert [d.kafka for d in chunk.documents] == [{"topic": "t", "partition": 0, "offset": o} for o in (0, 2)]
    assert source.records == 4 and source.poison == 2
    assert source.tracker.in_flight == 2 and source.tracker.to_commit() == {("t", 0): 0}
    source._arrived([chunk])
    pipeline.submitted[0][3].callback(None)
    assert source.tracker.to_commit() == {("t", 0): 4} and source.delivered == 2
    only_poison, _ = source._take(tp, [FakeRecord(4, b"[1]")], None)
    assert only_poison is None and source.tracker.to_commit() == {("t", 0): 5}


def test_kafka_python_checks_record_batch_crcs_in_c() -> None:
    """The pure-Python CRC-32C fallback alone cost 300 us a record: the crc32c dependency must be there."""
    from beater.kafka.source import fast_crc

    assert fast_crc()


def test_chunks_of_one_index_are_one_submission_and_a_revoked_partition_is_left_out() -> None:
    from beater.pipeline import SubmitReport
    from beater.kafka.source import _Chunk

    clock, pipeline, source = make_source()
    g0, g1 = source.tracker.assign(("t", 0)), source.tracker.assign(("t", 1))
    doc = classify(b'{"m": 1}', "a", {"topic": "t", "partition": 0, "offset": 0}, 100)[0]
    source.tracker.add_all(("t", 0), g0, [0, 1])
    source.tracker.add_all(("t", 1), g1, [0])
    chunks = [_Chunk(("t", 0), g0, "a", [0, 1], [doc, doc]), _Chunk(("t", 1), g1, "a", [0], [doc])]
    source._arrived(chunks)
    assert len(pipeline.submitted) == 1 and len(pipeline.submitted[0][1]) == 3
    pipeline.submitted[0][3].errback(Exception("router away"))
    source.tracker.revoke([("t", 1)])
    clock.advance(1.0)
    assert len(pipeline.submitted) == 2 and len(pipeline.submitted[1][1]) == 2  # t/1 is no longer ours
    pipeline.submitted[1][3].callback(SubmitReport(2))
    assert source.tracker.to_commit() == {("t", 0): 2} and source.tracker.in_flight == 0
