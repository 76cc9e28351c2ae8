"""The Kafka broker the tests run against, driven with kafka-python: topics, produce, consume, commit.

The broker's bootstrap address comes from ``ESTROM_KAFKA_BOOTSTRAP`` (``127.0.0.1:<port>``;
scripts/test starts the broker and exports it, by hand: ``scripts/services start kafka``).  With no
broker there the test fails, it never skips.  No ``api_version`` is pinned: Kafka 4 removed the old
protocol versions, and kafka-python negotiates what the broker speaks.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from collections import Counter
from typing import Dict, Iterator, List

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.serializer import JsonSerializer

pytestmark = pytest.mark.integration

RECORDS = 100
PARTITIONS = 3
TEST_SECONDS = 120
HOW_TO_START = "run scripts/test, or `export ESTROM_KAFKA_BOOTSTRAP=$(scripts/services start kafka | tail -n 1)`"


def bootstrap() -> str:
    """ESTROM_KAFKA_BOOTSTRAP; the test fails (never skips) if it is unset."""
    address = os.environ.get("ESTROM_KAFKA_BOOTSTRAP")
    if not address:
        pytest.fail(f"ESTROM_KAFKA_BOOTSTRAP is not set: {HOW_TO_START}")
    return address


@pytest.fixture
def deadline() -> Iterator[None]:
    """The whole test is bounded: a client call that hangs fails it after TEST_SECONDS."""

    def expired(signum: int, frame: object) -> None:
        raise AssertionError(f"the Kafka round trip took more than {TEST_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def admin(deadline: None) -> Iterator[KafkaAdminClient]:
    """An admin client of the broker, checked to answer; the test fails if it does not."""
    address = bootstrap()
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as e:
        pytest.fail(f"Kafka at ESTROM_KAFKA_BOOTSTRAP={address} is unreachable ({e}): {HOW_TO_START}")
    try:
        client = KafkaAdminClient(bootstrap_servers=address, client_id="estrom-it", request_timeout_ms=15000)
        client.describe_cluster()
    except KafkaError as e:
        pytest.fail(f"Kafka at ESTROM_KAFKA_BOOTSTRAP={address} is unreachable ({e!r}): {HOW_TO_START}")
    try:
        yield client
    finally:
        client.close()


def test_produce_consume_and_commit_across_three_partitions(admin: KafkaAdminClient) -> None:
    address = bootstrap()
    topic = "estrom-it-" + uuid.uuid4().hex[:8]
    group = topic + "-group"
    admin.create_topics({topic: {"num_partitions": PARTITIONS, "replication_factor": 1}},
                        timeout_ms=30000, wait_for_metadata=True)
    try:
        producer = KafkaProducer(bootstrap_servers=address, acks="all", value_serializer=JsonSerializer(),
                                 request_timeout_ms=15000, max_block_ms=30000)
        try:
            futures = [
                producer.send(topic, {"id": i, "text": f"document {i}"}, key=f"doc-{i}".encode(), partition=i % PARTITIONS)
                for i in range(RECORDS)
            ]
            producer.flush(timeout=30)
            sent = [future.get(timeout=30) for future in futures]
        finally:
            producer.close(timeout=10)
        expected = Counter(i % PARTITIONS for i in range(RECORDS))
        assert Counter(meta.partition for meta in sent) == expected

        consumer = KafkaConsumer(topic, bootstrap_servers=address, group_id=group, auto_offset_reset="earliest",
                                 enable_auto_commit=False, value_deserializer=JsonSerializer(),
                                 request_timeout_ms=30000)
        try:
            received: List = []
            until = time.monotonic() + 60
            while len(received) < RECORDS and time.monotonic() < until:
                for records in consumer.poll(timeout_ms=1000).values():
                    received.extend(records)
            assert len(received) == RECORDS, f"consumed {len(received)} of {RECORDS} records in 60 s"
            assert sorted(record.value["id"] for record in received) == list(range(RECORDS))
            for record in received:
                assert record.partition == record.value["id"] % PARTITIONS
                assert record.key == f"doc-{record.value['id']}".encode()
            by_partition: Dict[int, List[int]] = {}
            for record in received:
                by_partition.setdefault(record.partition, []).append(record.offset)
            for partition, offsets in by_partition.items():
                assert offsets == list(range(expected[partition])), (partition, offsets)

            consumer.commit()
            partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            assert {tp: consumer.committed(tp) for tp in partitions} == {tp: expected[tp.partition] for tp in partitions}
        finally:
            consumer.close()

        committed = admin.list_group_offsets([group])[group]
        assert {tp.partition: meta.offset for tp, meta in committed.items() if tp.topic == topic} == dict(expected)
    finally:
        try:
            admin.delete_groups([group])
        except KafkaError:
            pass
        admin.delete_topics([topic], timeout_ms=30000)
