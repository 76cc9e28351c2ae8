"""One WAMP subscription per subscription id, shared by every HTTP tail of it.

The router's cost is per subscriber and per event, so a thousand ``curl``
clients of one query cost one subscription.  The first tail of an id
subscribes, later ones join it, the last one leaving unsubscribes.  What it
subscribes to is the id's marker ``tailed-<id>``, which tells the Beaters to
put its hits into the one event per slice they send the Tailors on
``estrom.tailed`` (``router/contract.py``): a POST hitting a dozen tailed
queries costs the router one message, not a dozen.  The hub subscribes to that
topic once per session and hands each id's hits to its entry.

After a reconnect to the router every live id is subscribed again, and what
the id matched while the router was away (published into a dead connection,
or not at all) is fetched from every Beater's replay store: from the last hit
the hub passed on from that Beater, or from the time it subscribed when none
came yet (``tailor/cursor.py``).
Live events that arrive meanwhile wait, so the tails see one ordered stream
with neither a gap nor a repeat.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Protocol, Set

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger

from router import contract
from tailor.beaters import BeaterDirectory, follow_beaters
from tailor.cursor import Cursor
from tailor.stream import Delivered
from tailor.tail import fresh_hits

log = Logger()

REPLAY_PAGE = 1000
HELD_MAX = 10_000
"""Most live hits an id holds while it catches up; past it the oldest go and the tails are told of a gap."""
CATCH_UP_RETRIES_S = (0.25, 0.5, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, 8.0, 8.0)
"""Waits between attempts to catch up after a rejoin (about 30 s in all): the Beater may rejoin later."""


class Sink(Protocol):
    """What receives a subscription's hits: an HTTP tail."""

    def deliver(self, hits: List[Delivered]) -> None:
        """The hits of one event, each with its event id and its JSON (encoded once for all sinks)."""

    def notice(self, kind: str, **details: Any) -> None:
        """An in-band record, e.g. ``gap``."""


Replayed = Callable[[List[Delivered]], "Optional[Deferred[None]]"]
"""Takes one page of a replay; may answer a Deferred that fires when the next page is wanted."""


async def replay_beater(session: Any, beater: str, subscription_id: str, since: Dict[str, int], hits: Replayed,
                        gap: Callable[[str, Optional[int]], None]) -> None:
    """Page through one Beater's replay store from ``since``; ``gap`` is told if it cannot reach back."""
    cursor = since
    first = True
    while True:
        answer = await session.call(contract.replay_procedure(beater), subscription_id, cursor, REPLAY_PAGE)
        if first and answer.get("gap"):
            gap(beater, answer.get("missed"))
        first = False
        page = [Delivered(beater, int(seq), bytes(data)) for seq, data in answer.get("hits", [])]
        if page:
            wait = hits(page)
            if wait is not None:
                await wait
            cursor = {"seq": page[-1].seq}
        if not page or not answer.get("more"):
            return


def beaters_to_ask(directory: BeaterDirectory, cursor: Cursor) -> List[str]:
    """Every Beater serving now, and every Beater the cursor has heard from (gone or not back yet)."""
    return sorted(set(directory.ids) | set(cursor.seqs))


def _marker_event(*args: Any, **kwargs: Any) -> None:
    """An event on a ``tailed-<id>`` marker: none is ever published there, and one would carry nothing."""


def now_ms() -> int:
    """Wall-clock milliseconds: the replay store's time axis (the hits' ``_received``)."""
    return int(time.time() * 1000)


class _Entry:
    """The sinks of one id, its WAMP subscription (once made) and how far it has got."""

    def __init__(self, since_ms: int) -> None:
        self.listeners: Set[Sink] = set()
        self.subscription: Any = None
        self.waiters: Optional[List["Deferred[None]"]] = None
        # The last hit passed on per Beater; a Beater none came from yet is caught up from the time it subscribed.
        self.cursor = Cursor(floor_ms=since_ms)
        self.held: Optional[List[Delivered]] = None  # live hits waiting for a catch-up to end
        self.held_overflowed = False

    def receive(self, hits: List[Delivered], subscription_id: str) -> None:
        """Live hits: passed on, or held while a catch-up runs."""
        if self.held is not None:
            self.held.extend(hits)
            if len(self.held) > HELD_MAX:  # a catch-up that takes long must not take memory without bound
                del self.held[: len(self.held) - HELD_MAX]
                self.held_overflowed = True
        else:
            self.pass_on(hits, subscription_id)

    def pass_on(self, hits: List[Delivered], subscription_id: str) -> None:
        """Give every sink the hits it has not had (by Beater and sequence number)."""
        fresh = fresh_hits(self.cursor, hits)
        if not fresh:
            return
        for sink in list(self.listeners):
            try:
                sink.deliver(fresh)
            except Exception:
                log.failure("delivering to a tail of {id} failed", id=subscription_id)


