"""The query lifecycle: registrations nobody subscribes to expire, and what each one costs.

A registration is matched against every document of its index, whether or not
anyone listens, so a client registering a million distinct queries would make
every Beater match them all forever.  A registration that has had no
subscriber for ``--registration-grace-s`` (default 24 h; 0 turns expiry off)
is removed from the percolator and its store; one registered with
``persist=true`` never is.

The clock of a registration is *quiet since*: the last moment it had, or was
about to have, a subscriber (a register or lookup call, a subscription, its
last subscriber leaving, the router session ending while it had one), else
the moment this Beater started tracking it (registered, read from the
registrations log, loaded at start).  A restart therefore restarts every
clock: a registration may outlive its grace by the Beater's uptime gap, never
expire early.

Only exact subscriptions count as subscribers: a prefix or wildcard
subscription on ``docs-for-*`` receives every topic (a monitor), and would
otherwise keep every registration alive.  While this Beater does not know the
router's subscriptions (not joined yet, reconnecting) nothing expires.

Finding the due registrations is a lazy heap of deadlines, so a sweep costs
the registrations whose deadline passed, not all of them.

:class:`HitRates` counts matches per registration in the publish path (one
dict update per published event): the last hit time and a sliding-window
estimate of hits per minute, for the admin API (``beater/admin.py``).
"""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger

log = Logger()

DEFAULT_GRACE_S = 86400.0
MAX_PER_SWEEP = 10_000
"""Most registrations one sweep removes; the rest wait for the next sweep (the reactor never stalls on a backlog)."""
GONE_MEMORY = 100_000
"""How many expired or deleted ids are remembered to tell ``s=<id>`` why it is gone."""

EXPIRED = "expired"
DELETED = "deleted"


def sweep_interval(grace_s: float) -> float:
    """Seconds between sweeps: a tenth of the grace, between 0.25 s and one minute."""
    return min(60.0, max(0.25, grace_s / 10.0))


def is_expired(quiet_since: float, now: float, grace_s: float, persist: bool, in_use: bool) -> bool:
    """Whether a registration quiet since ``quiet_since`` is expired at ``now`` (pure: the whole rule)."""
    return grace_s > 0 and not persist and not in_use and now - quiet_since >= grace_s


class Tracked:
    """What the lifecycle keeps of one registration (small: there may be millions)."""

    __slots__ = ("index", "persist", "created_at", "quiet_since", "last_subscriber_at", "deadline")

    def __init__(self, index: str, persist: bool, created_at: float, quiet_since: float) -> None:
        self.index = index
        self.persist = persist
        self.created_at = created_at
        self.quiet_since = quiet_since
        """``clock`` time (monotonic) the expiry counts from."""
        self.last_subscriber_at: Optional[float] = None
        """Wall-clock time it last had, or was about to have, a subscriber."""
        self.deadline: Optional[float] = None
        """Its one live entry in the heap of deadlines (older entries for the id are stale)."""


class HitRates:
    """Per registration: when it last matched and about how many matches a minute.

    Two one-minute buckets per id, the estimate being the previous minute's count
    weighted by how much of it the sliding window still covers plus the current
    minute's: exact for steady rates, a few operations per published event.
    """

    def __init__(self, clock: Callable[[], float] = time.time, window_s: float = 60.0) -> None:
        self.clock = clock
        self.window_s = window_s
        self._counts: Dict[str, List[float]] = {}  # id -> [bucket number, current, previous, last hit time]

    def hit(self, subscription_id: str, count: int) -> None:
        """``count`` documents matched ``subscription_id`` now."""
        now = self.clock()
        bucket = now // self.window_s
        entry = self._counts.get(subscription_id)
        if entry is None:
            self._counts[subscription_id] = [bucket, count, 0, now]
            return
        if entry[0] != bucket:
            entry[2] = entry[1] if entry[0] == bucket - 1 else 0
            entry[1] = 0
            entry[0] = bucket
        entry[1] += count
        entry[3] = now

    def per_minute(self, subscription_id: str) -> float:
        """Matches in the last window, scaled to a minute (0 if none)."""
        entry = self._counts.get(subscription_id)
        if entry is None:
            return 0.0
        now = self.clock()
        bucket = now // self.window_s
        if entry[0] == bucket:
            current, previous = entry[1], entry[2]
        elif entry[0] == bucket - 1:
            current, previous = 0, entry[1]
        else:
            return 0.0
        covered = 1.0 - (now - bucket * self.window_s) / self.window_s  # share of the previous bucket still in the window
        return (current + previous * covered) * 60.0 / self.window_s

    def last_hit(self, subscription_id: str) -> Optional[float]:
        """Wall-clock time of the last match, or None."""
        entry = self._counts.get(subscription_id)
        return None if entry is None else entry[3]

    def forget(self, subscription_id: str) -> None:
        """The registration is gone."""
        self._counts.pop(subscription_id, None)


