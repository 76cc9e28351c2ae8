"""How estrom's own services join the router: one autobahn Component per role.

The Component reconnects by itself; every handler a service attaches with
``on_join`` is redone on each rejoin, so registrations and subscriptions come
back after a router restart.  ``SessionHolder`` keeps the live session from
join to leave, so HTTP front ends can answer 503 while it is absent.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

from autobahn.twisted.component import Component
from autobahn.twisted.wamp import ApplicationSession
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import ComponentConfig  # noqa: F401  (re-exported type for callers' hints)
from twisted.logger import Logger, LogLevel

from estrom import logs
from router import contract
from router.nodelay import set_no_delay

log = Logger()


UNREACHABLE_EVERY_S = 60.0
"""While the router cannot be reached, say why at most this often (the Component retries every 2 s)."""


class SessionHolder:
    """The current WAMP session of a component, or None between leave and the next join.

    It also says, once each, that the router was joined, lost and regained (named log events:
    shown at any log level), so an operator sees an outage begin and end.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.session: Optional[ApplicationSession] = None
        self.ready = False  # set by the service once its join handlers are done
        self.clock = clock
        self.lost_at: Optional[float] = None  # when the session went, until the next join
        self.joins = 0
        self._waiters: list[Callable[[ApplicationSession], Any]] = []
        self._unreachable = logs.LineBudget(window_s=UNREACHABLE_EVERY_S, clock=clock)

    def attach(self, component: Component) -> None:
        """Track joins and leaves of ``component``."""
        component.on("join", self._on_join)
        component.on("leave", self._on_leave)
        component.on("connectfailure", self._on_connect_failure)

    def _on_join(self, session: ApplicationSession, details: Any) -> None:
        self.session = session
        self.joins += 1
        self._unreachable = logs.LineBudget(window_s=UNREACHABLE_EVERY_S, clock=self.clock)  # the next outage says so at once
        if self.lost_at is not None:
            down_s = round(self.clock() - self.lost_at, 3)
            self.lost_at = None
            logs.event(log, LogLevel.info, "router_regained", "estrom: router session regained after {down_s} s", down_s=down_s)
        elif self.joins == 1:
            logs.event(log, LogLevel.info, "router_joined", "estrom: joined the router (realm {realm})", realm=contract.REALM)

    def _on_leave(self, session: ApplicationSession, details: Any) -> None:
        if self.session is session:
            self.session = None
            self.ready = False
            self.lost_at = self.clock()
            reason = getattr(details, "reason", None) or "-"
            logs.event(log, LogLevel.warn, "router_lost", "estrom: lost the router session ({reason}); reconnecting", reason=str(reason))

    def _on_connect_failure(self, component: Any, error: Any) -> None:
        if self.session is not None:
            return  # the session being lost, not a failed attempt: router_lost follows and says so
        write, suppressed, _ = self._unreachable.take(("router_unreachable", "-"))
        if write:
            reason = error.error_message() if isinstance(error, ApplicationError) else str(error)
            logs.event(log, LogLevel.warn, "router_unreachable",
                       "estrom: cannot reach the router ({error}); retrying" + (" ({attempts} more failed attempts)" if suppressed else ""),
                       error=reason, attempts=suppressed)


def disable_nagle(session: Any, transport: Any) -> None:
    """Send every WAMP message at once: set TCP_NODELAY on the session's TCP connection.

    autobahn means to but never does (see :mod:`router.nodelay`); with Nagle's algorithm
    one publish in ten waited 16-20 ms for the router's delayed ACK.
    """
    set_no_delay(getattr(transport, "transport", None))


def service_component(router_url: str, role: str, ticket: str, transport: str = "rawsocket") -> Component:
    """A Component that joins realm ``estrom`` as ``role`` with WAMP-ticket authentication.

    ``transport`` ``rawsocket`` speaks WAMP over plain TCP to the host and port of
    ``router_url`` (estrom's router takes both on one port): no WebSocket framing, no
    per-frame masking key, no per-message debug formatting in autobahn's WebSocket
    layer; at a few hundred publishes a second that is a third of the Beater's time.
    """
    # CBOR, not JSON: autobahn decodes JSON with a pure-Python scanner (~120 us a hit against
    # ~8 us), and unlike MessagePack CBOR carries integers of any size.
    retry = {"max_retries": -1, "initial_retry_delay": 0.2, "max_retry_delay": 2.0, "retry_delay_growth": 1.5}
    if transport == "rawsocket":
        config = {"type": "rawsocket", "url": router_url, "serializer": "cbor", **retry}
    else:
        config = {"type": "websocket", "url": router_url, "serializers": ["cbor", "json"], **retry}
    component = Component(
        transports=[config],
        realm=contract.REALM,
        authentication={"ticket": {"authid": role, "ticket": ticket}},
    )
    component.on("connect", disable_nagle)
    return component


_META_API = {
    "subscription": (contract.META_SUBSCRIPTION_ON_CREATE, contract.META_SUBSCRIPTION_ON_DELETE,
                     contract.META_SUBSCRIPTION_LIST, contract.META_SUBSCRIPTION_GET),
    "registration": (contract.META_REGISTRATION_ON_CREATE, contract.META_REGISTRATION_ON_DELETE,
                     contract.META_REGISTRATION_LIST, contract.META_REGISTRATION_GET),
}


async def follow_meta(session: Any, kind: str, created: Callable[[Any], None], deleted: Callable[[Any], None]) -> None:
    """Follow the router's meta API of ``kind`` (``subscription`` or ``registration``): ``created(details)``
    and ``deleted(id)`` from its meta events first, then ``created`` for each one the router already has,
    so nothing made in between is missed."""
    on_create, on_delete, list_uri, get_uri = _META_API[kind]
    await session.subscribe(lambda _session_id, details: created(details), on_create)
    await session.subscribe(lambda _session_id, meta_id: deleted(meta_id), on_delete)
    current = await session.call(list_uri)
    for policy in ("exact", "prefix", "wildcard"):
        for meta_id in current.get(policy, []):
            try:
                created(await session.call(get_uri, meta_id))
            except ApplicationError:
                pass  # deleted meanwhile
