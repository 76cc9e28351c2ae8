"""How estrom's own services join the router: one autobahn Component per role.

The Component reconnects by itself; every handler a service attaches with
``on_join`` is redone on each rejoin, so registrations and subscriptions come
back after a router restart.  ``SessionHolder`` keeps the live session from
join to leave, so HTTP front ends can answer 503 while it is absent.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from autobahn.twisted.component import Component
from autobahn.twisted.wamp import ApplicationSession
from autobahn.wamp.types import ComponentConfig  # noqa: F401  (re-exported type for callers' hints)

from router import contract
from router.nodelay import set_no_delay


class SessionHolder:
    """The current WAMP session of a component, or None between leave and the next join."""

    def __init__(self) -> None:
        self.session: Optional[ApplicationSession] = None
        self.ready = False  # set by the service once its join handlers are done
        self._waiters: list[Callable[[ApplicationSession], Any]] = []

    def attach(self, component: Component) -> None:
        """Track joins and leaves of ``component``."""
        component.on("join", self._on_join)
        component.on("leave", self._on_leave)

    def _on_join(self, session: ApplicationSession, details: Any) -> None:
        self.session = session

    def _on_leave(self, session: ApplicationSession, details: Any) -> None:
        if self.session is session:
            self.session = None
            self.ready = False


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
