"""The Tailor's HTTP API: ``GET /api/v0.1/docs`` streams hits; ``/api/v0.1/health``.

A tail registers its query (or looks up its subscription id) through the
Beater's RPCs, subscribes to the topic *before* it writes the header, so no
document posted after the header was seen can be missed, and then writes each
event's hits as they arrive.  A tail that resumes (``since=``, ``Last-Event-ID``)
holds the live hits aside while it pages through the Beater's replay store, one
page at a time as its client takes them, then passes on the held ones it did not
already replay.  Errors before the header are JSON 4xx/5xx bodies; refusals
are never a 200, so a browser's EventSource does not reconnect in a storm.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict, List, Optional, cast

from autobahn.wamp.exception import ApplicationError
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from estrom.logs import limit_hit
from estrom.settings import Settings
from estrom.web import BadHeader, NotFound, error_body, header_text, internal_error, write_json
from router import contract
from tailor.limits import RETRY_AFTER_S, TailLimits
from tailor.metrics import TailorMetrics
from tailor.page import Page
from tailor.cursor import Cursor
from tailor.counts import CountsAggregator, CountsHub
from tailor.highlights import HighlightHub
from tailor.params import BadRequest, CountsRequest, TailRequest, parse_counts, parse_tail
from tailor.stream import Delivered, query_header, readable_of
from tailor.subscriptions import SubscriptionHub, beaters_to_ask, now_ms, replay_beater
from tailor.tail import Tail
from tailor.windows import WindowSpec

log = Logger()

_CLIENT_ERRORS = {
    contract.ERROR_INVALID_QUERY: 400,
    contract.ERROR_UNSUPPORTED_QUERY: 400,
    contract.ERROR_INVALID_INDEX: 400,
    contract.ERROR_INVALID_ARGUMENT: 400,
    contract.ERROR_UNKNOWN_SUBSCRIPTION: 404,
    contract.ERROR_LIMIT_EXCEEDED: 413,  # a query over max_query_chars or max_query_clauses
    contract.ERROR_TOO_MANY_REGISTRATIONS: 429,
}


class TailGone(Exception):
    """The client of a replaying tail went away."""


def status_for(error_uri: str) -> int:
    """The HTTP status for a WAMP error URI from the Beater."""
    return _CLIENT_ERRORS.get(error_uri, 503)


def _headers(request: Request) -> Dict[str, Optional[str]]:
    try:
        return {name.lower(): (header_text(request, name) or None) for name in ("Accept", "Last-Event-ID")}
    except BadHeader as e:
        raise BadRequest(e.message, part=e.part) from None


def _text(value: bytes, name: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        # A replacement character would quietly change a query, an index or a cursor: refuse instead.
        raise BadRequest("a query argument is not valid UTF-8 once percent-decoded",
                         part=name.decode("utf-8", "replace")) from None


def _args(request: Request) -> Dict[str, List[str]]:
    # Twisted annotates args as None (its class default); requestReceived sets the dict before any render.
    args = cast(Dict[bytes, List[bytes]], request.args)
    return {_text(k, k): [_text(v, k) for v in vs] for k, vs in args.items()}


def tail_parameters(request: Request) -> TailRequest:
    """The validated tail request (BadRequest names the offending parameter)."""
    return parse_tail(_args(request), _headers(request))


async def start_tail(request: Request, tail: Tail, subscribe: Callable[[], Awaitable[Any]], readable: Optional[str]) -> bool:
    """Subscribe ``tail`` (``subscribe``), then send its 200 and header; False if it did not start
    (the subscribe failed, answered 503, or the client left meanwhile)."""
    try:
        await subscribe()
    except Exception as e:
        tail.closed = True
        write_json(request, 503, error_body(contract.ERROR_UNAVAILABLE, f"subscribing failed: {e}"))
        return False
    if request._disconnected:
        tail.close()
        return False
    request.notifyFinish().addBoth(lambda _: tail.close())
    shown = query_header(readable)
    if shown is not None:
        request.setHeader(b"x-estrom-query", shown)
    tail.open()
    return True


class DocsResource(Resource):
    """``GET /api/v0.1/docs?i=<index>&q=<query>`` or ``?s=<subscription id>``."""

    isLeaf = True

    def __init__(self, hub: SubscriptionHub, session: Callable[[], Any], clock: IReactorTime, settings: Settings,
                 metrics: Optional[TailorMetrics] = None) -> None:
        super().__init__()
        self.hub = hub
        self.session = session
        self.clock = clock
        self.settings = settings
        self.metrics = metrics if metrics is not None else TailorMetrics()
        self.limits = TailLimits(settings.max_tails, settings.max_tails_per_client)
        self.highlights = HighlightHub(hub, session)
        self.dropped = 0  # hits dropped for slow clients since start

    @property
    def tails(self) -> int:
        """Open tails."""
        return self.limits.total

    def render_GET(self, request: Request) -> Any:
        """Validate, register or look up, subscribe, then stream."""
        ensureDeferred(self._serve(request))
        return NOT_DONE_YET

    async def _serve(self, request: Request) -> None:
        try:
            await self._serve_tail(request)
        except Exception:
            internal_error(request, "serving a tail")

    async def _serve_tail(self, request: Request) -> None:
        try:
            wanted = self.parameters(request)
        except BadRequest as e:
            write_json(request, 400, error_body(contract.ERROR_INVALID_ARGUMENT, e.message, part=e.part))
            return
        client = request.getClientAddress()
        address = getattr(client, "host", None) or str(client)
        refusal = self.limits.refusal(address)
        if refusal is not None:
            self.metrics.limit_refusals.labels(refusal.name).inc()
            limit_hit(log, refusal.name, refusal.value, address)
            request.setHeader(b"retry-after", b"%d" % RETRY_AFTER_S)
            write_json(request, 429, error_body(contract.ERROR_TOO_MANY_TAILS, refusal.message, limit=refusal.name, value=refusal.value))
            return
        self.limits.opened(address)
        try:
            await self._tail(request, wanted)
        finally:
            if not request.finished and not request._disconnected:
                request.notifyFinish().addBoth(lambda _: self.limits.closed(address))
            else:
                self.limits.closed(address)

    def parameters(self, request: Request) -> Any:
        """The validated request of this endpoint (BadRequest names the offending parameter)."""
        return tail_parameters(request)

    async def _register(self, request: Request, session: Any, wanted: TailRequest) -> Optional[Dict[str, Any]]:
        """Register the query (or look up the id) through the Beater; None once an error was answered."""
        if session is None:
            write_json(request, 503, error_body(contract.ERROR_UNAVAILABLE, "the router is not reachable; retry later", down=["router"]))
            return None
        try:
            # persist=true exempts the registration from expiry; the Beater checks the value (400 if not a boolean)
            persist = cast(Dict[bytes, List[bytes]], request.args).get(b"persist") if wanted.procedure == contract.PROC_REGISTER else None
            options = {"persist": persist[-1].decode("utf-8", "replace")} if persist else {}
            registration = await session.call(wanted.procedure, *wanted.args, **options)
        except ApplicationError as e:
            details = {k: v for k, v in (e.kwargs or {}).items() if k in ("part", "position", "message", "limit", "value")}
            message = details.pop("message", None) or (e.args[0] if e.args else e.error)
            write_json(request, status_for(e.error), error_body(e.error, str(message), **details))
            return None
        except Exception as e:
            log.failure("calling {p} failed", p=wanted.procedure)
            write_json(request, 503, error_body(contract.ERROR_UNAVAILABLE, f"the Beater did not answer: {e}"))
            return None
        if request._disconnected:
            return None
        return registration

    async def _tail(self, request: Request, wanted: TailRequest) -> None:
        session = self.session()
        registration = await self._register(request, session, wanted)
        if registration is None:
            return
        s = self.settings
        since = wanted.since
        readable = readable_of(registration)  # the query as estrom read it, shown in the stream's header
        tail = Tail(request, wanted.format.for_query(readable), self.clock, registration["id"], limit=wanted.limit, timeout=wanted.timeout,
                    heartbeat_s=s.heartbeat_s, max_bytes=s.tail_buffer_bytes, max_hits=s.tail_buffer_hits,
                    on_slow=wanted.on_slow, max_tail_s=s.max_tail_s,
                    since=since if since is not None else Cursor(floor_ms=now_ms()), on_closed=self._closed,
                    counters=self.metrics.for_format(wanted.format.name))
        if since is not None:
            self.metrics.resumes.inc()
            tail.hold()  # subscribed before the replay is read: live hits wait, so nothing falls between
        tail.highlighted = wanted.highlight
        if wanted.highlight:
            subscribe: Callable[[], Awaitable[Any]] = lambda: self.highlights.join(tail.subscription_id, tail)
        else:
            subscribe = lambda: self.hub.acquire(tail.subscription_id, tail)
        if not await start_tail(request, tail, subscribe, readable):
            return
        if since is not None:
            await self._replay(session, tail, since)

    async def _replay(self, session: Any, tail: Tail, since: Cursor) -> None:
        def gap(beater: str, missed: Optional[int]) -> None:
            tail.notice("gap", gap=True, missed=missed, beater=beater)

        highlighter = self.highlights.highlighters.get(tail.subscription_id) if tail.highlighted else None

        def page(hits: List[Delivered]) -> "Optional[Deferred[None]]":
            if tail.closed:
                raise TailGone()  # the client left: stop paging
            if highlighter is not None:
                return highlighter.highlight(hits).addCallback(lambda marked: None if tail.closed else tail.replayed(marked))
            return tail.replayed(hits)

        # Each Beater numbers its own hits: ask every one from where the cursor says, one after another.
        for beater in beaters_to_ask(self.hub.beaters, since):
            try:
                await replay_beater(session, beater, tail.subscription_id, since.since_for(beater, now_ms()), page, gap)
            except TailGone:
                return
            except Exception as e:
                log.warn("replaying {id} from Beater {beater} for a resumed tail failed: {e}", id=tail.subscription_id, beater=beater, e=e)
                gap(beater, None)
        tail.release_held()

    def _closed(self, tail: Tail) -> None:
        self.dropped += tail.dropped_total
        if tail.highlighted:
            self.highlights.leave(tail.subscription_id, tail)
        else:
            self.hub.release(tail.subscription_id, tail)


class CountsResource(DocsResource):
    """``GET /api/v0.1/counts?i=<index>&q=<query>&window=10s[&by=<field>][&top=10]`` or ``?s=<id>&window=...``.

    Streams one record per closed tumbling window (``tailor/windows.py``) through an ordinary
    :class:`Tail`, so formats, buffers, limits and timeouts are the docs endpoint's.  Tails with
    the same id and window spec share one aggregator (``tailor/counts.py``); it shares the docs
    endpoint's tail limits and metrics.
    """

    def __init__(self, docs: DocsResource, counts: CountsHub) -> None:
        Resource.__init__(self)
        self.docs = docs
        self.counts = counts
        self.hub, self.session, self.clock, self.settings = docs.hub, docs.session, docs.clock, docs.settings
        self.metrics, self.limits = docs.metrics, docs.limits

    def parameters(self, request: Request) -> Any:
        """The validated counts request (BadRequest names the offending parameter)."""
        return parse_counts(_args(request), _headers(request))

    async def _tail(self, request: Request, wanted: CountsRequest) -> None:  # type: ignore[override]
        registration = await self._register(request, self.session(), wanted.tail)
        if registration is None:
            return
        s, asked = self.settings, wanted.tail
        spec = WindowSpec(wanted.window_ms, wanted.by, wanted.top, wanted.time_field, wanted.lateness_ms)
        joined: List[CountsAggregator] = []

        def closed(tail: Tail) -> None:
            self.docs.dropped += tail.dropped_total
            if joined:
                self.counts.leave(joined[0], tail)

        readable = readable_of(registration)  # the same header as the docs endpoint's
        tail = Tail(request, asked.format.for_query(readable), self.clock, registration["id"], limit=asked.limit,
                    timeout=asked.timeout, heartbeat_s=s.heartbeat_s, max_bytes=s.tail_buffer_bytes,
                    max_hits=s.tail_buffer_hits, on_slow=asked.on_slow, max_tail_s=s.max_tail_s, since=Cursor(floor_ms=now_ms()),
                    on_closed=closed, counters=self.metrics.for_format(asked.format.name))
        async def join() -> None:
            joined.append(await self.counts.join((tail.subscription_id, spec, wanted.provisional_ms / 1000.0), tail, wanted.partial))

        if not await start_tail(request, tail, join, readable):
            return
        if wanted.resumed:
            # An EventSource reconnected: windows are counted live, so say what it missed is not sent again.
            tail.notice("gap", gap=True, missed=None, message="counts are not replayed: windows closed while away are not sent")


BEATER_PROBE_S = 2.0


async def beater_answers(session: Any, clock: IReactorTime) -> bool:
    """Whether a Beater serves its RPCs (registration, replay) through the router right now."""
    d = session.call(contract.PROC_HEALTH)
    d.addTimeout(BEATER_PROBE_S, clock)
    try:
        await d
    except Exception:
        return False
    return True


class HealthResource(Resource):
    """``/api/v0.1/health``: 200 while the router session is up; says which part is down."""

    isLeaf = True

    def __init__(self, hub: SubscriptionHub, session: Callable[[], Any], docs: DocsResource, clock: IReactorTime) -> None:
        super().__init__()
        self.hub = hub
        self.session = session
        self.docs = docs
        self.clock = clock

    def render_GET(self, request: Request) -> Any:
        """The Tailor's state as JSON (the Beater is probed through the router)."""
        ensureDeferred(self._answer(request))
        return NOT_DONE_YET

    async def _answer(self, request: Request) -> None:
        session = self.session()
        router = session is not None
        beater = await beater_answers(session, self.clock) if router else False
        down = [part for part, up in (("router", router), ("beater", beater)) if not up]
        write_json(request, 200 if router else 503, {
            "status": "ok" if not down else "degraded",
            "down": down,
            "router": router,
            "beater": beater,
            "tails": self.docs.tails,
            "subscriptions": len(self.hub.subscribed_ids),
            "dropped": self.docs.dropped,
        })


