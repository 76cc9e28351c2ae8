"""Protocol-level refusals of the HTTP APIs are answered with a status and a JSON body, never a silent drop."""

from __future__ import annotations

import json
from typing import Optional, Tuple

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web.resource import Resource

from estrom.web import MAX_REQUEST_LINE, JsonErrorsChannel, NotFound, json_site
from router import contract


def connected(resource: Optional[Resource] = None) -> Tuple[JsonErrorsChannel, StringTransport]:
    """A channel of a JSON site (over ``resource``, else a JSON 404) on an in-memory transport, its timeouts on a fake clock."""
    site = json_site(resource if resource is not None else NotFound())
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
    if headers.get(b"transfer-encoding") == b"chunked":
        body = unchunk(body)
    else:
        assert int(headers[b"content-length"]) == len(body)
    return status, headers, json.loads(body)


def unchunk(data: bytes) -> bytes:
    """The body of a complete chunked answer."""
    body = b""
    while True:
        size, _, data = data.partition(b"\r\n")
        if int(size, 16) == 0:
            return body
        body, data = body + data[:int(size, 16)], data[int(size, 16) + 2:]


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


# --- what a request carries that is not text: answered, never dropped or left hanging --------------------------------

class Echo(Resource):
    """Answers a POST with the size of its body and the names of its arguments, as JSON."""

    isLeaf = True

    def render_POST(self, request) -> bytes:  # type: ignore[no-untyped-def]
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({"got": len(request.content.read()), "args": sorted(k.decode() for k in request.args)}).encode()


class Raises(Resource):
    """A resource with a bug: rendering raises."""

    isLeaf = True

    def render_GET(self, request) -> bytes:  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug")


def chunked_post(content_type: bytes) -> bytes:
    return (b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Type: " + content_type +
            b"\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{\"a\":1}\r\n0\r\n\r\n")


def test_a_chunked_post_with_a_non_utf8_content_type_is_answered() -> None:
    """``Content-Type: \\xba`` on a chunked POST reaches the resource: the connection is not closed unanswered."""
    channel, transport = connected(Echo())
    channel.dataReceived(chunked_post(b"\xba"))
    status, _, body = answer(transport)
    assert status.startswith(b"HTTP/1.1 200 ")
    assert body["got"] == 7
    assert not transport.disconnecting


def test_a_content_type_twisted_cannot_parse_is_ignored() -> None:
    """A Content-Type on which Twisted's form parsing raises (IndexError, ValueError) is not parsed at all."""
    for content_type in (b";\xf3\xfc\xbe\xb6*", b"p\xeb\x94\x0b\xd53"):
        channel, transport = connected(Echo())
        channel.dataReceived(chunked_post(content_type))
        status, _, body = answer(transport)
        assert status.startswith(b"HTTP/1.1 200 "), content_type
        assert body["got"] == 7


