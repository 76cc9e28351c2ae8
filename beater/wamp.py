"""The Beater on the router: its RPCs and its publisher.

Procedures are registered on every join (autobahn's Component redoes
``on_join`` handlers after a reconnect).  Caller mistakes become
``ApplicationError`` with an ``estrom.error.*`` URI and the same details the
HTTP API gives.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, List, Tuple

from autobahn.twisted.component import Component
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, RegisterOptions
from twisted.logger import Logger

from beater.errors import BackendUnavailable, EstromError
from beater.hits import Encode, Hit, encode_hit
from beater.listeners import DOCS, TAILED, Listeners
from beater.service import Beater
from router import contract
from router.client import SessionHolder, follow_meta

log = Logger()


def tailed_event(hits: List[Hit], by_id: Dict[str, List[int]], encode: Encode = encode_hit) -> List[Any]:
    """The args of an ``estrom.tailed`` event (``router/contract.py``): the Beater, each hit as ``[seq, its
    JSON]``, and the positions of every id's hits.  As bytes the router and the Tailor pass a hit through
    without decoding or encoding it (CBOR carries them as they are), and the Tailor writes them unchanged."""
    beater = str(hits[0]["_beater"]) if hits else "-"
    return [beater, [[hit["_seq"], encode(hit)] for hit in hits], by_id]


def _as_wamp_errors(fn: Callable[..., Awaitable[Dict[str, Any]]]) -> Callable[..., Awaitable[Dict[str, Any]]]:
    async def wrapper(*args: Any, **kwargs: Any) -> Dict[str, Any]:
        try:
            return await fn(*args, **kwargs)
        except EstromError as e:
            raise ApplicationError(e.uri, e.message, **{k: v for k, v in e.to_json().items() if k != "error"}) from e
        except TypeError as e:
            raise ApplicationError(contract.ERROR_INVALID_ARGUMENT, str(e)) from e

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _expecting(fn: Callable[..., Awaitable[Dict[str, Any]]], listeners: Listeners) -> Callable[..., Awaitable[Dict[str, Any]]]:
    """``fn`` (register or lookup) that also tells ``listeners`` a subscriber is on its way."""

    async def wrapper(*args: Any, **kwargs: Any) -> Dict[str, Any]:
        answer = await fn(*args, **kwargs)
        listeners.expect(answer["id"])
        return answer

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


async def follow_listeners(session: Any, listeners: Listeners) -> None:
    """Keep ``listeners`` in step with the router's subscriptions (meta events, then the current list)."""
    await follow_meta(session, "subscription", listeners.created, listeners.deleted)
    listeners.known = True


def attach(component: Component, beater: Beater, holder: SessionHolder, listeners: Listeners) -> None:
    """Register the Beater's procedures on every join of ``component`` and track its session."""
    holder.attach(component)

    @component.on_join
    async def _register(session: Any, details: Any) -> None:
        try:
            await follow_listeners(session, listeners)
        except Exception:
            log.failure("cannot follow the router's subscriptions; publishing every topic")
        options = RegisterOptions(invoke="roundrobin")
        await session.register(_as_wamp_errors(_expecting(beater.register, listeners)), contract.PROC_REGISTER, options=options)
        await session.register(_as_wamp_errors(_expecting(beater.lookup, listeners)), contract.PROC_LOOKUP, options=options)
        await session.register(_as_wamp_errors(beater.ingest_documents), contract.PROC_INGEST, options=options)
        # Not through _expecting: a replay follows a subscription the router already reported.  Its own
        # procedure, not a shared one: sequence numbers are per Beater, so a Tailor asks each Beater in turn.
        beater_id = beater.pipeline.sequencer.beater_id
        try:
            await session.register(_as_wamp_errors(beater.replay), contract.replay_procedure(beater_id))
        except ApplicationError as e:
            log.error("another Beater with id {beater} is on this router ({e}); tails cannot resume from this one: "
                      "give each Beater its own --data-dir", beater=beater_id, e=e.error)
        await session.register(_as_wamp_errors(beater.highlight), contract.PROC_HIGHLIGHT, options=options)
        await session.register(lambda: {"percolator": beater.percolator.name, "beater": beater_id}, contract.PROC_HEALTH, options=options)
        holder.ready = True  # health answers 200 from here on

    @component.on_leave
    def _left(session: Any, details: Any) -> None:
        listeners.forget()


