"""Which topics have someone listening, so the Beater publishes only where it is heard.

Most standing queries have no live subscriber at a given moment, and each
publish costs the router CPU whether or not anyone receives it.  The router's
subscription meta events (``wamp.subscription.on_create`` when a topic gets
its first subscriber, ``on_delete`` when it loses its last) keep a set of
listened-to subscription ids of each kind: ``docs-for-<id>`` (WAMP clients:
the id's own event) and ``tailed-<id>`` (Tailors: the id's hits go in the
slice's one event on ``estrom.tailed``).  Each kind is expected, held for and
published to on its own, so a Tailor that starts tailing an id a WAMP client
follows already misses nothing of it, and the other way round.

Two rules keep this from ever losing a document:

* A registration or lookup marks its id *expected* for a grace period: a client
  subscribes right after registering, and the router sends the meta event
  after it has acknowledged the subscription, so a document matched in between
  must still reach it.  Its hits are *held* (:meth:`Listeners.hold`) and
  published the moment the subscription shows up (``on_subscribed``): the
  subscription may not exist on this Beater's router yet when the client's
  router has acknowledged it, because a client of another router node of a
  cluster is subscribed here by that node's link a few ms later.  The
  expectation ends when the subscription shows
  up (the live set covers it from then on) or after ``EXPECT_GRACE_S``: a
  register call is followed by its subscribe within milliseconds, and
  publishing for minutes to ids nobody came for (a client registering a
  thousand queries to tail ten) cost the router and the Beater most of their
  time.
* Until the set is known (before the first join completes, after a leave),
  or while any prefix/wildcard subscription covers ``docs-for-*``, every
  topic is published.

For the replay store (``beater/replay.py``) a subscription is *recorded* while
it is wanted or was *heard* (expected, subscribed to, or left by its last
subscriber) within ``replay_horizon_s``: a tail that lost its connection must
be able to resume.  Heard times survive ``forget()``: a router restart is
exactly when tails come back asking.

For the query lifecycle (``beater/lifecycle.py``) ``on_heard`` and ``on_left``
tell when an id last had (or was about to have) a subscriber, and
:meth:`Listeners.subscribed` whether it has one now.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple

from router import contract

EXPECT_GRACE_S = 10.0
REJOIN_GRACE_S = 60.0
"""After a rejoin, how long the ids that had subscribers are held for them to come back (a node's link relinks late)."""
HELD_MAX = 1000
"""Most events held for one expected id; past it the oldest go (the replay store has them all)."""


DOCS = "docs"
"""Subscriptions of ``docs-for-<id>``: WAMP clients (and a peer link's stand-ins for its node's): one event per
topic and slice."""
TAILED = "tailed"
"""Subscriptions of ``tailed-<id>``: Tailors (and stand-ins for those of other nodes): the id's hits go in the
slice's one event on ``estrom.tailed``."""
KINDS = (DOCS, TAILED)


def subscription_of(uri: Any) -> Optional[Tuple[str, str]]:
    """``(estrom id, kind)`` of a ``docs-for-<id>`` or ``tailed-<id>`` topic, or None for other URIs."""
    if isinstance(uri, str):
        if uri.startswith(contract.TOPIC_PREFIX):
            return uri[len(contract.TOPIC_PREFIX):], DOCS
        if uri.startswith(contract.TAILED_PREFIX):
            return uri[len(contract.TAILED_PREFIX):], TAILED
    return None


def covers_all_topics(uri: Any, match: Any) -> bool:
    """Whether a prefix or wildcard subscription may receive events of every ``docs-for-*`` topic."""
    if not isinstance(uri, str) or match == "exact":
        return False
    if match == "prefix":
        return contract.TOPIC_PREFIX.startswith(uri) or uri.startswith(contract.TOPIC_PREFIX)
    return True  # wildcard: be safe rather than clever


class Listeners:
    """Subscription ids with a live subscriber of each kind, fed by the router's meta events."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, replay_horizon_s: float = 600.0,
                 on_heard: Optional[Callable[[str], None]] = None, on_left: Optional[Callable[[str], None]] = None) -> None:
        """``on_heard(id)`` is told whenever an id is expected or subscribed to (the replay store tracks it);
        ``on_left(id)`` when it loses its last subscriber (or the router session ends while it had one)."""
        self.clock = clock
        self.replay_horizon_s = replay_horizon_s
        self.on_heard = on_heard
        self.on_left = on_left
        self.known = False
        self._heard: Dict[str, float] = {}  # estrom id -> when it last had (or was about to have) a subscriber
        self._heard_after_prune = 0
        self._live: Dict[Any, Tuple[str, str]] = {}  # router subscription id -> (estrom id, kind)
        self._live_ids: Dict[str, Dict[str, int]] = {kind: {} for kind in KINDS}  # kind -> estrom id -> subscriptions
        self._broad: Set[Any] = set()  # router subscription ids of prefix/wildcard subscriptions
        # (estrom id, kind) -> until when a subscriber of that kind is expected.  Per kind: a Tailor tailing an
        # id that a WAMP client follows already (or the other way round) is on its way as much as a first one.
        self._expected: Dict[Tuple[str, str], float] = {}
        self._held: Dict[Tuple[str, str], List[Any]] = {}  # expected (id, kind) -> events waiting for it
        self.on_subscribed: Optional[Callable[[str, List[Any], str], None]] = None
        """Told an id's held events (in order) and their kind when its subscription of that kind shows up:
        the publisher sends them."""

    def wants(self, subscription_id: str) -> bool:
        """Whether a hit for ``subscription_id`` may have a receiver of any kind (when in doubt: yes)."""
        return any(self.wants_kind(subscription_id, kind) for kind in KINDS)

    def wants_kind(self, subscription_id: str, kind: str) -> bool:
        """Whether a hit for ``subscription_id`` may have a receiver of ``kind`` (when in doubt: yes)."""
        if not self.known or subscription_id in self._live_ids[kind] or (kind == DOCS and self._broad):
            return True
        return self._expecting_kind(subscription_id, kind)

    def _expecting_kind(self, subscription_id: str, kind: str) -> bool:
        key = (subscription_id, kind)
        until = self._expected.get(key)
        if until is None:
            return False
        if until < self.clock():
            del self._expected[key]
            self._held.pop(key, None)  # nobody came: what it matched stays in the replay store
            return False
        return True

    def awaiting(self, subscription_id: str, kind: str = DOCS) -> bool:
        """Whether a hit for ``subscription_id`` must wait (:meth:`hold`) for its subscriber of ``kind``: one is
        expected, and the router has not reported its subscription yet (nor, for ``docs-for-*``, any prefix or
        wildcard one that covers it)."""
        return (self.known and subscription_id not in self._live_ids[kind] and not (kind == DOCS and self._broad)
                and self._expecting_kind(subscription_id, kind))

    def hold(self, subscription_id: str, event: Any, kind: str = DOCS) -> None:
        """Keep one event of an awaited id until its subscription of ``kind`` shows up (or its expectation ends)."""
        held = self._held.setdefault((subscription_id, kind), [])
        held.append(event)
        if len(held) > HELD_MAX:
            del held[0]

    def records(self, subscription_id: str) -> bool:
        """Whether the replay store keeps this id's hits: wanted now, or heard within the replay horizon."""
        if self.wants(subscription_id):
            return True
        heard = self._heard.get(subscription_id)
        return heard is not None and self.clock() - heard <= self.replay_horizon_s

    def subscribed(self, subscription_id: str) -> bool:
        """Whether the id has an exact subscriber of either kind now, as far as this Beater knows (prefix and
        wildcard subscribers do not count: they are monitors, not a registration's clients)."""
        return any(subscription_id in live for live in self._live_ids.values())

    def router_subscriptions(self) -> Dict[str, list]:
        """Per estrom id, the router's subscription ids of its topics (for counting its subscribers)."""
        out: Dict[str, list] = {}
        for router_id, (estrom_id, _kind) in self._live.items():
            out.setdefault(estrom_id, []).append(router_id)
        return out

    def expecting(self, subscription_id: str) -> bool:
        """Whether the id was registered or looked up here within ``EXPECT_GRACE_S`` and a subscriber of some
        kind has not shown up yet."""
        now = self.clock()
        return any(self._expected.get((subscription_id, kind), now - 1) >= now for kind in KINDS)

    def last_heard(self, subscription_id: str) -> Optional[float]:
        """When the id last had, or was about to have, a subscriber (``clock`` time), if within memory."""
        return self._heard.get(subscription_id)

    def _hear(self, subscription_id: str) -> None:
        self._heard[subscription_id] = self.clock()
        if len(self._heard) > 2 * self._heard_after_prune + 1024:  # amortised: forget what is past the horizon
            oldest = self.clock() - self.replay_horizon_s
            self._heard = {k: v for k, v in self._heard.items() if v >= oldest}
            self._heard_after_prune = len(self._heard)
        if self.on_heard is not None:
            self.on_heard(subscription_id)

    def expect(self, subscription_id: str) -> None:
        """Someone registered or looked up this id: a subscriber is probably on its way."""
        until = self.clock() + EXPECT_GRACE_S
        for kind in KINDS:
            self._expected[(subscription_id, kind)] = until
        if len(self._expected) > 200_000:  # forget the oldest expectations first
            now = self.clock()
            self._expected = {k: v for k, v in self._expected.items() if v >= now}
            self._held = {k: v for k, v in self._held.items() if k in self._expected}
        self._hear(subscription_id)

    def created(self, details: Mapping[str, Any]) -> None:
        """``wamp.subscription.on_create``: a topic got its first subscriber."""
        router_id, uri, match = details.get("id"), details.get("uri"), details.get("match", "exact")
        if covers_all_topics(uri, match):
            self._broad.add(router_id)
            return
        found = subscription_of(uri) if match == "exact" else None
        if found is not None and router_id not in self._live:
            estrom_id, kind = found
            self._expected.pop(found, None)
            self._live[router_id] = found
            live = self._live_ids[kind]
            live[estrom_id] = live.get(estrom_id, 0) + 1
            self._hear(estrom_id)
            held = self._held.pop(found, None)
            if held and self.on_subscribed is not None:
                self.on_subscribed(estrom_id, held, kind)

    def deleted(self, router_id: Any) -> None:
        """``wamp.subscription.on_delete``: a topic lost its last subscriber."""
        self._broad.discard(router_id)
        found = self._live.pop(router_id, None)
        if found is not None:
            estrom_id, kind = found
            live = self._live_ids[kind]
            left = live.get(estrom_id, 1) - 1
            if left > 0:
                live[estrom_id] = left
            else:
                live.pop(estrom_id, None)
                if not self.subscribed(estrom_id):
                    self._heard[estrom_id] = self.clock()  # its subscriber was there until now
                    if self.on_left is not None:
                        self.on_left(estrom_id)

    def forget(self) -> None:
        """The router session ended: publish everything until the set is rebuilt (heard times stay)."""
        now = self.clock()
        for estrom_id, kind in set(self._live.values()):
            # ...but a subscriber on another node of a cluster comes back only once that node's link has
            # relinked to this router (seconds after this Beater's rejoin): hold its hits until then.
            key = (estrom_id, kind)
            self._expected[key] = max(self._expected.get(key, 0.0), now + REJOIN_GRACE_S)
        for estrom_id in {estrom_id for estrom_id, _kind in self._live.values()}:
            self._heard[estrom_id] = now  # their subscribers were there until now and will come back
            if self.on_left is not None:
                self.on_left(estrom_id)
        self.known = False
        self._live.clear()
        for live in self._live_ids.values():
            live.clear()
        self._broad.clear()
        self._held.clear()  # published into a dead session otherwise; the replay store has them
