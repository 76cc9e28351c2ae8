"""Which topics have someone listening, so the Beater publishes only where it is heard.

Most standing queries have no live subscriber at a given moment, and each
publish costs the router CPU whether or not anyone receives it.  The router's
subscription meta events (``wamp.subscription.on_create`` when a topic gets
its first subscriber, ``on_delete`` when it loses its last) keep a set of
listened-to subscription ids.

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
from typing import Any, Callable, Dict, List, Mapping, Optional, Set

from router import contract

EXPECT_GRACE_S = 10.0
REJOIN_GRACE_S = 60.0
"""After a rejoin, how long the ids that had subscribers are held for them to come back (a node's link relinks late)."""
HELD_MAX = 1000
"""Most events held for one expected id; past it the oldest go (the replay store has them all)."""


def subscription_id_of(uri: Any) -> Optional[str]:
    """The estrom subscription id a ``docs-for-<id>`` topic carries, or None for other URIs."""
    if isinstance(uri, str) and uri.startswith(contract.TOPIC_PREFIX):
        return uri[len(contract.TOPIC_PREFIX):]
    return None


def covers_all_topics(uri: Any, match: Any) -> bool:
    """Whether a prefix or wildcard subscription may receive events of every ``docs-for-*`` topic."""
    if not isinstance(uri, str) or match == "exact":
        return False
    if match == "prefix":
        return contract.TOPIC_PREFIX.startswith(uri) or uri.startswith(contract.TOPIC_PREFIX)
    return True  # wildcard: be safe rather than clever


class Listeners:
    """Subscription ids with a live subscriber, fed by the router's meta events."""

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
        self._live: Dict[Any, str] = {}  # router subscription id -> estrom id
        self._live_ids: Dict[str, int] = {}
        self._broad: Set[Any] = set()  # router subscription ids of prefix/wildcard subscriptions
        self._expected: Dict[str, float] = {}
        self._held: Dict[str, List[Any]] = {}  # expected id -> events waiting for its subscription
        self.on_subscribed: Optional[Callable[[str, List[Any]], None]] = None
        """Told an id's held events (in order) when its subscription shows up: the publisher sends them."""

    def wants(self, subscription_id: str) -> bool:
        """Whether a hit for ``subscription_id`` may have a receiver (when in doubt: yes)."""
        if not self.known or self._broad or subscription_id in self._live_ids:
            return True
        until = self._expected.get(subscription_id)
        if until is None:
            return False
        if until < self.clock():
            del self._expected[subscription_id]
            self._held.pop(subscription_id, None)  # nobody came: what it matched stays in the replay store
            return False
        return True

    def awaiting(self, subscription_id: str) -> bool:
        """Whether a hit for ``subscription_id`` must wait (:meth:`hold`): it is expected, and the router has
        not reported its subscription yet (nor any prefix or wildcard one that covers it)."""
        return self.known and not self._broad and subscription_id not in self._live_ids and self.expecting(subscription_id)

    def hold(self, subscription_id: str, event: Any) -> None:
        """Keep one event of an awaited id until its subscription shows up (or its expectation ends)."""
        held = self._held.setdefault(subscription_id, [])
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
        """Whether the id has an exact subscriber now, as far as this Beater knows (prefix and wildcard
        subscribers do not count: they are monitors, not a registration's clients)."""
        return subscription_id in self._live_ids

    def router_subscriptions(self) -> Dict[str, list]:
        """Per estrom id, the router's subscription ids of its topic (for counting its subscribers)."""
        out: Dict[str, list] = {}
        for router_id, estrom_id in self._live.items():
            out.setdefault(estrom_id, []).append(router_id)
        return out

    def expecting(self, subscription_id: str) -> bool:
        """Whether the id was registered or looked up here within ``EXPECT_GRACE_S`` and its subscriber
        has not shown up yet."""
        until = self._expected.get(subscription_id)
        return until is not None and until >= self.clock()

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
        self._expected[subscription_id] = self.clock() + EXPECT_GRACE_S
        if len(self._expected) > 100_000:  # forget the oldest expectations first
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
        estrom_id = subscription_id_of(uri) if match == "exact" else None
        if estrom_id is not None and router_id not in self._live:
            self._expected.pop(estrom_id, None)
            self._live[router_id] = estrom_id
            self._live_ids[estrom_id] = self._live_ids.get(estrom_id, 0) + 1
            self._hear(estrom_id)
            held = self._held.pop(estrom_id, None)
            if held and self.on_subscribed is not None:
                self.on_subscribed(estrom_id, held)

    def deleted(self, router_id: Any) -> None:
        """``wamp.subscription.on_delete``: a topic lost its last subscriber."""
        self._broad.discard(router_id)
        estrom_id = self._live.pop(router_id, None)
        if estrom_id is not None:
            left = self._live_ids.get(estrom_id, 1) - 1
            if left > 0:
                self._live_ids[estrom_id] = left
            else:
                self._live_ids.pop(estrom_id, None)
                self._heard[estrom_id] = self.clock()  # its subscriber was there until now
                if self.on_left is not None:
                    self.on_left(estrom_id)

    def forget(self) -> None:
        """The router session ended: publish everything until the set is rebuilt (heard times stay)."""
        now = self.clock()
        for estrom_id in self._live_ids:
            self._heard[estrom_id] = now  # their subscribers were there until now and will come back
            # ...but a subscriber on another node of a cluster comes back only once that node's link has
            # relinked to this router (seconds after this Beater's rejoin): hold its hits until then.
            self._expected[estrom_id] = max(self._expected.get(estrom_id, 0.0), now + REJOIN_GRACE_S)
            if self.on_left is not None:
                self.on_left(estrom_id)
        self.known = False
        self._live.clear()
        self._live_ids.clear()
        self._broad.clear()
        self._held.clear()  # published into a dead session otherwise; the replay store has them
