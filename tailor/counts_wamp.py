"""Window counts over WAMP: ``estrom.counts`` names a ``counts-for-...`` topic and keeps it fed.

A WAMP client calls ``estrom.counts(subscription_id, window="10s", by=...)``
(the Tailor registers it); the answer names the topic, and the Tailor joins the
subscription's shared aggregator (``tailor/counts.py``) with a
:class:`TopicPublisher`, which publishes each window record there, the same
record ``GET /api/v0.1/counts`` streams.  HTTP tails and WAMP subscribers of
one spec share one aggregator.

The router knows who listens: every :data:`IDLE_CHECK_S` the Tailor asks it
whether the topic still has a subscription, and stops counting one that has
had none for :data:`IDLE_AFTER_S` (a client that calls and never subscribes
costs a timer for that long).  Calling again is cheap and idempotent: a client
calls it each time it (re)joins, as it subscribes each time.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Dict, Mapping, Optional

import xxhash
from autobahn.wamp.exception import ApplicationError
from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from router import contract
from tailor.counts import CountsAggregator, CountsHub, CountsKey
from tailor.params import BadRequest, CountsRequest, DEFAULT_LATENESS_MS, parse_counts
from tailor.stream import Delivered
from tailor.windows import WindowSpec

log = Logger()

IDLE_CHECK_S = 10.0
IDLE_AFTER_S = 30.0
DEFAULT_TOP = 10

# A field name is spelt in the topic when it makes valid URI components (no empty ones, no spaces or '#').
_URI_SAFE = re.compile(r"[^\s#.]+(\.[^\s#.]+)*\Z")


def window_text(window_ms: int) -> str:
    """A window length in its shortest exact unit: ``10s``, ``1m``, ``1h``, ``1500ms``."""
    for unit, ms in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if window_ms % ms == 0:
            return f"{window_ms // ms}{unit}"
    return f"{window_ms}ms"


def topic_of(subscription_id: str, wanted: CountsRequest) -> str:
    """The topic of a counts request: the window (and ``by`` when it spells well) in the name, every
    other non-default option folded into a short hash, so equal requests always meet on one topic."""
    by = wanted.by if wanted.by is not None and _URI_SAFE.match(wanted.by) else None
    rest = {
        "by": wanted.by if by is None else None, "top": wanted.top, "time_field": wanted.time_field,
        "lateness_ms": wanted.lateness_ms, "provisional_ms": wanted.provisional_ms,
    }
    defaults = {"by": None, "top": DEFAULT_TOP, "time_field": None, "lateness_ms": DEFAULT_LATENESS_MS, "provisional_ms": 0}
    variant = None
    if rest != defaults:
        variant = xxhash.xxh64_hexdigest(json.dumps(rest, sort_keys=True).encode())[:8]
    return contract.counts_topic_for(subscription_id, window_text(wanted.window_ms), by, variant)


def counts_arguments(subscription_id: Any, options: Mapping[str, Any]) -> Dict[str, list]:
    """The RPC's arguments as the counts endpoint's query arguments, so both validate alike."""
    if not isinstance(subscription_id, str) or not subscription_id:
        raise BadRequest("subscription_id must be the id estrom.register answered", part="subscription_id")
    args: Dict[str, list] = {"s": [subscription_id]}
    for name, value in options.items():
        if name not in ("window", "by", "top", "time_field", "lateness", "provisional"):
            raise BadRequest(f"estrom.counts takes no option {name!r}", part=name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise BadRequest(f"{name} must be a string or a number", part=name)
        args[name] = [str(value)]
    return args


class TopicPublisher:
    """A counts listener that publishes each window record on its topic (``CountsTail`` for WAMP)."""

    def __init__(self, topic: str, session: Callable[[], Any], clock: IReactorTime) -> None:
        self.topic = topic
        self.session = session
        self.aggregator: Optional[CountsAggregator] = None
        self.idle_since: Optional[float] = clock.seconds()  # type: ignore[misc]  # None while the router holds a subscription
        self.published = 0

    def deliver(self, hits: Any) -> None:
        """Publish each window record (the aggregator's encoded ``Delivered``) as one event."""
        session = self.session()
        if session is None:  # counting goes on; what closes while the router is away is not sent
            return
        for item in hits:
            record = json.loads(item.data) if isinstance(item, Delivered) else item
            session.publish(self.topic, record)
            self.published += 1

    def notice(self, kind: str, **details: Any) -> None:
        """Gaps already mark the open windows partial; nothing else to tell a topic."""


class WampCounts:
    """The ``estrom.counts`` procedure and the topic publishers it started."""

    def __init__(self, counts: CountsHub, session: Callable[[], Any], clock: IReactorTime) -> None:
        self.counts = counts
        self.session = session
        self.clock = clock
        self.publishers: Dict[str, TopicPublisher] = {}
        self._idle_check = LoopingCall(lambda: ensureDeferred(self._check_idle()))
        self._idle_check.clock = clock

    async def counts_procedure(self, subscription_id: Any = None, **options: Any) -> Dict[str, Any]:
        """``estrom.counts``: validate, check the id with the Beater, start (or join) the counting, name the topic."""
        try:
            wanted = parse_counts(counts_arguments(subscription_id, options), {})
        except BadRequest as e:
            raise ApplicationError(contract.ERROR_INVALID_ARGUMENT, e.message, part=e.part) from None
        session = self.session()
        if session is None:
            raise ApplicationError(contract.ERROR_UNAVAILABLE, "the Tailor is not on the router")
        registration = await session.call(contract.PROC_LOOKUP, subscription_id)  # unknown_subscription passes through
        topic = topic_of(registration["id"], wanted)
        publisher = self.publishers.get(topic)
        if publisher is None:
            publisher = self.publishers[topic] = TopicPublisher(topic, self.session, self.clock)
            spec = WindowSpec(wanted.window_ms, wanted.by, wanted.top, wanted.time_field, wanted.lateness_ms)
            key: CountsKey = (registration["id"], spec, wanted.provisional_ms / 1000.0)
            try:
                publisher.aggregator = await self.counts.join(key, publisher, partial=True)
            except BaseException:
                del self.publishers[topic]
                raise
            if not self._idle_check.running:
                self._idle_check.start(IDLE_CHECK_S, now=False)
        elif publisher.idle_since is not None:
            publisher.idle_since = self.clock.seconds()  # type: ignore[misc]  # a fresh call restarts the wait for a subscriber
        return {
            "topic": topic, "subscription_id": registration["id"], "index": registration.get("index"),
            "readable": registration.get("readable"), "window": window_text(wanted.window_ms),
            "window_ms": wanted.window_ms, "by": wanted.by, "top": wanted.top, "time_field": wanted.time_field,
            "lateness_ms": wanted.lateness_ms, "provisional_ms": wanted.provisional_ms,
        }

    async def _check_idle(self) -> None:
        session = self.session()
        if session is None:
            return
        now = self.clock.seconds()  # type: ignore[misc]  # zope Interface method: mypy sees no self
        for topic, publisher in list(self.publishers.items()):
            try:
                held = await session.call(contract.META_SUBSCRIPTION_LOOKUP, topic)
            except Exception as e:  # the router is going away: ask again next time
                log.debug("looking up {topic} failed: {e}", topic=topic, e=e)
                continue
            if held is not None:
                publisher.idle_since = None
            elif publisher.idle_since is None:
                publisher.idle_since = now
            elif now - publisher.idle_since >= IDLE_AFTER_S:
                self.stop_publisher(topic)

    def stop_publisher(self, topic: str) -> None:
        """Stop counting for ``topic`` (nobody listens)."""
        publisher = self.publishers.pop(topic, None)
        if publisher is not None and publisher.aggregator is not None:
            self.counts.leave(publisher.aggregator, publisher)
        if not self.publishers and self._idle_check.running:
            self._idle_check.stop()

    def stop(self) -> None:
        """Stop every publisher (the Tailor stops)."""
        for topic in list(self.publishers):
            self.stop_publisher(topic)
