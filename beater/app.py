"""Assembling a Beater: percolator backend, pipeline, HTTP site and WAMP component."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from autobahn.twisted.component import Component
from twisted.internet.interfaces import IListeningPort
from twisted.web.server import Site

from beater import http, wamp
from beater.admin import AdminResource
from beater.lifecycle import Lifecycle, Sweeper
from beater.listeners import Listeners
from beater.percolator.base import Percolator
from beater.pipeline import Pipeline
from beater.replay import ReplayStore
from beater.sequence import Sequencer
from beater.service import Beater
from estrom import auth
from estrom.settings import Settings
from estrom.web import json_site
from router import contract
from router.client import SessionHolder, service_component


def make_percolator(settings: Settings) -> Percolator:
    """The percolator backend chosen by ``settings.percolator``."""
    if settings.percolator == "elasticsearch":
        from beater.percolator.elasticsearch import ElasticsearchPercolator

        return ElasticsearchPercolator(settings.es_url, mappings=settings.index_mappings, shards=settings.es_shards, replicas=settings.es_replicas)
    from beater.percolator.embedded import EmbeddedPercolator

    return EmbeddedPercolator(settings.data_dir / "registrations.sqlite3", mappings=settings.index_mappings)


@dataclass
class BeaterApp:
    """A running (or ready to run) Beater."""

    settings: Settings
    beater: Beater
    site: Site
    component: Component
    holder: SessionHolder
    reactor: Any
    port: Optional[IListeningPort] = None
    kafka: Optional[Any] = None  # beater.kafka.source.KafkaSource with --kafka-bootstrap
    registrations_log: Optional[Any] = None  # beater.kafka.registrations.RegistrationLog with --kafka-bootstrap
    sweeper: Optional[Sweeper] = None  # expires registrations without subscribers (beater/lifecycle.py)
    _kafka_starting: Optional[Any] = None

    async def start(self) -> None:
        """Load registrations, listen for HTTP ingest and join the router; consume Kafka once joined."""
        await self.beater.percolator.start()
        self.beater.lifecycle.load_from(self.beater.percolator)  # in the background: expiry can wait for them
        if self.sweeper is not None:
            self.sweeper.start()
        self.port = self.reactor.listenTCP(self.settings.beater_port, self.site, interface=self.settings.beater_host)
        if self.registrations_log is not None:
            self.registrations_log.start()  # its own thread; the reactor never waits for the broker
        self.component.start(self.reactor)
        if self.kafka is not None:
            from beater.kafka.source import start_when_ready

            holder, registrations = self.holder, self.registrations_log
            # Documents are consumed only once every registration already in the log is registered
            # here: a Beater joining the group must not take partitions and miss their subscribers.
            self._kafka_starting = start_when_ready(self.reactor, self.kafka, lambda: holder.session is not None and holder.ready
                                                    and (registrations is None or registrations.caught_up.called))

    async def stop(self) -> None:
        """Stop listening, stop the Kafka source (committing what was delivered), leave the router, close the percolator."""
        if self.port is not None:
            await self.port.stopListening()  # type: ignore[misc]  # zope interface, no mypy-zope plugin
        if self.sweeper is not None:
            self.sweeper.stop()
        if self._kafka_starting is not None and not self._kafka_starting.called:
            self._kafka_starting.cancel()
        if self.kafka is not None:
            await self.kafka.stop()  # before leaving: what is in flight still needs the router's acks
        if self.registrations_log is not None:
            await self.registrations_log.stop()
        await self.component.stop()
        await self.beater.percolator.stop()


def make_beater(settings: Settings, reactor: Any = None) -> BeaterApp:
    """Wire a Beater from ``settings`` (nothing starts until ``start``)."""
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    holder = SessionHolder()
    listeners = Listeners(replay_horizon_s=settings.replay_max_age_s)
    # The store keeps what recorded subscriptions matched; it learns of each id as soon as someone
    # asks for it (register, lookup, subscribe), so a quiet subscription resumes without a false gap.
    replay = ReplayStore(listeners.records, max_docs=settings.replay_max_docs, max_age_s=settings.replay_max_age_s)
    lifecycle = Lifecycle(settings.registration_grace_s)

    def heard(subscription_id: str) -> None:
        replay.track(subscription_id)
        lifecycle.touch(subscription_id)

    listeners.on_heard = heard
    listeners.on_left = lifecycle.touch
    lifecycle.in_use = lambda subscription_id: listeners.subscribed(subscription_id) or listeners.expecting(subscription_id)
    percolator = make_percolator(settings)
    publisher = wamp.Publisher(holder, listeners)
    pipeline = Pipeline(
        percolator,
        lifecycle.counting(publisher.publish),
        Sequencer(settings.data_dir / "sequences.json"),
        reactor,
        batch_size=settings.batch_size,
        delay=settings.batch_delay_ms / 1000.0,
        replay=replay,
        slices=publisher,
    )
    pipeline.metrics.watch_replay(replay)
    pipeline.metrics.watch_registrations(percolator)
    beater = Beater(percolator, pipeline, settings.index_mappings, replay)
    beater.limits = settings.limits
    lifecycle.count_in(pipeline.metrics.registry)
    beater.lifecycle = lifecycle
    component = service_component(settings.router_url, contract.ROLE_BEATER, settings.ticket(contract.ROLE_BEATER), settings.service_transport)
    wamp.attach(component, beater, holder, listeners)

    def router_ready() -> bool:
        return holder.session is not None and holder.ready

    root = http.Root(beater, router_ready)
    root.admin = AdminResource(beater, listeners, lambda: holder.session, settings.tokens)
    site = json_site(auth.Guard(root, settings.tokens, auth.beater_rule), settings.access_log)
    app = BeaterApp(settings, beater, site, component, holder, reactor)
    app.sweeper = Sweeper(reactor, lifecycle, beater.expire, lambda: listeners.known)
    if settings.kafka_enabled:
        from beater.kafka.source import KafkaSource

        from beater.kafka.registrations import RegistrationLog

        app.kafka = KafkaSource(reactor, pipeline, settings.kafka_config())
        app.registrations_log = RegistrationLog(reactor, settings.kafka_registrations_config(), beater.adopt,
                                                settings.index_mappings, pipeline.metrics, drop=beater.dropped_from_log)
        beater.registrations_log = app.registrations_log
    return app
