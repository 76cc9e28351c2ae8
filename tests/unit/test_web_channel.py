"""Protocol-level refusals of the HTTP APIs are answered with a status and a JSON body, never a silent drop."""

from __future__ import annotations

import json
from typing import Tuple

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from estrom.web import MAX_REQUEST_LINE, JsonErrorsChannel, NotFound, json_site
from router import contract


def connected() -> Tuple[JsonErrorsChannel, StringTransport]:
    """A channel of a JSON site over an in-memory transport, its timeouts on a fake clock."""
    site = json_site(NotFound())
    site.reactor = Clock()  # type: ignore[assignment]
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    assert isinstance(channel, JsonErrorsChannel)
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport


def answer(transport: StringTransport) -> Tuple[bytes, dict, dict]:
    """The status line, the headers and the parsed JSON body written to ``transport``."""
    head, _, body = transport.value().partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(b":", 1) for line in lines)}
    assert int(headers[b"content-length"]) == len(body)
    return status, headers, json.loads(body)


def long_request_line(length: int) -> bytes:
    """A GET request line of exactly ``length`` bytes (without its CRLF)."""
    prefix, suffix = b"GET /api/v0.1/docs?q=", b" HTTP/1.1"
    return prefix + b"a" * (length - len(prefix) - len(suffix)) + suffix


def test_json_site_uses_the_json_errors_channel() -> None:
    """Every connection of a JSON site is a JsonErrorsChannel."""
    channel, _ = connected()
    assert isinstance(channel, JsonErrorsChannel)


def test_request_line_over_the_limit_is_answered_414() -> None:
    """A request line longer than 16384 bytes gets ``HTTP/1.1 414`` with a JSON body naming the error."""
    channel, transport = connected()
    channel.dataReceived(long_request_line(MAX_REQUEST_LINE + 1) + b"\r\nHost: x\r\n\r\n")
    status, headers, body = answer(transport)
    assert status.startswith(b"HTTP/1.1 414 ")
    assert headers[b"content-type"] == b"application/json"
    assert body["error"] == contract.ERROR_REQUEST_TOO_LARGE == "estrom.error.request_too_large"
    assert body["part"] == "request line"
    assert body["limit"] == MAX_REQUEST_LINE
    assert body["message"]


def test_request_line_over_the_limit_closes_the_connection() -> None:
    """After the 414 the connection is closed (connection: close), not left open."""
    channel, transport = connected()
    channel.dataReceived(long_request_line(20000) + b"\r\n")
    _, headers, _ = answer(transport)
    assert headers[b"connection"] == b"close"
    assert transport.disconnecting


def test_request_line_still_arriving_is_answered_414() -> None:
    """A request line that grows past the limit before its CRLF arrives is answered too, not dropped."""
    channel, transport = connected()
    line = long_request_line(40000)
    for start in range(0, len(line), 4096):
        if transport.disconnecting:
            break
        channel.dataReceived(line[start:start + 4096])
    status, _, body = answer(transport)
    assert status.startswith(b"HTTP/1.1 414 ")
    assert body["error"] == contract.ERROR_REQUEST_TOO_LARGE
    assert transport.disconnecting


def test_header_line_over_the_limit_is_answered_431() -> None:
    """A header line longer than the limit gets 431 naming the header line."""
    channel, transport = connected()
    channel.dataReceived(b"GET / HTTP/1.1\r\nX-Big: " + b"b" * (MAX_REQUEST_LINE + 10) + b"\r\n\r\n")
    status, _, body = answer(transport)
    assert status.startswith(b"HTTP/1.1 431 ")
    assert body["error"] == contract.ERROR_REQUEST_TOO_LARGE
    assert body["part"] == "header line"
    assert transport.disconnecting


def test_malformed_request_line_is_answered_400_in_json() -> None:
    """A request line that does not parse gets a JSON 400, not Twisted's bodiless one."""
    channel, transport = connected()
    channel.dataReceived(b"NONSENSE\r\n\r\n")
    status, _, body = answer(transport)
    assert status.startswith(b"HTTP/1.1 400 ")
    assert body["error"] == contract.ERROR_INVALID_ARGUMENT
    assert "limit" not in body
    assert transport.disconnecting


def test_an_ordinary_request_is_served() -> None:
    """A request within the limits reaches the site (here a JSON 404)."""
    channel, transport = connected()
    channel.dataReceived(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 404 ")
    assert b"estrom.error.not_found" in transport.value()


def test_headers_past_the_total_size_are_answered_400_in_json() -> None:
    """A request line within the line limit whose headers push the request past 16384 bytes gets a JSON 400."""
    channel, transport = connected()
    channel.dataReceived(long_request_line(MAX_REQUEST_LINE - 100) + b"\r\nHost: x\r\nUser-Agent: " + b"u" * 200 + b"\r\n\r\n")
    status, _, body = answer(transport)
    assert status.startswith(b"HTTP/1.1 400 ")
    assert body["error"] == contract.ERROR_INVALID_ARGUMENT
    assert transport.disconnecting
