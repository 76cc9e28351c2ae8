"""The Tailor's HTTP API: ``GET /api/v0.1/docs`` streams hits; ``/api/v0.1/health``.

A tail registers its query (or looks up its subscription id) through the
Beater's RPCs, subscribes to the topic *before* it writes the header, so no
document posted after the header was seen can be missed, and then writes each
event's hits as they arrive.  Errors before the header are JSON 4xx/5xx bodies.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

from autobahn.wamp.exception import ApplicationError
from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from estrom.web import NotFound, error_body, write_json
from router import contract
from tailor import stream
from tailor.subscriptions import SubscriptionHub

log = Logger()

_CLIENT_ERRORS = {
    contract.ERROR_INVALID_QUERY: 400,
    contract.ERROR_UNSUPPORTED_QUERY: 400,
    contract.ERROR_INVALID_INDEX: 400,
    contract.ERROR_INVALID_ARGUMENT: 400,
    contract.ERROR_UNKNOWN_SUBSCRIPTION: 404,
}


class BadRequest(Exception):
    """A request parameter is missing or malformed."""

    def __init__(self, message: str, part: str) -> None:
        super().__init__(message)
        self.message = message
        self.part = part


def status_for(error_uri: str) -> int:
    """The HTTP status for a WAMP error URI from the Beater."""
    return _CLIENT_ERRORS.get(error_uri, 503)


def _arg(request: Request, name: str) -> Optional[str]:
    values = request.args.get(name.encode())
    return values[-1].decode("utf-8", "replace") if values else None


def _positive(value: Optional[str], name: str, kind: Callable[[str], Any]) -> Any:
    if value is None:
        return None
    try:
        number = kind(value)
    except ValueError:
        raise BadRequest(f"{name} must be a positive number", part=f"{name}={value}") from None
    if number <= 0:
        raise BadRequest(f"{name} must be a positive number", part=f"{name}={value}")
    return number


def tail_parameters(request: Request) -> Tuple[str, Tuple[Any, ...], Optional[int], Optional[float]]:
    """The RPC to call (register or lookup) with its arguments, and the limit and timeout."""
    index, query, sub_id = _arg(request, "i"), _arg(request, "q"), _arg(request, "s")
    limit = _positive(_arg(request, "limit"), "limit", int)
    timeout = _positive(_arg(request, "timeout"), "timeout", float)
    if sub_id is not None and query is None:
        return contract.PROC_LOOKUP, (sub_id,), limit, timeout
    if query is None:
        raise BadRequest("give a query q=<query> and an index i=<index>, or a subscription id s=<id>", part="q")
    if index is None:
        raise BadRequest("q=<query> needs an index i=<index>", part="i")
    operator = _arg(request, "default_operator") or "or"
    return contract.PROC_REGISTER, (index, query, operator), limit, timeout


class Tail:
    """One open HTTP tail: writes hits until its limit, its timeout or its client ends it."""

    def __init__(self, request: Request, hub: SubscriptionHub, clock: IReactorTime, subscription_id: str,
                 limit: Optional[int], timeout: Optional[float], heartbeat_s: float) -> None:
        self.request = request
        self.hub = hub
        self.clock = clock
        self.subscription_id = subscription_id
        self.remaining = limit
        self.first = True
        self.closed = False
        self._timeout_s = timeout
        self._timeout: Optional[IDelayedCall] = None
        self._heartbeat = LoopingCall(self._beat)
        self._heartbeat.clock = clock
        self._wrote_since_beat = False
        self._heartbeat_s = heartbeat_s

    def open(self) -> None:
        """Send the header and start the heartbeat (the subscription is already active)."""
        self.request.setHeader(b"content-type", b"application/json; charset=utf-8")
        self.request.setHeader(b"cache-control", b"no-cache")
        self.request.setHeader(b"x-accel-buffering", b"no")  # nginx: do not buffer a stream
        transport = getattr(self.request.channel, "transport", None)
        if transport is not None and hasattr(transport, "setTcpNoDelay"):
            transport.setTcpNoDelay(True)  # each hit is a small write that must leave now
        self.request.write(stream.header(self.subscription_id))
        self._heartbeat.start(self._heartbeat_s, now=False)
        if self._timeout_s:
            self._timeout = self.clock.callLater(self._timeout_s, self.finish)

    def deliver(self, hits: List[bytes]) -> None:
        """Write the (encoded) hits of one event, up to the limit."""
        if self.closed:
            return
        if self.remaining is not None:
            hits = hits[: self.remaining]
            self.remaining -= len(hits)
        if hits:
            self.request.write(stream.join_hits(hits, self.first))
            self.first = False
            self._wrote_since_beat = True
        if self.remaining == 0:
            self.finish()

    def _beat(self) -> None:
        if not self._wrote_since_beat and not self.closed:
            self.request.write(stream.HEARTBEAT)
        self._wrote_since_beat = False

    def finish(self) -> None:
        """End the stream with a proper ``]}`` (limit or timeout reached)."""
        if self.closed:
            return
        self.request.write(stream.FOOTER)
        self.request.finish()
        self.close()

    def close(self) -> None:
        """Release the subscription and the timers (also when the client went away)."""
        if self.closed:
            return
        self.closed = True
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        if self._heartbeat.running:
            self._heartbeat.stop()
        self.hub.release(self.subscription_id, self.deliver)


class DocsResource(Resource):
    """``GET /api/v0.1/docs?i=<index>&q=<query>`` or ``?s=<subscription id>``."""

    isLeaf = True

    def __init__(self, hub: SubscriptionHub, session: Callable[[], Any], clock: IReactorTime, heartbeat_s: float) -> None:
        super().__init__()
        self.hub = hub
        self.session = session
        self.clock = clock
        self.heartbeat_s = heartbeat_s
        self.tails = 0

    def render_GET(self, request: Request) -> Any:
        """Validate, register or look up, subscribe, then stream."""
        ensureDeferred(self._serve(request))
        return NOT_DONE_YET

    async def _serve(self, request: Request) -> None:
        try:
            procedure, args, limit, timeout = tail_parameters(request)
        except BadRequest as e:
            write_json(request, 400, error_body(contract.ERROR_INVALID_ARGUMENT, e.message, part=e.part))
            return
        session = self.session()
        if session is None:
            write_json(request, 503, error_body(contract.ERROR_UNAVAILABLE, "the router is not reachable; retry later"))
            return
        try:
            registration = await session.call(procedure, *args)
        except ApplicationError as e:
            details = {k: v for k, v in (e.kwargs or {}).items() if k in ("part", "position", "message")}
            message = details.pop("message", None) or (e.args[0] if e.args else e.error)
            write_json(request, status_for(e.error), error_body(e.error, str(message), **details))
            return
        except Exception as e:
            log.failure("calling {p} failed", p=procedure)
            write_json(request, 503, error_body(contract.ERROR_UNAVAILABLE, f"the Beater did not answer: {e}"))
            return
        if request._disconnected:  # type: ignore[attr-defined]
            return
        tail = Tail(request, self.hub, self.clock, registration["id"], limit, timeout, self.heartbeat_s)
        try:
            await self.hub.acquire(tail.subscription_id, tail.deliver)
        except Exception as e:
            tail.closed = True
            write_json(request, 503, error_body(contract.ERROR_UNAVAILABLE, f"subscribing failed: {e}"))
            return
        if request._disconnected:  # type: ignore[attr-defined]
            tail.close()
            return
        self.tails += 1
        request.notifyFinish().addBoth(lambda _: self._ended(tail))
        tail.open()

    def _ended(self, tail: Tail) -> None:
        self.tails -= 1
        tail.close()


class HealthResource(Resource):
    """``/api/v0.1/health``: 200 when the router session is up, with tail counts."""

    isLeaf = True

    def __init__(self, hub: SubscriptionHub, session: Callable[[], Any], docs: DocsResource) -> None:
        super().__init__()
        self.hub = hub
        self.session = session
        self.docs = docs

    def render_GET(self, request: Request) -> Any:
        """The Tailor's state as JSON."""
        ready = self.session() is not None
        write_json(request, 200 if ready else 503,
                   {"router": ready, "tails": self.docs.tails, "subscriptions": len(self.hub.subscribed_ids)})
        return NOT_DONE_YET


class Root(Resource):
    """Routes ``/api/v0.1/docs`` and ``/api/v0.1/health``; everything else is a JSON 404."""

    def __init__(self, hub: SubscriptionHub, session: Callable[[], Any], clock: IReactorTime, heartbeat_s: float) -> None:
        super().__init__()
        self.docs = DocsResource(hub, session, clock, heartbeat_s)
        self.health = HealthResource(hub, session, self.docs)

    def getChild(self, path: bytes, request: Request) -> Resource:
        """Dispatch on the full path."""
        segments = [path] + request.postpath
        if segments == [b"api", b"v0.1", b"docs"]:
            return self.docs
        if segments == [b"api", b"v0.1", b"health"]:
            return self.health
        return NotFound("no such endpoint; try /api/v0.1/docs?i=<index>&q=<query>")
