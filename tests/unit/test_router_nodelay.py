"""The TCP_NODELAY fix the router worker and the services apply to autobahn's connections."""

from typing import List

from autobahn.twisted import rawsocket, websocket

from router.nodelay import install, set_no_delay


class Transport:
    """Records what was asked of it, as a Twisted TCP transport would take it."""

    def __init__(self, fails: bool = False) -> None:
        self.calls: List[bool] = []
        self.fails = fails

    def setTcpNoDelay(self, enabled: bool) -> None:
        if self.fails:
            raise OSError("not a TCP socket")
        self.calls.append(enabled)


def test_no_delay_is_set_on_a_tcp_transport() -> None:
    transport = Transport()
    assert set_no_delay(transport) is True and transport.calls == [True]


def test_transports_without_the_option_are_left_alone() -> None:
    assert set_no_delay(object()) is False and set_no_delay(None) is False and set_no_delay(Transport(fails=True)) is False


def test_install_wraps_websocket_and_rawsocket_connections_once() -> None:
    install()
    wrapped = (websocket.WebSocketAdapterProtocol.connectionMade, rawsocket.WampRawSocketProtocol.connectionMade)
    install()
    assert (websocket.WebSocketAdapterProtocol.connectionMade, rawsocket.WampRawSocketProtocol.connectionMade) == wrapped
    assert all(getattr(method, "_estrom_no_delay", False) for method in wrapped)
