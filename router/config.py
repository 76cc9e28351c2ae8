"""The Crossbar configuration estrom runs: ``.crossbar/config.json`` with the chosen endpoint.

The file in the repository is the source of truth for realm, roles and
permissions.  Its one transport is Crossbar's "universal" kind: on one port it
takes WAMP over RawSocket (estrom's own services), WebSocket at ``/ws`` (every
WAMP client) and plain HTTP (a JSON page at ``/``).  Only the listening
interface, port and WebSocket path change per deployment, so they are
substituted here; the service tickets stay out of
every file and reach Crossbar through ``${ESTROM_*_TICKET}`` variables that its
static ticket authenticator reads.

Ingest tokens become WAMP-ticket principals of the ``ingest`` role the same
way: one principal per token (authid ``ingest`` for the first, ``ingest_2``,
``ingest_3`` ... for the others), each ticket a ``${ESTROM_INGEST*_TICKET}``
reference, so a token is never written to the rendered file either.

A node of a cluster (``--router-peers``, every other node: a full mesh) gets, on
top of that, what Crossbar's router-to-router links (rlinks) need
(:func:`cluster`): one rlink to each peer, a WAMP-cryptosign principal of the
``peer`` role whose authorized keys are the peers' node keys
(``--router-peer-keys``), the disclosure of publishers and callers (the links
forward in their name), and the component that makes the links forward only
what this node's own clients hold (``router/rlinks.py``).
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple
from urllib.parse import urlparse

from router import contract

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / ".crossbar" / "config.json"


def load_template(path: Path = TEMPLATE_PATH) -> Dict[str, Any]:
    """Read the Crossbar configuration shipped in ``.crossbar/``."""
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: estrom runs from a source checkout (pip install -e .)"
        )
    return json.loads(path.read_text())


def ingest_principals(tokens: Sequence[str]) -> Dict[str, str]:
    """The WAMP authid of each ingest token → the token: ``ingest``, then ``ingest_2``, ``ingest_3`` ..."""
    return {("ingest" if i == 0 else f"ingest_{i + 1}"): token for i, token in enumerate(tokens)}


def ticket_reference(authid: str) -> str:
    """The ``${ESTROM_*_TICKET}`` reference Crossbar substitutes for a principal's ticket."""
    from estrom.settings import ticket_env  # late: estrom.settings imports router.contract

    return "${" + ticket_env(authid) + "}"


def render(
    template: Dict[str, Any], host: str, port: int, ws_path: str, ingest_authids: Optional[Sequence[str]] = None,
) -> Dict[str, Any]:
    """A copy of ``template`` listening on ``host:port`` with the WebSocket at ``/<ws_path>``.

    ``ingest_authids`` (from :func:`ingest_principals`) become principals of the
    ``ingest`` role on both listeners, their tickets read from the environment.
    """
    config = copy.deepcopy(template)
    transport = config["workers"][0]["transports"][0]
    transport["endpoint"] = {"type": "tcp", "interface": host, "port": port}
    paths = transport["websocket"]
    ws = paths.pop("ws")
    paths[ws_path] = ws
    for listener in (paths[ws_path], transport["rawsocket"]):
        principals = listener["auth"]["ticket"]["principals"]
        for authid in ingest_authids or ():
            principals[authid] = {"ticket": ticket_reference(authid), "role": contract.ROLE_INGEST}
    return config


# --- clusters: rlinks to peer nodes -------------------------------------------------------------

PEER_PRINCIPAL = "peer"
"""The cryptosign authid of every peer's link session (a peer is known by its key, not by a name)."""

PUBLIC_KEY = re.compile(r"^[0-9a-f]{64}$")

LINK_SCHEMES = {"ws": "websocket", "rs": "rawsocket", "tcp": "rawsocket"}


class ClusterSettingError(ValueError):
    """A ``--router-peers`` or ``--router-peer-keys`` value that cannot be used; the message says why."""


@dataclass(frozen=True)
class Peer:
    """Another router node of the cluster, as one ``--router-peers`` URL names it."""

    url: str
    host: str
    port: int
    transport: str  # "rawsocket" or "websocket"

    @property
    def link_id(self) -> str:
        """The rlink's id in Crossbar's logs and management API."""
        return "peer-" + re.sub(r"[^A-Za-z0-9_]", "_", f"{self.host}_{self.port}")