class MetricsResource(Resource):
    """``/metrics``: Prometheus' text exposition of the Tailor's counters."""

    isLeaf = True

    def __init__(self, metrics: TailorMetrics) -> None:
        super().__init__()
        self.metrics = metrics

    def render_GET(self, request: Request) -> bytes:
        """The current metrics."""
        request.setHeader(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
        return self.metrics.exposition()


class Root(Resource):
    """Routes ``/api/v0.1/docs``, ``/api/v0.1/counts``, ``/api/v0.1/health``, ``/metrics`` and the page (``/``,
    ``/static/<file>``, ``tailor/page.py``); everything else is a JSON 404."""

    def __init__(self, hub: SubscriptionHub, session: Callable[[], Any], clock: IReactorTime, settings: Settings,
                 metrics: Optional[TailorMetrics] = None) -> None:
        super().__init__()
        self.docs = DocsResource(hub, session, clock, settings, metrics)
        self.counts = CountsResource(self.docs, CountsHub(hub, clock))
        self.health = HealthResource(hub, session, self.docs, clock)
        self.metrics = MetricsResource(self.docs.metrics)
        self.docs.metrics.watch(lambda: len(hub.subscribed_ids), lambda: session() is not None)
        self.page = Page()

    def getChild(self, path: bytes, request: Request) -> Resource:
        """Dispatch on the full path."""
        segments = [path] + cast(List[bytes], request.postpath)  # Request.process sets it before traversal
        if segments == [b"api", b"v0.1", b"docs"]:
            return self.docs
        if segments == [b"api", b"v0.1", b"counts"]:
            return self.counts
        if segments == [b"api", b"v0.1", b"health"]:
            return self.health
        if segments == [b"metrics"]:
            return self.metrics
        page = self.page.resource_for(segments)
        if page is not None:
            return page
        return NotFound("no such endpoint; try /api/v0.1/docs?i=<index>&q=<query>")
