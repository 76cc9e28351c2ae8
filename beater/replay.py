"""The replay store: recently matched documents, so a tail that lost its connection resumes without a hole.

Per index the store keeps the documents that matched at least one *recorded*
subscription (one that has, or recently had, a subscriber: ``records``),
each once, as the compact JSON bytes a tail writes; per subscription it keeps
the ``_seq`` numbers of its hits in an ``array('q')``.  ``replay`` answers what
a subscription matched after a seq (exclusive) or from a time (inclusive), a
page at a time, and says whether that answer is whole:

* ``gap`` is true when some of the subscription's hits after ``since`` may be
  missing: evicted (count, age, the global pair and byte bounds), matched
  while the subscription was not recorded, or from before this store existed
  (a restarted Beater starts empty).
* ``missed`` counts the hits known to be lost, when the store can count them
  (evicted hits whose seqs it still holds), else None.

Three facts keep the bookkeeping small and exact:

* Seqs of an index grow and the pipeline records its slices in seq order, so
  eviction is first-in first-out and "evicted" is "below the index's floor"
  (its oldest held seq).  A subscription's seqs below the floor are dead but
  stay in its array until trimming pays (half the array dead, or a sweep when
  dead entries outnumber live ones): while they are there ``missed`` is exact.
* A subscription's record breaks only when one of its hits passes while it
  is not recorded; a quiet subscription loses nothing while unrecorded.  So
  an entry keeps where its unbroken record starts (a seq and a time) and only
  a dropped hit moves that start forward.
* ``track`` (a registration, lookup or subscription for the id) starts an
  entry before its first hit with a snapshot of every index's position, shared
  by all entries tracked between two recorded slices: a quiet subscription
  resumes "since the time it subscribed" without a false gap.

Pure logic: no I/O, the clock is injected (wall seconds: ``_received`` times
are wall times).
"""

from __future__ import annotations

import time
from array import array
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from beater.hits import Encode, Hit, encode_hit, received_ms

MAX_LIMIT = 1000
"""Most hits in one replay answer (callers page with ``more``)."""
MAX_PAGE_BYTES = 1 << 20
"""Most hit bytes in one replay answer (at least one hit always goes)."""
DEFAULT_MAX_PAIRS = 2_000_000
"""Recorded (document, subscription) pairs over all indexes: 16-32 MB of seqs at most."""
DEFAULT_MAX_BYTES = 256 << 20
"""Document bytes held over all indexes."""
EVICTION_REASONS = ("count", "age", "pairs", "bytes")

_COMPACT_MIN = 32  # a subscription's array is trimmed at append once it has this many entries, half dead
_INDEX_COMPACT_MIN = 4096  # an index's arrays drop their evicted prefix once it is this long and half of them


def _after_ms(seconds: float) -> int:
    """The first whole millisecond strictly after ``seconds`` (``_received`` truncates to ms)."""
    return int(seconds * 1000) + 1


@dataclass
class ReplayPage:
    """One answer of ``replay``: hits ascending by seq, whether some may be missing, how many are lost."""

    hits: List[Tuple[int, bytes]] = field(default_factory=list)
    gap: bool = False
    missed: Optional[int] = 0
    more: bool = False

    def to_json(self) -> Dict[str, object]:
        """The RPC's answer: ``{"hits": [[seq, bytes], ...], "gap", "missed", "more"}``."""
        return {"hits": [[seq, data] for seq, data in self.hits], "gap": self.gap, "missed": self.missed, "more": self.more}


