"""JSON answers shared by the Beater's and the Tailor's HTTP APIs."""

from __future__ import annotations

import json
import time
from typing import Any, Dict, FrozenSet, Optional, Sequence, cast

from twisted.internet.interfaces import ITransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.reflect import prefixedMethodNames
from twisted.web.error import UnsupportedMethod
from twisted.web import http
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
    if request.finished or request._disconnected:
        return
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    request.write(json.dumps(body).encode() + b"\n")
    request.finish()


class BadHeader(ValueError):
    """A request header the API reads is not valid UTF-8; ``part`` names the header."""

    def __init__(self, part: str) -> None:
        super().__init__(f"the {part} header is not valid UTF-8")
        self.message = str(self)
        self.part = part


def header_text(request: Request, name: str) -> Optional[str]:
    """The last ``name`` header of ``request`` as text (None if absent); :class:`BadHeader` if it is not UTF-8.

    Twisted's ``getHeader`` with a ``str`` name decodes for itself and raises ``UnicodeDecodeError``
    out of whatever handler asked: the raw bytes are read and decoded here so that the caller can answer 400.
    """
    values = request.requestHeaders.getRawHeaders(name.lower().encode("ascii"))
    if not values:
        return None
    try:
        return values[-1].decode("utf-8")
    except UnicodeDecodeError:
        raise BadHeader(name) from None


log = Logger()


def internal_error(request: Request, what: str) -> None:
    """From an ``except`` block: log the exception once and end ``request`` rather than leave it hanging.

    A JSON 500 if nothing was written yet; otherwise (a stream already under way) the connection is
    closed, since no status can be sent any more and a finished-looking answer would hide the loss.
    """
    log.failure("{what} failed unexpectedly", what=what)
    if request.finished or request._disconnected:
        return
    if request.startedWriting:
        request.loseConnection()
        return
    write_json(request, 500, error_body(contract.ERROR_UNAVAILABLE, f"{what} failed unexpectedly (logged); retry, "
                                                                   "and report it if it lasts"))


def refuse_method(request: Request, allowed: Sequence[bytes], hint: Optional[str] = None) -> bytes:
    """Set up a 405 for ``request`` (status, ``Allow``, content type) and return its JSON body.

    ``allowed`` are the methods the endpoint serves.  HEAD goes with GET and only with it (Twisted's
    ``Resource`` lists HEAD everywhere, but answers it from GET).
    """
    methods = sorted({m for m in allowed if m != b"HEAD"} | ({b"HEAD"} if b"GET" in allowed else set()))
    names = [m.decode("latin-1") for m in methods]
    method = request.method.decode("latin-1")
    message = hint or f"{method} is not served here; use {' or '.join(names)}"
    if method not in names and method.upper() in names:
        message += " (methods are case-sensitive)"
    request.setResponseCode(405)
    request.setHeader(b"allow", b", ".join(methods))
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(error_body(contract.ERROR_METHOD_NOT_ALLOWED, message, part="method", method=method,
                                 allowed=names)).encode() + b"\n"


def _served_methods(resource: Resource) -> Sequence[bytes]:
    listed = getattr(resource, "allowedMethods", None)
    return listed if listed is not None else [name.encode("ascii") for name in prefixedMethodNames(type(resource), "render_")]


class _MethodsInJson(Resource):
    """Renders ``inner``, answering a method it does not serve with a JSON 405 instead of Twisted's HTML page.

    An endpoint may say how to use it right with a ``method_hint`` attribute (the 405's message).
    """

    isLeaf = True

    def __init__(self, inner: Resource) -> None:
        super().__init__()
        self.inner = inner

    def render(self, request: Request) -> Any:
        if request.method == b"HEAD" and type(self.inner).render is Resource.render and not hasattr(self.inner, "render_GET"):
            # Resource.render_HEAD would call the missing render_GET: an AttributeError, a 500
            return refuse_method(request, _served_methods(self.inner), getattr(self.inner, "method_hint", None))
        try:
            return self.inner.render(request)
        except UnsupportedMethod as e:
            if request.method == b"HEAD" and b"GET" in e.allowedMethods:
                raise  # Twisted's own render answers HEAD from GET without a body
            return refuse_method(request, e.allowedMethods, getattr(self.inner, "method_hint", None))


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
        # The transport is set before any line arrives; ITransport.write is a zope Interface method: mypy sees no self.
        cast(ITransport, self.transport).write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"  # type: ignore[call-arg, misc]
                             b"connection: close\r\n\r\n%s" % (status, reason, len(body), body))
        self.loseConnection()


ACCESS_LOG_MODES = ("requests", "all", "off")
"""``--access-log``: every request but health checks and scrapes (the default), every request, none."""