Publish = Callable[..., Awaitable[Any]]


class Lifecycle:
    """The registrations this Beater tracks, when each expires, and why recent ones are gone."""

    def __init__(self, grace_s: float = DEFAULT_GRACE_S, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        """``clock`` measures the grace (monotonic), ``wall`` dates what the admin API shows."""
        self.grace_s = grace_s
        self.clock = clock
        self.wall = wall
        self.tracked: Dict[str, Tracked] = {}
        self.hits = HitRates(wall)
        self.in_use: Callable[[str], bool] = lambda _id: False
        """Whether an id has a subscriber now or one on its way (wired to the listeners)."""
        self._deadlines: List[Tuple[float, str]] = []
        self._gone: "OrderedDict[str, Tuple[str, float]]" = OrderedDict()
        self._metrics: Optional[_Metrics] = None

    def count_in(self, registry: Any) -> None:
        """Count removals in this Prometheus registry."""
        self._metrics = _Metrics(registry, self)

    @property
    def enabled(self) -> bool:
        """Whether registrations expire at all."""
        return self.grace_s > 0

    def _schedule(self, entry: Tracked, subscription_id: str) -> None:
        if self.enabled:
            entry.deadline = entry.quiet_since + self.grace_s
            heapq.heappush(self._deadlines, (entry.deadline, subscription_id))

    def track(self, subscription_id: str, index: str, persist: bool = False, created_at: float = 0.0) -> Tracked:
        """Start tracking a registration (its clock starts now), or upgrade a tracked one to ``persist``."""
        self._gone.pop(subscription_id, None)
        entry = self.tracked.get(subscription_id)
        if entry is None:
            now = self.clock()
            entry = self.tracked[subscription_id] = Tracked(index, persist, created_at or self.wall(), now)
            if not persist:
                self._schedule(entry, subscription_id)
        elif persist:
            entry.persist = True
        return entry

    def load_from(self, percolator: Any) -> "Deferred[Any]":
        """Track what ``percolator`` has stored (its ``registrations()``); failures are logged, not raised."""
        d = percolator.registrations()
        d.addCallback(self.load)
        d.addErrback(lambda f: log.failure("listing the stored registrations for expiry failed", f))
        return d

    def load(self, stored: Iterable[Mapping[str, Any]]) -> int:
        """Track the stored registrations (their JSON) not tracked yet; answer how many."""
        count = 0
        for data in stored:
            subscription_id, index = data.get("id"), data.get("index")
            if isinstance(subscription_id, str) and isinstance(index, str) and subscription_id not in self.tracked:
                self.track(subscription_id, index, data.get("persist") is True, float(data.get("created_at") or 0.0))
                count += 1
        return count

    def touch(self, subscription_id: str) -> None:
        """The id has, had until now, or is about to have a subscriber: its clock starts again."""
        entry = self.tracked.get(subscription_id)
        if entry is not None:
            entry.quiet_since = self.clock()  # the heap entry is moved lazily, when it comes due
            entry.last_subscriber_at = self.wall()

    def forget(self, subscription_id: str, reason: str) -> None:
        """The registration is gone (``expired`` or ``deleted``): stop tracking, remember why."""
        self.tracked.pop(subscription_id, None)
        self.hits.forget(subscription_id)
        self._gone[subscription_id] = (reason, self.wall())
        self._gone.move_to_end(subscription_id)
        while len(self._gone) > GONE_MEMORY:
            self._gone.popitem(last=False)
        if self._metrics is not None:
            self._metrics.gone.labels(reason).inc()

    def gone(self, subscription_id: str) -> Optional[Tuple[str, float]]:
        """Why and when (wall clock) this id went away, if it did recently."""
        return self._gone.get(subscription_id)

    def due(self, limit: int = MAX_PER_SWEEP) -> List[str]:
        """Ids expired now, at most ``limit``; deadlines that moved (touched, in use) are pushed back."""
        now = self.clock()
        out: List[str] = []
        heap = self._deadlines
        while heap and heap[0][0] <= now and len(out) < limit:
            deadline, subscription_id = heapq.heappop(heap)
            entry = self.tracked.get(subscription_id)
            if entry is None or entry.persist or entry.deadline != deadline:
                continue  # gone, exempt from now on, or a stale entry (tracked again since)
            if now - entry.quiet_since < self.grace_s:
                self._schedule(entry, subscription_id)
            elif self.in_use(subscription_id):
                self.touch(subscription_id)  # subscribed now: quiet from when it is left at the earliest
                self._schedule(entry, subscription_id)
            elif is_expired(entry.quiet_since, now, self.grace_s, entry.persist, False):
                out.append(subscription_id)
        return out

    def postpone(self, subscription_id: str) -> None:
        """An expiry did not happen (the backend failed): try again after another grace."""
        entry = self.tracked.get(subscription_id)
        if entry is not None:
            self.touch(subscription_id)
            self._schedule(entry, subscription_id)

    def counting(self, publish: Publish) -> Publish:
        """``publish`` (the pipeline's publisher) that first counts the hits of each published event."""
        hit = self.hits.hit

        def counted(subscription_id: str, hits: List[Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
            hit(subscription_id, len(hits))
            return publish(subscription_id, hits, *args, **kwargs)

        return counted


class Sweeper:
    """Every :func:`sweep_interval`, expire what :meth:`Lifecycle.due` names (never while the router's
    subscriptions are unknown)."""

    def __init__(self, reactor: Any, lifecycle: Lifecycle, expire: Callable[[str], Awaitable[bool]],
                 subscriptions_known: Callable[[], bool]) -> None:
        """``expire(id)`` removes one registration (for the whole group, with Kafka); True if it did."""
        self.reactor = reactor
        self.lifecycle = lifecycle
        self.expire = expire
        self.subscriptions_known = subscriptions_known
        self._loop: Optional[LoopingCall] = None

    def start(self) -> None:
        """Sweep from now on (nothing to do if expiry is off)."""
        if not self.lifecycle.enabled or self._loop is not None:
            return
        self._loop = LoopingCall(lambda: ensureDeferred(self.sweep()))
        self._loop.clock = self.reactor
        self._loop.start(sweep_interval(self.lifecycle.grace_s), now=False)

    def stop(self) -> None:
        """Stop sweeping."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    async def sweep(self) -> int:
        """One sweep; answers how many registrations expired.  Never raises (the loop must go on)."""
        if not self.subscriptions_known():
            return 0
        removed = 0
        for n, subscription_id in enumerate(self.lifecycle.due()):
            try:
                if await self.expire(subscription_id):
                    removed += 1
            except Exception as e:
                log.warn("expiring registration {id} failed, trying again later: {error}", id=subscription_id,
                         error=f"{type(e).__name__}: {e}")
                self.lifecycle.postpone(subscription_id)
            if n % 100 == 99:
                await deferLater(self.reactor, 0, lambda: None)  # let documents through between chunks
        if removed:
            log.info("{n} registrations without subscribers for {grace:.0f} s expired", n=removed, grace=self.lifecycle.grace_s)
        return removed


class _Metrics:
    def __init__(self, registry: Any, lifecycle: Lifecycle) -> None:
        from prometheus_client import Counter, Gauge

        self.gone = Counter("estrom_registrations_removed", "Registrations removed by expiry or by the admin API",
                            ["reason"], registry=registry)
        tracked = Gauge("estrom_registrations_tracked", "Registrations this Beater tracks for expiry", registry=registry)
        tracked.set_function(lambda: len(lifecycle.tracked))
