"""Micro-batching: documents in, percolated in batches, hits out grouped by topic.

Callers submit documents of one index and get a Deferred that fires once every
one of them has been percolated and its hits published.  Documents arriving
within ``delay`` seconds of each other share a batch (up to ``batch_size``),
so the percolator sees batches and every topic gets one event per batch, not
one per document: the router's cost is per publish.

With an in-process percolator a batch is matched in slices of about
``slice_seconds`` of work, and each slice's hits are published and sent before
the next slice is matched: the router and the Tailor deliver the first
documents of a large batch on the other core while the Beater still matches
the rest, instead of every document waiting for the whole batch.

Each slice's hits go into the replay store (if any) before they are
published, in the same reactor turn: a replay answered at any moment, plus
the live events that follow it, covers every hit.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, List, Optional, Protocol, Sequence, Set, Tuple

from twisted.internet.defer import Deferred, DeferredList, FirstError, ensureDeferred
from twisted.internet.task import deferLater
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from beater.errors import BackendUnavailable, NotAllDelivered
from beater.hits import Encode, Hit, SliceEncodings, encode_hit, make_hit, received_now
from beater.ingest import Incoming
from beater.metrics import BeaterMetrics
from beater.percolator.base import Percolator
from beater.replay import ReplayStore
from beater.sequence import Sequencer


class SliceEnd(Protocol):
    """What a publisher that sends a slice's events at its end (``beater/wamp.py``) is told."""

    def end_slice(self, acknowledge: bool = False, encode: Encode = encode_hit) -> List[Any]:
        """Every id of the slice was published: send the gathered events (``encode`` gives a hit's JSON bytes);
        their acks' Deferreds if ``acknowledge``."""

    def abandon_slice(self) -> None:
        """Publishing the slice failed part way: forget what was gathered."""


Publish = Callable[..., Awaitable[Any]]
"""Publishes a list of hits for one subscription id (the topic is derived from it); False if skipped.

Called as ``publish(sub_id, hits)`` (fire and forget), or ``publish(sub_id, hits, acknowledge=True)``
for a slice holding documents of an acknowledged submission: then it answers a Deferred that fires
when the router has acknowledged the event (or False if skipped)."""

log = Logger()

UNAVAILABLE = (BackendUnavailable, ConnectionError, TimeoutError)
"""What a percolator raises when it cannot answer now: the slice fails (503, retry it).  Anything else is a
document's fault (or a bug it hits) and fails that document alone."""


@dataclass
class SubmitReport:
    """What happened to the documents of one submit call."""

    accepted: int = 0
    deliveries: int = 0
    errors: List[Tuple[int, str]] = field(default_factory=list)
    """Documents that could not be percolated (their fault, not the backend's), as (0-based position among
    the submitted documents, message): each matched nothing and is that document's error, the others went on."""


class _Acks:
    """The router's acknowledgements of one slice's publishes: awaited once, told to every
    acknowledged submission with documents in that slice."""

    def __init__(self, acks: Sequence["Deferred[Any]"]) -> None:
        self.error: Optional[Exception] = None
        self.settled = False
        self._waiting: List[Callable[["_Acks"], None]] = []
        waiting = DeferredList(list(acks), fireOnOneErrback=True, consumeErrors=True)
        waiting.addCallbacks(lambda _: self._settle(None), self._failed)

    def _failed(self, failure: Failure) -> None:
        value = failure.value
        self._settle(value.subFailure.value if isinstance(value, FirstError) else value)

    def _settle(self, error: Optional[Exception]) -> None:
        self.settled, self.error = True, error
        waiting, self._waiting = self._waiting, []
        for tell in waiting:
            tell(self)

    def when_settled(self, tell: Callable[["_Acks"], None]) -> None:
        """Call ``tell(self)`` once every ack is in or one failed (at once if that is so already)."""
        if self.settled:
            tell(self)
        else:
            self._waiting.append(tell)


