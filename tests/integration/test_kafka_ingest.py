"""Kafka as the source, against a real broker (``scripts/services start kafka``; scripts/test exports
``ESTROM_KAFKA_BOOTSTRAP``): every matching record reaches a tail with its ``_kafka`` position, a
poison record is skipped, counted and dead-lettered while its neighbours arrive, and a Beater
killed with SIGKILL mid-stream loses nothing, its duplicates bounded by what was uncommitted.

Each test has its own topic (3 partitions), group and ``estrom up``.  Without a reachable broker
the tests fail: they never skip.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from tests.integration.conftest import Estrom
from tests.integration import processes
from tests.integration.processes import BEATER, kill_part, wait_for
from tests.integration.tailclients import ReaderThread, hits_of, open_tail

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "recentchange.ndjson"
PARTITIONS = 3
QUERY = "type:edit"

Position = Tuple[int, int]  # (partition, offset)


def bootstrap() -> str:
    """The broker of the test run: ESTROM_KAFKA_BOOTSTRAP, reachable; else the test fails."""
    address = os.environ.get("ESTROM_KAFKA_BOOTSTRAP", "")
    if not address:
        pytest.fail("ESTROM_KAFKA_BOOTSTRAP is not set: start a broker with scripts/services start kafka (scripts/test does)")
    host, _, port = address.split(",")[0].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as e:
        pytest.fail(f"the Kafka broker ESTROM_KAFKA_BOOTSTRAP={address} is not reachable: {e}")
    return address


def lines() -> List[bytes]:
    return [line.encode() for line in EXAMPLES.read_text().splitlines() if line.strip()]


def matches(line: bytes) -> bool:
    try:
        return json.loads(line).get("type") == "edit"
    except ValueError:
        return False


def create_topics(address: str, *topics: str) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=address, client_id="estrom-test-admin")
    try:
        admin.create_topics([NewTopic(t, num_partitions=PARTITIONS, replication_factor=1) for t in topics])
    finally:
        admin.close()


def committed(address: str, group: str, topic: str) -> Dict[int, int]:
    """The group's committed offsets per partition of ``topic`` (partitions without one left out)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=address, client_id="estrom-test-admin")
    try:
        offsets = admin.list_group_offsets([group])
    finally:
        admin.close()
    if group in offsets:  # {group: {TopicPartition: OffsetAndMetadata}}
        offsets = offsets[group]
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


class Producer:
    """Produces values to explicit partitions and remembers where each one landed."""

    def __init__(self, address: str, topic: str) -> None:
        from kafka import KafkaProducer

        self.topic = topic
        self.producer = KafkaProducer(bootstrap_servers=address, acks="all", linger_ms=5)
        self.landed: List[Tuple[bytes, Position]] = []
        self.lock = threading.Lock()

    def send(self, value: bytes, partition: int) -> Position:
        metadata = self.producer.send(self.topic, value=value, partition=partition).get(timeout=30)
        position = (metadata.partition, metadata.offset)
        with self.lock:
            self.landed.append((value, position))
        return position

    def send_many(self, values: List[bytes], rate: Optional[float] = None, stop: Optional[threading.Event] = None) -> None:
        futures = []
        started = time.monotonic()
        for i, value in enumerate(values):
            if stop is not None and stop.is_set():
                break
            futures.append((value, self.producer.send(self.topic, value=value, partition=i % PARTITIONS)))
            if rate is not None:
                ahead = started + (i + 1) / rate - time.monotonic()
                if ahead > 0:
                    self.producer.flush()
                    for v, f in futures:
                        self._record(v, f)
                    futures = []
                    time.sleep(ahead)
        self.producer.flush()
        for v, f in futures:
            self._record(v, f)

    def _record(self, value: bytes, future: Any) -> None:
        metadata = future.get(timeout=30)
        with self.lock:
            self.landed.append((value, (metadata.partition, metadata.offset)))

    def matching(self) -> List[Position]:
        with self.lock:
            return [position for value, position in self.landed if matches(value)]

    def highwater(self) -> Dict[int, int]:
        with self.lock:
            marks: Dict[int, int] = {}
            for _, (partition, offset) in self.landed:
                marks[partition] = max(marks.get(partition, 0), offset + 1)
            return marks

    def close(self) -> None:
        self.producer.close(timeout=10)


