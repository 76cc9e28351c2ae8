"""JSON answers shared by the Beater's and the Tailor's HTTP APIs."""

from __future__ import annotations

import json
from typing import Any, Dict

from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from router import contract

NOT_FOUND = "estrom.error.not_found"


def error_body(uri: str, message: str, **extra: Any) -> Dict[str, Any]:
    """The JSON body of an error answer."""
    return {"error": uri, "message": message, **{k: v for k, v in extra.items() if v is not None}}


def write_json(request: Request, status: int, body: Dict[str, Any]) -> None:
    """Finish ``request`` with a JSON body (no-op if the client already left)."""
    if request.finished or request._disconnected:  # type: ignore[attr-defined]
        return
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    request.write(json.dumps(body).encode() + b"\n")
    request.finish()


class NotFound(Resource):
    """Every path an API does not serve: a JSON 404 naming the path."""

    isLeaf = True

    def __init__(self, message: str = "no such endpoint") -> None:
        super().__init__()
        self.message = message

    def render(self, request: Request) -> bytes:
        """Answer 404 with a JSON body naming the path."""
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(error_body(NOT_FOUND, self.message, part=request.path.decode("utf-8", "replace"))).encode()


MAX_REQUEST_LINE = 16384
"""Longest request line (and header line) read: Twisted's default, now answered instead of dropped."""


class JsonErrorsChannel(HTTPChannel):
    """An HTTP channel that answers an over-long request line or header block with a JSON error.

    Twisted's own channel drops the connection (line too long) or answers a
    bodiless 400; a client deserves the status and a body saying which limit.
    """

    MAX_LENGTH = MAX_REQUEST_LINE

    def lineLengthExceeded(self, line: bytes) -> None:
        """The request line or a header line is longer than :data:`MAX_REQUEST_LINE`."""
        first = not self.requests  # no request object yet: it is the request line
        status, what = (414, "request line") if first else (431, "header line")
        self._answer_and_disconnect(status, f"the {what} is longer than {self.MAX_LENGTH} bytes (a query that long "
                                            f"belongs in a registration, e.g. over WAMP)", what)

    def _respondToBadRequestAndDisconnect(self) -> None:
        self._answer_and_disconnect(400, "malformed HTTP request, or headers larger than "
                                         f"{self.totalHeadersSize} bytes", "request")

    def _answer_and_disconnect(self, status: int, message: str, part: str) -> None:
        uri = contract.ERROR_REQUEST_TOO_LARGE if status in (414, 431) else contract.ERROR_INVALID_ARGUMENT
        body = json.dumps(error_body(uri, message, part=part, limit=self.MAX_LENGTH if status != 400 else None)).encode() + b"\n"
        reason = {400: b"Bad Request", 414: b"URI Too Long", 431: b"Request Header Fields Too Large"}[status]
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                             b"connection: close\r\n\r\n%s" % (status, reason, len(body), body))
        self.loseConnection()


def json_site(resource: Resource) -> Site:
    """A Site over ``resource`` whose protocol-level refusals are JSON too, with no tracebacks shown."""
    site = Site(resource)
    site.protocol = JsonErrorsChannel  # type: ignore[assignment]
    site.displayTracebacks = False
    return site
