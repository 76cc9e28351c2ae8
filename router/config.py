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
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

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
