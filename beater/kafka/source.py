"""The Kafka source: one consumer thread, a bounded hand-off to the reactor, at-least-once commits.

Threads:

- the **consumer thread** (ours) owns the ``KafkaConsumer`` and the dead-letter ``KafkaProducer``:
  every poll, pause, resume, commit and close happens there.  It classifies each record (poison
  is dead-lettered and counted there, never handed on), hands the good ones to the reactor in
  batches with ``reactor.callFromThread``, pauses every assigned partition while more than
  ``max_in_flight`` records are un-acknowledged and resumes them below half of that, and commits
  every second.  The reactor talks to it through a queue of commands (stop).
- the **reactor** submits the documents to the pipeline in acknowledged mode and, when a
  submission's Deferred fires (every document percolated, every publish acknowledged by the
  router), marks its offsets done in the shared :class:`OffsetTracker`; a failed submission is
  submitted again after a second (at-least-once: never skipped).
- kafka-python 3.0's own **IO thread** runs the rebalance listener (a synchronous listener may
  not call the blocking consumer API there, so it is an ``AsyncConsumerRebalanceListener``): on
  revocation it waits (bounded) for what is in flight of the revoked partitions to be delivered,
  then commits, so a clean hand-over redelivers nothing.

The committed offset of a partition is the lowest offset not yet fully delivered; a Beater
killed with SIGKILL redelivers at most what was in flight or delivered since the last commit.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Hashable, List, Optional, Tuple, cast

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from beater.ingest import Incoming
from beater.kafka.logic import RECONNECT_BACKOFF_MAX_MS, FlowControl, OffsetTracker, Poison, classify, index_for
from beater.limits import DEFAULT as DEFAULT_LIMITS
from beater.limits import Limits
from beater.metrics import BeaterMetrics
from beater.pipeline import Pipeline

log = Logger()

COMMIT_INTERVAL_S = 1.0
LAG_INTERVAL_S = 1.0
REVOKE_DRAIN_S = 10.0
"""Longest a revocation (or a clean stop) waits for records in flight to be delivered before committing."""
RETRY_S = 1.0
SESSION_TIMEOUT_MS = 10000
UNASSIGNED_RESTART_S = 20.0
"""A consumer that has not finished joining the group that long is rebuilt: kafka-python 3.0.12 was
seen (about one start in six, right after its start-up rejoin) to stop heartbeating and never finish
joining.  "Joined" means the rebalance listener was given an assignment, even an empty one: with more
Beaters in the group than partitions a Beater legitimately holds none, and rebuilding it would only
make it leave and rejoin, rebalancing the whole group every 20 s."""
ACK_TIMEOUT_S = 30.0
"""A submission not settled by then is submitted again (its acks may never come)."""


@dataclass(frozen=True)
class KafkaConfig:
    """What the source needs from the settings."""

    bootstrap: List[str]
    topics: List[str]
    group: str
    index_map: Dict[str, str] = field(default_factory=dict)
    dead_letter_topic: str = ""
    max_in_flight: int = 5000
    max_record_bytes: int = 1048576
    log_interval_s: float = 30.0
    limits: Limits = DEFAULT_LIMITS  # the document limits of HTTP ingest: a record over one is poison


@dataclass
class _Chunk:
    """The good records of one partition from one poll, in offset order: the unit handed to the
    reactor, submitted, retried and marked done (per chunk, not per record: one lock each time)."""

    key: Tuple[str, int]
    generation: int
    index: str
    offsets: List[int]
    documents: List[Incoming]


class KafkaSource:
    """Consume ``config.topics`` into ``pipeline``; ``start`` once the router session is ready."""

    def __init__(self, reactor: Any, pipeline: Pipeline, config: KafkaConfig, metrics: Optional[BeaterMetrics] = None) -> None:
        self.reactor = reactor
        self.pipeline = pipeline
        self.config = config
        self.metrics = metrics if metrics is not None else pipeline.metrics
        self.tracker = OffsetTracker()
        self.flow = FlowControl(config.max_in_flight)
        self.commands: "queue.Queue[str]" = queue.Queue()
        self._thread: Optional[threading.Thread] = None
        self._stopping = threading.Event()
        self._stopped: Optional[Deferred[None]] = None
        self._reporter: Optional[LoopingCall] = None
        self.records = 0  # read by the periodic log line (written by the consumer thread)
        self.poison = 0
        self.delivered = 0
        self.lags: Dict[Tuple[str, int], int] = {}
        self.paused = False
        self.joined = False
        self._last_report = (0.0, 0)

    # --- reactor side -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the consumer thread and the periodic log line."""
        self._stopped = Deferred()
        self._thread = threading.Thread(target=self._run, name="estrom kafka consumer", daemon=True)
        self._thread.start()
        self._last_report = (time.monotonic(), 0)
        self._reporter = LoopingCall(self._report)
        self._reporter.clock = self.reactor
        self._reporter.start(self.config.log_interval_s, now=False)
        log.info("Kafka source: consuming {topics} from {bootstrap} as group {group}",
                 topics=",".join(self.config.topics), bootstrap=",".join(self.config.bootstrap), group=self.config.group)
        if not fast_crc():
            log.warn("Kafka source: the crc32c package is missing, so kafka-python checks every record batch's "
                     "CRC-32C in pure Python (about two thirds of the Beater's CPU per record); pip install crc32c")

    async def stop(self) -> None:
        """Stop fetching, let what is in flight be delivered (bounded), commit it, close the consumer."""
        if self._thread is None or self._stopped is None:
            return
        if self._reporter is not None and self._reporter.running:
            self._reporter.stop()
        self.commands.put("stop")
        await self._stopped
        self._stopping.set()  # retries of undelivered records end here

    def _arrived(self, chunks: List[_Chunk]) -> None:
        """Chunks handed over by the consumer thread: one acknowledged submission per run of an index."""
        run: List[_Chunk] = []
        for chunk in chunks:
            if run and run[-1].index != chunk.index:
                self._submit(run)
                run = []
            run.append(chunk)
        if run:
            self._submit(run)

    def _submit(self, chunks: List[_Chunk], attempt: int = 0) -> None:
        chunks = [c for c in chunks if self.tracker.current(c.key, c.generation)]  # revoked meanwhile: not ours
        if not chunks or self._stopping.is_set():
            return
        settled: Deferred[Any] = Deferred()
        documents = chunks[0].documents if len(chunks) == 1 else [d for c in chunks for d in c.documents]
        submitted = self.pipeline.submit(chunks[0].index, documents, acknowledged=True)

        def relay(result: Any) -> None:
            if not settled.called:
                settled.callback(result.value if isinstance(result, Failure) else result)

        submitted.addBoth(relay)
        timeout = self.reactor.callLater(ACK_TIMEOUT_S, lambda: None if settled.called else settled.callback(
            TimeoutError(f"not acknowledged within {ACK_TIMEOUT_S:.0f} s")))
        settled.addCallback(lambda result: self._settled(chunks, attempt, result, timeout))

    def _settled(self, chunks: List[_Chunk], attempt: int, result: Any, timeout: Any) -> None:
        if timeout.active():
            timeout.cancel()
        if isinstance(result, BaseException):
            error = result
            if attempt == 0 or attempt % 30 == 0:
                log.warn("Kafka source: {n} records of {index} not delivered ({error}); retrying every {s:.0f} s",
                         n=sum(len(c.offsets) for c in chunks), index=chunks[0].index,
                         error=getattr(error, "message", None) or str(error), s=RETRY_S)
            deferLater(self.reactor, RETRY_S, self._submit, chunks, attempt + 1)
            return
        self._refused(chunks, getattr(result, "errors", None) or [])
        for chunk in chunks:
            self.delivered += self.tracker.done(chunk.key, chunk.generation, chunk.offsets)

    def _refused(self, chunks: List[_Chunk], errors: List[Tuple[int, str]]) -> None:
        """Records the percolator could not match (a matcher fault, isolated by the pipeline): poison,
        counted and logged with their position; they are committed with the rest, never retried for ever."""
        if not errors:
            return
        places = [(c.key, offset) for c in chunks for offset in c.offsets]  # submission position -> record
        for position, message in errors:
            if not 0 <= position < len(places):
                continue
            (topic, partition), offset = places[position]
            self.poison += 1
            self.metrics.kafka_poison.labels(topic, "matcher_error").inc()
            log.warn("Kafka source: record {topic}/{partition}@{offset} could not be matched (matcher_error: {message}); skipped",
                     topic=topic, partition=partition, offset=offset, message=message)

    def _report(self) -> None:
        """The periodic log line: records/s since the last one, lag, what is in flight."""
        now = time.monotonic()
        then, before = self._last_report
        rate = (self.records - before) / max(now - then, 1e-9)
        self._last_report = (now, self.records)
        lags = self.lags  # replaced whole by the consumer thread, never changed in place
        lag = sum(lags.values())
        worst = ", ".join(f"{t}/{p}={n}" for (t, p), n in sorted(lags.items(), key=lambda kv: -kv[1])[:3] if n)
        log.info("Kafka source: {rate:.0f} records/s, lag {lag}{worst}, {in_flight} in flight{paused}, {poison} poison so far",
                 rate=rate, lag=lag, worst=f" ({worst})" if worst else "", in_flight=self.tracker.in_flight,
                 paused=" (paused)" if self.paused else "", poison=self.poison)

    def _log(self, level: str, text: str, **kw: Any) -> None:
        """Log from the consumer thread (Twisted's logging belongs to the reactor thread)."""
        self.reactor.callFromThread(getattr(log, level), text, **kw)

    # --- the consumer thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                try:
                    if self._consume():
                        return
                except Exception as e:  # cannot reach the brokers at start, consumer broke: start over
                    self._log("warn", "Kafka source: {error}; trying again in 2 s", error=f"{type(e).__name__}: {e}")
                if self._wait_command(2.0):
                    return
        finally:
            done = self._stopped
            if done is not None:
                self.reactor.callFromThread(lambda: None if done.called else done.callback(None))

    def _wait_command(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for a command; True if it says stop."""
        try:
            return self.commands.get(timeout=seconds) == "stop"
        except queue.Empty:
            return False

    def _consume(self) -> bool:
        """Consume until told to stop (True) or the consumer fails (raises)."""
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(
            bootstrap_servers=self.config.bootstrap,
            group_id=self.config.group,
            client_id="estrom-beater",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=500,
            bootstrap_timeout_ms=10000,
            # A member that dies without leaving (SIGKILL) holds up the group's next rebalance until
            # its session expires: 10 s rather than 45 s lets a restarted Beater take over sooner.
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=SESSION_TIMEOUT_MS // 3,
            reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
        )
        producer = None
        try:
            consumer.subscribe(self.config.topics, listener=_make_listener(self, consumer))
            self.joined = False  # set by the listener when a rebalance gives us an assignment (even none)
            last_commit = last_lag = assigned_at = time.monotonic()
            while True:
                try:
                    if self.commands.get_nowait() == "stop":
                        self._pause(consumer)
                        self._drain(self.tracker.pending, REVOKE_DRAIN_S)
                        self._commit(consumer)
                        return True
                except queue.Empty:
                    pass
                decision = self.flow.decide(self.tracker.in_flight, self.paused)
                if decision == "pause":
                    self._pause(consumer)
                elif decision == "resume":
                    consumer.resume(*consumer.assignment())
                    self.paused = False
                    self.metrics.kafka_paused.set(0)
                elif self.paused:
                    unpaused = set(consumer.assignment()) - set(consumer.paused())
                    if unpaused:  # assigned while paused
                        consumer.pause(*unpaused)
                batches = consumer.poll(timeout_ms=20 if self.paused else 100)  # paused: resume soon after the drain
                handed: List[_Chunk] = []
                for tp, records in batches.items():
                    chunk, producer = self._take(tp, records, producer)
                    if chunk is not None:
                        handed.append(chunk)
                if handed:
                    self.reactor.callFromThread(self._arrived, handed)
                now = time.monotonic()
                if self.joined or consumer.assignment():
                    assigned_at = now
                elif now - assigned_at >= UNASSIGNED_RESTART_S:
                    raise RuntimeError(f"not joined to the group for {UNASSIGNED_RESTART_S:.0f} s (stuck joining?)")
                if now - last_commit >= COMMIT_INTERVAL_S:
                    last_commit = now
                    self._commit(consumer)
                if now - last_lag >= LAG_INTERVAL_S:
                    last_lag = now
                    self._measure_lag(consumer)
                self.metrics.kafka_in_flight.set(self.tracker.in_flight)
        finally:
            self._close(consumer)
            if producer is not None:
                try:
                    producer.close(timeout=5)
                except Exception:
                    pass

    def _take(self, tp: Any, records: List[Any], producer: Any) -> Tuple[Optional[_Chunk], Any]:
        """One partition's records from one poll, as the chunk of its good ones (None if none, or if the
        partition was revoked meanwhile); poison is dead-lettered and done here.  Per record only what
        must be: decoding and classifying; offsets and metrics are booked once for the lot."""
        key = (tp.topic, tp.partition)
        generation = self.tracker.generation(key)
        if not records or not self.tracker.add_all(key, generation, [r.offset for r in records]):
            return None, producer
        self.records += len(records)
        self.metrics.kafka_records.labels(tp.topic).inc(len(records))
        index = index_for(tp.topic, self.config.index_map)
        limit = self.config.max_record_bytes
        offsets: List[int] = []
        documents: List[Incoming] = []
        poisoned: List[int] = []
        for record in records:
            origin = {"topic": tp.topic, "partition": tp.partition, "offset": record.offset}
            document, poison = classify(record.value, index, origin, limit, self.config.limits)
            if poison is not None:
                producer = self._poisoned(producer, record, poison)
                poisoned.append(record.offset)
            else:
                assert document is not None
                offsets.append(record.offset)
                documents.append(document)
        if poisoned:
            self.tracker.done(key, generation, poisoned)
        return (_Chunk(key, generation, index, offsets, documents) if documents else None), producer

    def _close(self, consumer: Any) -> None:
        """Close ``consumer`` (its revocation listener commits what was delivered), giving up after 15 s:
        a consumer whose IO thread is stuck must not keep the Beater from stopping or starting over."""

        def close() -> None:
            try:
                consumer.close(autocommit=False, timeout_ms=5000)
            except Exception as e:
                self._log("warn", "Kafka source: closing the consumer failed: {error}", error=str(e))

        closer = threading.Thread(target=close, name="estrom kafka close", daemon=True)
        closer.start()
        closer.join(REVOKE_DRAIN_S + 5)
        if closer.is_alive():
            self._log("warn", "Kafka source: the consumer did not close within {s:.0f} s; left behind", s=REVOKE_DRAIN_S + 5)

    def _pause(self, consumer: Any) -> None:
        consumer.pause(*consumer.assignment())
        if not self.paused:
            self.paused = True
            self.metrics.kafka_paused.set(1)

    def _drain(self, pending: Callable[[], int], seconds: float) -> None:
        """Wait (bounded) until nothing is in flight."""
        deadline = time.monotonic() + seconds
        while pending() and time.monotonic() < deadline:
            time.sleep(0.02)

    def _commit(self, consumer: Any, keys: Any = None) -> None:
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata

        positions = self.tracker.to_commit(keys)
        if not positions:
            return
        offsets = {TopicPartition(t, p): OffsetAndMetadata(pos, "", -1) for (t, p), pos in _by_partition(positions).items()}
        started = time.monotonic()
        try:
            consumer.commit(offsets, timeout_ms=5000)
        except Exception as e:  # broker away, rebalance under way: the next period tries again
            self.metrics.kafka_commit_failures.inc()
            self._log("warn", "Kafka source: commit failed ({error}); retrying", error=f"{type(e).__name__}: {e}")
            return
        self.metrics.kafka_commit_seconds.observe(time.monotonic() - started)
        self.tracker.committed(positions)

    def _measure_lag(self, consumer: Any) -> None:
        lags: Dict[Tuple[str, int], int] = {}
        for tp in consumer.assignment():
            try:
                highwater = consumer.highwater(tp)
            except Exception:
                continue
            key = (tp.topic, tp.partition)
            position = self.tracker.position(key)
            if highwater is None:
                continue
            if position is None:
                try:
                    position = consumer.position(tp, timeout_ms=100)
                except Exception:
                    continue
            lags[key] = lag = max(0, highwater - position)
            self.metrics.kafka_lag.labels(tp.topic, str(tp.partition)).set(lag)
        self.lags = lags

    def _poisoned(self, producer: Any, record: Any, poison: Poison) -> Any:
        """Count, log and (if configured) dead-letter one poison record; the producer (created on first use)."""
        self.poison += 1
        self.metrics.kafka_poison.labels(record.topic, poison.reason).inc()
        self._log("warn", "Kafka source: poison record {topic}/{partition}@{offset} skipped ({reason}: {message})",
                  topic=record.topic, partition=record.partition, offset=record.offset, reason=poison.reason, message=poison.message)
        topic = self.config.dead_letter_topic
        if not topic:
            return producer
        try:
            if producer is None:
                from kafka import KafkaProducer

                producer = KafkaProducer(bootstrap_servers=self.config.bootstrap, client_id="estrom-beater-dead-letters", acks="all",
                                         reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS)
            headers = [
                ("estrom.error", poison.reason.encode()),
                ("estrom.message", poison.message.encode("utf-8", "replace")),
                ("estrom.topic", record.topic.encode()),
                ("estrom.partition", str(record.partition).encode()),
                ("estrom.offset", str(record.offset).encode()),
            ]
            producer.send(topic, value=record.value, key=record.key, headers=headers).get(timeout=10)
            self.metrics.kafka_dead_letters.inc()
        except Exception as e:
            self._log("warn", "Kafka source: dead-lettering {topic}/{partition}@{offset} to {dlq} failed: {error}",
                      topic=record.topic, partition=record.partition, offset=record.offset, dlq=topic, error=str(e))
        return producer


def _by_partition(positions: Dict[Hashable, int]) -> Dict[Tuple[str, int], int]:
    """The tracker's positions under their real key type: this source tracks (topic, partition) keys only."""
    return cast(Dict[Tuple[str, int], int], positions)


