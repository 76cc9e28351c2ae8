"""What a router-to-router link forwards: estrom's own rules, loaded into Crossbar's router worker.

A cluster node links to every other node (a full mesh, ``router/config.py``).
Each link's local leg runs inside this node's router and forwards to the peer
what clients *of this node* hold: it subscribes there to every topic one of
them subscribes to here, and registers there every procedure one of them
registers here; events and calls that arrive for those come back here.

Crossbar's own rlink code (``crossbar/worker/rlink.py``) forwards every
subscription and registration of the node, also those the peers' own links
hold, and that broke estrom in three ways (measured with two nodes, 2026-12):

* Stand-ins that never go.  B's link subscribes on A for a tail on B; A's
  link sees that stand-in and mirrors it back onto B; when the tail leaves,
  each node's topic still has the other's stand-in, so neither is ever
  deleted.  The Beater then published every topic ever tailed anywhere, for as
  long as the links stayed up; a registration never expired; and every event
  crossed the link twice (the mirror sent each one back, to be dropped).
* Mirrored registrations.  After a node restart, a link that came back second
  registered the other link's stand-ins as its own, joining the Beater's
  shared (roundrobin) registrations: every other call ``estrom.register`` or
  ``estrom.lookup`` went round the loop and was answered ``None``.
* Swallowed errors.  A call forwarded to a callee that raised an error was
  answered ``None`` (``estrom.error.invalid_query`` was lost on the way).

Here a topic or procedure is forwarded while at least one of its subscribers or
callees on this node is not a peer's link (role :data:`PEER_ROLE`), and
withdrawn when the last one goes; an event is re-published here to this
node's clients only (``exclude_authrole``: each peer has it from the source
already); a forwarded call answers with what the callee answered, error
included.  The link sessions of the peers authenticate with a role other than
Crossbar's reserved ``rlink``, whose registrations Crossbar hides from the
meta API: a Tailor on node B hears ``wamp.registration.on_create`` when a
Beater's ``estrom.replay.<id>`` arrives from node A, and ``on_delete`` when it
goes.

:class:`LinkRules` is a component that does nothing but :func:`install` these
rules into the router worker; Crossbar starts a router's components before its
rlinks, so every link of the node follows them from its start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Optional, Set

from autobahn.twisted.wamp import ApplicationSession
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallOptions, PublishOptions, RegisterOptions, SubscribeOptions
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.logger import Logger

from router import contract

log = Logger(namespace="estrom.rlinks")

PEER_ROLE = contract.ROLE_PEER
"""The role every peer's link session has on this node (``router/config.py`` gives it to their node keys)."""

BOUNCED = "estrom.error.forwarded_twice"
"""Between routers only: a forwarded call reached another peer's stand-in (a shared registration held on
several nodes); the forwarding link tries the next callee."""
BOUNCES = 8
"""Attempts of a forwarded call on a shared registration before it is answered ``estrom.error.unavailable``."""

SUBSCRIPTIONS, REGISTRATIONS = "subscription", "registration"
_META_EVENTS = {
    SUBSCRIPTIONS: ("on_create", "on_subscribe", "on_unsubscribe", "on_delete"),
    REGISTRATIONS: ("on_create", "on_register", "on_unregister", "on_delete"),
}


def held_by_a_client(observers: Iterable[Any]) -> bool:
    """Whether any of a topic's subscribers (or a procedure's callees) is a client of this node, not a peer's link."""
    return any(getattr(session, "_authrole", None) != PEER_ROLE for session in observers)


def forwardable(uri: Any) -> bool:
    """Whether a URI may be forwarded at all: the meta API (``wamp.*``) is every node's own."""
    return isinstance(uri, str) and not uri.startswith("wamp.")


def origin(session: Optional[int], authid: Optional[str], authrole: Optional[str], link: Dict[str, Any]) -> Dict[str, Any]:
    """The ``forward_for`` entry of a forwarded event or call: who published or called it, if the router
    disclosed it, else the link itself (a router that does not disclose still forwards)."""
    if session is None or authrole is None:
        return dict(link)
    return {"session": session, "authid": authid, "authrole": authrole}


@dataclass
class Forward:
    """One topic or procedure of this node and what the link holds for it on the peer."""

    uri: str
    match: str
    invoke: Optional[str] = None
    handle: Any = None  # the link's Subscription or Registration on the peer, while forwarded
    busy: bool = False  # a subscribe/unsubscribe (or register/unregister) to the peer is in flight
    again: bool = False  # something changed while busy: look once more when done
    refused: Optional[str] = None  # why the peer refused it last (said once, not at every change)


