"""One WAMP subscription per subscription id, shared by every HTTP tail of it.

The router's cost is per subscriber and per event, so a thousand ``curl``
clients of one query cost one subscription.  The first tail of an id
subscribes, later ones join it, the last one leaving unsubscribes.  After a
reconnect to the router every live id is subscribed again.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from router import contract
from tailor import stream

Listener = Callable[[List[bytes]], None]
"""Receives the hits of one event, each already encoded as JSON (once for all listeners)."""

log = Logger()


class _Entry:
    """The listeners of one id and its WAMP subscription (once made)."""

    def __init__(self) -> None:
        self.listeners: Set[Listener] = set()
        self.subscription: Any = None
        self.waiters: Optional[List["Deferred[None]"]] = None


class SubscriptionHub:
    """Reference-counted topic subscriptions on the current router session."""

    ENCODED_CACHE = 4096

    def __init__(self) -> None:
        self.session: Any = None
        self._entries: Dict[str, _Entry] = {}
        # A document matching several tailed queries arrives once per topic: encode it once.
        self._encoded: "OrderedDict[Tuple[Any, Any, Any], bytes]" = OrderedDict()

    def encode(self, hit: Any) -> bytes:
        """``hit`` as JSON bytes, from a small cache keyed by its index, sequence number and id."""
        if not isinstance(hit, dict):
            return stream.encode_hit(hit)
        key = (hit.get("_index"), hit.get("_seq"), hit.get("_id"))
        encoded = self._encoded.get(key)
        if encoded is None:
            encoded = self._encoded[key] = stream.encode_hit(hit)
            if len(self._encoded) > self.ENCODED_CACHE:
                self._encoded.popitem(last=False)
        return encoded

    @property
    def subscribed_ids(self) -> List[str]:
        """Ids with at least one listener."""
        return [i for i, e in self._entries.items() if e.listeners]

    async def acquire(self, subscription_id: str, listener: Listener) -> None:
        """Attach ``listener`` to ``subscription_id``; return once events will reach it."""
        entry = self._entries.setdefault(subscription_id, _Entry())
        entry.listeners.add(listener)
        try:
            await self._ensure_subscribed(subscription_id, entry)
        except BaseException:
            self.release(subscription_id, listener)
            raise

    def release(self, subscription_id: str, listener: Listener) -> None:
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

        def on_event(hits: List[Any], *args: Any, **kwargs: Any) -> None:
            encoded = [self.encode(hit) for hit in hits]
            for listener in list(entry.listeners):
                try:
                    listener(encoded)
                except Exception:
                    log.failure("delivering to a tail of {id} failed", id=subscription_id)

        entry.subscription = await session.subscribe(on_event, contract.topic_for(subscription_id))

    async def resubscribe_all(self) -> None:
        """After a (re)join: subscribe every id that still has listeners."""
        for subscription_id, entry in list(self._entries.items()):
            entry.subscription = None
            if entry.listeners:
                try:
                    await self._subscribe(subscription_id, entry)
                except Exception:
                    log.failure("resubscribing {id} failed", id=subscription_id)
