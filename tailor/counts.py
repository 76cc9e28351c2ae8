"""Window counts computed once per subscription and window spec, shared by every counts tail of it.

A :class:`CountsAggregator` is one more listener (``Sink``) of the subscription
hub (``tailor/subscriptions.py``): the hub gives it each hit once, however many
clients tail the counts, and it counts them in a
:class:`tailor.windows.WindowCounter`.  A reactor timer closes each window
when it is due (its end plus the allowed lateness), and the window's record
goes to every counts tail as an ordinary ``Delivered`` item, so the tails
(``tailor/tail.py``) keep their formats, bounded buffers, drop notices, limits
and timeouts unchanged.

The tails drop any item whose (Beater, sequence number) they have seen, so
window records come from the pseudo-Beater ``counts`` with a sequence number
that grows per aggregator: never taken for a hit, never for one another.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Protocol, Tuple

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from tailor.stream import Delivered, encode_control
from tailor.windows import WindowCounter, WindowSpec

log = Logger()

COUNTS_BEATER = "counts"
"""The pseudo-Beater window records come from (a valid Beater id, so SSE event ids stay parseable)."""

CountsKey = Tuple[str, WindowSpec, float]
"""What makes two counts tails share one aggregator: subscription id, window spec, provisional interval (0: none)."""


class CountsTail(Protocol):
    """What receives window records: an HTTP tail (``tailor.tail.Tail``)."""

    def deliver(self, hits: List[Delivered]) -> None:
        """Window records, encoded, under the pseudo-Beater ``counts``."""

    def notice(self, kind: str, **details: Any) -> None:
        """An in-band record, e.g. ``gap``."""


class CountsAggregator:
    """Counts one subscription's hits in tumbling windows and pushes each closed window to its tails."""

    def __init__(self, subscription_id: str, spec: WindowSpec, clock: IReactorTime, provisional_s: float = 0.0) -> None:
        self.subscription_id = subscription_id
        self.spec = spec
        self.clock = clock
        self.provisional_s = provisional_s
        self.counter = WindowCounter(spec, self.now_ms())
        self.tails: Dict[CountsTail, bool] = {}  # tail -> whether it wants partial windows
        self.seq = 0
        self.stopped = False
        self._timer: Optional[IDelayedCall] = None
        self._provisional: Optional[LoopingCall] = None

    def now_ms(self) -> int:
        """The reactor's wall clock in epoch milliseconds: the time axis of ``_received``."""
        return int(self.clock.seconds() * 1000)  # type: ignore[misc]  # zope Interface method: mypy sees no self

    # --- the hub's Sink ---------------------------------------------------------------------------

    def deliver(self, hits: List[Delivered]) -> None:
        """Count the hits of one event (each once: the hub already dropped repeats)."""
        now = self.now_ms()
        for hit in hits:
            try:
                decoded = json.loads(hit.data)
            except ValueError:  # not a hit the Beater encoded: count it as it arrives rather than lose it
                decoded = None
            self.counter.add(decoded, now)

    def notice(self, kind: str, **details: Any) -> None:
        """A gap in the subscription's stream makes the open windows partial; the tails hear of it too."""
        if kind == "gap":
            self.counter.mark_partial()
        for tail in list(self.tails):
            tail.notice(kind, **details)

    # --- windows ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start closing windows (and sending provisional ones, if asked)."""
        self._schedule()
        if self.provisional_s > 0:
            self._provisional = LoopingCall(self._send_provisional)
            self._provisional.clock = self.clock
            self._provisional.start(self.provisional_s, now=False)

    def stop(self) -> None:
        """No tail is left: stop the timers."""
        self.stopped = True
        if self._timer is not None and self._timer.active():  # type: ignore[misc]  # zope Interface method: mypy sees no self
            self._timer.cancel()  # type: ignore[misc]  # zope Interface method: mypy sees no self
        self._timer = None
        if self._provisional is not None and self._provisional.running:
            self._provisional.stop()

    def _schedule(self) -> None:
        delay_ms = max(0, self.counter.next_close_ms() - self.now_ms())
        self._timer = self.clock.callLater(delay_ms / 1000.0, self._close_due)  # type: ignore[arg-type]  # zope Interface method: mypy sees no self

    def _close_due(self) -> None:
        self._timer = None
        if self.stopped:
            return
        try:
            self._send(self.counter.advance(self.now_ms()))
        finally:
            self._schedule()

    def _send_provisional(self) -> None:
        self._send(self.counter.provisional(self.now_ms()))

    def _send(self, records: List[Dict[str, Any]]) -> None:
        if not records:
            return
        every, whole = [], []
        for record in records:
            self.seq += 1
            item = Delivered(COUNTS_BEATER, self.seq, encode_control(record))
            every.append(item)
            if not record["window"]["partial"]:
                whole.append(item)
        for tail, wants_partial in list(self.tails.items()):
            items = every if wants_partial else whole
            if not items:
                continue
            try:
                tail.deliver(items)
            except Exception:
                log.failure("delivering counts of {id} to a tail failed", id=self.subscription_id)


class CountsHub:
    """The aggregators of every counts tail, one per :data:`CountsKey`, each a listener of the hub."""

    def __init__(self, hub: Any, clock: IReactorTime) -> None:
        self.hub = hub
        self.clock = clock
        self._aggregators: Dict[CountsKey, CountsAggregator] = {}
        self._starting: Dict[CountsKey, List["Deferred[None]"]] = {}

    @property
    def aggregators(self) -> int:
        """Aggregators running (each counting one subscription for any number of tails)."""
        return len(self._aggregators)

    async def join(self, key: CountsKey, tail: CountsTail, partial: bool = True) -> CountsAggregator:
        """The aggregator of ``key`` with ``tail`` attached, subscribing it first if it is new.

        ``partial`` says whether the tail wants partial windows.  Returns once window records
        will reach the tail; raises what subscribing raised.
        """
        aggregator = self._aggregators.get(key)
        if aggregator is None:
            subscription_id, spec, provisional_s = key
            aggregator = self._aggregators[key] = CountsAggregator(subscription_id, spec, self.clock, provisional_s)
            waiters: List["Deferred[None]"] = []
            self._starting[key] = waiters
            try:
                await self.hub.acquire(subscription_id, aggregator)
            except BaseException as e:
                del self._aggregators[key]
                del self._starting[key]
                for waiter in waiters:
                    waiter.errback(e)
                raise
            del self._starting[key]
            aggregator.start()
            for waiter in waiters:
                waiter.callback(None)
        elif key in self._starting:  # another tail's subscribe is in flight: share it
            shared: "Deferred[None]" = Deferred()
            self._starting[key].append(shared)
            await shared
        aggregator.tails[tail] = partial
        return aggregator

    def leave(self, aggregator: CountsAggregator, tail: CountsTail) -> None:
        """Detach ``tail``; the last one out stops the aggregator and releases its subscription."""
        aggregator.tails.pop(tail, None)
        key = (aggregator.subscription_id, aggregator.spec, aggregator.provisional_s)
        if aggregator.tails or self._aggregators.get(key) is not aggregator:
            return
        del self._aggregators[key]
        aggregator.stop()
        self.hub.release(aggregator.subscription_id, aggregator)