def parse_peers(text: str) -> List[Peer]:
    """The peers of ``--router-peers``: comma-separated ``ws://host:port/path`` (a link over WebSocket, the
    peer's own ``--router-url``) or ``rs://host:port`` (RawSocket with CBOR: less work per event).

    Raises :class:`ClusterSettingError` for a URL that is not one of these or names a peer twice.
    """
    peers: List[Peer] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        parsed = urlparse(item)
        transport = LINK_SCHEMES.get(parsed.scheme)
        try:
            port = parsed.port
        except ValueError:
            port = None
        if transport is None or not parsed.hostname or port is None:
            raise ClusterSettingError(f"{item!r} is not ws://HOST:PORT/PATH or rs://HOST:PORT")
        if transport == "rawsocket" and parsed.path not in ("", "/"):
            raise ClusterSettingError(f"{item!r}: a RawSocket URL has no path (rs://HOST:PORT)")
        peer = Peer(url=item, host=parsed.hostname, port=port, transport=transport)
        if any((p.host, p.port) == (peer.host, peer.port) for p in peers):
            raise ClusterSettingError(f"{peer.host}:{peer.port} is named twice")
        peers.append(peer)
    return peers


def public_key_of(text: str) -> Optional[str]:
    """The Ed25519 public key (64 hex digits) that ``text`` is, or that a Crossbar ``key.pub``/``key.priv``
    file's text names on its ``public-key-ed25519:`` line; None if neither."""
    candidate = text.strip().lower()
    if candidate.startswith("0x"):
        candidate = candidate[2:]
    if PUBLIC_KEY.match(candidate):
        return candidate
    for line in text.splitlines():
        tag, _, value = line.partition(":")
        if tag.strip().lower() == "public-key-ed25519" and PUBLIC_KEY.match(value.strip().lower()):
            return value.strip().lower()
    return None


