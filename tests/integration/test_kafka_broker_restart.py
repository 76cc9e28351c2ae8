"""The Kafka broker stopped and started again under a running Beater: it resumes on its own.

The broker here is a private one (``scripts/services start kafka --instance NAME``), not the shared
broker of ``ESTROM_KAFKA_BOOTSTRAP``: other tests and benchmarks use that one, and this test stops
its broker.  ``stop`` then ``start`` of the instance keeps its port, its topics and the group's
committed offsets, as a broker restarted in production does.

The test: ``estrom up`` consumes a 3-partition topic of the private broker; the first half of the
recent changes is produced and delivered to a tail; the broker is stopped, the Beater left running
without it for longer than its group session, the broker started again on the same port; the second
half is produced.  Every matching record of both halves must reach the tail (counted by
(partition, offset); repeats are allowed and reported), from the same Beater process: nobody
restarted it.  Without Java or the Kafka jars the fixture fails: the test never skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

from tests.integration.conftest import ROOT, Estrom
from tests.integration.processes import BEATER, alive, child_pid, wait_for
from tests.integration.tailclients import ReaderThread, open_tail
from tests.integration.test_kafka_ingest import QUERY, Position, Producer, committed, create_topics, lines, metric, positions_of

SERVICES = ROOT / "scripts" / "services"
OUTAGE_S = 15.0
"""How long the Beater runs without its broker: longer than its group session (10 s) and a few commit periods."""


class PrivateKafka:
    """One ``scripts/services ... kafka --instance NAME``: a broker of this test alone, stopped and started at will."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = ROOT / ".services" / "instances" / "kafka" / name
        self.address = ""

    def services(self, action: str, timeout: float = 240.0) -> str:
        """Run ``scripts/services <action> kafka --instance NAME``; its last stdout line (fails the test on error)."""
        env = {k: v for k, v in os.environ.items() if k != "ESTROM_KAFKA_PORT"}  # the instance picks its own port
        try:
            done = subprocess.run([sys.executable, str(SERVICES), action, "kafka", "--instance", self.name], cwd=ROOT,
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            pytest.fail(f"scripts/services {action} kafka --instance {self.name}: no answer within {timeout:.0f} s")
        if done.returncode != 0:
            pytest.fail(f"scripts/services {action} kafka --instance {self.name} failed (exit {done.returncode}):\n{done.stderr}")
        return done.stdout.strip().splitlines()[-1]

    def start(self) -> str:
        self.address = self.services("start")
        return self.address

    def stop(self) -> None:
        assert self.services("stop") == "stopped"

    def pid(self) -> Optional[int]:
        try:
            return int((self.state / "pid").read_text())
        except (OSError, ValueError):
            return None


@pytest.fixture
def private_kafka() -> Iterator[PrivateKafka]:
    """A running private broker; stopped and its whole state (data, logs) removed at the end, whatever happened."""
    broker = PrivateKafka(f"restart-test-{uuid.uuid4().hex[:8]}")
    try:
        broker.start()
        yield broker
    finally:
        try:
            broker.services("stop")
        finally:
            shutil.rmtree(broker.state, ignore_errors=True)


def covered(reader_records: List[dict], topic: str, wanted: List[Position]) -> Optional[bool]:
    return True if set(wanted) <= set(positions_of(reader_records, topic)) else None


def test_a_beater_resumes_on_its_own_after_the_broker_is_stopped_and_started(tmp_path: Path, private_kafka: PrivateKafka) -> None:
    address = private_kafka.address
    unique = uuid.uuid4().hex[:10]
    topic, group, dead_letters = f"estrom-it-{unique}", f"estrom-it-{unique}", f"estrom-it-{unique}-dlq"
    create_topics(address, topic, dead_letters)
    values = lines()
    first_half, second_half = values[: len(values) // 2], values[len(values) // 2:]

    instance = Estrom(tmp_path / "estrom", extra_args=[
        "--kafka-bootstrap", address, "--kafka-topics", topic, "--kafka-group", group,
        "--kafka-index-map", f"{topic}=events", "--kafka-dead-letter-topic", dead_letters, "--log-level", "info",
    ])
    instance.start()
    try:
        beater = child_pid(instance, BEATER)
        assert beater is not None, "no Beater process under estrom up"
        tail = open_tail(instance, i="events", q=QUERY)  # registered while the broker is up
        reader = ReaderThread(tail)

        producer = Producer(address, topic)
        try:
            producer.send_many(first_half)
        finally:
            producer.close()
        first = producer.matching()
        first_marks = producer.highwater()
        wait_for("the first half at the tail", lambda: covered(list(tail.records), topic, first), 90, instance, interval=0.2)
        wait_for("the first half committed", lambda: committed(address, group, topic) == first_marks or None, 30, instance, interval=0.2)
        failures_before = metric(instance, "estrom_kafka_commit_failures_total")

        broker_pid = private_kafka.pid()
        private_kafka.stop()
        assert broker_pid is not None and not alive(broker_pid), "the private broker is still running"
        outage_lines = len(instance.output)
        time.sleep(OUTAGE_S)  # the Beater without its broker: fetches, heartbeats and commits fail meanwhile
        assert alive(beater) and child_pid(instance, BEATER) == beater, "the Beater did not survive the outage"
        assert private_kafka.start() == address, "the broker came back on another address"
        restarted_at = time.monotonic()

        producer = Producer(address, topic)
        try:
            producer.send_many(second_half)
        finally:
            producer.close()
        second = producer.matching()
        second_marks = producer.highwater()
        resumed_at = {p: min(o for _, (q, o) in producer.landed if q == p) for p in second_marks}
        assert resumed_at == first_marks, f"the topic's data did not survive the restart: {resumed_at} != {first_marks}"
        wait_for("the second half at the tail, with the broker back", lambda: covered(list(tail.records), topic, second),
                 180, instance, interval=0.2)
        recovered_s = time.monotonic() - restarted_at
        wait_for("the second half committed", lambda: committed(address, group, topic) == second_marks or None,
                 60, instance, interval=0.5)
        time.sleep(1)  # repeats still under way arrive too
        records = reader.stop()
        tail.close()

        assert child_pid(instance, BEATER) == beater, "the Beater was restarted: it did not resume on its own"
        assert not [c for c in records if "_estrom" in c and "dropped" in c["_estrom"]], "the tail dropped hits"
        received = positions_of(records, topic)
        expected = first + second
        missing = set(expected) - set(received)
        assert not missing, f"{len(missing)} matching records never arrived, e.g. {sorted(missing)[:10]}"
        assert set(received) <= set(expected), "records that do not match, or were never produced, arrived"
        repeats = sum(n - 1 for n in Counter(received).values())
        # Reported, not asserted: nothing was left to commit when the broker stopped, so the outage shows in
        # estrom_kafka_commit_failures_total only if a commit was due then, and kafka-python's reconnects are not logged.
        failures = metric(instance, "estrom_kafka_commit_failures_total") - failures_before
        said = [line.rstrip() for line in instance.output[outage_lines:] if "Kafka source: " in line or "registrations log: " in line]
        print(f"kafka broker restart: {len(expected)} matching ({len(first)} before, {len(second)} after), {repeats} repeated; "
              f"all of the second half delivered {recovered_s:.1f} s after the broker was back; {failures:.0f} commit failures; "
              f"the Beater said since the stop:", *said, sep="\n  ")
    finally:
        instance.stop()