class LinkForwarder:
    """Keeps the peer's stand-ins of one kind (``subscription`` or ``registration``) in step with this node.

    ``observation(id)`` answers the router's current topic or procedure with that id (its ``uri``,
    ``match``, ``observers`` and, for a procedure, ``extra.invoke``), or None once it is gone;
    ``forward(entry)`` makes the stand-in on the peer and answers its handle; ``withdraw(handle)``
    removes it; ``peer_attached()`` says whether the link's remote leg is joined.
    """

    def __init__(self, kind: str, observation: Callable[[Any], Any], forward: Callable[[Forward], Any],
                 withdraw: Callable[[Any], Any], peer_attached: Callable[[], bool]) -> None:
        self.kind = kind
        self.observation = observation
        self.forward = forward
        self.withdraw = withdraw
        self.peer_attached = peer_attached
        self.entries: Dict[Any, Forward] = {}

    def wanted(self, observation_id: Any) -> bool:
        """Whether the peer should hold a stand-in for this id now."""
        observation = self.observation(observation_id)
        return (observation is not None and forwardable(observation.uri) and held_by_a_client(observation.observers)
                and self.peer_attached())

    def changed(self, observation_id: Any) -> "Any":
        """The router's topic or procedure ``observation_id`` changed (meta event, or the peer (re)joined)."""
        return ensureDeferred(self.reconcile(observation_id))

    async def reconcile(self, observation_id: Any) -> None:
        """Make or remove the peer's stand-in until it matches what this node holds."""
        entry = self.entries.get(observation_id)
        if entry is None:
            observation = self.observation(observation_id)
            if observation is None or not forwardable(observation.uri):
                return
            invoke = getattr(getattr(observation, "extra", None), "invoke", None) if self.kind == REGISTRATIONS else None
            entry = self.entries[observation_id] = Forward(observation.uri, observation.match, invoke)
        if entry.busy:
            entry.again = True
            return
        entry.busy = True
        try:
            while True:
                entry.again = False
                want, have = self.wanted(observation_id), entry.handle is not None
                if want and not have:
                    try:
                        entry.handle = await self.forward(entry)
                        entry.refused = None
                    except ApplicationError as e:
                        if entry.refused != e.error:
                            entry.refused = e.error
                            log.warn("the peer refused to take {kind} {uri} ({error}): its clients do not reach it here",
                                     kind=self.kind, uri=entry.uri, error=e.error)
                elif have and not want:
                    handle, entry.handle = entry.handle, None
                    await self.withdraw(handle)
                if not entry.again:
                    break
        except Exception as e:  # the peer went away meanwhile: its rejoin forwards everything again
            log.debug("forwarding {kind} {uri} to the peer failed: {e}", kind=self.kind, uri=entry.uri, e=e)
        finally:
            entry.busy = False
            if entry.handle is None and self.observation(observation_id) is None:
                self.entries.pop(observation_id, None)

    def peer_left(self) -> None:
        """The remote leg left: the peer dropped every stand-in with it."""
        for entry in self.entries.values():
            entry.handle = None

    def known(self) -> Set[Any]:
        """The ids this forwarder tracks."""
        return set(self.entries)


def _router_map(local: Any, kind: str) -> Any:
    """The router's subscription or registration map, read synchronously from inside the router worker."""
    router = local._transport._router
    return router._broker._subscription_map if kind == SUBSCRIPTIONS else router._dealer._registration_map


async def _forward_everything(local: Any, kind: str, forwarder: LinkForwarder) -> None:
    """Reconcile every topic or procedure the router has (after the peer (re)joined)."""
    current = await local.call(f"wamp.{kind}.list")
    # Side by side: a node with thousands of tailed topics is linked again in a few round trips, not thousands.
    await gatherResults([forwarder.changed(observation_id)
                         for policy in ("exact", "prefix", "wildcard") for observation_id in current.get(policy, [])])


async def setup_event_forwarding(local: Any, remote: Any) -> None:
    """The local leg's event forwarding (replaces Crossbar's ``_setup_event_forwarding`` on it)."""
    link = {"session": local._session_id, "authid": local._authid or "rlink", "authrole": local._authrole or "trusted"}
    topics = _router_map(local, SUBSCRIPTIONS)

    async def subscribe_on_peer(entry: Forward) -> Any:
        uri = entry.uri

        def on_event(*args: Any, **kwargs: Any) -> None:
            details = kwargs.pop("details")
            if details.forward_for:
                return  # already forwarded by a third node, whose own link reaches this node (full mesh)
            came_from = origin(details.publisher, details.publisher_authid, details.publisher_authrole, link)
            options = PublishOptions(exclude_me=True, exclude_authrole=[PEER_ROLE], forward_for=[came_from])
            try:
                local.publish(details.topic or uri, *args, options=options, **kwargs)
            except Exception as e:
                log.warn("re-publishing an event of {uri} from the peer failed: {e}", uri=uri, e=e)

        return await remote.subscribe(on_event, uri, options=SubscribeOptions(match=entry.match, details=True))

    async def unsubscribe_on_peer(handle: Any) -> None:
        if handle.active:
            await handle.unsubscribe()

    forwarder = LinkForwarder(SUBSCRIPTIONS, topics.get_observation_by_id, subscribe_on_peer, unsubscribe_on_peer,
                              remote.is_attached)
    await _follow(local, remote, SUBSCRIPTIONS, forwarder)


