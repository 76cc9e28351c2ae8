"""The registrations log: every registration of a Kafka-fed Beater group, in a compacted Kafka topic.

Beaters of one consumer group share the document partitions, so each must know every registration.
Each registration is produced (``acks=all``) to one compacted topic of one partition, keyed by its
subscription id, before ``estrom.register`` answers; every Beater reads that topic from the
beginning at start (before its document source consumes) and follows it, registering each entry
locally.  Like Schema Registry's ``_schemas`` or Kafka Connect's config topic: durable, ordered,
and replayed whole by a Beater that joins or comes back.

A registration that expires or is deleted (``beater/lifecycle.py``, the admin API) is a tombstone
(key = its id, value None, header ``estrom-reason`` = ``expired`` or ``deleted``): every Beater
removes it when it reads the tombstone, at start too, and compaction eventually drops both.
Tombstones are idempotent: several Beaters sweeping the same id produce several, all harmless.

- pure parts: :func:`encode` (registration -> key, value), :func:`decode` (value -> entry) and
  :func:`rebuild` (entry -> the :class:`~beater.registration.Registration` this Beater computes,
  refused if its id differs, e.g. another mapping);
- :class:`RegistrationLog`: its own consumer (no group: ``assign`` + ``seek_to_beginning``) in its
  own thread, a producer, and the hand-over of entries to the reactor, in order.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, List, Mapping, Optional, Set, Tuple

from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from beater.kafka.logic import RECONNECT_BACKOFF_MAX_MS
from beater.mappings import IndexMapping, field_kinds
from beater.registration import Registration, make_registration

log = Logger()

DEFAULT_TOPIC = "estrom-registrations"
FORMAT = 1
PRODUCE_TIMEOUT_S = 10.0
REASON_HEADER = "estrom-reason"


class BadEntry(ValueError):
    """An entry of the log that this Beater cannot register; the message says why."""


@dataclass(frozen=True)
class Entry:
    """One registration as the log carries it: enough for ``make_registration`` to rebuild it exactly."""

    id: str
    index: str
    query: Any
    default_operator: str
    mapping: str = ""
    persist: bool = False
    created_at: float = 0.0


def encode(registration: Registration) -> Tuple[bytes, bytes]:
    """The record of ``registration``: key = its id, value = compact JSON of what rebuilds it."""
    value = {
        "format": FORMAT,
        "id": registration.id,
        "index": registration.index,
        "query": registration.source,
        "default_operator": registration.default_operator,
        "mapping": registration.mapping,
        "persist": registration.persist,
        "created_at": registration.created_at,
    }
    return registration.id.encode(), json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def decode(key: Optional[bytes], value: Optional[bytes]) -> Entry:
    """The entry of one record; BadEntry for a tombstone (see :func:`tombstone_of`), bad JSON or a key that is not its id."""
    if value is None:
        raise BadEntry("tombstone (a removed registration, not one to register)")
    try:
        data = json.loads(value)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadEntry(f"not JSON: {e}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BadEntry(f"not a format-{FORMAT} registration object")
    fields = (data.get("id"), data.get("index"), data.get("default_operator", "or"), data.get("mapping", ""))
    if not all(isinstance(f, str) for f in fields) or not fields[0] or not fields[1] or "query" not in data:
        raise BadEntry("id, index, query, default_operator or mapping missing or not strings")
    if key is not None and key.decode("utf-8", "replace") != data["id"]:
        raise BadEntry(f"key {key!r} is not the id {data['id']!r}")
    created_at = data.get("created_at")
    return Entry(id=fields[0], index=fields[1], query=data["query"], default_operator=fields[2], mapping=fields[3],
                 persist=data.get("persist") is True,
                 created_at=float(created_at) if isinstance(created_at, (int, float)) and not isinstance(created_at, bool) else 0.0)


def tombstone_of(key: Optional[bytes], value: Optional[bytes], headers: Any = ()) -> Optional[Tuple[str, str]]:
    """``(id, reason)`` if the record is a tombstone of a registration, else None."""
    if value is not None or not key:
        return None
    reason = "deleted"
    for name, raw in headers or ():
        if name == REASON_HEADER and raw:
            reason = bytes(raw).decode("utf-8", "replace")
    return key.decode("utf-8", "replace"), reason


def rebuild(entry: Entry, mappings: Mapping[str, IndexMapping]) -> Registration:
    """The registration this Beater computes for ``entry``; BadEntry if the query no longer parses
    here or its id differs from the logged one (another mapping, another version)."""
    try:
        registration = make_registration(entry.index, entry.query, entry.default_operator, field_kinds(mappings, entry.index))
    except Exception as e:
        raise BadEntry(f"does not register here: {getattr(e, 'message', None) or e}") from None
    if registration.id != entry.id:
        raise BadEntry(f"computes to id {registration.id} here (mapping {registration.mapping or 'dynamic'!r}, "
                       f"logged with {entry.mapping or 'dynamic'!r})")
    return dataclasses.replace(registration, persist=entry.persist, created_at=entry.created_at)


@dataclass(frozen=True)
class LogConfig:
    bootstrap: List[str]
    topic: str = DEFAULT_TOPIC


class RegistrationLog:
    """Follow the registrations topic into ``register`` (an awaitable-returning local registration) and
    produce new registrations to it.

    ``caught_up`` fires once every entry that was in the topic when the log started is registered
    locally; the Kafka document source waits for it.
    """

    def __init__(self, reactor: Any, config: LogConfig, register: Callable[[Registration], Awaitable[bool]],
                 mappings: Mapping[str, IndexMapping], metrics: Any = None,
                 drop: Optional[Callable[[str, str], Any]] = None) -> None:
        """``register(registration)`` registers an entry locally; ``drop(id, reason)`` (an awaitable)
        removes one whose tombstone was read (None: tombstones are only counted)."""
        self.reactor = reactor
        self.config = config
        self.register = register
        self.drop = drop
        self.mappings = mappings
        self.caught_up: "Deferred[None]" = Deferred()
        self.known: Set[str] = set()
        """Ids known to be in the log (read from it or produced by us): registering them again produces nothing."""
        self.persistent: Set[str] = set()
        """Those of ``known`` logged with ``persist``: registering one with persist again produces nothing either."""
        self._producer: Any = None
        self._ready: "Deferred[None]" = Deferred()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._chain: "Deferred[None]" = succeed(None)
        self.applied = self.skipped = 0
        self._metrics = _Metrics(metrics.registry) if metrics is not None else None

    # --- reactor side ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="estrom kafka registrations", daemon=True)
        self._thread.start()

    def stop(self) -> "Deferred[None]":
        self._stop.set()
        thread = self._thread
        if thread is None:
            return succeed(None)
        return deferToThreadPool(self.reactor, self.reactor.getThreadPool(), thread.join, 15)

    async def publish(self, registration: Registration, force: bool = False) -> None:
        """Produce ``registration`` (acks=all) unless the log already has it (with its ``persist``) or
        ``force``; raise if it cannot be made durable."""
        if not force and registration.id in self.known and (not registration.persist or registration.id in self.persistent):
            return
        await self._produce(registration.id.encode(), encode(registration)[1], registration.id)
        self.known.add(registration.id)
        if registration.persist:
            self.persistent.add(registration.id)

    async def tombstone(self, subscription_id: str, reason: str) -> None:
        """Produce the tombstone of a removed registration (acks=all); raise if it cannot be made durable."""
        await self._produce(subscription_id.encode(), None, subscription_id, [(REASON_HEADER, reason.encode())])
        self.known.discard(subscription_id)  # registering it again must produce it again
        self.persistent.discard(subscription_id)

    async def _produce(self, key: bytes, value: Optional[bytes], subscription_id: str, headers: Optional[List[Tuple[str, bytes]]] = None) -> None:
        if not self._ready.called:
            await _with_timeout(self.reactor, self._ready, PRODUCE_TIMEOUT_S)
        producer = self._producer

        def send() -> Any:
            return producer.send(self.config.topic, key=key, value=value, headers=headers).get(timeout=PRODUCE_TIMEOUT_S)

        try:
            await deferToThreadPool(self.reactor, self.reactor.getThreadPool(), send)
        except Exception as e:
            from beater.errors import BackendUnavailable

            what = "registered here but not written" if value is not None else "the removal was not written"
            raise BackendUnavailable(f"{what} to the registrations log {self.config.topic!r} "
                                     f"({type(e).__name__}: {e}); try again", part=subscription_id) from None

    def _records(self, records: List[Tuple[Any, ...]], caught_up: bool) -> None:
        """Records ``(offset, key, value[, headers])`` handed over by the log thread: applied one after
        another, in log order."""
        for offset, key, value, *rest in records:
            headers = rest[0] if rest else ()
            self._chain.addCallback(self._apply_next, offset, key, value, headers)
            self._chain.addErrback(lambda f: log.failure("registrations log: applying an entry failed", f))
        if caught_up:
            self._chain.addCallback(lambda _: None if self.caught_up.called else self.caught_up.callback(None))

    def _apply_next(self, _: None, offset: int, key: Optional[bytes], value: Optional[bytes], headers: Any) -> "Deferred[None]":
        """The chain's next link: apply this entry once the ones before it are applied."""
        return ensureDeferred(self._apply(offset, key, value, headers))

    async def _apply(self, offset: int, key: Optional[bytes], value: Optional[bytes], headers: Any = ()) -> None:
        try:
            tombstone = tombstone_of(key, value, headers)
            if tombstone is not None:
                await self._drop_entry(offset, *tombstone)
            else:
                await self._register_entry(offset, key, value)
        finally:
            if self._metrics:
                self._metrics.read.set(offset + 1)

    async def _register_entry(self, offset: int, key: Optional[bytes], value: Optional[bytes]) -> None:
        try:
            registration = rebuild(decode(key, value), self.mappings)
        except BadEntry as e:
            self.skipped += 1
            if self._metrics:
                self._metrics.skipped.inc()
            log.warn("registrations log: entry {topic}@{offset} skipped: {why}", topic=self.config.topic, offset=offset, why=str(e))
            return
        try:
            created = await self.register(registration)
        except Exception as e:  # the percolator refused or is away: log it, the next start reads it again
            self.skipped += 1
            log.error("registrations log: registering {id} from {topic}@{offset} failed: {error}",
                      id=registration.id, topic=self.config.topic, offset=offset, error=str(e))
            return
        self.known.add(registration.id)
        if registration.persist:
            self.persistent.add(registration.id)
        if created:
            self.applied += 1
            if self._metrics:
                self._metrics.applied.inc()
            log.info("registered {id} on {index} from the registrations log: {canonical}",
                     id=registration.id, index=registration.index, canonical=registration.canonical_text)

    async def _drop_entry(self, offset: int, subscription_id: str, reason: str) -> None:
        self.known.discard(subscription_id)
        self.persistent.discard(subscription_id)
        if self._metrics:
            self._metrics.tombstones.inc()
        if self.drop is None:
            return
        try:
            await self.drop(subscription_id, reason)
        except Exception as e:  # the percolator is away: the next start reads the tombstone again
            log.error("registrations log: removing {id} ({reason}) from {topic}@{offset} failed: {error}",
                      id=subscription_id, reason=reason, topic=self.config.topic, offset=offset, error=str(e))

    def _log(self, level: str, text: str, **kw: Any) -> None:
        self.reactor.callFromThread(getattr(log, level), text, **kw)

    # --- the log thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
                return
            except Exception as e:
                self._log("warn", "registrations log: {error}; trying again in 2 s", error=f"{type(e).__name__}: {e}")
                self._stop.wait(2.0)

    def _follow(self) -> None:
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition

        ensure_topic(self.config.bootstrap, self.config.topic)
        if self._producer is None:
            producer = KafkaProducer(bootstrap_servers=self.config.bootstrap, client_id="estrom-beater-registrations",
                                     acks="all", retries=5, linger_ms=0, reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS)
            self._producer = producer
            self.reactor.callFromThread(lambda: None if self._ready.called else self._ready.callback(None))
        consumer = KafkaConsumer(bootstrap_servers=self.config.bootstrap, group_id=None, client_id="estrom-beater-registrations",
                                 enable_auto_commit=False, auto_offset_reset="earliest",
                                 reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS)
        try:
            tp = TopicPartition(self.config.topic, 0)
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            end = consumer.end_offsets([tp])[tp]
            caught_up = False
            while not self._stop.is_set():
                batches = consumer.poll(timeout_ms=200)
                records = [(r.offset, r.key, r.value, r.headers) for batch in batches.values() for r in batch]
                now_caught_up = not caught_up and consumer.position(tp) >= end
                if records or now_caught_up:
                    self.reactor.callFromThread(self._records, records, now_caught_up)
                caught_up = caught_up or now_caught_up
        finally:
            try:
                consumer.close()
            except Exception:
                pass
            if self._stop.is_set() and self._producer is not None:
                try:
                    self._producer.close(timeout=5)
                except Exception:
                    pass


