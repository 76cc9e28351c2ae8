"""The Beater's HTTP API: ``POST /api/v0.1/beat/<index>`` and a health check.

Errors are JSON bodies naming the problem and the offending part; a body with
some bad items is still accepted for its good ones, with the bad ones listed.
"""

from __future__ import annotations

from typing import Any, BinaryIO, Callable, List, cast

from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from beater.errors import EstromError
from beater.ingest import parse_body
from beater.service import Beater
from estrom.web import NotFound, error_body, internal_error, write_json
from router import contract

log = Logger()


class BeatResource(Resource):
    """``/api/v0.1/beat/<index>``: ingest documents into ``index``."""

    isLeaf = True
    method_hint = "use POST with a JSON object, a JSON array or NDJSON"
    """The message of the JSON 405 (``estrom.web``) that any other method gets."""

    def __init__(self, beater: Beater, router_ready: Callable[[], bool]) -> None:
        super().__init__()
        self.beater = beater
        self.router_ready = router_ready

    def render_POST(self, request: Request) -> Any:
        """Parse the body, percolate and publish its documents, answer counts and per-item errors."""
        postpath = cast(List[bytes], request.postpath)  # set by the resource traversal that led here
        if len(postpath) != 1 or not postpath[0]:
            write_json(request, 404, error_body(contract.ERROR_INVALID_INDEX, "POST to /api/v0.1/beat/<index>"))
            return NOT_DONE_YET
        try:
            index = postpath[0].decode("utf-8")
        except UnicodeDecodeError:
            write_json(request, 400, error_body(contract.ERROR_INVALID_INDEX, "the index is not valid UTF-8 once percent-decoded",
                                                part=postpath[0].decode("utf-8", "replace")))
            return NOT_DONE_YET
        if not self.router_ready():
            write_json(request, 503, error_body(contract.ERROR_UNAVAILABLE, "the router is not reachable; nothing was ingested, retry later"))
            return NOT_DONE_YET
        limit = self.beater.limits.max_body_bytes
        body = cast(BinaryIO, request.content).read(limit + 1)  # a request being rendered has its body
        if len(body) > limit:
            write_json(request, 413, error_body(contract.ERROR_LIMIT_EXCEEDED, f"the body is larger than {limit} bytes (max_body_bytes)",
                                                limit="max_body_bytes", value=limit))
            return NOT_DONE_YET
        ensureDeferred(self._ingest(request, index, body))
        return NOT_DONE_YET

    async def _ingest(self, request: Request, index: str, body: bytes) -> None:
        try:
            await self._ingest_and_answer(request, index, body)
        except Exception:
            internal_error(request, f"ingest into {index}")

    async def _ingest_and_answer(self, request: Request, index: str, body: bytes) -> None:
        try:
            parsed = parse_body(body, index, self.beater.limits)
            report = await self.beater.ingest(index, parsed)
        except EstromError as e:
            write_json(request, e.http_status, e.to_json())
            return
        except Exception:
            log.failure("ingest into {index} failed", index=index)
            write_json(request, 503, error_body(contract.ERROR_UNAVAILABLE, "percolating or publishing failed; the documents were not all delivered, retry"))
            return
        status = 400 if report["errors"] and not report["accepted"] else 200
        write_json(request, status, report)


class HealthResource(Resource):
    """``/api/v0.1/health``: is the router session up, which percolator, how much traffic.

    ``status`` is ``ok`` or ``degraded`` and ``down`` names the parts this Beater
    cannot reach (``["router"]`` while Crossbar is down or restarting), so that an
    operator sees *why* ingest answers 503, not only that it does.
    """

    isLeaf = True

    def __init__(self, beater: Beater, router_ready: Callable[[], bool]) -> None:
        super().__init__()
        self.beater = beater
        self.router_ready = router_ready

    def render_GET(self, request: Request) -> Any:
        """200 when the router session is up, 503 otherwise; ``down`` lists what is missing."""
        ready = self.router_ready()
        down = [] if ready else ["router"]
        pipeline = self.beater.pipeline
        write_json(
            request,
            503 if down else 200,
            {
                "status": "degraded" if down else "ok",
                "down": down,
                "router": ready,
                "percolator": self.beater.percolator.name,
                "documents": pipeline.documents_in,
                "deliveries": pipeline.hits_out,
                "publishes": pipeline.publishes,
            },
        )
        return NOT_DONE_YET


class MetricsResource(Resource):
    """``/metrics``: Prometheus' text exposition of the Beater's counters."""

    isLeaf = True

    def __init__(self, beater: Beater, router_ready: Callable[[], bool]) -> None:
        super().__init__()
        self.beater = beater
        self.router_ready = router_ready

    def render_GET(self, request: Request) -> bytes:
        """The current metrics (the router gauge is read at scrape time)."""
        metrics = self.beater.pipeline.metrics
        metrics.router_connected.set(1 if self.router_ready() else 0)
        request.setHeader(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
        return metrics.exposition()


class Root(Resource):
    """Routes ``/api/v0.1/beat/...``, ``/api/v0.1/health`` and ``/metrics``; everything else is a JSON 404."""

    def __init__(self, beater: Beater, router_ready: Callable[[], bool]) -> None:
        super().__init__()
        self.beat = BeatResource(beater, router_ready)
        self.health = HealthResource(beater, router_ready)
        self.metrics = MetricsResource(beater, router_ready)
        self.admin: Resource = NotFound()  # beater.admin.AdminResource, set by beater.app (it needs the listeners)

    def getChild(self, path: bytes, request: Request) -> Resource:
        """Dispatch on the first three path segments."""
        segments = [path] + cast(List[bytes], request.postpath)  # getChild is called during traversal: set
        if segments == [b"metrics"]:
            return self.metrics
        if segments[:2] == [b"api", b"v0.1"] and len(segments) >= 3:
            request.postpath = segments[3:]
            if segments[2] == b"beat":
                return self.beat
            if segments[2] == b"health" and len(segments) == 3:
                return self.health
            if segments[2] == b"admin":
                return self.admin
        return NotFound()
