"""Two Beaters in one Kafka consumer group, against a real broker (``scripts/services start kafka``;
scripts/test exports ``ESTROM_KAFKA_BOOTSTRAP``): they share the partitions of a 3-partition topic,
every registration reaches both through the registrations log, every matching record reaches its
subscribers and its HTTP tail exactly once (also a tail that resumes after a dropped connection:
its cursor names both Beaters), and when one Beater stops the other takes over with nothing lost.

``estrom up`` runs the router, the Tailor and the first Beater; the second Beater is a separate
``estrom beater`` process on the same router (its own data directory and port, the same tickets).
Without a reachable broker the test fails: it never skips.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

from tests.integration.conftest import ROOT, Estrom, estrom_executable, free_port, settings_free_environment
from tests.integration.processes import health, metric, metric_lines, wait_for
from tailor.cursor import parse_cursor
from tests.integration.tailclients import controls_of, hits_of, open_tail
from tests.integration.test_kafka_ingest import PARTITIONS, Position, Producer, bootstrap, create_topics, lines

FIRST_QUERY, SECOND_QUERY = "type:edit", "type:new"


def kind(line: bytes) -> Optional[str]:
    try:
        return json.loads(line).get("type")
    except ValueError:
        return None


class SecondBeater:
    """``estrom beater`` joined to the router of ``first``, with its tickets and the same Kafka flags."""

    def __init__(self, first: Estrom, data_dir: Path, kafka_args: List[str]) -> None:
        self.beater_port = free_port()
        secrets = json.loads((first.data_dir / "secrets.json").read_text())
        env = {**settings_free_environment(), "ESTROM_BEATER_TICKET": secrets["beater"], "ESTROM_TAILOR_TICKET": secrets["tailor"]}
        command = estrom_executable() + [
            "beater", "--router-url", first.router_url, "--data-dir", str(data_dir), "--beater-port", str(self.beater_port),
            "--log-level", "info",
        ] + kafka_args
        self.output: List[str] = []
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                                        env=env, start_new_session=True)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                raise AssertionError(f"the second Beater did not stop within {timeout} s:\n" + "".join(self.output))
        return self.process.returncode


class Both:
    """What wait_for prints on failure: both processes' output."""

    def __init__(self, first: Estrom, second: Optional[SecondBeater] = None) -> None:
        self.first, self.second = first, second

    @property
    def output(self) -> List[str]:
        return self.first.output + (["--- the second Beater said:\n"] + self.second.output if self.second else [])


def held_partitions(port: int, topic: str) -> Set[int]:
    """The partitions of ``topic`` a Beater holds now (its lag gauges: set on assignment, removed on revocation)."""
    held = set()
    for line in metric_lines(port):
        if line.startswith("estrom_kafka_lag{") and f'topic="{topic}"' in line:
            held.add(int(line.split('partition="', 1)[1].split('"', 1)[0]))
    return held


class Subscriber:
    """A plain WAMP subscriber of ``docs-for-<id>`` (wampcli.py): every event both Beaters publish, unfiltered."""

    def __init__(self, instance: Estrom, subscription_id: str, count: int) -> None:
        self.process = instance.wamp_subscriber(f"docs-for-{subscription_id}", count, timeout=600)
        self.hits: List[Dict[str, Any]] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                self.hits.append(json.loads(line))

    def positions(self, topic: str) -> List[Position]:
        found = []
        for hit in list(self.hits):
            origin = hit.get("_kafka")
            assert origin is not None and origin["topic"] == topic, hit
            found.append((origin["partition"], origin["offset"]))
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def read_until_covered(subscribers: Dict[str, Subscriber], wanted: Dict[str, List[Position]], topic: str, both: Both, what: str,
                       timeout: float = 90) -> None:
    def probe() -> Optional[bool]:
        return True if all(set(wanted[n]) <= set(s.positions(topic)) for n, s in subscribers.items()) else None

    try:
        wait_for(what, probe, timeout, both, interval=0.2)  # type: ignore[arg-type]
    except AssertionError as e:
        summary = []
        for name, subscriber in subscribers.items():
            missing = set(wanted[name]) - set(subscriber.positions(topic))
            summary.append(f"{name}: {len(missing)} of {len(wanted[name])} missing, per partition {dict(Counter(p for p, _ in missing))}")
        raise AssertionError("; ".join(summary) + "\n" + str(e)) from None


def tail_positions(records: List[Dict[str, Any]], topic: str) -> List[Position]:
    """The (partition, offset) of every hit an HTTP tail received."""
    return [(h["_kafka"]["partition"], h["_kafka"]["offset"]) for h in hits_of(records) if h["_kafka"]["topic"] == topic]


def assert_once(received: List[Position], wanted: List[Position]) -> None:
    """Every wanted record arrived, none twice, nothing else."""
    repeats = [p for p, n in Counter(received).items() if n > 1]
    assert not repeats, f"{len(repeats)} records arrived more than once, e.g. {repeats[:10]}"
    assert sorted(received) == sorted(wanted), (sorted(set(wanted) - set(received))[:10], sorted(set(received) - set(wanted))[:10])


def exactly_once(subscriber: Subscriber, wanted: List[Position], topic: str) -> None:
    received = subscriber.positions(topic)
    repeats = [p for p, n in Counter(received).items() if n > 1]
    assert not repeats, f"{len(repeats)} records arrived more than once, e.g. {repeats[:10]}"
    assert sorted(received) == sorted(wanted), (sorted(set(wanted) - set(received))[:10], sorted(set(received) - set(wanted))[:10])