async def setup_invocation_forwarding(local: Any, remote: Any) -> None:
    """The local leg's call forwarding (replaces Crossbar's ``_setup_invocation_forwarding`` on it)."""
    link = {"session": local._session_id, "authid": local._authid or "rlink", "authrole": local._authrole or "trusted"}
    procedures = _router_map(local, REGISTRATIONS)

    async def register_on_peer(entry: Forward) -> Any:
        uri = entry.uri

        async def on_call(*args: Any, **kwargs: Any) -> Any:
            details = kwargs.pop("details")
            procedure = details.procedure or uri
            if details.forward_for:
                # A call another node forwarded here went to a third node's stand-in: that node's own
                # link reaches the first one (full mesh), so it is never forwarded a second time.
                raise ApplicationError(BOUNCED, f"{procedure} is forwarded once only")
            came_from = origin(details.caller, details.caller_authid, details.caller_authrole, link)
            options = CallOptions(forward_for=[came_from])
            for _ in range(BOUNCES):
                try:
                    # The callee's answer or error, as it gave it.
                    return await local.call(procedure, *args, options=options, **kwargs)
                except ApplicationError as e:
                    if e.error != BOUNCED:
                        raise
                    # A shared registration's turn fell on another peer's stand-in: the next callee.
            raise ApplicationError(contract.ERROR_UNAVAILABLE, f"no client of this router node serves {procedure}")

        options = RegisterOptions(match=entry.match, invoke=entry.invoke, details_arg="details")
        return await remote.register(on_call, uri, options=options)

    async def unregister_on_peer(handle: Any) -> None:
        if handle.active:
            await handle.unregister()

    forwarder = LinkForwarder(REGISTRATIONS, procedures.get_observation_by_id, register_on_peer, unregister_on_peer,
                              remote.is_attached)
    await _follow(local, remote, REGISTRATIONS, forwarder)


async def _follow(local: Any, remote: Any, kind: str, forwarder: LinkForwarder) -> None:
    """Reconcile on this node's meta events of ``kind``; forward everything whenever the peer (re)joins."""

    def on_meta(_session_id: Any, what: Any) -> None:
        forwarder.changed(what.get("id") if isinstance(what, dict) else what)

    for event in _META_EVENTS[kind]:
        await local.subscribe(on_meta, f"wamp.{kind}.{event}")

    def joined(_session: Any, _details: Any) -> Any:
        d = ensureDeferred(_forward_everything(local, kind, forwarder))
        d.addErrback(lambda f: log.warn("forwarding every {kind} to the rejoined peer failed: {e}", kind=kind, e=f.value))
        return d

    def left(_session: Any, _details: Any) -> None:
        forwarder.peer_left()

    remote.on("join", joined)
    remote.on("leave", left)
    if remote.is_attached():
        await _forward_everything(local, kind, forwarder)


_MARK = "_estrom_link_rules"


def install() -> None:
    """Make the local leg of every rlink started from now on follow estrom's rules (idempotent).

    Raises ImportError or AttributeError if this Crossbar has no rlinks as estrom knows them: a cluster
    node must not run Crossbar's own forwarding with a role that is not its reserved ``rlink``."""
    from crossbar.worker import rlink

    local = rlink.RLinkLocalSession
    if getattr(local._setup_event_forwarding, _MARK, False):
        return
    for name in ("_setup_event_forwarding", "_setup_invocation_forwarding"):
        getattr(local, name)  # AttributeError if Crossbar changed its shape

    def _setup_event_forwarding(self: Any, other: Any) -> Any:
        return ensureDeferred(setup_event_forwarding(self, other))

    def _setup_invocation_forwarding(self: Any, other: Any) -> Any:
        return ensureDeferred(setup_invocation_forwarding(self, other))

    for method in (_setup_event_forwarding, _setup_invocation_forwarding):
        setattr(method, _MARK, True)
    local._setup_event_forwarding = _setup_event_forwarding  # type: ignore[method-assign]
    local._setup_invocation_forwarding = _setup_invocation_forwarding  # type: ignore[method-assign]


class LinkRules(ApplicationSession):
    """The router-side component that runs :func:`install` in the router worker; it does nothing else."""

    def __init__(self, config: Any = None) -> None:
        install()
        super().__init__(config)