class _Submission:
    """One caller's documents in flight: fires its Deferred when the last one is published.

    An acknowledged submission (Kafka) fires only once, in addition, every publish of the slices
    that carried its documents has been acknowledged by the router: until then nothing of it may
    be committed."""

    def __init__(self, count: int, acknowledged: bool = False) -> None:
        self.remaining = count
        self.report = SubmitReport(accepted=count)
        self.done: Deferred[SubmitReport] = Deferred()
        self.settled = False
        self.acknowledged = acknowledged
        self._unacknowledged = 0  # slices of its documents whose acks are not all in
        self._slices: Set[_Acks] = set()

    def published(self, deliveries: int, acks: Optional[_Acks] = None) -> None:
        """One more of its documents (they go in order) was matched and its hits handed to the router;
        ``acks`` are the router's acknowledgements of the publishes of that document's slice."""
        self.report.deliveries += deliveries
        if acks is not None and acks not in self._slices:
            self._slices.add(acks)  # the object, not its id(): a settled one may be freed and its id reused
            self._unacknowledged += 1
            acks.when_settled(self._settled)
        self.remaining -= 1
        self._maybe_done()

    def refused(self, message: str) -> None:
        """Its next document (they go in order) could not be percolated: record it as that document's error
        (``published`` is then called for it with no deliveries)."""
        self.report.errors.append((self.report.accepted - self.remaining, message))

    def _settled(self, acks: _Acks) -> None:
        if acks.error is not None:
            if not self.settled:
                self.settled = True
                # Published but not known to have been received: none counts as delivered.
                self.done.errback(NotAllDelivered(f"the router did not acknowledge a publish: {acks.error}", 0,
                                                  self.report.accepted))
            return
        self._unacknowledged -= 1
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self.remaining == 0 and self._unacknowledged == 0 and not self.settled:
            self.settled = True
            self.done.callback(self.report)

    def fail(self, error: Exception) -> bool:
        """Percolating or publishing failed before its last document was published; False if it
        had already failed or was wholly published (nothing to tell the caller)."""
        if self.settled or (self.remaining == 0 and not self.acknowledged):
            return False
        self.settled = True
        delivered = 0 if self.acknowledged else self.report.accepted - self.remaining
        self.done.errback(NotAllDelivered(getattr(error, "message", None) or "percolating or publishing failed",
                                          delivered, self.report.accepted))
        return True


def group_by_subscription(hits: Sequence[Hit], matches: Sequence[Sequence[str]]) -> Dict[str, List[Hit]]:
    """Per subscription id, the hits it matched, in document order (one publish each)."""
    grouped: Dict[str, List[Hit]] = OrderedDict()
    for hit, ids in zip(hits, matches):
        for sub_id in ids:
            grouped.setdefault(sub_id, []).append(hit)
    return grouped