def ensure_topic(bootstrap: List[str], topic: str) -> None:
    """Create ``topic`` (compacted, one partition, the broker's default replication) unless it exists."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="estrom-beater-registrations-admin",
                             reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS)
    try:
        if topic in admin.list_topics():
            return
        try:
            admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=-1,
                                          topic_configs={"cleanup.policy": "compact"})])
        except TopicAlreadyExistsError:
            pass
    finally:
        admin.close()


class _Metrics:
    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Gauge

        self.applied = Counter("estrom_kafka_registrations_applied", "Registrations from the registrations log new to this Beater", registry=registry)
        self.skipped = Counter("estrom_kafka_registrations_skipped", "Entries of the registrations log not registered here (bad, other mapping)", registry=registry)
        self.tombstones = Counter("estrom_kafka_registrations_tombstones", "Removed registrations (expired, deleted) read from the registrations log", registry=registry)
        self.read = Gauge("estrom_kafka_registrations_read_offset", "Next offset of the registrations log this Beater has registered", registry=registry)


async def _with_timeout(reactor: Any, d: "Deferred[Any]", seconds: float) -> None:
    from beater.errors import BackendUnavailable

    waiter: "Deferred[Any]" = Deferred()
    def relay(r: Any) -> Any:
        if not waiter.called:
            waiter.callback(r)
        return r

    d.addBoth(relay)
    call = reactor.callLater(seconds, lambda: None if waiter.called else waiter.errback(
        BackendUnavailable(f"the registrations log is not reachable (waited {seconds:.0f} s)")))
    try:
        await waiter
    finally:
        if call.active():
            call.cancel()