def fast_crc() -> bool:
    """Whether kafka-python checks record batch CRCs with the C ``crc32c`` package rather than its
    pure-Python fallback (which alone cost 300 us a record, the Beater's bottleneck)."""
    try:
        from kafka.record import util
    except ImportError:
        return True  # another kafka-python layout: nothing to say
    return getattr(util, "crc32c_c", True) is not None


def _make_listener(source: KafkaSource, consumer: Any) -> Any:
    """The rebalance listener: it runs on kafka-python's IO thread, so it must not block on the consumer API."""
    from kafka import TopicPartition
    from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
    from kafka.structs import OffsetAndMetadata

    coordinator = consumer._coordinator  # the awaitable commit; consumer.commit() would deadlock here

    class Listener(AsyncConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked: Any) -> None:
            keys = [(tp.topic, tp.partition) for tp in revoked]
            deadline = time.monotonic() + REVOKE_DRAIN_S
            while source.tracker.pending(keys) and time.monotonic() < deadline:
                await coordinator._net.sleep(0.05)  # heartbeats go on meanwhile
            positions = source.tracker.to_commit(keys)
            if positions:
                offsets = {TopicPartition(t, p): OffsetAndMetadata(pos, "", -1) for (t, p), pos in _by_partition(positions).items()}
                started = time.monotonic()
                try:
                    await coordinator._commit_offsets_sync_async(offsets, timeout_ms=5000)
                    source.metrics.kafka_commit_seconds.observe(time.monotonic() - started)
                except Exception as e:
                    source.metrics.kafka_commit_failures.inc()
                    source._log("warn", "Kafka source: commit on revocation failed: {error}", error=f"{type(e).__name__}: {e}")
            source.tracker.revoke(keys)
            source.joined = False  # a rebalance under way: joined again once it assigns
            source.lags = {k: v for k, v in source.lags.items() if k not in keys}
            for t, p in keys:
                try:
                    source.metrics.kafka_lag.remove(t, str(p))
                except KeyError:
                    pass
            source._log("info", "Kafka source: partitions revoked: {parts}", parts=", ".join(f"{t}/{p}" for t, p in sorted(keys)))

        async def on_partitions_assigned(self, assigned: Any) -> None:
            for tp in assigned:
                source.tracker.assign((tp.topic, tp.partition))
            source.joined = True
            source._log("info", "Kafka source: partitions assigned: {parts}",
                        parts=", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(assigned)) or "none")

    return Listener()


def start_when_ready(reactor: Any, source: KafkaSource, ready: Callable[[], bool]) -> "Deferred[None]":
    """Start ``source`` once ``ready()`` (the router session is there), polling every 0.1 s."""

    async def wait() -> None:
        while not ready():
            await deferLater(reactor, 0.1, lambda: None)
        source.start()

    return ensureDeferred(wait())
