"""What a cluster node's links forward (``router/rlinks.py``): what its own clients hold, while they hold it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from autobahn.wamp.exception import ApplicationError
from twisted.internet.defer import Deferred, succeed

from router import contract, rlinks


@dataclass
class Session:
    _authrole: str


@dataclass
class Observation:
    """A topic or procedure of the router, as Crossbar's observation map holds it."""

    uri: str
    match: str = "exact"
    observers: List[Session] = field(default_factory=list)


CLIENT, PEER = Session(contract.ROLE_TAILOR), Session(contract.ROLE_PEER)


class Peer:
    """The link's remote leg: stand-ins made and removed, answered now or when the test says."""

    def __init__(self) -> None:
        self.attached = True
        self.stand_ins: List[str] = []
        self.pending: Optional[Deferred[Any]] = None
        self.hold = False
        self.refuse: Optional[str] = None
        self.calls: List[str] = []

    def forward(self, entry: rlinks.Forward) -> "Deferred[Any]":
        self.calls.append("forward " + entry.uri)
        if self.refuse:
            raise ApplicationError(self.refuse)
        if self.hold:
            self.pending = Deferred()
            return self.pending.addCallback(lambda _: self._made(entry.uri))
        return succeed(self._made(entry.uri))

    def _made(self, uri: str) -> str:
        self.stand_ins.append(uri)
        return uri

    def withdraw(self, handle: str) -> "Deferred[None]":
        self.calls.append("withdraw " + handle)
        self.stand_ins.remove(handle)
        return succeed(None)


def forwarder(topics: Dict[int, Observation], peer: Peer, kind: str = rlinks.SUBSCRIPTIONS) -> rlinks.LinkForwarder:
    return rlinks.LinkForwarder(kind, topics.get, peer.forward, peer.withdraw, lambda: peer.attached)


def test_a_topic_a_client_of_this_node_subscribes_to_is_forwarded_until_its_last_client_leaves() -> None:
    topics = {7: Observation("docs-for-abc", observers=[CLIENT])}
    peer = Peer()
    links = forwarder(topics, peer)
    links.changed(7)
    assert peer.stand_ins == ["docs-for-abc"]
    topics[7].observers.append(Session(contract.ROLE_ANONYMOUS))
    links.changed(7)
    assert peer.calls == ["forward docs-for-abc"]  # one stand-in per topic
    topics[7].observers = [PEER]  # the clients left; the peer's own stand-in for its clients stays
    links.changed(7)
    assert peer.stand_ins == []


def test_what_only_the_peers_links_hold_is_never_forwarded_back() -> None:
    """Mirroring a peer's stand-in back made each node's stand-in hold the other's up forever."""
    topics = {7: Observation("docs-for-abc", observers=[PEER])}
    peer = Peer()
    forwarder(topics, peer).changed(7)
    assert peer.calls == []


def test_the_meta_api_is_never_forwarded() -> None:
    topics = {1: Observation("wamp.subscription.on_create", observers=[CLIENT])}
    peer = Peer()
    forwarder(topics, peer).changed(1)
    assert peer.calls == []


def test_a_topic_deleted_while_its_stand_in_was_being_made_is_withdrawn_at_once() -> None:
    topics = {7: Observation("docs-for-abc", observers=[CLIENT])}
    peer = Peer()
    peer.hold = True
    links = forwarder(topics, peer)
    links.changed(7)
    del topics[7]  # the tail left before the peer answered
    links.changed(7)
    assert peer.pending is not None
    peer.pending.callback(None)
    assert peer.stand_ins == [] and peer.calls == ["forward docs-for-abc", "withdraw docs-for-abc"]
    assert links.known() == set()


def test_after_the_peer_left_and_came_back_everything_held_is_forwarded_again() -> None:
    topics = {7: Observation("docs-for-abc", observers=[CLIENT])}
    peer = Peer()
    links = forwarder(topics, peer)
    peer.attached = False
    links.changed(7)
    assert peer.calls == []  # nothing to forward to
    peer.attached = True
    links.changed(7)
    assert peer.stand_ins == ["docs-for-abc"]
    peer.stand_ins.clear()  # the peer's stand-ins went with its session
    links.peer_left()
    links.changed(7)
    assert peer.stand_ins == ["docs-for-abc"]


def test_a_procedure_the_peer_refuses_is_not_retried_in_a_loop_of_errors() -> None:
    procedures = {3: Observation("estrom.replay.b1", observers=[Session(contract.ROLE_BEATER)])}
    peer = Peer()
    peer.refuse = "wamp.error.procedure_already_exists"
    links = forwarder(procedures, peer, rlinks.REGISTRATIONS)
    links.changed(3)
    assert peer.stand_ins == [] and links.entries[3].refused == "wamp.error.procedure_already_exists"
    peer.refuse = None
    links.changed(3)  # the next change tries again
    assert peer.stand_ins == ["estrom.replay.b1"]


def test_a_forwarded_event_or_call_names_its_origin_or_else_the_link() -> None:
    link = {"session": 1, "authid": "peer-a", "authrole": "trusted"}
    assert rlinks.origin(42, "beater", "beater", link) == {"session": 42, "authid": "beater", "authrole": "beater"}
    assert rlinks.origin(None, None, None, link) == link


def test_install_replaces_the_local_legs_forwarding_once() -> None:
    from crossbar.worker import rlink

    rlinks.install()
    first = rlink.RLinkLocalSession._setup_event_forwarding
    rlinks.install()
    assert rlink.RLinkLocalSession._setup_event_forwarding is first
    assert getattr(first, rlinks._MARK) and getattr(rlink.RLinkLocalSession._setup_invocation_forwarding, rlinks._MARK)
    # The remote leg (forward_remote_* off in estrom's links) keeps Crossbar's.
    assert not getattr(rlink.RLinkRemoteSession._setup_event_forwarding, rlinks._MARK, False)
