"""``highlight=true``: each hit gains ``_highlight``, the terms per field its query matched.

The percolator knows why a document matched, so a Beater answers it
(``estrom.highlight``, both backends); the Tailor asks only for tails that
want it.  One :class:`Highlighter` per subscription id is a listener of the
subscription hub, asks once per event however many highlighting tails there
are, and passes the hits on in the order they came.

Highlights are a courtesy, never a reason to lose or delay a hit for long: if
the Beater cannot answer, or :data:`MAX_WAITING` hits already wait for one, the
hits go on without ``_highlight``.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Optional, Sequence, Set

from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.logger import Logger

from router import contract
from tailor import stream
from tailor.stream import Delivered

log = Logger()

MAX_WAITING = 10_000
"""Most hits waiting for highlights per subscription; past it, hits are passed on as they are."""


def decode_hits(hits: Sequence[Delivered]) -> List[Any]:
    """Each hit's JSON decoded (None where it is not JSON)."""
    decoded = []
    for item in hits:
        try:
            decoded.append(json.loads(item.data))
        except ValueError:
            decoded.append(None)
    return decoded


def with_highlights(hits: Sequence[Delivered], highlights: Sequence[Any],
                    decoded: Optional[Sequence[Any]] = None) -> List[Delivered]:
    """The hits re-encoded with ``_highlight`` from the Beater's answer (one entry per hit, in order);
    ``decoded``: the hits already decoded (:func:`decode_hits`), so they are not parsed twice."""
    parsed = decode_hits(hits) if decoded is None else decoded
    out = []
    for item, hit, found in zip(hits, parsed, highlights):
        if isinstance(hit, dict) and isinstance(found, dict):
            hit["_highlight"] = found
            out.append(Delivered(item.beater, item.seq, stream.encode_hit(hit)))
        else:
            out.append(item)
    out.extend(hits[len(out):])
    return out


def sources_of(decoded: Sequence[Any]) -> List[Any]:
    """The ``_source`` of each decoded hit (None where the hit is not one a Beater encoded)."""
    return [hit.get("_source") if isinstance(hit, dict) else None for hit in decoded]


async def highlight_hits(session: Any, subscription_id: str, hits: Sequence[Delivered]) -> List[Delivered]:
    """``hits`` with ``_highlight`` as a Beater finds it, asked in pages of the contract's limit."""
    out: List[Delivered] = []
    step = contract.MAX_HIGHLIGHT_SOURCES
    for start in range(0, len(hits), step):
        page = list(hits[start:start + step])
        decoded = decode_hits(page)
        answer = await session.call(contract.PROC_HIGHLIGHT, subscription_id, sources_of(decoded))
        out.extend(with_highlights(page, answer.get("highlights") or [], decoded))
    return out


class Highlighter:
    """The highlighting tails of one subscription: a hub listener that asks once per event, keeps order."""

    def __init__(self, subscription_id: str, session: Callable[[], Any]) -> None:
        self.subscription_id = subscription_id
        self.session = session
        self.tails: Set[Any] = set()
        self.waiting = 0
        self._last: "Deferred[None]" = succeed(None)
        self._failing = False  # log a Beater that cannot highlight once, not once per event

    def highlight(self, hits: Sequence[Delivered]) -> "Deferred[List[Delivered]]":
        """``hits`` highlighted, or as they are when that cannot be had now (never fails)."""
        session = self.session()
        if session is None or not hits or self.waiting >= MAX_WAITING:
            return succeed(list(hits))
        self.waiting += len(hits)

        def done(result: Any) -> List[Delivered]:
            self.waiting -= len(hits)
            if isinstance(result, list):
                self._failing = False
                return result
            if not self._failing:
                log.warn("highlighting hits of {id} failed; they go on without: {e}", id=self.subscription_id, e=result.value)
            self._failing = True
            return list(hits)

        return ensureDeferred(highlight_hits(session, self.subscription_id, hits)).addBoth(done)

    def _in_order(self, step: Callable[[], None], highlighted: "Optional[Deferred[Any]]" = None) -> None:
        # Each event waits for the one before it, so highlighting never reorders the stream.
        def after(_: Any) -> Any:
            return highlighted.addCallback(lambda _: step()) if highlighted is not None else step()

        self._last = self._last.addBoth(after).addErrback(lambda f: log.failure("passing on highlighted hits failed", f))

    def deliver(self, hits: List[Delivered]) -> None:
        """Ask for this event's highlights now, pass the hits on once every earlier event has gone."""
        highlighted = self.highlight(hits)
        result: List[List[Delivered]] = []
        highlighted.addCallback(result.append)

        def pass_on() -> None:
            for tail in list(self.tails):
                tail.deliver(result[0])

        self._in_order(pass_on, highlighted)

    def notice(self, kind: str, **details: Any) -> None:
        """In-band records keep their place among the hits."""
        def pass_on() -> None:
            for tail in list(self.tails):
                tail.notice(kind, **details)

        self._in_order(pass_on)


class HighlightHub:
    """One :class:`Highlighter` per subscription id with highlighting tails, each a listener of the hub."""

    def __init__(self, hub: Any, session: Callable[[], Any]) -> None:
        self.hub = hub
        self.session = session
        self.highlighters: Dict[str, Highlighter] = {}

    async def join(self, subscription_id: str, tail: Any) -> Highlighter:
        """Attach ``tail``; the first tail of an id subscribes its highlighter to the hub."""
        highlighter = self.highlighters.get(subscription_id)
        if highlighter is None:
            highlighter = self.highlighters[subscription_id] = Highlighter(subscription_id, self.session)
            highlighter.tails.add(tail)
            try:
                await self.hub.acquire(subscription_id, highlighter)
            except BaseException:
                highlighter.tails.discard(tail)
                if not highlighter.tails and self.highlighters.get(subscription_id) is highlighter:
                    del self.highlighters[subscription_id]
                raise
        else:
            highlighter.tails.add(tail)
            await self.hub.acquire(subscription_id, highlighter)  # already held: returns once subscribed
        return highlighter

    def leave(self, subscription_id: str, tail: Any) -> None:
        """Detach ``tail``; the last one out releases the highlighter's hub subscription."""
        highlighter = self.highlighters.get(subscription_id)
        if highlighter is None:
            return
        highlighter.tails.discard(tail)
        if not highlighter.tails:
            del self.highlighters[subscription_id]
            self.hub.release(subscription_id, highlighter)
