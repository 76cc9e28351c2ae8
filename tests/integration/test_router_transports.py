"""How estrom's services reach the router: RawSocket or WebSocket on one port, Nagle's algorithm off."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.conftest import Estrom

# Joins the router as the Tailor's role with the given transport, prints the TCP_NODELAY
# option of its socket, leaves.
PROBE = r"""
import json, socket, sys
from twisted.internet import reactor
from router.client import service_component

url, ticket, transport = sys.argv[1:4]
component = service_component(url, "tailor", ticket, transport)

@component.on_join
def joined(session, details):
    sock = session._transport.transport.getHandle()
    sys.__stdout__.write(json.dumps({"nodelay": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)}) + "\n")
    sys.__stdout__.flush()
    reactor.stop()

reactor.callLater(20, reactor.stop)
component.start(reactor)
reactor.run()
"""


@pytest.mark.parametrize("transport", ["rawsocket", "websocket"])
def test_a_service_joins_over_either_transport_with_nagle_off(estrom: Estrom, transport: str) -> None:
    ticket = json.loads((estrom.data_dir / "secrets.json").read_text())["tailor"]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, estrom.router_url, ticket, transport], capture_output=True, text=True, timeout=60
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, done.stdout + done.stderr
    assert json.loads(lines[0]) == {"nodelay": 1}
