"""TCP_NODELAY on the router's connections: loaded into Crossbar's router worker by ``.crossbar/config.json``.

autobahn's WebSocket protocol asks for TCP_NODELAY in ``connectionMade`` before
it has copied the option from its factory; the AttributeError is swallowed and
the option is never set (its RawSocket protocol never asks).  With Nagle's
algorithm on, an event written while the subscriber's kernel still delays the
ACK of the previous one waits for that ACK: on this machine one event in ten
reached its subscriber 16-20 ms late.  Crossbar cannot be told otherwise, so
the router worker starts :class:`NoDelay` (a component that does nothing else)
and every connection accepted after that sends each message at once.  estrom's
services set the option on their own connections (``router.client``).
"""

from __future__ import annotations

from typing import Any, Callable

from autobahn.twisted import rawsocket, websocket
from autobahn.twisted.wamp import ApplicationSession

_MARK = "_estrom_no_delay"


def set_no_delay(transport: Any) -> bool:
    """Set TCP_NODELAY on ``transport`` if it is a TCP connection; True if it was set."""
    setter = getattr(transport, "setTcpNoDelay", None)
    if setter is None:
        return False
    try:
        setter(True)
    except OSError:
        return False  # a Unix socket, or already closed
    return True


def _with_no_delay(connection_made: Callable[[Any], None]) -> Callable[[Any], None]:
    def connectionMade(self: Any) -> None:
        set_no_delay(self.transport)
        connection_made(self)

    setattr(connectionMade, _MARK, True)
    return connectionMade


def install() -> None:
    """Make every autobahn WebSocket and RawSocket connection made from now on set TCP_NODELAY (idempotent)."""
    for cls in (websocket.WebSocketAdapterProtocol, rawsocket.WampRawSocketProtocol):
        if not getattr(cls.connectionMade, _MARK, False):
            cls.connectionMade = _with_no_delay(cls.connectionMade)  # type: ignore[method-assign]


class NoDelay(ApplicationSession):
    """The router-side component that runs :func:`install` in the router worker; it does nothing else."""

    def __init__(self, config: Any = None) -> None:
        install()
        super().__init__(config)
