"""Assembling a Tailor: its WAMP session on the router and its HTTP site."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from autobahn.twisted.component import Component
from autobahn.wamp.types import RegisterOptions
from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.web.server import Site

from estrom import auth
from estrom.settings import Settings
from estrom.web import json_site
from router import contract
from router.client import SessionHolder, service_component
from tailor import http
from tailor.counts_wamp import WampCounts
from tailor.subscriptions import SubscriptionHub

log = Logger()


@dataclass
class TailorApp:
    """A running (or ready to run) Tailor."""

    settings: Settings
    site: Site
    component: Component
    holder: SessionHolder
    hub: SubscriptionHub
    reactor: Any
    port: Optional[IListeningPort] = None

    async def start(self) -> None:
        """Listen for HTTP tails and join the router."""
        self.port = self.reactor.listenTCP(self.settings.tailor_port, self.site, interface=self.settings.tailor_host)
        self.component.start(self.reactor)

    async def stop(self) -> None:
        """Stop listening and leave the router."""
        if self.port is not None:
            # zope Interface method (mypy sees no self); a TCP port's stopListening returns a Deferred.
            await self.port.stopListening()  # type: ignore[misc]
        await self.component.stop()


def make_tailor(settings: Settings, reactor: Any = None) -> TailorApp:
    """Wire a Tailor from ``settings`` (nothing starts until ``start``)."""
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    holder = SessionHolder()
    hub = SubscriptionHub(clock=reactor)
    component = service_component(settings.router_url, contract.ROLE_TAILOR, settings.ticket(contract.ROLE_TAILOR), settings.service_transport)
    holder.attach(component)

    def session() -> Any:
        return holder.session

    web = http.Root(hub, session, reactor, settings)
    wamp_counts = WampCounts(web.counts.counts, session, reactor)

    @component.on_join
    async def _joined(session: Any, details: Any) -> None:
        # Not awaited: catching up may wait for a Beater that rejoins later, and the join must not.
        ensureDeferred(hub.joined(session)).addErrback(lambda f: log.failure("resubscribing failed", f))
        # "first": with several Tailors one counts each topic (the others stand by), so no window is sent twice.
        await session.register(wamp_counts.counts_procedure, contract.PROC_COUNTS, options=RegisterOptions(invoke="first"))

    @component.on_leave
    def _left(session: Any, details: Any) -> None:
        hub.left(session)

    root = auth.Guard(web, settings.tokens, auth.tailor_rule)
    site = json_site(auth.Cors(root, settings.cors_allowed) if settings.cors_allowed else root, settings.access_log)
    return TailorApp(settings, site, component, holder, hub, reactor)