@contextmanager
def estrom_on_kafka(tmp_path: Path, address: str, topic: str, group: str, dead_letters: str) -> Iterator[Estrom]:
    instance = Estrom(tmp_path / "estrom", extra_args=[
        "--kafka-bootstrap", address, "--kafka-topics", topic, "--kafka-group", group,
        "--kafka-index-map", f"{topic}=events", "--kafka-dead-letter-topic", dead_letters,
    ])
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


def positions_of(records: List[Dict[str, Any]], topic: str) -> List[Position]:
    found = []
    for hit in hits_of(records):
        origin = hit.get("_kafka")
        assert origin is not None and origin["topic"] == topic, hit
        found.append((origin["partition"], origin["offset"]))
    return found


def metric(instance: Estrom, name: str, **labels: str) -> float:
    """A counter of the Beater's ``/metrics``, summed over the series carrying ``labels``."""
    return processes.metric(instance.beater_port, name, **labels)


def read_until_covered(tail: Any, instance: Estrom, wanted: List[Position], topic: str, what: str, timeout: float = 90) -> None:
    """Read ``tail`` until every position of ``wanted`` has arrived; fail with estrom's output."""
    def probe() -> Optional[bool]:
        tail.read_some(0.5)
        return True if set(wanted) <= set(positions_of(tail.records, topic)) else None

    wait_for(what, probe, timeout, instance, interval=0)


@pytest.fixture
def names() -> Dict[str, str]:
    unique = uuid.uuid4().hex[:10]
    return {"topic": f"estrom-it-{unique}", "group": f"estrom-it-{unique}", "dead_letters": f"estrom-it-{unique}-dlq"}