QUIET_PATHS: FrozenSet[bytes] = frozenset({b"/api/v0.1/health", b"/metrics"})
"""Paths polled every few seconds by supervisors and Prometheus: no access line by default."""

access_log = Logger(namespace="estrom.access")


class TimedRequest(Request):
    """A request that knows when it began and is logged also when its client leaves first.

    Twisted writes an access line only from ``finish()``: a tail the client ends (the usual end of
    a ``curl``) would leave none, nor would its duration or the bytes it got be known.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Neither API reads form bodies, and Twisted parsing the Content-Type of a POST for them raises
        # on some bytes (ValueError, IndexError) out of the channel, which then drops the connection unanswered.
        kwargs.setdefault("parsePOSTFormSubmission", False)
        super().__init__(*args, **kwargs)
        self.started_at = time.monotonic()

    def process(self) -> None:
        """Serve the request; ``<method> *`` (other than OPTIONS) gets a JSON 405 instead of an empty one."""
        if self.path == b"*" and self.method != b"OPTIONS":
            self.site = self.channel.site  # type: ignore[attr-defined]  # Site.buildProtocol sets it; HTTPChannel does not declare it
            body = refuse_method(self, [b"OPTIONS"], "only OPTIONS applies to the server as a whole (*)")
            self.setHeader(b"content-length", b"%d" % len(body))
            self.write(body)
            self.finish()
            return
        super().process()

    def render(self, resrc: Resource) -> None:
        """Render ``resrc``; a method it does not serve gets a JSON 405 with ``Allow``, not Twisted's HTML 405/501."""
        super().render(_MethodsInJson(resrc))

    def processingFailed(self, reason: Failure) -> Failure:
        """A resource raised while rendering: log it once and answer a JSON 500, never Twisted's HTML page."""
        log.failure("{method} {uri} failed", failure=reason, method=self.method.decode("latin-1"),
                    uri=self.uri.decode("utf-8", "replace"))
        if not (self.finished or self._disconnected):
            if self.startedWriting:
                self.loseConnection()
            else:
                write_json(self, 500, error_body(contract.ERROR_UNAVAILABLE, "the request failed unexpectedly (logged)"))
        return reason

    def connectionLost(self, reason: Any) -> None:
        """Log the request (``left``: the client went away before the answer was complete)."""
        site = getattr(self, "site", None)
        if not self.finished and isinstance(site, JsonSite):
            site.log_request(self, left=True)
        super().connectionLost(reason)


class JsonSite(Site):
    """A Site whose access lines are structured log events, without the health checks and scrapes."""

    requestFactory = TimedRequest
    noisy = False  # no "Starting factory" line for each listening port

    def __init__(self, resource: Resource, access: str = "requests") -> None:
        super().__init__(resource)
        if access not in ACCESS_LOG_MODES:
            raise ValueError(f"access log mode must be one of {', '.join(ACCESS_LOG_MODES)}, not {access!r}")
        self.access = access

    def logPrefix(self) -> str:
        """What Twisted's "... starting on <port>" line calls this site."""
        return "HTTP API"

    def log(self, request: http.Request) -> None:
        """Twisted's hook at ``finish()``: one access line, unless the mode leaves this request out."""
        self.log_request(request, left=False)

    def log_request(self, request: http.Request, left: bool) -> None:
        """One ``estrom.access`` event: client, request line, status, body bytes sent, seconds, user agent."""
        if self.access == "off" or (self.access == "requests" and request.path in QUIET_PATHS):
            return
        started: Optional[float] = getattr(request, "started_at", None)
        client = request.getClientAddress()
        access_log.info(
            '{client} "{method} {uri} {protocol}" {status} {bytes} bytes {seconds:.3f} s "{agent}"{_left_note}',
            client=getattr(client, "host", None) or str(client),
            method=request.method.decode("ascii", "replace"),
            uri=request.uri.decode("utf-8", "replace"),
            protocol=(request.clientproto or b"-").decode("ascii", "replace"),
            status=request.code,
            bytes=request.sentLength,
            seconds=time.monotonic() - started if started is not None else 0.0,
            agent=(request.getHeader(b"user-agent") or b"-").decode("utf-8", "replace"),
            left=left,
            _left_note=" (client left)" if left else "",
        )


def json_site(resource: Resource, access: str = "requests") -> Site:
    """A Site over ``resource`` whose protocol-level refusals are JSON too, with no tracebacks shown.

    ``access`` is the ``--access-log`` mode (:data:`ACCESS_LOG_MODES`).
    """
    site = JsonSite(resource, access)
    site.protocol = JsonErrorsChannel  # type: ignore[assignment]
    site.displayTracebacks = False
    return site