class Pipeline:
    """Batches submitted documents per index, percolates them and publishes the hits."""

    def __init__(
        self,
        percolator: Percolator,
        publish: Publish,
        sequencer: Sequencer,
        clock: IReactorTime,
        batch_size: int = 500,
        delay: float = 0.0,
        metrics: Optional[BeaterMetrics] = None,
        slice_seconds: float = 0.004,
        replay: Optional[ReplayStore] = None,
        slices: Optional[SliceEnd] = None,
    ) -> None:
        self.percolator = percolator
        self.publish = publish
        self.sequencer = sequencer
        self.clock = clock
        self.batch_size = batch_size
        self.delay = delay
        self.metrics = metrics if metrics is not None else BeaterMetrics()
        self.slice_seconds = slice_seconds
        self.replay = replay
        self.slices = slices
        self._seconds_per_document = 0.0  # moving average of matching time, sizes the slices
        self._queues: OrderedDict[str, List[Tuple[Incoming, _Submission]]] = OrderedDict()
        self._timer: Optional[IDelayedCall] = None
        self._flushing = False
        self.documents_in = 0
        self.hits_out = 0
        self.publishes = 0

    def submit(self, index: str, documents: Sequence[Incoming], acknowledged: bool = False) -> "Deferred[SubmitReport]":
        """Queue ``documents`` of ``index``; fire when all are percolated and published.

        ``acknowledged``: publish their hits with router acknowledgement and fire only once every
        publish that carried one of them is acknowledged (at-least-once sources such as Kafka);
        if one is not, fail with NotAllDelivered saying none was delivered."""
        submission = _Submission(len(documents), acknowledged)
        if not documents:
            submission.done.callback(submission.report)
            return submission.done
        queue = self._queues.setdefault(index, [])
        queue.extend((doc, submission) for doc in documents)
        self._schedule(now=sum(len(q) for q in self._queues.values()) >= self.batch_size)
        return submission.done

    def _schedule(self, now: bool) -> None:
        if self._flushing:
            return  # the running flush reschedules itself when it ends
        if now and self._timer is not None and self._timer.active():  # type: ignore[misc]  # zope interface, no mypy-zope plugin
            self._timer.cancel()  # type: ignore[misc]  # zope interface, no mypy-zope plugin
            self._timer = None
        if self._timer is None or not self._timer.active():  # type: ignore[misc]  # zope interface, no mypy-zope plugin
            self._timer = self.clock.callLater(0 if now else self.delay, self._flush)  # type: ignore[arg-type]  # zope, as above

    def _flush(self) -> None:
        self._timer = None
        if not self._queues:
            return
        index = next(iter(self._queues))
        queue = self._queues[index]
        batch, rest = queue[: self.batch_size], queue[self.batch_size :]
        if rest:
            self._queues[index] = rest
            self._queues.move_to_end(index)  # round-robin between indexes
        else:
            del self._queues[index]
        self._flushing = True
        d = ensureDeferred(self._process(index, batch))
        d.addBoth(self._flushed)

    def _flushed(self, _: object) -> None:
        self._flushing = False
        if self._queues:
            self._schedule(now=True)

    def slice_size(self, pending: int) -> int:
        """How many of ``pending`` documents to match before publishing what they hit."""
        if not getattr(self.percolator, "incremental", False) or self._seconds_per_document <= 0:
            return pending
        return max(1, min(pending, int(self.slice_seconds / self._seconds_per_document)))

    def _timed(self, documents: int, seconds: float) -> None:
        per_document = seconds / documents
        self.metrics.percolate_seconds_per_document.observe(per_document)
        average = self._seconds_per_document
        self._seconds_per_document = per_document if average <= 0 else 0.8 * average + 0.2 * per_document

    async def _process(self, index: str, batch: List[Tuple[Incoming, _Submission]]) -> None:
        started = self.clock.seconds()  # type: ignore[misc]  # zope interface, no mypy-zope plugin
        received = received_now()
        first = self.sequencer.take(index, len(batch))
        beater = self.sequencer.beater_id
        hits = [make_hit(index, doc.source, first + i, received, doc.id, doc.kafka, beater) for i, (doc, _) in enumerate(batch)]
        sources = [doc.source for doc, _ in batch]
        done = 0
        try:
            while done < len(batch):
                start = done
                end = start + self.slice_size(len(batch) - start)
                before = self.clock.seconds()  # type: ignore[misc]  # zope interface, no mypy-zope plugin
                matched, faults = await self._percolate_isolated(index, sources[start:end])
                self._timed(end - start, self.clock.seconds() - before)  # type: ignore[misc]  # zope interface, no mypy-zope plugin
                grouped = group_by_subscription(hits[start:end], matched)
                encode = SliceEncodings()  # a hit the replay store keeps and the Tailors get is encoded once
                if self.replay is not None:  # before publishing: what a tail can ask for is never behind it
                    self.replay.record(index, hits[start:end], grouped, encode)
                unheard = 0
                # One acknowledged submission in the slice: every publish of the slice asks for an ack
                # (its hits may travel in any of them); the others do not wait for them.
                acknowledge = any(s.acknowledged for _, s in batch[start:end])
                answers: List[Deferred[Any]] = []
                try:
                    for sub_id, sub_hits in grouped.items():
                        answer = await (self.publish(sub_id, sub_hits, acknowledge=True) if acknowledge else self.publish(sub_id, sub_hits))
                        if answer is False:
                            unheard += 1
                        elif isinstance(answer, Deferred):
                            answers.append(answer)
                    if self.slices is not None:
                        answers.extend(a for a in self.slices.end_slice(acknowledge, encode) if isinstance(a, Deferred))
                except BaseException:
                    if self.slices is not None:
                        self.slices.abandon_slice()
                    raise
                acks = _Acks(answers) if acknowledge else None
                self._count(index, end - start, sum(len(ids) for ids in matched), len(grouped) - unheard, unheard)
                done = end
                # Each caller hears as soon as its own last document is out, not at the end of the batch.
                for slot, ((_, submission), ids) in enumerate(zip(batch[start:end], matched)):
                    if slot in faults:
                        submission.refused(faults[slot])
                    submission.published(len(ids), acks if submission.acknowledged else None)
                if end < len(batch):
                    await deferLater(self.clock, 0, lambda: None)  # one reactor turn: the publishes go out
        except Exception as e:
            log.failure("percolating or publishing a batch of {n} documents of {index} failed", n=len(batch), index=index)
            self.metrics.batch_failures.inc()
            self.metrics.document_errors.labels("unavailable").inc(len(batch) - done)
            self._fail(index, [s for _, s in batch[done:]], e)
            return
        self.metrics.batch_documents.observe(len(batch))
        self.metrics.batch_seconds.observe(self.clock.seconds() - started)  # type: ignore[misc]  # zope interface, no mypy-zope plugin

    async def _percolate_isolated(self, index: str, sources: List[Any]) -> Tuple[List[List[str]], Dict[int, str]]:
        """Match ``sources``; where that raises for something other than the backend's unavailability, find the
        documents that cause it by halving, so that only they fail: ``(matches, {slot: message})``, the failed
        documents matching nothing.  A backend that is unavailable fails the whole slice (retry it later)."""
        faults: Dict[int, str] = {}
        matched = await self._match_or_bisect(index, sources, 0, faults)
        if faults:
            self.metrics.document_errors.labels("matcher_error").inc(len(faults))
        return matched, faults

    async def _match_or_bisect(self, index: str, sources: List[Any], offset: int, faults: Dict[int, str]) -> List[List[str]]:
        try:
            return list(await self.percolator.percolate(index, sources))
        except UNAVAILABLE:
            raise
        except Exception as e:
            if len(sources) == 1:
                log.warn("a document of {index} could not be percolated and is refused: {error!r}", index=index, error=e)
                why = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
                faults[offset] = f"percolating this document failed ({str(why)[:300]}); it was not delivered"
                return [[]]
        half = len(sources) // 2
        return (await self._match_or_bisect(index, sources[:half], offset, faults)
                + await self._match_or_bisect(index, sources[half:], offset + half, faults))

    def _count(self, index: str, documents: int, deliveries: int, publishes: int, unheard: int) -> None:
        self.documents_in += documents
        self.hits_out += deliveries
        self.publishes += publishes
        self.metrics.documents.labels(index).inc(documents)
        self.metrics.deliveries.labels(index).inc(deliveries)
        self.metrics.publishes.inc(publishes)
        self.metrics.unheard.inc(unheard)

    def _fail(self, index: str, submissions: Sequence[_Submission], error: Exception) -> None:
        """Fail the submissions not wholly published, and drop their documents still queued: the
        caller is told which of its documents went out, and retries the rest without duplicates."""
        failed = {id(s) for s in submissions if s.fail(error)}
        queue = self._queues.get(index)
        if queue is not None:
            queue[:] = [(doc, s) for doc, s in queue if id(s) not in failed]
            if not queue:
                del self._queues[index]