class SubscriptionHub:
    """Reference-counted topic subscriptions on the current router session."""

    def __init__(self, clock_ms: Callable[[], int] = now_ms, clock: Optional[IReactorTime] = None) -> None:
        self.session: Any = None
        self.clock_ms = clock_ms
        self.clock = clock  # for retrying a catch-up; None: no retries (unit tests)
        self.beaters = BeaterDirectory()
        self._entries: Dict[str, _Entry] = {}

    @property
    def subscribed_ids(self) -> List[str]:
        """Ids with at least one listener."""
        return [i for i, e in self._entries.items() if e.listeners]

    async def acquire(self, subscription_id: str, listener: Sink) -> None:
        """Attach ``listener`` to ``subscription_id``; return once events will reach it."""
        entry = self._entries.get(subscription_id)
        if entry is None:
            entry = self._entries[subscription_id] = _Entry(self.clock_ms())
        entry.listeners.add(listener)
        try:
            await self._ensure_subscribed(subscription_id, entry)
        except BaseException:
            self.release(subscription_id, listener)
            raise

    def release(self, subscription_id: str, listener: Sink) -> None:
        """Detach ``listener``; the last one out unsubscribes."""
        entry = self._entries.get(subscription_id)
        if entry is None:
            return
        entry.listeners.discard(listener)
        if entry.listeners or entry.waiters is not None:
            return
        self._drop(subscription_id)

    def _drop(self, subscription_id: str) -> None:
        entry = self._entries.pop(subscription_id)
        subscription, entry.subscription = entry.subscription, None
        if subscription is not None and subscription.active:
            d = subscription.unsubscribe()
            d.addErrback(lambda f: log.debug("unsubscribing {id} failed: {f}", id=subscription_id, f=f.value))

    async def _ensure_subscribed(self, subscription_id: str, entry: _Entry) -> None:
        if entry.subscription is not None and entry.subscription.active:
            return
        if entry.waiters is not None:  # another tail's subscribe is in flight: share it
            waiter: "Deferred[None]" = Deferred()
            entry.waiters.append(waiter)
            await waiter
            return
        entry.waiters = []
        try:
            await self._subscribe(subscription_id, entry)
        except BaseException as e:
            waiters, entry.waiters = entry.waiters, None
            for w in waiters:
                w.errback(e)
            raise
        waiters, entry.waiters = entry.waiters, None
        for w in waiters:
            w.callback(None)
        if not entry.listeners:  # everyone left while we were subscribing
            self._drop(subscription_id)

    async def _subscribe(self, subscription_id: str, entry: _Entry) -> None:
        session = self.session
        if session is None:
            raise ConnectionError("the router is not reachable")

        # Nothing is published on the marker: the id's hits come on estrom.tailed (on_tailed).
        entry.subscription = await session.subscribe(_marker_event, contract.tailed_marker_for(subscription_id))

    def on_tailed(self, beater: str, hits: List[Any], by_id: Dict[str, List[int]], *args: Any, **kwargs: Any) -> None:
        """One slice of a Beater for the Tailors, its hits as ``[seq, JSON bytes]``: each tailed id's hits to its
        entry (ids not tailed here: ignored).  The bytes go to the tails as they came."""
        delivered: Dict[int, Delivered] = {}  # a hit matching several ids here is one Delivered
        for subscription_id, places in by_id.items():
            entry = self._entries.get(subscription_id)
            if entry is None:
                continue
            batch = []
            for place in places:
                found = delivered.get(place)
                if found is None:
                    seq, data = hits[place]
                    found = delivered[place] = Delivered(beater, int(seq), bytes(data))
                batch.append(found)
            entry.receive(batch, subscription_id)

    async def joined(self, session: Any) -> None:
        """A (re)join: follow the Beaters on this router, then resubscribe and catch up every id."""
        self.session = session
        await session.subscribe(self.on_tailed, contract.TOPIC_TAILED)  # before any marker: no slice is missed
        try:
            await follow_beaters(session, self.beaters)
        except Exception:
            log.failure("cannot follow the router's registrations; resuming tails ask only the Beaters they name")
        await self.resubscribe_all()

    def left(self, session: Any) -> None:
        """The session ended: no subscription and no Beater it told of holds any more."""
        if self.session is session:
            self.session = None
            self.beaters.forget()

    async def resubscribe_all(self) -> None:
        """After a (re)join: subscribe every id that still has sinks, and catch each up on what it missed.

        The ids catch up side by side: one whose Beater answers late does not hold up the others.
        """
        catching_up = []
        for subscription_id, entry in list(self._entries.items()):
            entry.subscription = None
            if entry.listeners:
                catching_up.append(ensureDeferred(self._catch_up(subscription_id, entry)))
        for done in catching_up:
            try:
                await done
            except Exception:
                log.failure("resubscribing after a rejoin failed")

    async def _catch_up(self, subscription_id: str, entry: _Entry) -> None:
        entry.held = []
        try:
            await self._subscribe(subscription_id, entry)
            session = self.session

            def gap(beater: str, missed: Optional[int]) -> None:
                for sink in list(entry.listeners):
                    sink.notice("gap", gap=True, missed=missed, beater=beater)

            def pass_on(hits: List[Delivered]) -> None:
                entry.pass_on(hits, subscription_id)

            # The Beaters may rejoin the restarted router after this Tailor: try each again for a while.
            done: Set[str] = set()
            for delay in (*CATCH_UP_RETRIES_S, None):
                failed: Dict[str, Exception] = {}
                beaters = beaters_to_ask(self.beaters, entry.cursor)
                if not beaters:  # none has rejoined yet: what one published into the old connection waits there
                    failed["*"] = ConnectionError("no Beater serves on the router yet")
                for beater in beaters:
                    if beater in done:
                        continue
                    try:
                        await replay_beater(session, beater, subscription_id, entry.cursor.since_for(beater, self.clock_ms()), pass_on, gap)
                        done.add(beater)
                    except Exception as e:
                        failed[beater] = e
                if not failed:
                    break
                if delay is None or self.session is not session or self.clock is None:
                    for beater, error in failed.items():
                        log.warn("catching up {id} from Beater {beater} after a reconnect failed: {e}", id=subscription_id, beater=beater, e=error)
                        gap(beater, None)
                    break
                await deferLater(self.clock, delay, lambda: None)
        finally:
            held, entry.held = entry.held, None
            if entry.held_overflowed:
                entry.held_overflowed = False
                for sink in list(entry.listeners):
                    sink.notice("gap", gap=True, missed=None)
            if held:
                entry.pass_on(held, subscription_id)
