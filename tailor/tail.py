"""One open HTTP tail: a push producer with a bounded buffer for a client that stops reading.

The tail is registered as the request's streaming producer, so Twisted tells it
when the client's socket stops draining (``pauseProducing``) and when it drains
again (``resumeProducing``).  While paused, hits wait in a buffer bounded by
bytes and by count; when it is full the oldest are dropped and counted, and the
count reaches the client in-band, as a ``dropped`` record, the moment it reads
again.  A slow client therefore costs the Tailor a bounded amount of memory and
never delays the other tails of its subscription, which are written to at once.

Hits carry their Beater and its sequence number, and the tail keeps a cursor
of the last one per Beater (``tailor/cursor.py``), so it also drops any it has
already written: the live events that arrive while a resumed tail is replaying
(held until the replay ends) and the replay after a router restart overlap by
design.  In SSE each hit's ``id:`` is the cursor after it.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, List, Optional, Sequence

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.web.server import Request
from zope.interface import implementer

from router import contract
from tailor.cursor import Cursor
from tailor.stream import Delivered, Format, control

if TYPE_CHECKING:
    from tailor.metrics import TailCounters

SLOW_CLOSE_GRACE_S = 30.0
"""How long a client closed for being slow may take to read its last bytes before the connection is cut."""


def fresh_hits(cursor: Cursor, hits: Sequence[Delivered]) -> List[Delivered]:
    """The hits ``cursor`` has not seen (each Beater's in order), advancing it past them."""
    fresh = []
    for hit in hits:
        if cursor.is_fresh(hit.beater, hit.seq):
            cursor.advance(hit.beater, hit.seq)
            fresh.append(hit)
    return fresh


@implementer(IPushProducer)
class Tail:
    """Writes one subscription's hits to one client, until its limit, its timeout or the client ends it."""

    def __init__(
        self,
        request: Request,
        fmt: Format,
        clock: IReactorTime,
        subscription_id: str,
        *,
        limit: Optional[int] = None,
        timeout: Optional[float] = None,
        heartbeat_s: float = 15.0,
        max_bytes: int = 1048576,
        max_hits: int = 5000,
        on_slow: str = "drop",
        max_tail_s: float = 0.0,
        since: Optional[Cursor] = None,
        on_closed: Callable[["Tail"], None] = lambda tail: None,
        counters: Optional["TailCounters"] = None,
    ) -> None:
        self.request = request
        self.format = fmt
        self.clock = clock
        self.subscription_id = subscription_id
        self.remaining = limit
        self.max_bytes = max_bytes
        self.max_hits = max_hits
        self.on_slow = on_slow
        self.cursor = since.copy() if since is not None else Cursor()  # hits written or queued: later ones only
        self.written_cursor = self.cursor.copy()  # hits written: the event id a client resumes from
        self.first = True
        self.closed = False
        self.highlighted = False  # set by the docs endpoint: its hits come through a Highlighter (tailor/highlights.py)
        self.paused = False
        self.pending: Deque[Delivered] = deque()
        self.pending_bytes = 0
        self.dropped = 0  # dropped since the client last heard of it
        self.dropped_total = 0
        self.written = 0
        self._held: Optional[List[Delivered]] = None
        self._drain_waiters: List["Deferred[None]"] = []
        self._on_closed = on_closed
        self._timers: List[IDelayedCall] = []
        self._timeout_s = timeout
        self._max_tail_s = max_tail_s
        self._heartbeat = LoopingCall(self._beat)
        self._heartbeat.clock = clock
        self._heartbeat_s = heartbeat_s
        self._wrote_since_beat = False
        self.counters = counters  # the Tailor's metrics of this format (None: not counted)
        self._counted_open = False

    # --- the stream's life ---------------------------------------------------------------------

    def open(self) -> None:
        """Send the 200 and the format's header, start heartbeat and timers (the subscription is active)."""
        request = self.request
        request.setHeader(b"content-type", self.format.content_type)
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"x-accel-buffering", b"no")  # nginx: do not buffer a stream
        request.setHeader(b"x-estrom-subscription-id", self.subscription_id.encode())
        transport = getattr(request.channel, "transport", None)
        if transport is not None and hasattr(transport, "setTcpNoDelay"):
            transport.setTcpNoDelay(True)  # each hit is a small write that must leave now
        request.registerProducer(self, True)
        header = self.format.header(self.subscription_id)
        request.write(header)  # not _write: a header is no sign of life that may skip the first heartbeat
        if self.counters is not None:
            self.counters.bytes_sent.inc(len(header))
            self.counters.tail_opened()
            self._counted_open = True
        self._heartbeat.start(self._heartbeat_s, now=False)
        if self._timeout_s:
            self._timers.append(self.clock.callLater(self._timeout_s, self.finish, control(end="timeout")))  # type: ignore[arg-type]  # zope Interface method: mypy sees no self
        if self._max_tail_s:
            self._timers.append(self.clock.callLater(self._max_tail_s, self.finish, control(end="max_tail_s", max_tail_s=self._max_tail_s)))  # type: ignore[arg-type]  # zope Interface method: mypy sees no self

    def hold(self) -> None:
        """Keep live hits aside (while a replay runs) until :meth:`release_held`."""
        if self._held is None:
            self._held = []

    def release_held(self) -> None:
        """The replay is written: pass on the live hits that came meanwhile, minus those it covered."""
        held, self._held = self._held, None
        if held:
            self._accept(held)

    def deliver(self, hits: List[Delivered]) -> None:
        """The hits of one live event (the subscription hub's listener)."""
        if self.closed:
            return
        if self._held is not None:
            self._held.extend(hits)
            overflow = len(self._held) - self.max_hits
            if overflow > 0:
                # A replay slower than the live stream: keep memory bounded all the same.  Nothing is
                # lost: the store recorded these before they were published, and the replay pages on
                # to the present, so it brings them again.
                del self._held[:overflow]
            return
        self._accept(hits)

    def replayed(self, hits: Sequence[Delivered]) -> "Optional[Deferred[None]]":
        """Hits from the replay store (in order, older than any held live hit).

        Returns a Deferred that fires once the client has taken them, if it has not yet: the
        replay asks for its next page only then, so a long replay never overflows the buffer
        of a client that reads at its own pace.
        """
        if self.closed:
            return None
        if self.counters is not None:
            self.counters.hits_replayed.inc(len(hits))
        self._accept(hits, trim=False)  # a page at a time, the next only once this one is taken: bounded
        if not self.paused and not self.pending:
            return None
        waiter: "Deferred[None]" = Deferred()
        self._drain_waiters.append(waiter)
        return waiter

    def notice(self, kind: str, **details: Any) -> None:
        """Tell the client something in-band: ``{"_estrom": {kind: ..., ...}}`` (e.g. a gap)."""
        if self.closed:
            return
        if kind == "gap" and self.counters is not None:
            self.counters.gaps.inc()
        self._write(self.format.record(kind, control(**details), self.first))
        self.first = False

    def finish(self, end: Optional[Dict[str, Any]] = None) -> None:
        """End the stream properly (limit, timeout, longest tail duration): what is pending, then the footer."""
        if self.closed:
            return
        self._flush_pending(ignore_pause=True)
        if not self.closed:
            self._end(end)

    def fail(self, uri: str, message: str) -> None:
        """End the stream with an error record (``event: error`` in SSE) and the footer."""
        if self.closed:
            return
        self.pending.clear()
        self.pending_bytes = 0
        self._write(self.format.record("error", control(error=uri, message=message, dropped=self.dropped_total), self.first))
        self.first = False
        self._end(None)
        transport = getattr(self.request.channel, "transport", None)
        if transport is not None and hasattr(transport, "abortConnection"):
            # A client that does not read will not read the error either: do not hold its buffers forever.
            self.clock.callLater(SLOW_CLOSE_GRACE_S, transport.abortConnection)  # type: ignore[arg-type]  # zope Interface method: mypy sees no self

    def close(self) -> None:
        """Release the subscription, the buffer and the timers (also when the client went away)."""
        if self.closed:
            return
        self.closed = True
        self.pending.clear()
        self.pending_bytes = 0
        self._held = None
        for timer in self._timers:
            if timer.active():  # type: ignore[misc]  # zope Interface method: mypy sees no self
                timer.cancel()  # type: ignore[misc]  # zope Interface method: mypy sees no self
        self._wake_drain_waiters()  # a replay waiting for this client stops at its next page
        if self._heartbeat.running:
            self._heartbeat.stop()
        if self._counted_open:
            self._counted_open = False
            self.counters.tail_closed()  # type: ignore[union-attr]
        self._on_closed(self)

    def _end(self, end: Optional[Dict[str, Any]]) -> None:
        self._write(self.format.footer(end, self.first))
        self.request.unregisterProducer()
        self.request.finish()
        self.close()

    # --- IPushProducer: Twisted calls these as the client's socket fills and drains ------------

    def pauseProducing(self) -> None:
        """The client stopped reading: buffer from now on."""
        self.paused = True

    def resumeProducing(self) -> None:
        """The client reads again: tell it what was dropped, then write what waited."""
        self.paused = False
        self._flush_pending()
        if not self.paused:
            self._wake_drain_waiters()

    def _wake_drain_waiters(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def stopProducing(self) -> None:
        """The connection is gone."""
        self.close()

    # --- internals ------------------------------------------------------------------------------

    def _accept(self, hits: Sequence[Delivered], trim: bool = True) -> None:
        fresh = fresh_hits(self.cursor, hits)
        if not fresh:
            return
        if not self.paused and not self.pending and not self.dropped:
            self._write_hits(fresh)
            return
        for hit in fresh:
            self.pending.append(hit)
            self.pending_bytes += len(hit.data)
        overflow = 0
        while trim and self.pending and (len(self.pending) > self.max_hits or self.pending_bytes > self.max_bytes):
            self.pending_bytes -= len(self.pending.popleft().data)
            overflow += 1
        if overflow:
            self._count_dropped(overflow)
        if not self.paused:
            self._flush_pending()

    def _count_dropped(self, count: int) -> None:
        self.dropped += count
        self.dropped_total += count
        if self.counters is not None:
            self.counters.hits_dropped.inc(count)
        if self.on_slow == "close":
            self.fail(contract.ERROR_SLOW_CLIENT,
                      f"the client did not read fast enough: more than {self.max_hits} hits or {self.max_bytes} bytes waited")

    def _flush_pending(self, ignore_pause: bool = False) -> None:
        if self.closed:
            return
        if self.dropped:
            dropped, self.dropped = self.dropped, 0
            self._write(self.format.record("dropped", control(dropped=dropped, dropped_total=self.dropped_total), self.first))
            self.first = False
        while self.pending and (ignore_pause or not self.paused) and not self.closed:
            batch = list(self.pending)
            self.pending.clear()
            self.pending_bytes = 0
            self._write_hits(batch)

    def _write_hits(self, hits: Sequence[Delivered]) -> None:
        if self.remaining is not None:
            hits = hits[: self.remaining]
            self.remaining -= len(hits)
        if hits:
            self.written += len(hits)
            if self.counters is not None:
                self.counters.hits_sent.inc(len(hits))
            first, self.first = self.first, False
            ids: List[bytes] = []
            written = self.written_cursor
            for hit in hits:
                written.advance(hit.beater, hit.seq)
                if self.format.wants_ids:
                    ids.append(written.text().encode())
            self._write(self.format.hits(hits, first, ids))
        if self.remaining == 0:
            self.finish(control(end="limit"))

    def _write(self, data: bytes) -> None:
        if data:
            self.request.write(data)
            self._wrote_since_beat = True
            if self.counters is not None:
                self.counters.bytes_sent.inc(len(data))

    def _beat(self) -> None:
        if not self._wrote_since_beat and not self.closed and not self.paused:
            self._write(self.format.heartbeat())
        self._wrote_since_beat = False