class _Index:
    """The documents of one index held for replay, oldest first, in parallel arrays."""

    __slots__ = ("seqs", "received", "docs", "pairs", "head", "origin", "next_seq", "last_received",
                 "evicted_max_seq", "evicted_max_received")

    def __init__(self, origin: int) -> None:
        self.seqs = array("q")
        self.received = array("q")
        self.docs: List[Optional[bytes]] = []
        self.pairs = array("l")  # how many recorded subscriptions each document's seq appears under
        self.head = 0  # documents before head are evicted (their slots are trimmed lazily)
        self.origin = origin  # the first seq this store saw: before it, previous runs
        self.next_seq = origin  # one past the last seq recorded
        self.last_received = -1  # _received (ms) of the last slice recorded
        self.evicted_max_seq = -1
        self.evicted_max_received = -1

    def held(self) -> int:
        """Documents held."""
        return len(self.seqs) - self.head

    def floor(self) -> int:
        """Seqs below this are no longer held (every stored document under it was evicted)."""
        return self.seqs[self.head] if self.head < len(self.seqs) else self.next_seq

    def position(self, seq: int) -> int:
        """Where ``seq`` is (or would be) among the held documents."""
        return bisect_left(self.seqs, seq, self.head)

    def first_seq_received_from(self, ms: int) -> int:
        """The smallest held seq received at or after ``ms`` (``next_seq`` if none)."""
        i = bisect_left(self.received, ms, self.head)
        return self.seqs[i] if i < len(self.seqs) else self.next_seq

    def compact(self) -> None:
        """Drop the evicted prefix of the arrays once it is large (amortised O(1) per document)."""
        if self.head >= _INDEX_COMPACT_MIN and self.head * 2 >= len(self.seqs):
            k = self.head
            del self.seqs[:k]
            del self.received[:k]
            del self.docs[:k]
            del self.pairs[:k]
            self.head = 0


class _Recorded:
    """What the store knows of one subscription: its hits' seqs and where its unbroken record starts."""

    __slots__ = ("index", "seqs", "dropped", "dropped_max", "from_seq", "from_ms", "snapshot")

    def __init__(self) -> None:
        self.index: Optional[str] = None  # known from the first hit (ids are per index)
        self.seqs: Optional[array] = None  # created with the first hit: most tracked ids never match
        self.dropped = 0  # dead seqs trimmed away: counted, no longer known one by one
        self.dropped_max = -1
        # Hits from (from_seq, from_ms) on are all here or counted as evicted; both None while only
        # ``snapshot`` (index -> (next seq, first ms after the last slice) at tracking) says it.
        self.from_seq: Optional[int] = None
        self.from_ms: Optional[int] = None
        self.snapshot: Optional[Dict[str, Tuple[int, int]]] = None


