"""The Crossbar configuration estrom runs: ``.crossbar/config.json`` with the chosen endpoint.

The file in the repository is the source of truth for realm, roles and
permissions.  Its one transport is Crossbar's "universal" kind: on one port it
takes WAMP over RawSocket (estrom's own services), WebSocket at ``/ws`` (every
WAMP client) and plain HTTP (a JSON page at ``/``).  Only the listening
interface, port and WebSocket path change per deployment, so they are
substituted here; the service tickets stay out of
every file and reach Crossbar through ``${ESTROM_*_TICKET}`` variables that its
static ticket authenticator reads.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / ".crossbar" / "config.json"


def load_template(path: Path = TEMPLATE_PATH) -> Dict[str, Any]:
    """Read the Crossbar configuration shipped in ``.crossbar/``."""
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: estrom runs from a source checkout (pip install -e .)"
        )
    return json.loads(path.read_text())


def render(template: Dict[str, Any], host: str, port: int, ws_path: str) -> Dict[str, Any]:
    """A copy of ``template`` listening on ``host:port`` with the WebSocket at ``/<ws_path>``."""
    config = copy.deepcopy(template)
    transport = config["workers"][0]["transports"][0]
    transport["endpoint"] = {"type": "tcp", "interface": host, "port": port}
    paths = transport["websocket"]
    ws = paths.pop("ws")
    paths[ws_path] = ws
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