def test_a_form_body_is_not_parsed_into_arguments() -> None:
    """Neither API reads form bodies: a form-encoded POST's body stays the body, its fields are not arguments."""
    channel, transport = connected(Echo())
    channel.dataReceived(b"POST /x?a=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                         b"Content-Length: 3\r\n\r\nb=2")
    _, _, body = answer(transport)
    assert body == {"got": 3, "args": ["a"]}


def test_a_resource_that_raises_gets_a_json_500_not_an_html_page() -> None:
    """A bug in a resource is answered 500 with a JSON body (Twisted's is an HTML "Processing Failed")."""
    channel, transport = connected(Raises())
    channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = answer(transport)
    assert status.startswith(b"HTTP/1.1 500 ")
    assert headers[b"content-type"] == b"application/json"
    assert body["error"] == contract.ERROR_UNAVAILABLE
    assert "<html" not in transport.value().decode("latin-1")


def test_the_access_log_takes_undecodable_uris_and_headers(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A URI and a User-Agent that are not UTF-8 still make one access line (with replacement characters)."""
    from estrom import web

    events: list = []
    monkeypatch.setattr(web.access_log, "observer", events.append)
    channel, transport = connected()
    channel.dataReceived(b"GET /%ff\xa6 HTTP/1.1\r\nHost: x\r\nUser-Agent: \xba\xff\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 404 ")
    (event,) = events
    assert event["status"] == 404
    assert event["uri"] == "/%ff\ufffd"
    assert event["agent"] == "\ufffd\ufffd"


def tailor_site_channel(session=lambda: None) -> Tuple[JsonErrorsChannel, StringTransport]:  # type: ignore[no-untyped-def]
    """A connection to a Tailor's HTTP API with no router (``session`` stands for the router session)."""
    from estrom.settings import Settings
    from tailor import http as tailor_http
    from tailor.subscriptions import SubscriptionHub

    return connected(tailor_http.Root(SubscriptionHub(), session, Clock(), Settings()))


def test_a_non_utf8_last_event_id_is_answered_400_naming_the_header() -> None:
    """``Last-Event-ID: \\xa6`` gets a JSON 400 with ``part`` the header, not a tail that never answers."""
    channel, transport = tailor_site_channel()
    channel.dataReceived(b"GET /api/v0.1/docs?i=x&q=foo HTTP/1.1\r\nHost: x\r\nLast-Event-ID: \xa6\r\n\r\n")
    status, _, body = answer(transport)
    assert status.startswith(b"HTTP/1.1 400 ")
    assert body["error"] == contract.ERROR_INVALID_ARGUMENT
    assert body["part"] == "Last-Event-ID"


def test_a_non_utf8_accept_is_answered_400_naming_the_header() -> None:
    """A non-UTF-8 ``Accept`` gets a JSON 400 naming ``Accept``."""
    channel, transport = tailor_site_channel()
    channel.dataReceived(b"GET /api/v0.1/docs?i=x&q=foo HTTP/1.1\r\nHost: x\r\nAccept: text/\xff\r\n\r\n")
    status, _, body = answer(transport)
    assert status.startswith(b"HTTP/1.1 400 ")
    assert body["part"] == "Accept"


def test_a_percent_encoded_argument_that_is_not_utf8_is_answered_400_naming_it() -> None:
    """``q=%ff`` would be a different query once "replaced": it gets a JSON 400 naming ``q``."""
    channel, transport = tailor_site_channel()
    channel.dataReceived(b"GET /api/v0.1/docs?i=x&q=fo%ffo HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body = answer(transport)
    assert status.startswith(b"HTTP/1.1 400 ")
    assert body["error"] == contract.ERROR_INVALID_ARGUMENT
    assert body["part"] == "q"


def test_a_tail_that_fails_unexpectedly_gets_a_json_500() -> None:
    """A bug while serving a tail answers a JSON 500 (once nothing was written) instead of leaving it hanging."""
    def broken_session() -> None:
        raise RuntimeError("a bug")

    channel, transport = tailor_site_channel(broken_session)
    channel.dataReceived(b"GET /api/v0.1/docs?i=x&q=foo HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = answer(transport)
    assert status.startswith(b"HTTP/1.1 500 ")
    assert headers[b"content-type"] == b"application/json"
    assert body["error"] == contract.ERROR_UNAVAILABLE


class Report:
    """A Beater stand-in whose ingest answers a report that cannot be written as JSON (a bug)."""

    def __init__(self) -> None:
        from beater.limits import Limits

        self.limits = Limits()

    async def ingest(self, index: str, parsed: object) -> dict:
        return {"accepted": 1, "errors": [], "oops": object()}


def beater_site_channel(beater: object = None) -> Tuple[JsonErrorsChannel, StringTransport]:
    """A connection to a Beater's HTTP API whose router is up."""
    from beater import http as beater_http

    return connected(beater_http.Root(beater, lambda: True))  # type: ignore[arg-type]


def test_an_index_that_is_not_utf8_is_answered_400_naming_it() -> None:
    """``POST /api/v0.1/beat/%ff`` gets a JSON 400 ``invalid_index``, not an index with a replacement character."""
    channel, transport = beater_site_channel()
    channel.dataReceived(b"POST /api/v0.1/beat/a%ff HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
    status, _, body = answer(transport)
    assert status.startswith(b"HTTP/1.1 400 ")
    assert body["error"] == contract.ERROR_INVALID_INDEX
    assert body["part"] == "a\ufffd"


def test_an_ingest_that_fails_unexpectedly_gets_a_json_500() -> None:
    """A bug after the documents were ingested (the answer cannot be written) still answers, a JSON 500."""
    channel, transport = beater_site_channel(Report())
    channel.dataReceived(b"POST /api/v0.1/beat/idx HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n{\"a\":1}")
    status, _, body = answer(transport)
    assert status.startswith(b"HTTP/1.1 500 ")
    assert body["error"] == contract.ERROR_UNAVAILABLE