class ReplayStore:
    """Bounded per-index store of recently matched documents and, per subscription, the seqs it matched."""

    def __init__(
        self,
        records: Callable[[str], bool],
        max_docs: int = 100_000,
        max_age_s: float = 600.0,
        max_pairs: int = DEFAULT_MAX_PAIRS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.time,
        sweep_min: int = 65_536,
    ) -> None:
        """``records(id)`` says whether a subscription's hits are kept now (it has or recently had a subscriber)."""
        self.records = records
        self.max_docs = max_docs
        self.max_age_ms = int(max_age_s * 1000)
        self.max_pairs = max_pairs
        self.max_bytes = max_bytes
        self.clock = clock
        self.sweep_min = sweep_min
        self.start_ms = _after_ms(clock())  # documents of earlier runs were received before this
        self._indexes: Dict[str, _Index] = {}
        self._subs: Dict[str, _Recorded] = {}
        self._snapshot: Optional[Dict[str, Tuple[int, int]]] = None
        self._parsed: Tuple[str, int] = ("", 0)
        self._subs_after_sweep = 0
        self.documents = 0
        self.bytes = 0
        self.live_pairs = 0  # pairs whose document is held
        self.array_pairs = 0  # seqs in subscription arrays, dead ones included
        self.evictions: Dict[str, int] = dict.fromkeys(EVICTION_REASONS, 0)

    # --- recording ------------------------------------------------------------------------------

    def track(self, subscription_id: str) -> None:
        """Someone asked for this id (register, lookup, subscribe): its record starts now, hit or not."""
        if subscription_id in self._subs:
            return  # its record is unbroken, or its start already moved past the hits it dropped
        entry = _Recorded()
        if self._snapshot is None:  # shared by every id tracked until the next slice is recorded
            self._snapshot = {name: (ix.next_seq, ix.last_received + 1) for name, ix in self._indexes.items()}
        entry.snapshot = self._snapshot
        self._subs[subscription_id] = entry
        self._maybe_sweep()

    def record(self, index: str, hits: Sequence[Hit], grouped: Mapping[str, Sequence[Hit]], encode: Encode = encode_hit) -> None:
        """One percolated slice: ``hits`` (consecutive seqs of ``index``, in order) and, per subscription
        id, the hits it matched (the pipeline's grouping, which it publishes next); ``encode`` gives the
        bytes it keeps (the slice's, which its publisher sends too).

        Called before the slice is published, so a replay answered at any moment plus the live
        events after it miss nothing.  The work is per subscription, not per (hit, subscription):
        at 100,000 queries a document matches ~1,400, nearly all of them unrecorded.
        """
        if not hits:
            return
        first, last = hits[0]["_seq"], hits[-1]["_seq"]
        ix = self._indexes.get(index)
        if ix is None:
            ix = self._indexes[index] = _Index(first)
        slice_ms = self._received_ms(ix, hits[0])
        floor = ix.floor()
        pairs: Counter[int] = Counter()  # seq -> recorded subscriptions it matched, for the documents to store
        for sub_id, sub_hits in grouped.items():
            entry = self._subs.get(sub_id)
            if not self.records(sub_id):
                if entry is not None:  # a hit passed unrecorded: its unbroken record restarts after this slice
                    entry.from_seq, entry.from_ms, entry.snapshot = last + 1, slice_ms + 1, None
                continue
            if entry is None:  # recorded without being tracked (e.g. while the router's list is unknown)
                entry = self._subs[sub_id] = _Recorded()
                entry.from_seq, entry.from_ms = sub_hits[0]["_seq"], slice_ms + 1
            elif entry.from_seq is None:
                self._resolve(entry, index, ix)
            if entry.seqs is None:
                entry.seqs = array("q")
                entry.index = index
            elif len(entry.seqs) >= _COMPACT_MIN and entry.seqs[0] < floor:
                self._trim(entry, floor, lazy=True)
            sub_seqs = [hit["_seq"] for hit in sub_hits]
            entry.seqs.extend(sub_seqs)
            pairs.update(sub_seqs)  # counted in C
        if pairs:
            consecutive = last - first + 1 == len(hits)  # as the pipeline gives them; else look them up
            by_seq = None if consecutive else {hit["_seq"]: hit for hit in hits}
            for seq in sorted(pairs):
                self._store(ix, hits[seq - first] if by_seq is None else by_seq[seq], pairs[seq], encode)
        ix.next_seq = last + 1
        ix.last_received = max(ix.last_received, slice_ms)
        self._snapshot = None
        self.expire()
        self._maybe_sweep()

    def _received_ms(self, ix: _Index, hit: Hit) -> int:
        """A hit's ``_received`` in ms, parsed once per distinct value (a batch shares one), never
        below the index's last: a wall clock stepping back must not unsort the index's times."""
        text = hit["_received"]
        if text != self._parsed[0]:
            self._parsed = (text, received_ms(text))
        return max(self._parsed[1], ix.last_received)

    def _store(self, ix: _Index, hit: Hit, pairs: int, encode: Encode) -> None:
        data = encode(hit)
        ix.seqs.append(hit["_seq"])
        ix.received.append(self._received_ms(ix, hit))
        ix.docs.append(data)
        ix.pairs.append(pairs)
        self.documents += 1
        self.bytes += len(data)
        self.live_pairs += pairs
        self.array_pairs += pairs

    def _resolve(self, entry: _Recorded, index: str, ix: Optional[_Index]) -> None:
        """Turn a tracked entry's snapshot into where its record of ``index`` starts."""
        snapshot = entry.snapshot or {}
        if index in snapshot:
            entry.from_seq, entry.from_ms = snapshot[index]
        elif ix is not None:  # the index's first slice came after tracking: all of this run is covered
            entry.from_seq, entry.from_ms = ix.origin, self.start_ms
        else:
            return  # nothing of this index yet: stays a snapshot
        entry.snapshot = None

    # --- eviction -------------------------------------------------------------------------------

    def expire(self) -> None:
        """Evict what is older than the age bound, over the count bound, then over the global bounds."""
        oldest_kept = int(self.clock() * 1000) - self.max_age_ms
        for ix in self._indexes.values():
            while ix.head < len(ix.seqs) and ix.received[ix.head] < oldest_kept:
                self._evict_head(ix, "age")
            while ix.held() > self.max_docs:
                self._evict_head(ix, "count")
            ix.compact()
        while self.live_pairs > self.max_pairs or self.bytes > self.max_bytes:
            reason = "pairs" if self.live_pairs > self.max_pairs else "bytes"
            held = [ix for ix in self._indexes.values() if ix.head < len(ix.seqs)]
            if not held:
                break
            oldest = min(held, key=lambda ix: ix.received[ix.head])
            self._evict_head(oldest, reason)
            oldest.compact()

    def _evict_head(self, ix: _Index, reason: str) -> None:
        i = ix.head
        data = ix.docs[i]
        ix.docs[i] = None
        self.bytes -= len(data) if data is not None else 0
        self.live_pairs -= ix.pairs[i]
        self.documents -= 1
        ix.evicted_max_seq = ix.seqs[i]
        ix.evicted_max_received = max(ix.evicted_max_received, ix.received[i])
        ix.head = i + 1
        self.evictions[reason] += 1

    def _trim(self, entry: _Recorded, floor: int, lazy: bool) -> None:
        """Drop an entry's dead seqs (below ``floor``): when half are dead (``lazy``), or all of them."""
        seqs = entry.seqs
        if not seqs:
            return
        k = bisect_left(seqs, floor)
        if k == 0 or (lazy and k * 2 < len(seqs)):
            return
        entry.dropped += k
        entry.dropped_max = seqs[k - 1]
        del seqs[:k]
        self.array_pairs -= k

    def _maybe_sweep(self) -> None:
        dead = self.array_pairs - self.live_pairs
        too_many_dead = dead >= self.sweep_min and dead > self.live_pairs
        too_many_subs = len(self._subs) > 2 * self._subs_after_sweep + self.sweep_min
        if too_many_dead or too_many_subs:
            self.sweep()

    def sweep(self) -> None:
        """Trim every subscription's dead seqs; forget entries with nothing held that are no longer recorded."""
        for sub_id in list(self._subs):
            entry = self._subs[sub_id]
            ix = self._indexes.get(entry.index) if entry.index is not None else None
            if ix is not None:
                self._trim(entry, ix.floor(), lazy=False)
            if not entry.seqs and not self.records(sub_id):
                # Forgetting is safe: an id tracked again starts a fresh record, which only says less.
                del self._subs[sub_id]
        self._subs_after_sweep = len(self._subs)

    # --- answering ------------------------------------------------------------------------------

    def replay(self, index: str, subscription_id: str, since_seq: Optional[int] = None, since_ms: Optional[int] = None,
               limit: int = MAX_LIMIT, max_bytes: int = MAX_PAGE_BYTES) -> ReplayPage:
        """What ``subscription_id`` (of ``index``) matched after seq ``since_seq`` or from time ``since_ms``."""
        if (since_seq is None) == (since_ms is None):
            raise ValueError("give exactly one of since_seq and since_ms")
        self.expire()
        ix = self._indexes.get(index)
        entry = self._subs.get(subscription_id)
        if entry is not None and entry.from_seq is None:
            self._resolve(entry, index, ix)
        if since_seq is not None:
            start = since_seq + 1
            uncovered = _seq_uncovered(start, ix, entry)
        else:
            assert since_ms is not None
            start = ix.first_seq_received_from(since_ms) if ix is not None else 0
            uncovered = _time_uncovered(since_ms, self.start_ms, ix, entry)
        page = ReplayPage()
        if ix is None or entry is None or entry.seqs is None:
            page.gap, page.missed = uncovered, None if uncovered else 0
            return page
        floor = ix.floor()
        if uncovered:
            page.gap, page.missed = True, None
        elif since_seq is not None:
            page.missed = _dead_from(entry, start, floor)
        else:
            page.missed = _dead_from_time(entry, since_ms, floor, ix)  # type: ignore[arg-type]
        page.gap = page.gap or page.missed != 0
        self._fill(page, ix, entry.seqs, max(start, floor), limit, max_bytes)
        return page

    def _fill(self, page: ReplayPage, ix: _Index, seqs: array, start: int, limit: int, max_bytes: int) -> None:
        i = bisect_left(seqs, start)
        size = 0
        while i < len(seqs) and len(page.hits) < limit:
            seq = seqs[i]
            j = ix.position(seq)
            data = ix.docs[j] if j < len(ix.seqs) and ix.seqs[j] == seq else None
            if data is not None:
                if page.hits and size + len(data) > max_bytes:
                    break
                page.hits.append((seq, data))
                size += len(data)
            i += 1
        page.more = i < len(seqs)

    # --- figures --------------------------------------------------------------------------------

    def stats(self) -> Dict[str, int]:
        """Documents, bytes and pairs held, seqs in arrays, subscriptions known (for metrics and tests)."""
        return {"documents": self.documents, "bytes": self.bytes, "pairs": self.live_pairs,
                "array_pairs": self.array_pairs, "subscriptions": len(self._subs)}