_ACKNOWLEDGED = PublishOptions(acknowledge=True)


class Publisher:
    """The pipeline's publisher: per slice, one event on ``docs-for-<id>`` for each id a WAMP client follows,
    and one event on ``estrom.tailed`` carrying the hits of every id a Tailor tails (each hit once).

    :meth:`publish` is called for each id of a slice, then :meth:`end_slice` sends the slice's events.  With
    ``acknowledge=True`` that answers the Deferreds of the router's acknowledgements (not awaited here: the
    pipeline goes on meanwhile and the submission waits for them)."""

    def __init__(self, holder: SessionHolder, listeners: Listeners) -> None:
        self.holder = holder
        self.listeners = listeners
        self._hits: List[Hit] = []
        self._positions: Dict[int, int] = {}  # id() of a hit of this slice -> its place in _hits
        self._by_id: Dict[str, List[int]] = {}
        self._topics: List[Tuple[str, List[Hit]]] = []  # (id, hits) of this slice for docs-for-<id>
        listeners.on_subscribed = self._publish_held

    def _session(self) -> Any:
        session = self.holder.session
        if session is None or not session.is_attached():
            raise BackendUnavailable("the router is not reachable")
        return session

    def _publish_held(self, subscription_id: str, events: List[List[Hit]], kind: str) -> None:
        session = self.holder.session
        if session is None or not session.is_attached():
            return
        if kind == DOCS:
            for hits in events:
                session.publish(contract.topic_for(subscription_id), hits)
        else:
            hits = [hit for event in events for hit in event]
            session.publish(contract.TOPIC_TAILED, *tailed_event(hits, {subscription_id: list(range(len(hits)))}))

    async def publish(self, subscription_id: str, hits: List[Hit], acknowledge: bool = False) -> Any:
        """Send (or hold, or add to the slice's Tailor event) one id's hits of a slice; False if nobody may hear them."""
        listeners = self.listeners
        docs, tailed = listeners.wants_kind(subscription_id, DOCS), listeners.wants_kind(subscription_id, TAILED)
        if not docs and not tailed:
            return False  # nobody subscribed: the router would drop it after paying for it
        if docs:
            if listeners.awaiting(subscription_id, DOCS):
                # Registered here, its subscription not on this router yet (a client of another node of a
                # cluster is subscribed here by that node's link ms later): sent once it is (recorded already).
                listeners.hold(subscription_id, hits, DOCS)
            else:
                self._session()  # unreachable: the slice fails now, as its first publish would
                self._topics.append((subscription_id, hits))
        if tailed:
            if listeners.awaiting(subscription_id, TAILED):
                listeners.hold(subscription_id, hits, TAILED)
            else:
                positions = self._positions
                places = []
                for hit in hits:
                    place = positions.get(id(hit))
                    if place is None:
                        place = positions[id(hit)] = len(self._hits)
                        self._hits.append(hit)
                    places.append(place)
                self._by_id[subscription_id] = places
        return True

    def abandon_slice(self) -> None:
        """Forget what the slice's events would have carried (its publishing failed part way)."""
        self._hits, self._positions, self._by_id, self._topics = [], {}, {}, []

    def end_slice(self, acknowledge: bool = False, encode: Encode = encode_hit) -> List[Any]:
        """Send the slice's events: the Tailors' first (it carries every HTTP tail's hits, and the router
        routes in order), then each WAMP topic's; their acknowledgements' Deferreds if ``acknowledge``.
        ``encode`` gives a hit's JSON (the slice's, which the replay store kept too)."""
        hits, by_id, topics = self._hits, self._by_id, self._topics
        self.abandon_slice()
        if not by_id and not topics:
            return []
        session = self._session()
        options = _ACKNOWLEDGED if acknowledge else None
        answers = []
        if by_id:
            answers.append(session.publish(contract.TOPIC_TAILED, *tailed_event(hits, by_id, encode), options=options))
        for subscription_id, topic_hits in topics:
            answers.append(session.publish(contract.topic_for(subscription_id), topic_hits, options=options))
        return answers if acknowledge else []