def test_records_reach_a_tail_and_a_poison_record_is_skipped_counted_and_dead_lettered(tmp_path: Path, names: Dict[str, str]) -> None:
    address = bootstrap()
    topic, dead_letters = names["topic"], names["dead_letters"]
    create_topics(address, topic, dead_letters)
    with estrom_on_kafka(tmp_path, address, topic, names["group"], dead_letters) as instance:
        tail = open_tail(instance, i="events", q=QUERY)
        reader = ReaderThread(tail)
        producer = Producer(address, topic)
        try:
            values = lines()[:600]
            producer.send_many(values[:300])
            before = producer.send(b'{"type": "edit", "title": "before the poison"}', 1)
            poison = producer.send(b"not json {", 1)
            after = producer.send(b'{"type": "edit", "title": "after the poison"}', 1)
            producer.send_many(values[300:])
            expected = producer.matching()
        finally:
            producer.close()
        received = positions_of(reader.join(len(expected), timeout=90), topic)
        assert set(expected) <= set(received), f"missing {sorted(set(expected) - set(received))[:10]}"
        assert before in received and after in received and poison not in received
        assert poison[1] == before[1] + 1 and after[1] == poison[1] + 1  # its neighbours in its partition
        assert wait_for("the poison counted in /metrics", lambda: metric(
            instance, "estrom_kafka_poison_records_total", topic=topic, reason="not_json") or None, 20, instance) == 1.0
        assert metric(instance, "estrom_kafka_records_total", topic=topic) == len(values) + 3
        assert metric(instance, "estrom_kafka_dead_letters_total") == 1.0
        tail.close()

    from kafka import KafkaConsumer, TopicPartition

    reader_of_dlq = KafkaConsumer(bootstrap_servers=address, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        reader_of_dlq.assign([TopicPartition(dead_letters, p) for p in range(PARTITIONS)])
        letters: List[Any] = []
        deadline = time.monotonic() + 30
        while not letters and time.monotonic() < deadline:
            for batch in reader_of_dlq.poll(timeout_ms=500).values():
                letters.extend(batch)
    finally:
        reader_of_dlq.close()
    assert [letter.value for letter in letters] == [b"not json {"]
    headers = {k: v.decode() for k, v in letters[0].headers}
    assert headers["estrom.error"] == "not_json" and headers["estrom.topic"] == topic
    assert (int(headers["estrom.partition"]), int(headers["estrom.offset"])) == poison


def test_a_beater_killed_mid_stream_loses_nothing_and_repeats_only_what_was_uncommitted(tmp_path: Path, names: Dict[str, str]) -> None:
    address = bootstrap()
    topic, group = names["topic"], names["group"]
    create_topics(address, topic, names["dead_letters"])
    with estrom_on_kafka(tmp_path, address, topic, group, names["dead_letters"]) as instance:
        tail = open_tail(instance, i="events", q=QUERY)
        reader = ReaderThread(tail)
        producer = Producer(address, topic)
        values = lines()
        thread = threading.Thread(target=producer.send_many, args=(values,), kwargs={"rate": 800.0}, daemon=True)
        thread.start()
        try:
            wait_for("a first commit of the group", lambda: committed(address, group, topic) or None, 30, instance, interval=0.2)
            wait_for("records under way", lambda: len(producer.landed) >= 1500 or None, 30, instance)
            before_kill = committed(address, group, topic)
            kill_part(instance, BEATER, "Beater", timeout=60)
            produced_at_kill = producer.highwater()
            thread.join(60)
            assert not thread.is_alive(), "the producer did not finish"
        finally:
            producer.close()
        expected = producer.matching()

        def covered() -> Optional[bool]:  # duplicates count as hits: wait for every position, not a number
            return True if set(expected) <= set(positions_of(list(tail.records), topic)) else None

        try:
            wait_for("every matching record at the tail", covered, 120, instance, interval=0.5)
        except AssertionError:
            pass  # reported below with what is missing
        time.sleep(2)  # repeats still under way arrive too
        records = reader.stop()
        assert not [c for c in records if "_estrom" in c and "dropped" in c["_estrom"]], "the tail dropped hits"
        received = positions_of(records, topic)
        missing = set(expected) - set(received)
        assert not missing, f"{len(missing)} matching records never arrived, e.g. {sorted(missing)[:10]}"
        repeats = [position for position, n in Counter(received).items() for _ in range(n - 1)]
        uncommitted = sum(produced_at_kill.get(p, 0) - before_kill.get(p, 0) for p in range(PARTITIONS))
        assert len(repeats) <= uncommitted, (len(repeats), uncommitted)
        for partition, offset in repeats:  # only what was not committed when the Beater died
            assert offset >= before_kill.get(partition, 0), (partition, offset, before_kill)
        assert not [p for p in received if p not in set(expected)]  # nothing that does not match, nothing invented
        tail.close()
        print(f"kafka kill: {len(expected)} matching, {len(repeats)} repeated, {uncommitted} uncommitted at the kill")


def test_a_clean_stop_commits_everything_delivered_so_the_next_beater_repeats_nothing(tmp_path: Path, names: Dict[str, str]) -> None:
    address = bootstrap()
    topic, group = names["topic"], names["group"]
    create_topics(address, topic, names["dead_letters"])
    producer = Producer(address, topic)
    try:
        with estrom_on_kafka(tmp_path / "first", address, topic, group, names["dead_letters"]) as instance:
            tail = open_tail(instance, i="events", q=QUERY)  # registered before the records come
            producer.send_many(lines()[:300])
            first = producer.matching()
            read_until_covered(tail, instance, first, topic, "the first records")
            tail.close()
        assert committed(address, group, topic) == producer.highwater()  # SIGTERM: every delivered record committed
        producer.send_many(lines()[300:330])
        later = [p for p in producer.matching() if p not in set(first)]
        with estrom_on_kafka(tmp_path / "second", address, topic, group, names["dead_letters"]) as instance:
            tail = open_tail(instance, i="events", q=QUERY)
            read_until_covered(tail, instance, later, topic, "the later records")
            time.sleep(2)
            tail.read_some(0.5)
            assert sorted(positions_of(tail.records, topic)) == sorted(later)  # none of the first run again
            tail.close()
    finally:
        producer.close()