def _seq_uncovered(start: int, ix: Optional[_Index], entry: Optional[_Recorded]) -> bool:
    """Whether seqs from ``start`` on may hold hits of the subscription that were never recorded."""
    if ix is None:
        return True  # nothing of this index in this run: any seq is an earlier run's
    if start < ix.origin:
        return True  # before this store existed
    if start >= ix.next_seq:
        return False  # nothing after it has happened yet
    return entry is None or entry.from_seq is None or start < entry.from_seq


def _time_uncovered(since_ms: int, start_ms: int, ix: Optional[_Index], entry: Optional[_Recorded]) -> bool:
    """Whether documents received from ``since_ms`` on may hold hits of the subscription never recorded."""
    if since_ms < start_ms:
        return True  # earlier runs received documents then
    if ix is None or since_ms > ix.last_received:
        return False  # nothing of this index was received since then
    if entry is None:
        return True
    from_ms = entry.from_ms if entry.from_ms is not None else start_ms
    return since_ms < from_ms


def _dead_from(entry: _Recorded, start: int, floor: int) -> Optional[int]:
    """How many of the entry's hits from seq ``start`` on were evicted (None when trimmed ones count)."""
    if entry.dropped_max >= start:
        return None
    seqs = entry.seqs or array("q")
    return max(0, bisect_left(seqs, floor) - bisect_left(seqs, start))


def _dead_from_time(entry: _Recorded, since_ms: int, floor: int, ix: _Index) -> Optional[int]:
    """How many of the entry's hits received from ``since_ms`` on were evicted (None when unknown)."""
    if since_ms > ix.evicted_max_received:
        return 0  # every document received since then is still held
    seqs = entry.seqs or array("q")
    if entry.dropped == 0 and (not seqs or seqs[0] >= floor):
        return 0  # none of its hits was ever evicted
    return None  # evicted documents' times are not kept: which of its evicted hits came after is unknown


__all__ = ["ReplayStore", "ReplayPage", "MAX_LIMIT", "MAX_PAGE_BYTES", "EVICTION_REASONS"]