def parse_peer_keys(text: str, read: Any = None) -> List[str]:
    """The public keys of ``--router-peer-keys``: comma-separated, each 64 hex digits or a file
    (a peer's ``key.pub`` as ``estrom router-key`` prints it, or one key per line, ``#`` comments).

    ``read(path) -> str`` reads a file (tests pass their own).  Raises :class:`ClusterSettingError`.
    """
    read = read or (lambda path: Path(path).expanduser().read_text())
    keys: List[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        found = public_key_of(item)
        if found is not None:
            keys.append(found)
            continue
        try:
            content = read(item)
        except OSError as e:
            raise ClusterSettingError(f"{item!r} is neither a public key (64 hex digits) nor a readable file: "
                                      f"{e.strerror or e}") from None
        whole = public_key_of(content)
        lines = [line.split("#", 1)[0].strip() for line in content.splitlines()]
        listed = [public_key_of(line) for line in lines if line]
        if whole is not None and not all(listed):  # a Crossbar key file: its one public key
            keys.append(whole)
        elif listed and all(listed):
            keys.extend(k for k in listed if k)
        else:
            raise ClusterSettingError(f"{item}: no public key in it (a key.pub file, or 64 hex digits a line)")
    return sorted(set(keys), key=keys.index)


def rlink(peer: Peer, realm: str = contract.REALM) -> Dict[str, Any]:
    """The rlink to ``peer``: it forwards this node's subscriptions and registrations to the peer, and
    the peer's events and calls back; the peer's own link does the other direction.

    ``forward_remote_*`` stay off: with both nodes' links forwarding remote events too, every event
    that crosses arrives twice (``shared/notes/crossbar-rlinks.md``), and ``router/rlinks.py``
    replaces only the local leg's forwarding.
    """
    endpoint = {"type": "tcp", "host": peer.host, "port": peer.port}
    if peer.transport == "rawsocket":
        transport: Dict[str, Any] = {"type": "rawsocket", "endpoint": endpoint, "serializer": "cbor",
                                     "url": f"rs://{peer.host}:{peer.port}"}
    else:
        transport = {"type": "websocket", "endpoint": endpoint, "serializers": ["cbor"], "url": peer.url}
    return {
        "id": peer.link_id,
        "realm": realm,
        "forward_local_events": True,
        "forward_remote_events": False,
        "forward_local_invocations": True,
        "forward_remote_invocations": False,
        "transport": transport,
    }


def disclose_for_links(config: Dict[str, Any]) -> None:
    """Disclose the publisher of every event and the caller of every ``estrom.*`` call, in place.

    An rlink re-publishes an event and re-issues a call on the other node in the name of its
    original publisher or caller (``forward_for``); Crossbar's own forwarding drops an event whose
    publisher is withheld (an AssertionError in its rlink) and fails such a call, estrom's forwards it
    in the link's name.  Meta procedures (``wamp.*``) never cross.
    """
    for realm in config["workers"][0]["realms"]:
        for role in realm["roles"]:
            for permission in role["permissions"]:
                allow, disclose = permission["allow"], permission.setdefault("disclose", {})
                if allow.get("publish"):
                    disclose["publisher"] = True
                if allow.get("call") and not permission["uri"].startswith("wamp."):
                    disclose["caller"] = True


def cluster(config: Dict[str, Any], peers: Sequence[Peer], peer_keys: Sequence[str]) -> Dict[str, Any]:
    """``config`` (rendered) as one node of a cluster with ``peers``, which link in with ``peer_keys``."""
    if not peers and not peer_keys:
        return config
    if not peer_keys:
        raise ClusterSettingError("peers are linked in with their node keys: name them with --router-peer-keys")
    config = copy.deepcopy(config)
    realm = config["workers"][0]["realms"][0]
    realm["rlinks"] = [rlink(peer, realm["name"]) for peer in peers]
    disclose_for_links(config)
    principal = {PEER_PRINCIPAL: {"realm": realm["name"], "role": contract.ROLE_PEER, "authorized_keys": list(peer_keys)}}
    transport = config["workers"][0]["transports"][0]
    listeners = [transport["rawsocket"]] + [p for p in transport["websocket"].values()]
    for listener in listeners:
        listener["auth"]["cryptosign"] = {"type": "static", "principals": copy.deepcopy(principal)}
    # Started before any rlink (Crossbar starts a router's components before its links): they follow its rules.
    config["workers"][0].setdefault("components", []).append(dict(LINK_RULES_COMPONENT))
    return config


LINK_RULES_COMPONENT = {"type": "class", "classname": "router.rlinks.LinkRules", "realm": contract.REALM,
                        "role": contract.ROLE_ANONYMOUS}
"""Makes the links forward what this node's clients hold, and only that (``router/rlinks.py``)."""

NODE_KEY_FILES = ("key.priv", "key.pub")


def node_public_key(key_dir: Path) -> str:
    """This node's public key (hex), from ``key_dir``, where Crossbar's own helper creates the pair on first use."""
    from crossbar.common.key import _maybe_generate_node_key  # late: a large import, only routers need it

    key_dir.mkdir(parents=True, exist_ok=True)
    try:
        _maybe_generate_node_key(str(key_dir))
    except FileExistsError:  # another process (a router starting from this directory) is writing the pair now
        time.sleep(0.5)
        _maybe_generate_node_key(str(key_dir))
    found = public_key_of((key_dir / "key.pub").read_text())
    assert found is not None, f"{key_dir / 'key.pub'} names no public key"
    return found


def install_node_key(key_dir: Path, cbdir: Path) -> str:
    """Make ``key_dir``'s node key (created there if missing) the one Crossbar runs with from ``cbdir``;
    return its public key.  Crossbar reads it from its node directory only, so it is copied there."""
    public = node_public_key(key_dir)
    if key_dir.resolve() == cbdir.resolve():
        return public
    cbdir.mkdir(parents=True, exist_ok=True)
    for name in NODE_KEY_FILES:
        source, target = key_dir / name, cbdir / name
        data = source.read_bytes()
        if target.exists() and target.read_bytes() == data:
            continue
        tmp = target.with_name(name + ".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if name == "key.priv" else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        tmp.replace(target)
    return public


def role_permissions(config: Dict[str, Any]) -> Iterator[Tuple[str, str, str, Dict[str, bool]]]:
    """Yield ``(role, uri, match, allow)`` for every permission in ``config`` (for contract checks)."""
    for realm in config["workers"][0]["realms"]:
        for role in realm["roles"]:
            for permission in role["permissions"]:
                yield role["name"], permission["uri"], permission["match"], permission["allow"]


def write(config: Dict[str, Any], cbdir: Path) -> Path:
    """Write ``config`` atomically into the Crossbar node directory ``cbdir``; return its path."""
    cbdir.mkdir(parents=True, exist_ok=True)
    path = cbdir / "config.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config, indent=2))
    tmp.replace(path)
    return path