def test_two_beaters_share_the_partitions_and_every_registration_and_one_leaving_loses_nothing(tmp_path: Path) -> None:
    address = bootstrap()
    unique = uuid.uuid4().hex[:10]
    topic, group, registrations = f"estrom-it-{unique}", f"estrom-it-{unique}", f"estrom-it-{unique}-registrations"
    create_topics(address, topic)
    kafka_args = ["--kafka-bootstrap", address, "--kafka-topics", topic, "--kafka-group", group,
                  "--kafka-index-map", f"{topic}=events", "--kafka-registrations-topic", registrations]
    first = Estrom(tmp_path / "first", extra_args=kafka_args)
    first.start()
    second: Optional[SecondBeater] = None
    producer = Producer(address, topic)
    subscribers: Dict[str, Subscriber] = {}
    try:
        both = Both(first)
        # Registered while the first Beater is alone: the second gets it only by replaying the log at start.
        values = lines()
        total = {q: sum(1 for v in values[:1800] if kind(v) == q.split(":")[1]) for q in (FIRST_QUERY, SECOND_QUERY)}
        tails = {FIRST_QUERY: open_tail(first, "sse", i="events", q=FIRST_QUERY)}
        subscribers[FIRST_QUERY] = Subscriber(first, str(tails[FIRST_QUERY].parser.subscription_id), total[FIRST_QUERY])
        second = SecondBeater(first, tmp_path / "second", kafka_args)
        both = Both(first, second)
        wait_for("the second Beater joined the router", lambda: True if (health(second.beater_port) or (0,))[0] == 200 else None,
                 60, both)  # type: ignore[arg-type]

        def shared() -> Optional[bool]:
            mine, theirs = held_partitions(first.beater_port, topic), held_partitions(second.beater_port, topic)
            return True if mine and theirs and mine | theirs == set(range(PARTITIONS)) and not mine & theirs else None

        wait_for("both Beaters holding partitions", shared, 90, both, interval=0.5)  # type: ignore[arg-type]
        assert metric(second.beater_port, "estrom_kafka_registrations_read_offset") >= 1  # replayed before consuming
        # Registered with both up: estrom.register goes to one of them, the log takes it to the other.
        tails[SECOND_QUERY] = open_tail(first, i="events", q=SECOND_QUERY)
        subscribers[SECOND_QUERY] = Subscriber(first, str(tails[SECOND_QUERY].parser.subscription_id), total[SECOND_QUERY])
        for port in (first.beater_port, second.beater_port):
            wait_for("both registrations read by both Beaters",
                     lambda port=port: True if metric(port, "estrom_kafka_registrations_read_offset") >= 2 else None, 30, both)  # type: ignore[arg-type]

        producer.send_many(values[:900])

        def wanted() -> Dict[str, List[Position]]:
            with producer.lock:
                landed = list(producer.landed)
            return {q: [p for v, p in landed if kind(v) == q.split(":")[1]] for q in tails}

        phase_one = wanted()
        assert all(phase_one.values()), {q: len(p) for q, p in phase_one.items()}
        read_until_covered(subscribers, phase_one, topic, both, "every matching record with both Beaters up")
        time.sleep(2)
        for q, subscriber in subscribers.items():
            exactly_once(subscriber, phase_one[q], topic)
        assert {p for p, _ in subscribers[FIRST_QUERY].positions(topic)} == set(range(PARTITIONS))
        # The HTTP tail gets them too, although each Beater numbers its own hits.
        sse = tails[FIRST_QUERY]
        sse.read_until(lambda c: set(phase_one[FIRST_QUERY]) <= set(tail_positions(c.records, topic)), 60,
                       "every matching record on the HTTP tail")
        assert_once(tail_positions(sse.records, topic), phase_one[FIRST_QUERY])
        assert len({h["_beater"] for h in hits_of(sse.records)}) == 2, "both Beaters published to the tail"

        # The tail drops its connection; both Beaters go on; it resumes from its Last-Event-ID with nothing lost or repeated.
        last_event_id = str(sse.parser.last_event_id)
        assert len(parse_cursor(last_event_id).seqs) == 2, last_event_id
        sse.close()
        producer.send_many(values[900:1350])
        meanwhile = wanted()
        resumed = open_tail(first, "sse", headers={"Last-Event-ID": last_event_id}, i="events", q=FIRST_QUERY)
        resumed.read_until(lambda c: set(meanwhile[FIRST_QUERY]) <= set(tail_positions(sse.records + c.records, topic)), 60,
                           "every matching record after the resume")
        assert controls_of(resumed.records, "gap") == []
        assert_once(tail_positions(sse.records + resumed.records, topic), meanwhile[FIRST_QUERY])
        tails[FIRST_QUERY] = resumed
        for port in (first.beater_port, second.beater_port):
            assert metric(port, "estrom_kafka_records_total", topic=topic) > 0, f"the Beater on {port} consumed nothing"

        # The second Beater leaves cleanly: the first takes every partition and nothing is lost or repeated.
        assert second.stop() == 0, "".join(second.output)
        producer.send_many(values[1350:1800])
        phase_two = wanted()
        read_until_covered(subscribers, phase_two, topic, both, "every matching record after the second Beater left")
        wait_for("the first Beater holding every partition", lambda: True if held_partitions(
            first.beater_port, topic) == set(range(PARTITIONS)) else None, 30, both, interval=0.5)  # type: ignore[arg-type]
        time.sleep(2)
        for q, subscriber in subscribers.items():
            exactly_once(subscriber, phase_two[q], topic)
        for tail in tails.values():
            tail.close()
    finally:
        for subscriber in subscribers.values():
            subscriber.stop()
        producer.close()
        if second is not None:
            second.stop()
        first.stop()
