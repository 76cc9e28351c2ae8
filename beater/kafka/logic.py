"""The Kafka source's decisions, free of threads and brokers (unit-tested on their own).

- settings: topics, ``topic=index`` maps, bootstrap addresses;
- poison: which record values can never become a document, and why;
- offsets: per partition, the records in flight and the offset that may be committed (the lowest
  one not fully delivered: every record before it percolated and its publishes acknowledged);
- flow: when to pause every partition (too much in flight) and when to resume (drained below a low mark).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any, Dict, Hashable, Iterable, List, Mapping, Optional, Set, Tuple

from beater.ingest import Incoming, unwrap
from beater.limits import DEFAULT as DEFAULT_LIMITS
from beater.limits import Limits, check_document, loads, lone_surrogate

TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
RECONNECT_BACKOFF_MAX_MS = 1000
"""Longest wait between attempts to reach a broker.  kafka-python's default, 30 s, doubles from
50 ms on every failure, so after an outage of 15 s a client could wait half a minute more before
trying a broker that was already back; Java clients cap it at 1 s."""


class KafkaSettingError(ValueError):
    """A Kafka setting that cannot work; the message names what is wrong."""


def parse_bootstrap(text: str) -> List[str]:
    """``host:port,host:port`` as a list; KafkaSettingError for anything else."""
    servers = [part.strip() for part in text.split(",") if part.strip()]
    if not servers:
        raise KafkaSettingError("give at least one HOST:PORT")
    for server in servers:
        host, sep, port = server.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise KafkaSettingError(f"{server!r} is not HOST:PORT")
    return servers


def parse_topics(text: str) -> List[str]:
    """``events,logs`` as a list of distinct valid topic names (order kept)."""
    topics: List[str] = []
    for part in text.split(","):
        name = part.strip()
        if not name:
            continue
        if not TOPIC_NAME.match(name) or name in (".", ".."):
            raise KafkaSettingError(f"{name!r} is not a Kafka topic name (letters, digits, '.', '_', '-', at most 249)")
        if name not in topics:
            topics.append(name)
    if not topics:
        raise KafkaSettingError("name at least one topic")
    return topics


def parse_index_map(text: str, topics: Iterable[str]) -> Dict[str, str]:
    """``topic=index,topic=index`` as a dict; each topic must be one of ``topics`` and named once,
    each index a valid estrom index name."""
    from beater.errors import EstromError
    from beater.registration import validate_index

    known = set(topics)
    mapping: Dict[str, str] = {}
    for part in text.split(","):
        item = part.strip()
        if not item:
            continue
        topic, sep, index = (s.strip() for s in item.partition("="))
        if not sep or not topic or not index:
            raise KafkaSettingError(f"{item!r} is not topic=index")
        if topic not in known:
            raise KafkaSettingError(f"topic {topic!r} is not one of the consumed topics ({', '.join(sorted(known))})")
        if topic in mapping:
            raise KafkaSettingError(f"topic {topic!r} is mapped twice")
        try:
            mapping[topic] = validate_index(index)
        except EstromError as e:
            raise KafkaSettingError(f"{index!r} is not a usable index name: {e.message}") from None
    return mapping


def index_for(topic: str, index_map: Mapping[str, str]) -> str:
    """The estrom index of a topic's documents: mapped, else the topic's own name."""
    return index_map.get(topic, topic)


# --- poison records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Poison:
    """Why a record can never be a document: a short ``reason`` (a metric label) and a message."""

    reason: str
    message: str


def classify(value: Optional[bytes], index: str, origin: Dict[str, Any], max_bytes: int,
             limits: Limits = DEFAULT_LIMITS) -> Tuple[Optional[Incoming], Optional[Poison]]:
    """A record's value as a document of ``index`` carrying ``origin`` (``{"topic", "partition", "offset"}``),
    or why it is poison: ``too_large``, ``not_json``, ``invalid_document`` (not an object, a bad envelope),
    or over a document limit of HTTP ingest (``too_deep``, ``too_many_fields``, ``too_large``)."""
    if value is None:
        return None, Poison("not_json", "the record has no value (a tombstone)")
    if len(value) > max_bytes:
        return None, Poison("too_large", f"the value is {len(value)} bytes, over the limit of {max_bytes}")
    try:
        decoded, deep = loads(value, limits)
    except UnicodeDecodeError as e:
        return None, Poison("not_json", f"the value is not UTF-8: {e.reason} at byte {e.start}")
    except ValueError as e:  # JSONDecodeError, and numbers Python refuses
        return None, Poison("not_json", f"invalid JSON: {e}")
    if deep is not None:
        return None, Poison(deep.reason, deep.message)
    document, error = unwrap(decoded, index)
    if document is None:
        return None, Poison("invalid_document", error or "invalid document")
    violation = check_document(document.source, limits, len(value), value)
    if violation is not None:
        return None, Poison(violation.reason, violation.message)
    unwritable = lone_surrogate(document.source, value)
    if unwritable is not None:
        return None, Poison("invalid_document", unwritable)
    # Built directly (copy any field Incoming gains): dataclasses.replace costs 2.4 us a record, a
    # fifth of this whole function.
    return Incoming(source=document.source, id=document.id, kafka=origin), None


# --- offsets ----------------------------------------------------------------------------------------


class _Partition:
    __slots__ = ("generation", "pending", "next", "committed")

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.pending: Set[int] = set()  # offsets handed out and not yet fully delivered
        self.next: Optional[int] = None  # one past the highest offset seen
        self.committed: Optional[int] = None  # the last position committed (or known committed)

    def position(self) -> Optional[int]:
        if self.pending:
            return min(self.pending)
        return self.next


class OffsetTracker:
    """Offsets in flight per partition, shared by the consumer thread, kafka-python's IO thread
    (the rebalance listener) and the reactor (deliveries): every method takes the lock.

    A partition gets a new generation each time it is assigned; a delivery reported for an
    older generation (a record handed out before a revocation) changes nothing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._partitions: Dict[Hashable, _Partition] = {}
        self._generations = 0
        self.in_flight = 0

    def assign(self, key: Hashable) -> int:
        """Start tracking ``key`` (again); its generation."""
        with self._lock:
            old = self._partitions.get(key)
            if old is not None:
                self.in_flight -= len(old.pending)
            self._generations += 1
            self._partitions[key] = _Partition(self._generations)
            return self._generations

    def generation(self, key: Hashable) -> int:
        """The current generation of ``key`` (assigning it if it is not tracked)."""
        with self._lock:
            partition = self._partitions.get(key)
            if partition is not None:
                return partition.generation
        return self.assign(key)

    def current(self, key: Hashable, generation: int) -> bool:
        """Whether ``generation`` is still the live assignment of ``key``."""
        with self._lock:
            partition = self._partitions.get(key)
            return partition is not None and partition.generation == generation

    def revoke(self, keys: Iterable[Hashable]) -> None:
        """Stop tracking ``keys``; what they had in flight no longer counts."""
        with self._lock:
            for key in keys:
                partition = self._partitions.pop(key, None)
                if partition is not None:
                    self.in_flight -= len(partition.pending)

    def add(self, key: Hashable, generation: int, offset: int) -> bool:
        """``offset`` of ``key`` was handed out; False (ignored) for a stale generation."""
        with self._lock:
            partition = self._partitions.get(key)
            if partition is None or partition.generation != generation:
                return False
            if offset not in partition.pending:
                partition.pending.add(offset)
                self.in_flight += 1
            if partition.next is None or offset + 1 > partition.next:
                partition.next = offset + 1
            return True

    def add_all(self, key: Hashable, generation: int, offsets: Iterable[int]) -> bool:
        """``offsets`` of ``key`` (one fetch of its records) were handed out: :meth:`add` for each,
        under one lock; False (none added) for a stale generation."""
        with self._lock:
            partition = self._partitions.get(key)
            if partition is None or partition.generation != generation:
                return False
            pending = partition.pending
            before = len(pending)
            highest = -1
            for offset in offsets:
                pending.add(offset)
                if offset > highest:
                    highest = offset
            self.in_flight += len(pending) - before
            if highest >= 0 and (partition.next is None or highest + 1 > partition.next):
                partition.next = highest + 1
            return True

    def done(self, key: Hashable, generation: int, offsets: Iterable[int]) -> int:
        """``offsets`` of ``key`` are fully delivered; how many of them counted."""
        with self._lock:
            partition = self._partitions.get(key)
            if partition is None or partition.generation != generation:
                return 0
            counted = 0
            for offset in offsets:
                if offset in partition.pending:
                    partition.pending.remove(offset)
                    counted += 1
            self.in_flight -= counted
            return counted

    def pending(self, keys: Optional[Iterable[Hashable]] = None) -> int:
        """Records in flight of ``keys`` (all partitions if None)."""
        with self._lock:
            chosen = self._partitions.values() if keys is None else [p for k, p in self._partitions.items() if k in set(keys)]
            return sum(len(p.pending) for p in chosen)

    def position(self, key: Hashable) -> Optional[int]:
        """Where a consumer taking over ``key`` must start: the lowest offset not fully delivered."""
        with self._lock:
            partition = self._partitions.get(key)
            return None if partition is None else partition.position()

    def to_commit(self, keys: Optional[Iterable[Hashable]] = None) -> Dict[Hashable, int]:
        """The positions that moved since they were last committed, per partition."""
        with self._lock:
            wanted = None if keys is None else set(keys)
            moved = {}
            for key, partition in self._partitions.items():
                if wanted is not None and key not in wanted:
                    continue
                position = partition.position()
                if position is not None and position != partition.committed:
                    moved[key] = position
            return moved

    def committed(self, positions: Mapping[Hashable, int]) -> None:
        """``positions`` were committed."""
        with self._lock:
            for key, position in positions.items():
                partition = self._partitions.get(key)
                if partition is not None:
                    partition.committed = position


# --- flow -------------------------------------------------------------------------------------------


class FlowControl:
    """Pause every partition above ``high`` records in flight, resume below ``low`` (default high / 2)."""

    def __init__(self, high: int, low: Optional[int] = None) -> None:
        if high < 1:
            raise ValueError("high must be >= 1")
        self.high = high
        self.low = max(0, high // 2 if low is None else min(low, high))

    def decide(self, in_flight: int, paused: bool) -> Optional[str]:
        """``"pause"``, ``"resume"`` or None (stay as is)."""
        if not paused and in_flight >= self.high:
            return "pause"
        if paused and in_flight <= self.low:
            return "resume"
        return None
